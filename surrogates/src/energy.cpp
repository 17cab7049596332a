#include "ddaq/surrogates/energy.h"

#include <ceres/ceres.h>

#include <algorithm>
#include <cstdio>

#include "ddaq/error.h"

namespace ddaq {

EnergyEstimate estimate_energy(const ModelDescription& model, const EnergyModel& m) {
  EnergyEstimate e;
  for (const LayerDescription& l : model) {
    if (l.kind != LayerKind::Dense && l.kind != LayerKind::Conv2d && l.kind != LayerKind::ConvTranspose2d) continue;
    const double mults = static_cast<double>(l.multiplies);
    const double a = l.input_type.width, b = l.weight_type.width, acc = l.accumulator_type.width;
    // EBOPs carry the learned per-weight bits when present; else a x b per multiply.
    const double bit_products = l.ebops > 0 ? l.ebops : mults * a * b;
    e.multiplies += mults;
    e.adds += mults;
    e.multiply_pj += m.mult_pj_per_bit_product * bit_products + m.mult_pj_per_bit * std::max(a, b) * mults;
    e.add_pj += m.add_pj_per_bit * acc * mults;
    e.area_bit_products += bit_products + acc * mults;
  }
  e.multiply_pj *= m.technology_scale;
  e.add_pj *= m.technology_scale;
  e.total_pj = e.multiply_pj + e.add_pj;
  e.power_mw = e.total_pj * 1e-12 * m.inference_rate_hz * 1e3;
  return e;
}

std::string EnergyEstimate::to_text() const {
  char buf[256];
  std::snprintf(buf, sizeof buf,
                "%.0f multiplies, %.0f adds: %.4g pJ per inference (multiplies %.4g, adds %.4g), %.4g mW at the "
                "inference rate, area proxy %.4g bit-products",
                multiplies, adds, total_pj, multiply_pj, add_pj, power_mw, area_bit_products);
  return buf;
}

namespace {

struct ScaleResidual {
  double estimate, measured;
  template <class T>
  bool operator()(const T* const scale, T* residual) const {
    // Relative residual, so energy (pJ) and power (mW) weigh alike.
    residual[0] = (scale[0] * T(estimate) - T(measured)) / T(measured);
    return true;
  }
};

}  // namespace

TechnologyFit fit_technology_scale(const ModelDescription& model, double measured_nj, double measured_mw,
                                   const EnergyModel& start) {
  EnergyModel unit = start;
  unit.technology_scale = 1.0;
  const EnergyEstimate e = estimate_energy(model, unit);
  if (!(e.total_pj > 0)) throw Error("technology fit: the model has no multiplies to scale");
  if (!(measured_nj > 0) && !(measured_mw > 0)) throw Error("technology fit: give a measured energy or power");
  double scale = std::max(start.technology_scale, 1e-6);
  ceres::Problem problem;
  if (measured_nj > 0)
    problem.AddResidualBlock(new ceres::AutoDiffCostFunction<ScaleResidual, 1, 1>(
                                 new ScaleResidual{e.total_pj, measured_nj * 1e3}),
                             new ceres::CauchyLoss(0.5), &scale);
  if (measured_mw > 0)
    problem.AddResidualBlock(new ceres::AutoDiffCostFunction<ScaleResidual, 1, 1>(
                                 new ScaleResidual{e.power_mw, measured_mw}),
                             new ceres::CauchyLoss(0.5), &scale);
  problem.SetParameterLowerBound(&scale, 0, 1e-9);
  ceres::Solver::Options options;
  options.max_num_iterations = 100;
  options.function_tolerance = 1e-14;
  options.parameter_tolerance = 1e-14;
  options.logging_type = ceres::SILENT;
  ceres::Solver::Summary summary;
  ceres::Solve(options, &problem, &summary);
  if (!summary.IsSolutionUsable()) throw Error("technology fit: Ceres failed: " + summary.message);
  TechnologyFit fit;
  fit.model = start;
  fit.model.technology_scale = scale;
  fit.estimate_before_pj = e.total_pj;
  fit.measured_pj = measured_nj * 1e3;
  fit.measured_mw = measured_mw;
  return fit;
}

std::string TechnologyFit::to_text() const {
  char buf[256];
  std::snprintf(buf, sizeof buf,
                "45 nm estimate %.4g pJ per inference; measured %.4g pJ, %.4g mW; fitted technology scale %.4g", 
                estimate_before_pj, measured_pj, measured_mw, model.technology_scale);
  return buf;
}

}  // namespace ddaq
