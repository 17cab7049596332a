// ddaq/surrogates/energy.h: energy per inference, power and an ASIC area
// proxy from a quantized model's description.
//
// Horowitz (ISSCC 2014, 45 nm) polynomials as used by QKeras qtools:
//   fixed-point add of b bits:        0.003125 b pJ
//   fixed-point multiply a x b bits:  0.0029948 a b + 0.0010417 max(a, b) pJ
// Every multiply is followed by one accumulator add. Memory and control are
// not modelled; `technology_scale` (fitted, fit_technology_scale) maps the
// 45 nm estimate to a real chip.
#pragma once
#include <string>

#include "ddaq/quant/description.h"

namespace at {
class Tensor;
}

namespace ddaq {

struct EnergyModel {
  double add_pj_per_bit = 0.003125;
  double mult_pj_per_bit_product = 0.0029948;
  double mult_pj_per_bit = 0.0010417;
  double technology_scale = 1.0;
  double inference_rate_hz = 40e6;  // one inference per bunch crossing
};

struct EnergyEstimate {
  double multiplies = 0, adds = 0;
  double multiply_pj = 0, add_pj = 0, total_pj = 0;  // after technology_scale
  double power_mw = 0;                               // total_pj x rate
  double area_bit_products = 0;                      // fully parallel: sum a b over multipliers + accumulator bits
  std::string to_text() const;
};

EnergyEstimate estimate_energy(const ModelDescription& model, const EnergyModel& m = EnergyModel());

// Differentiable energy (pJ) from differentiable EBOPs (sum a b) plus the
// parts that do not depend on the learned bits: gradients reach the bits.
at::Tensor energy_pj(const at::Tensor& ebops, double multiplies, double mean_max_bits, double accumulator_bits,
                     const EnergyModel& m = EnergyModel());

// Fits technology_scale (Ceres, bounded > 0, Cauchy loss) so that the
// estimate of `model` matches a measured energy per inference and power
// (either may be <= 0 to leave it out). Returns the fitted model.
struct TechnologyFit {
  EnergyModel model;
  double estimate_before_pj = 0, measured_pj = 0, measured_mw = 0;
  std::string to_text() const;
};
TechnologyFit fit_technology_scale(const ModelDescription& model, double measured_nj, double measured_mw,
                                   const EnergyModel& start = EnergyModel());

}  // namespace ddaq
