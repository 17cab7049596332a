#include <ATen/ATen.h>

#include "ddaq/error.h"
#include "ddaq/surrogates/link_budget.h"

namespace ddaq {

at::Tensor relaxed_elinks(const at::Tensor& payload_bits, const AutoencoderFrame& frame, double temperature) {
  if (!(temperature > 0)) throw Error("link budget: temperature must be positive");
  // 1 + sum over capacity boundaries of a sigmoid step at each boundary.
  at::Tensor n = at::ones_like(payload_bits);
  for (int k = 1; k < frame.max_elinks(); ++k) {
    const int cap = frame.payload_capacity(k);
    if (cap >= frame.payload_capacity(k + 1)) break;  // the payload no longer grows
    n = n + at::sigmoid((payload_bits - (cap + 0.5)) / temperature);
  }
  return n;
}

at::Tensor budget_hinge(const at::Tensor& value, double budget, double slope, double temperature) {
  if (!(temperature > 0)) throw Error("link budget: temperature must be positive");
  return slope * temperature * at::softplus((value - budget) / temperature);
}

}  // namespace ddaq

#include "ddaq/surrogates/energy.h"

namespace ddaq {

at::Tensor energy_pj(const at::Tensor& ebops, double multiplies, double mean_max_bits, double accumulator_bits,
                     const EnergyModel& m) {
  return m.technology_scale * (m.mult_pj_per_bit_product * ebops + m.mult_pj_per_bit * mean_max_bits * multiplies +
                               m.add_pj_per_bit * accumulator_bits * multiplies);
}

}  // namespace ddaq
