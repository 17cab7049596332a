#include "ddaq/surrogates/sinkhorn.h"

#include <ATen/ATen.h>

#include "ddaq/error.h"

namespace ddaq {

at::Tensor cost_tensor(const GroundMetric& metric) {
  std::vector<float> values(metric.matrix().begin(), metric.matrix().end());
  return at::tensor(at::ArrayRef<float>(values)).reshape({metric.size(), metric.size()});
}

at::Tensor sinkhorn_emd(const at::Tensor& a, const at::Tensor& b, const at::Tensor& cost,
                        const SinkhornOptions& options) {
  if (!(options.epsilon() > 0.0)) throw Error("sinkhorn: epsilon must be positive");
  if (options.iterations() < 1) throw Error("sinkhorn: iterations must be >= 1");
  if (a.dim() != 2 || b.sizes() != a.sizes() || cost.dim() != 2 || cost.size(0) != a.size(1) ||
      cost.size(1) != a.size(1))
    throw Error("sinkhorn: expected a and b of shape [N, n] and cost [n, n]");
  const double eps = options.epsilon();
  // Normalize; an empty row divides by zero and yields NaN, on purpose.
  const at::Tensor pa = a / a.sum(1, true);
  const at::Tensor pb = b / b.sum(1, true);
  // log of zero masses: a very negative finite number keeps gradients finite.
  const at::Tensor log_a = at::log(pa.clamp_min(1e-30));
  const at::Tensor log_b = at::log(pb.clamp_min(1e-30));
  const at::Tensor scaled = -cost.to(a.dtype()).to(a.device()).unsqueeze(0) / eps;  // [1, n, n]
  at::Tensor f = at::zeros_like(log_a), g = at::zeros_like(log_b);              // potentials / eps
  for (int it = 0; it < options.iterations(); ++it) {
    f = log_a - at::logsumexp(scaled + g.unsqueeze(1), 2);
    g = log_b - at::logsumexp(scaled + f.unsqueeze(2), 1);
  }
  const at::Tensor plan = at::exp(scaled + f.unsqueeze(2) + g.unsqueeze(1));
  return (plan * (-scaled * eps)).sum({1, 2});
}

}  // namespace ddaq
