// ddaq/surrogates/fpga_resources.h: FPGA resources and latency of dense
// networks synthesized by hls4ml, as an analytic model with interpretable,
// non-negative parameters fitted with Ceres.
//
// Per design (a chain of dense layers, weight bits b, activation bits a,
// reuse factor R; n_w = in x out per layer; mults = sum ceil(n_w / R)):
//   LUT, FF  = c0 + c_in_a sum in a + c_out_a sum out a + c_io_b sum (in + out) b
//              + c_mult mults + c_mult_b sum ceil(n_w / R) b + c_store sum n_w b / 1000
//              + c_layer layers
//   latency  = c0 + c_cycle sum min(R, n_w) + c_layer layers      (cycles)
//   BRAM18K  = c0 + c_word sum ceil(ceil(n_w / R) b / 36) + c_layer layers
//   DSP      = sum over layers with b >= 9 of ceil(n_w / R)       (Vivado rule, not fitted)
// The differentiable form replaces ceil by its argument and takes bits and
// kept-unit counts as tensors.
//
// Contract for training: every parameter but the intercept is >= 0, so each
// estimate is non-decreasing in bits and units, LUT/FF/BRAM are non-
// increasing and latency non-decreasing in the reuse factor. Estimates are
// finite and clamped from below to a physical floor (0 resources, one cycle
// per layer): a linear fit extrapolated far from its data (reuse factor 1
// from a fit at 1024-4093) can go negative. A model knows the region it was
// fitted on (FitDomain); outside_fit_range() says how a design leaves it.
#pragma once
#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "ddaq/quant/description.h"

namespace at {
class Tensor;
}

namespace ddaq {

struct DenseLayerSpec {
  int64_t in = 0, out = 0;
  double weight_bits = 8, act_bits = 16;
  int64_t reuse_factor = 1;
};

struct DesignSpec {
  std::string id;     // e.g. the CSV's model_id
  std::string group;  // architecture key for grouped cross-validation (layer_dims)
  std::vector<DenseLayerSpec> layers;
  bool resource_strategy = true;
};

enum class ResourceTarget { LUT = 0, FF, DSP, BRAM18K, LatencyCycles, kCount };
const char* to_string(ResourceTarget t);

using ResourceValues = std::array<double, static_cast<size_t>(ResourceTarget::kCount)>;

// A CSV with the columns of wa_hls4ml_dense_sample_hls_xcu250.csv (at least
// layer_dims, weight_bits, reuse_factor, strategy; act_bits may be empty =
// 16, the hls4ml default; targets LUT, FF, DSP, BRAM18K, latency_cycles_best
// when fitting). Quoted fields are allowed. Bad rows throw ddaq::Error
// "<file>:<line>: <column>: <what>".
struct ResourceTable {
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;  // raw fields, for writing predictions back
  std::vector<DesignSpec> designs;
  std::vector<ResourceValues> targets;  // NaN where a target column is missing or empty
  std::vector<int> lines;               // source line of each row
};
ResourceTable read_resource_csv(const std::string& path, bool need_targets);

// A quantized model as dense-equivalent layers (a convolution counts as a
// dense layer of C_in k^2 inputs and C_out outputs), all with reuse factor R.
DesignSpec design_from(const ModelDescription& model, int64_t reuse_factor);

// The region of design space a model was fitted on: per layer the ranges of
// inputs, outputs, weight and activation bits and reuse factor; per design
// the range of layer counts. Empty (known() false) for a model built by hand.
struct FitDomain {
  std::array<double, 2> in{}, out{}, weight_bits{}, act_bits{}, reuse_factor{}, layers{};
  bool known() const { return layers[1] > 0; }
  void include(const DesignSpec& design);
  // One phrase per way the design leaves the domain, e.g. "reuse factor 1
  // below the fit range 1024..4093 (layer 1)"; empty inside it.
  std::vector<std::string> outside(const DesignSpec& design) const;
};

// The lowest physical value of each target (0; latency: one cycle per layer).
ResourceValues physical_floor(const DesignSpec& design);

class AnalyticResourceModel {
 public:
  AnalyticResourceModel();
  // The fit shipped in surrogates/models/fpga_resources.txt (built in).
  static const AnalyticResourceModel& shipped();

  // Clamped to physical_floor(design); finite for every valid design.
  ResourceValues predict(const DesignSpec& design) const;
  // Fits every fitted target on the rows where it is known (Ceres, relative
  // residuals, Cauchy loss, parameters >= 0 except the intercept).
  void fit(const std::vector<DesignSpec>& designs, const std::vector<ResourceValues>& targets);

  // Differentiable LUT, FF, latency (cycles) and BRAM18K for per-layer tensors
  // (0-d): in, out (kept units), weight and activation bits; reuse factors
  // fixed. Clamped from below like predict (zero gradient at the floor).
  struct LayerTensors {
    const at::Tensor* in;
    const at::Tensor* out;
    const at::Tensor* weight_bits;
    const at::Tensor* act_bits;
    int64_t reuse_factor;
  };
  at::Tensor predict_differentiable(const std::vector<LayerTensors>& layers, ResourceTarget target) const;

  // The fit data's region (set by fit, saved and loaded with the model).
  const FitDomain& domain() const { return domain_; }
  // outside_fit_range as one line ("" inside): "outside the fit data: ...".
  std::string range_warning(const DesignSpec& design) const;

  // Text format: one "target name value" per line, and "domain FEATURE MIN
  // MAX" lines for the fit region; atomic save.
  void save(const std::string& path) const;
  std::string serialize() const;  // the text save() writes
  static AnalyticResourceModel load(const std::string& path);
  // The same text format from a string; errors name `source` and the line.
  static AnalyticResourceModel parse(const std::string& text, const std::string& source);
  std::string to_text() const;

  const std::map<std::string, double>& parameters(ResourceTarget t) const { return params_[static_cast<size_t>(t)]; }

 private:
  std::array<std::map<std::string, double>, static_cast<size_t>(ResourceTarget::kCount)> params_;
  FitDomain domain_;
};

// Grouped k-fold cross-validation (no architecture in both train and test):
// sMAPE and R^2 per target.
struct CrossValidation {
  int folds = 0;
  ResourceValues smape{}, r2{};
  std::array<int64_t, static_cast<size_t>(ResourceTarget::kCount)> count{};
  std::string to_text() const;
};
CrossValidation cross_validate(const std::vector<DesignSpec>& designs, const std::vector<ResourceValues>& targets,
                               int folds, uint64_t seed);
// The same folds for any model: `fit` trains on a fold's training rows and
// returns a predictor.
using ResourcePredictor = std::function<ResourceValues(const DesignSpec&)>;
using ResourceFitter =
    std::function<ResourcePredictor(const std::vector<DesignSpec>&, const std::vector<ResourceValues>&)>;
CrossValidation cross_validate(const std::vector<DesignSpec>& designs, const std::vector<ResourceValues>& targets,
                               int folds, uint64_t seed, const ResourceFitter& fit);

}  // namespace ddaq
