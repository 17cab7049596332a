// ddaq/surrogates/emd_surrogate.h: a small learned EMD, usable as a loss.
//
// Built on the structure of the problem rather than on size:
//  * EMD(a, b) depends only on d = a/|a| - b/|b| (Kantorovich-Rubinstein for
//    a metric ground cost) and is positively homogeneous and even in d;
//  * sliced 1-D EMDs of d along fixed directions are exact in 1-D (cumulative
//    sums), cheap, and each is a lower bound of the 2-D EMD;
//  * a small MLP maps (d/|d|_1, sliced/|d|_1) to the ratio EMD / L, where
//    L = max over directions of the sliced EMD, averaged over d and -d.
// So pred(a, b) = L * (1 + softplus(MLP)): symmetric in (a, b) by
// construction, never below the sliced lower bound, exact in scale, and
// differentiable in both inputs.
#pragma once
#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "ddaq/options.h"
#include "ddaq/surrogates/emd_pairs.h"

namespace at {
class Tensor;
}

namespace ddaq {

using CellCentres = std::vector<std::array<double, 2>>;

struct EmdSurrogateOptions {
  // Cell centres and the distance unit (HGCAL: cm and 1.20840075 cm).
  DDAQ_OPTION(CellCentres, points);
  DDAQ_OPTION(double, unit) = 1.0;
  DDAQ_OPTION(int, directions) = 32;
  DDAQ_OPTION(std::vector<int64_t>, hidden) = std::vector<int64_t>{96, 64};
  DDAQ_OPTION(uint64_t, seed) = 1;  // weight initialization
 public:
  std::string to_json() const;
  static EmdSurrogateOptions from_json(const std::string& text);
};

class EmdSurrogate {
 public:
  explicit EmdSurrogate(const EmdSurrogateOptions& options);
  ~EmdSurrogate();
  EmdSurrogate(EmdSurrogate&&) noexcept;
  EmdSurrogate& operator=(EmdSurrogate&&) noexcept;

  // Loads a file written by save(); throws ddaq::Error naming the file.
  static EmdSurrogate load(const std::string& path);
  // Atomic (temporary file, then rename).
  void save(const std::string& path) const;

  // a, b: [N, cells] charges (normalized inside), any float dtype/device the
  // module was moved to. Returns [N] predicted EMD; differentiable.
  at::Tensor forward(const at::Tensor& a, const at::Tensor& b) const;
  // Convenience without tensors in the caller: float rows in (host
  // memory), float64 out; runs on the module's device in batches.
  void predict(const float* a, const float* b, int64_t rows, double* out) const;

  int64_t parameter_count() const;
  const EmdSurrogateOptions& options() const;
  // "cpu", "cuda" or "cuda:N"; throws ddaq::Error for anything else or
  // when this LibTorch sees no CUDA device.
  void to(const std::string& device);
  std::string device() const;
  void train_mode(bool on);
  std::vector<at::Tensor> parameters() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

struct EmdSurrogateTrainOptions {
  DDAQ_OPTION(int, epochs) = 40;
  DDAQ_OPTION(int64_t, batch_size) = 512;
  DDAQ_OPTION(double, learning_rate) = 3e-3;
  DDAQ_OPTION(double, weight_decay) = 1e-5;
  DDAQ_OPTION(double, validation_fraction) = 0.1;
  DDAQ_OPTION(uint64_t, seed) = 1;  // shuffling and the validation split
  DDAQ_OPTION(int, patience) = 8;   // epochs without validation gain before stopping
};

struct EmdSurrogateTrainSummary {
  int epochs_run = 0, best_epoch = 0;
  double best_validation_loss = 0.0;  // mean squared log ratio
  double seconds = 0.0;
  std::string to_text() const;
};

// Trains on log(pred / emd)^2 (relative error) with AdamW and cosine decay;
// keeps the weights of the best validation epoch. Deterministic on CPU for
// fixed seeds and thread count. `on_epoch(epoch, train_loss, valid_loss)`.
EmdSurrogateTrainSummary train_emd_surrogate(EmdSurrogate& model, const EmdPairs& pairs,
                                             const EmdSurrogateTrainOptions& options,
                                             const std::function<void(int, double, double)>& on_epoch = {});

// Relative error (pred - true) / true of a surrogate on labelled pairs.
struct EmdSurrogateReport {
  struct Row {
    std::string label;
    int64_t count = 0;
    double mean = 0, std = 0, p50 = 0, p05 = 0, p95 = 0;
  };
  Row all;
  std::vector<Row> by_emd, by_occupancy, by_kind;
  std::array<double, 7> percentiles{};  // 1, 5, 16, 50, 84, 95, 99 %
  int64_t parameters = 0;
  // Throughput: the surrogate through predict() (host memory in and out)
  // on `device`, the exact solver on `threads` CPU threads.
  double surrogate_us_per_pair = 0, exact_us_per_pair = 0;
  int threads = 1;
  std::string device = "cpu";
  std::string to_text() const;
  std::string to_json() const;
};

EmdSurrogateReport evaluate_emd_surrogate(const EmdSurrogate& model, const EmdPairs& pairs,
                                          const GroundMetric& metric);

}  // namespace ddaq
