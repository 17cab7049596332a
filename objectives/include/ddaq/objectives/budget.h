// ddaq/objectives/budget.h: hardware budgets as constraints, not weights.
//
// Each budget is a constraint cost_k(design) <= limit_k on a differentiable
// (relaxed) cost, written g_k = cost_k / limit_k - 1 <= 0 so that budgets of
// different units share one penalty. The augmented Lagrangian (Powell-
// Hestenes-Rockafellar form) adds to the loss, per budget,
//     (mu / 2) [ max(0, g_k + lambda_k / mu)^2 - (lambda_k / mu)^2 ]
// whose gradient is max(0, lambda_k + mu g_k) dg_k: zero well inside the
// budget, and growing with the multiplier lambda_k while it is violated.
// Every `update_every` steps lambda_k <- max(0, lambda_k + mu mean(g_k)) over
// the steps since the last update. A multiplier is thus a price learned by
// the run, not a weight a user tunes.
//
// The relaxed costs only steer; what counts is the final, integer design
// (see core/codesign.h: projection and report).
#pragma once
#include <cstdint>
#include <map>
#include <string>

namespace at {
class Tensor;
}

namespace ddaq {

class WeightedObjective;

struct BudgetLimits {
  std::map<std::string, double> limits;  // cost name -> limit (> 0)
  double penalty = 10.0;                 // mu
  int64_t update_every = 50;             // steps between multiplier updates
  bool empty() const { return limits.empty(); }
};

class AugmentedLagrangian {
 public:
  explicit AugmentedLagrangian(BudgetLimits budgets);
  // Adds "budget_<name>" (weight 1) for every budget whose cost is in
  // `costs` (name -> scalar tensor), and remembers g for the next update.
  // A budget whose cost is missing throws ddaq::Error naming it.
  void add_terms(const std::map<std::string, at::Tensor>& costs, WeightedObjective& objective);
  // Called after every optimizer step: updates the multipliers every
  // `update_every` steps (a function of the step alone: resumption repeats it).
  void after_step(int64_t step);
  const std::map<std::string, double>& multipliers() const { return lambda_; }
  // The whole state (multipliers and the pending sums), for checkpoints.
  std::string state_json() const;
  void restore(const std::string& json);
  const BudgetLimits& budgets() const { return budgets_; }

 private:
  BudgetLimits budgets_;
  std::map<std::string, double> lambda_, pending_sum_;
  int64_t pending_steps_ = 0;
};

}  // namespace ddaq
