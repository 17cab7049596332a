// ddaq/surrogates/resource_net.h: a learned correction of the analytic FPGA
// model, as a per-layer additive readout (so it extrapolates in depth).
//
//   log((y + 1) / (analytic + 1)) = bias + sum over layers g(phi_layer)
// phi = (log2 in, log2 out, weight bits / 8, act bits / 16, log2 R,
// log2(n_w / R), first layer, last layer); g is a small MLP with one output
// per fitted target (LUT, FF, BRAM18K, latency). DSP stays the Vivado rule.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "ddaq/options.h"
#include "ddaq/surrogates/fpga_resources.h"

namespace ddaq {

struct LearnedResourceOptions {
  DDAQ_OPTION(std::vector<int64_t>, hidden) = std::vector<int64_t>{32, 32};
  DDAQ_OPTION(int, epochs) = 600;
  DDAQ_OPTION(double, learning_rate) = 3e-3;
  DDAQ_OPTION(double, weight_decay) = 1e-4;
  DDAQ_OPTION(uint64_t, seed) = 1;
};

class LearnedResourceModel {
 public:
  explicit LearnedResourceModel(const LearnedResourceOptions& options = LearnedResourceOptions());
  ~LearnedResourceModel();
  LearnedResourceModel(LearnedResourceModel&&) noexcept;
  LearnedResourceModel& operator=(LearnedResourceModel&&) noexcept;

  // Fits the analytic base (Ceres), then the readout on its log residuals.
  void fit(const std::vector<DesignSpec>& designs, const std::vector<ResourceValues>& targets);
  ResourceValues predict(const DesignSpec& design) const;
  const AnalyticResourceModel& analytic() const;

  void save(const std::string& path) const;  // atomic
  static LearnedResourceModel load(const std::string& path);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Grouped k-fold cross-validation of the learned model (same folds as
// cross_validate for the same seed).
CrossValidation cross_validate_learned(const std::vector<DesignSpec>& designs,
                                       const std::vector<ResourceValues>& targets, int folds, uint64_t seed,
                                       const LearnedResourceOptions& options = LearnedResourceOptions());

}  // namespace ddaq
