#include "ddaq/objectives/objective.h"

#include <ATen/ATen.h>

#include "ddaq/error.h"

namespace ddaq {

struct WeightedObjective::Term {
  std::string name;
  double weight;
  at::Tensor value;
};

WeightedObjective::WeightedObjective() = default;
WeightedObjective::~WeightedObjective() = default;

void WeightedObjective::add(const std::string& name, double weight, const at::Tensor& value) {
  if (value.numel() != 1) throw Error("objective: term '" + name + "' is not a scalar");
  if (!(weight >= 0)) throw Error("objective: term '" + name + "' has a negative weight");
  terms_.push_back({name, weight, value.reshape({})});
}

at::Tensor WeightedObjective::total() const {
  if (terms_.empty()) throw Error("objective: no terms");
  at::Tensor t = at::zeros({}, terms_.front().value.options());
  for (const auto& term : terms_)
    if (term.weight > 0) t = t + term.weight * term.value.to(t.dtype());
  return t;
}

std::map<std::string, double> WeightedObjective::values() const {
  std::map<std::string, double> v;
  for (const auto& term : terms_) v[term.name] = term.value.item<double>();
  v["total"] = total().item<double>();
  return v;
}

at::Tensor weighted_mse(const at::Tensor& target, const at::Tensor& prediction) {
  return ((target - prediction).pow(2) * at::max(target, prediction)).mean();
}

at::Tensor mse(const at::Tensor& target, const at::Tensor& prediction) { return (target - prediction).pow(2).mean(); }

namespace {
// Sums of cells per group: [N, groups].
at::Tensor group_sums(const at::Tensor& x, const at::Tensor& groups) {
  const int64_t n = groups.max().item<int64_t>() + 1;
  return at::zeros({x.size(0), n}, x.options()).index_add(1, groups.to(x.device()), x);
}
}  // namespace

at::Tensor telescope(const at::Tensor& target, const at::Tensor& prediction, const at::Tensor& groups2x2,
                     const at::Tensor& groups4x4) {
  return 4.0 * weighted_mse(target, prediction) +
         2.0 * weighted_mse(group_sums(target, groups2x2), group_sums(prediction, groups2x2)) +
         weighted_mse(group_sums(target, groups4x4), group_sums(prediction, groups4x4));
}

at::Tensor binary_cross_entropy_logits(const at::Tensor& logits, const at::Tensor& labels) {
  return at::binary_cross_entropy_with_logits(logits, labels.to(logits.dtype()));
}

}  // namespace ddaq
