// Adam over every trainable parameter packed into one flat buffer.
//
// Why: steps of small models are bound by the number of tensor ops, and
// torch::optim::Adam spends ~8 ops per parameter tensor; here a step is ~8 ops
// in all, and the data-parallel all-reduce gets one contiguous gradient.
// The parameters become views into the buffer (set_data), so modules keep
// their tensors and see every update. Update rule: PyTorch's Adam (no weight
// decay, no AMSGrad), bias-corrected; a parameter that got no gradient in a
// step counts as gradient zero (its moments decay). Weight decay, when set,
// is AdamW's (decoupled from the moments).
#pragma once
#include <ATen/ATen.h>

#include <string>
#include <utility>
#include <vector>

namespace ddaq {

class FlatAdam {
 public:
  struct Group {
    std::vector<at::Tensor> params;
    double learning_rate = 1e-3;
    double weight_decay = 0.0;  // decoupled (AdamW): p -= lr * weight_decay * p
  };
  explicit FlatAdam(const std::vector<Group>& groups, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8);

  void zero_grad();
  // The gradients of all parameters, flat, in buffer order.
  at::Tensor gather_grads() const;
  // One update from a flat gradient; learning rates scaled by `lr_scale`.
  void step(const at::Tensor& flat_grad, double lr_scale);

  // For checkpoints: moments and step count (CPU tensors), and back.
  std::vector<std::pair<std::string, at::Tensor>> state() const;
  void load_state(const std::vector<std::pair<std::string, at::Tensor>>& state, const std::string& source);

 private:
  std::vector<at::Tensor> params_;
  at::Tensor flat_, base_lr_, decay_, exp_avg_, exp_avg_sq_;
  bool any_decay_ = false;
  double beta1_, beta2_, eps_;
  int64_t step_ = 0;
};

}  // namespace ddaq
