// ddaq/objectives/objective.h: named loss terms and their weighted total.
//
// Every term is logged by name; the trainer minimizes total(). Budgets
// enter as hinges (zero inside, linear outside: link_budget.h's
// budget_hinge), so a design inside its budget pays nothing for it.
#pragma once
#include <map>
#include <string>
#include <vector>

namespace at {
class Tensor;
}

namespace ddaq {

class WeightedObjective {
 public:
  WeightedObjective();
  ~WeightedObjective();
  // Adds weight * value (a scalar tensor); weight 0 logs without training on it.
  void add(const std::string& name, double weight, const at::Tensor& value);
  at::Tensor total() const;
  // Unweighted values of every term, and "total", for logs.
  std::map<std::string, double> values() const;

 private:
  struct Term;
  std::vector<Term> terms_;
};

// ECON-T's weighted MSE: mean((y - yhat)^2 * max(y, yhat)).
at::Tensor weighted_mse(const at::Tensor& target, const at::Tensor& prediction);
// Mean squared error over cells.
at::Tensor mse(const at::Tensor& target, const at::Tensor& prediction);
// The ECON-T studies' "telescope": 4 L(cells) + 2 L(2x2 super cells) +
// L(4x4 blocks), L the weighted MSE, on [N, 48] wafers. `groups2x2` and
// `groups4x4` ([48] int64) give each cell's super cell and block index
// (the detector geometry lives in core/, which builds them).
at::Tensor telescope(const at::Tensor& target, const at::Tensor& prediction, const at::Tensor& groups2x2,
                     const at::Tensor& groups4x4);
// Binary cross-entropy on logits; labels 0/1 of any dtype.
at::Tensor binary_cross_entropy_logits(const at::Tensor& logits, const at::Tensor& labels);

}  // namespace ddaq
