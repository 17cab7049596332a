#include "ddaq/objectives/budget.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "ddaq/error.h"
#include "ddaq/objectives/objective.h"

namespace ddaq {

AugmentedLagrangian::AugmentedLagrangian(BudgetLimits budgets) : budgets_(std::move(budgets)) {
  if (!(budgets_.penalty > 0) || !std::isfinite(budgets_.penalty))
    throw Error("budgets: penalty " + std::to_string(budgets_.penalty) + " (expected > 0)");
  if (budgets_.update_every < 1) throw Error("budgets: update_every must be >= 1");
  for (const auto& kv : budgets_.limits) {
    if (!(kv.second > 0) || !std::isfinite(kv.second))
      throw Error("budgets: " + kv.first + " = " + std::to_string(kv.second) + " (expected a finite limit > 0)");
    lambda_[kv.first] = 0.0;
    pending_sum_[kv.first] = 0.0;
  }
}

void AugmentedLagrangian::add_terms(const std::map<std::string, at::Tensor>& costs, WeightedObjective& objective) {
  const double mu = budgets_.penalty;
  for (const auto& kv : budgets_.limits) {
    auto it = costs.find(kv.first);
    if (it == costs.end()) throw Error("budgets: no differentiable cost '" + kv.first + "' in this pipeline");
    const at::Tensor g = it->second.reshape({}) / kv.second - 1.0;
    const double shift = lambda_[kv.first] / mu;
    objective.add("budget_" + kv.first, 1.0, 0.5 * mu * ((g + shift).clamp_min(0).pow(2) - shift * shift));
    pending_sum_[kv.first] += g.item<double>();
  }
  if (!budgets_.limits.empty()) ++pending_steps_;
}

void AugmentedLagrangian::after_step(int64_t step) {
  if (step % budgets_.update_every != 0 || pending_steps_ == 0) return;
  for (auto& kv : lambda_) {
    const double g = pending_sum_[kv.first] / static_cast<double>(pending_steps_);
    kv.second = std::max(0.0, kv.second + budgets_.penalty * g);
    pending_sum_[kv.first] = 0.0;
  }
  pending_steps_ = 0;
}

std::string AugmentedLagrangian::state_json() const {
  return nlohmann::json({{"lambda", lambda_}, {"pending_sum", pending_sum_}, {"pending_steps", pending_steps_}}).dump();
}

void AugmentedLagrangian::restore(const std::string& text) {
  const auto j = nlohmann::json::parse(text);
  for (auto& kv : lambda_) kv.second = j.at("lambda").at(kv.first).get<double>();
  for (auto& kv : pending_sum_) kv.second = j.at("pending_sum").at(kv.first).get<double>();
  pending_steps_ = j.at("pending_steps").get<int64_t>();
}

}  // namespace ddaq
