#include "flat_adam.h"
#include <c10/core/GradMode.h>  // c10::NoGradGuard: at:: lost the alias in LibTorch 2.x

#include <cmath>

#include "ddaq/error.h"

namespace ddaq {

FlatAdam::FlatAdam(const std::vector<Group>& groups, double beta1, double beta2, double eps)
    : beta1_(beta1), beta2_(beta2), eps_(eps) {
  c10::NoGradGuard no_grad;
  std::vector<at::Tensor> flat_parts, lr_parts, decay_parts;
  for (const Group& g : groups)
    for (const at::Tensor& p : g.params) {
      params_.push_back(p);
      flat_parts.push_back(p.detach().reshape({-1}));
      lr_parts.push_back(at::full({p.numel()}, g.learning_rate, p.options()));
      decay_parts.push_back(at::full({p.numel()}, g.weight_decay, p.options()));
      any_decay_ = any_decay_ || g.weight_decay > 0;
    }
  if (params_.empty()) throw Error("optimizer: no trainable parameters");
  flat_ = at::cat(flat_parts);
  base_lr_ = at::cat(lr_parts);
  decay_ = at::cat(decay_parts);
  exp_avg_ = at::zeros_like(flat_);
  exp_avg_sq_ = at::zeros_like(flat_);
  int64_t offset = 0;
  for (at::Tensor& p : params_) {
    p.set_data(flat_.narrow(0, offset, p.numel()).view(p.sizes()));
    offset += p.numel();
  }
}

void FlatAdam::zero_grad() {
  for (at::Tensor& p : params_) p.mutable_grad().reset();
}

at::Tensor FlatAdam::gather_grads() const {
  std::vector<at::Tensor> parts;
  parts.reserve(params_.size());
  for (const at::Tensor& p : params_)
    parts.push_back(p.grad().defined() ? p.grad().reshape({-1}) : at::zeros({p.numel()}, flat_.options()));
  return at::cat(parts);
}

void FlatAdam::step(const at::Tensor& g, double lr_scale) {
  c10::NoGradGuard no_grad;
  ++step_;
  const double bias1 = 1.0 - std::pow(beta1_, static_cast<double>(step_));
  const double bias2 = 1.0 - std::pow(beta2_, static_cast<double>(step_));
  exp_avg_.mul_(beta1_).add_(g, 1.0 - beta1_);
  exp_avg_sq_.mul_(beta2_).addcmul_(g, g, 1.0 - beta2_);
  if (any_decay_) flat_.addcmul_(flat_ * decay_, base_lr_, -lr_scale);
  const at::Tensor denom = exp_avg_sq_.sqrt().div_(std::sqrt(bias2)).add_(eps_);
  flat_.addcdiv_(exp_avg_ * base_lr_, denom, -lr_scale / bias1);
}

std::vector<std::pair<std::string, at::Tensor>> FlatAdam::state() const {
  return {{"exp_avg", exp_avg_.cpu()},
          {"exp_avg_sq", exp_avg_sq_.cpu()},
          {"step", at::full({1}, step_, at::TensorOptions().dtype(at::kLong))}};
}

void FlatAdam::load_state(const std::vector<std::pair<std::string, at::Tensor>>& state, const std::string& source) {
  c10::NoGradGuard no_grad;
  auto find = [&](const std::string& name) {
    for (const auto& kv : state)
      if (kv.first == name) return kv.second;
    throw Error(source + ": optimizer state has no '" + name + "'");
  };
  const at::Tensor m = find("exp_avg"), v = find("exp_avg_sq"), s = find("step");
  if (m.numel() != exp_avg_.numel() || v.numel() != exp_avg_sq_.numel() || s.numel() != 1)
    throw Error(source + ": optimizer state of another size (another architecture or frozen stages?)");
  exp_avg_.copy_(m.reshape({-1}));
  exp_avg_sq_.copy_(v.reshape({-1}));
  step_ = s.item<int64_t>();
}

}  // namespace ddaq
