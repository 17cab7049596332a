#include <ATen/ATen.h>

#include "ddaq/error.h"
#include "ddaq/surrogates/link_budget.h"

namespace ddaq {

at::Tensor fractional_elinks(const at::Tensor& payload_bits, const AutoencoderFrame& frame) {
  // One linear segment per e-link: segment k adds (p - cap(k-1)) / (cap(k) -
  // cap(k-1)), clamped to [0, 1]; the last one is open above.
  at::Tensor n = at::zeros_like(payload_bits);
  int previous = 0;
  for (int k = 1; k <= frame.max_elinks(); ++k) {
    const int cap = frame.payload_capacity(k);
    if (cap <= previous) break;  // the payload no longer grows
    const bool last = k == frame.max_elinks() || frame.payload_capacity(k + 1) <= cap;
    const at::Tensor segment = (payload_bits - previous) / static_cast<double>(cap - previous);
    n = n + (last ? segment.clamp_min(0.0) : segment.clamp(0.0, 1.0));
    if (last) {
      // Beyond the frame's maximum: 1 per elink_bits instead of the last
      // segment's slope (equal for every segment but the first).
      const at::Tensor over = (payload_bits - cap).clamp_min(0.0);
      n = n - over / static_cast<double>(cap - previous) + over / static_cast<double>(frame.elink_bits());
      break;
    }
    previous = cap;
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

#include "ddaq/surrogates/fpga_resources.h"

namespace ddaq {

// Features as in fpga_resources.cpp (features()), in tensors.
struct ResourceFeatures {
  at::Tensor in_a, out_a, io_b, mults, mult_bits, kbits, cycles, words;
};

static at::Tensor linear_form(const std::map<std::string, double>& p, ResourceTarget target, const ResourceFeatures& f,
                              double layers_n) {
  switch (target) {
    case ResourceTarget::LUT:
    case ResourceTarget::FF:
      return p.at("intercept") + p.at("in_act_bits") * f.in_a + p.at("out_act_bits") * f.out_a +
             p.at("io_weight_bits") * f.io_b + p.at("multipliers") * f.mults + p.at("multiplier_bits") * f.mult_bits +
             p.at("weight_kbits") * f.kbits + p.at("layers") * layers_n;
    case ResourceTarget::LatencyCycles:
      return p.at("intercept") + p.at("cycles_per_reuse") * f.cycles + p.at("layers") * layers_n;
    default:
      return p.at("intercept") + p.at("words_36b") * f.words + p.at("layers") * layers_n;
  }
}

at::Tensor AnalyticResourceModel::predict_differentiable(const std::vector<LayerTensors>& layers,
                                                         ResourceTarget target) const {
  if (target == ResourceTarget::DSP) {
    // The Vivado rule (a layer's multipliers go to DSPs when its weights
    // have 9 bits or more) as a smooth step, sigmoid(2 (bits - 8.5)): 0.27
    // at 8 bits, 0.73 at 9, 0.95 at 10; the projection makes it exact.
    at::Tensor dsp = at::zeros({}, at::kDouble);
    for (const auto& l : layers) {
      const at::Tensor nw = l.in->to(at::kDouble) * l.out->to(at::kDouble);
      dsp = dsp + nw / static_cast<double>(l.reuse_factor) *
                      at::sigmoid(2.0 * (l.weight_bits->to(at::kDouble) - 8.5));
    }
    return dsp;
  }
  const auto& p = params_[static_cast<size_t>(target)];
  const at::Tensor zero = at::zeros({}, at::kDouble);
  ResourceFeatures f{zero, zero, zero, zero, zero, zero, zero, zero};
  for (const auto& l : layers) {
    const at::Tensor in = l.in->to(at::kDouble), out = l.out->to(at::kDouble);
    const at::Tensor wb = l.weight_bits->to(at::kDouble), ab = l.act_bits->to(at::kDouble);
    const at::Tensor nw = in * out;
    const double r = static_cast<double>(l.reuse_factor);
    f.in_a = f.in_a + in * ab;
    f.out_a = f.out_a + out * ab;
    f.io_b = f.io_b + (in + out) * wb;
    f.mults = f.mults + nw / r;
    f.mult_bits = f.mult_bits + nw / r * wb;
    f.kbits = f.kbits + nw * wb / 1000.0;
    f.cycles = f.cycles + at::clamp_max(nw, r);
    f.words = f.words + nw / r * wb / 36.0;
  }
  const double layers_n = static_cast<double>(layers.size());
  // The floor of predict(): 0, or one cycle per layer for the latency.
  const double floor = target == ResourceTarget::LatencyCycles ? layers_n : 0.0;
  return at::clamp_min(linear_form(p, target, f, layers_n), floor);
}

}  // namespace ddaq
