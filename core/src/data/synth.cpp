#include "ddaq/core/synth.h"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "ddaq/error.h"
#include "ddaq/core/progress.h"
#include "ddaq/core/random.h"
#include "ddaq/core/version.h"

namespace ddaq {
namespace {

// Soft deposits: Pareto(kSoftMin, kSoftIndex) energies, the bulk of real 0PU
// wafers (median wafer sum 4 CALQ). Showers: log-uniform between the bounds.
constexpr double kSoftMin = 2.2;
constexpr double kSoftIndex = 1.45;
constexpr double kSoftMax = 400.0;
constexpr double kShowerMin = 20.0;
constexpr double kElectronShowerMax = 25000.0;
constexpr double kJetShowerMax = 1800.0;
// EM showers: a narrow core plus a wide halo (the tail outside the Moliere radius).
constexpr double kEmHaloFraction = 0.08;
constexpr double kEmHaloRadiusCm = 2.2;

struct Point {
  double x, y;
};

Point random_point_on_wafer(Rng& rng, const WaferGeometry& g) {
  // A random cell, then a uniform offset within its footprint (a disk of the
  // cell's area): close to uniform over the wafer, and always on it.
  const TriggerCell& c = g.cell(static_cast<int>(rng.below(kCellsPerWafer)));
  const double r = 0.525 * g.trigger_cell_pitch_cm() * std::sqrt(rng.uniform());
  const double phi = 2.0 * M_PI * rng.uniform();
  return {c.x_cm + r * std::cos(phi), c.y_cm + r * std::sin(phi)};
}

// Adds `energy` spread with a Gaussian profile of `radius` around `at`.
void deposit(const WaferGeometry& g, Point at, double radius, double energy, double* expected) {
  double w[kCellsPerWafer];
  double total = 0.0;
  const double inv = 1.0 / (2.0 * radius * radius);
  for (int i = 0; i < kCellsPerWafer; ++i) {
    const double dx = g.cell(i).x_cm - at.x, dy = g.cell(i).y_cm - at.y;
    w[i] = std::exp(-(dx * dx + dy * dy) * inv);
    total += w[i];
  }
  if (total <= 0.0) return;
  for (int i = 0; i < kCellsPerWafer; ++i) expected[i] += energy * w[i] / total;
}

// Soft deposit (shower tails, MIPs) or, with probability shower_fraction, a
// shower core. `shower` tells which.
double particle_energy(Rng& rng, double shower_fraction, double shower_max, bool& shower) {
  shower = rng.uniform() < shower_fraction;
  if (shower) return kShowerMin * std::exp(rng.uniform() * std::log(shower_max / kShowerMin));
  const double e = kSoftMin * std::pow(1.0 - rng.uniform(), -1.0 / kSoftIndex);
  return std::min(e, kSoftMax);
}

// One wafer, digitized: expected charges -> fluctuation, noise, rounding,
// zero suppression. Adds into `out`.
void one_wafer(const SynthOptions& o, const WaferGeometry& g, Rng& rng, bool electron, float* out) {
  double expected[kCellsPerWafer] = {};
  const Point centre = random_point_on_wafer(rng, g);
  bool shower = false;
  if (electron) {
    const double energy = particle_energy(rng, o.electron_shower_fraction(), kElectronShowerMax, shower);
    deposit(g, centre, o.em_radius_cm(), energy * (1.0 - kEmHaloFraction), expected);
    deposit(g, centre, kEmHaloRadiusCm, energy * kEmHaloFraction, expected);
  } else {
    // Soft hadronic deposits look like single hits; showers split into
    // 1 + Poisson(2) sub-clusters spread over jet_spread_cm.
    const double energy = particle_energy(rng, o.jet_shower_fraction(), kJetShowerMax, shower);
    const int64_t n = shower ? std::min<int64_t>(1 + rng.poisson(2.0), 16) : 1;
    double share[16];
    double total = 0.0;
    for (int64_t p = 0; p < n; ++p) total += (share[p] = rng.exponential());
    for (int64_t p = 0; p < n; ++p) {
      const double spread = p == 0 ? 0.0 : o.jet_spread_cm();
      const Point at{centre.x + spread * rng.normal(), centre.y + spread * rng.normal()};
      // Soft hits are point-like (MIPs): the compact radius.
      deposit(g, at, shower ? o.jet_radius_cm() : o.em_radius_cm(), energy * share[p] / total, expected);
    }
  }
  for (int i = 0; i < kCellsPerWafer; ++i) {
    const double q = expected[i] + std::sqrt(expected[i]) * rng.normal() + o.noise_sigma() * rng.normal();
    const double rounded = std::floor(q + 0.5);
    if (rounded >= o.zero_suppression()) out[i] += static_cast<float>(rounded);
  }
}

}  // namespace

void SynthOptions::validate() const {
  auto need = [](bool ok, const char* name, double v) {
    if (!ok) throw Error(std::string("synth: option ") + name + " = " + std::to_string(v) + " is out of range");
  };
  need(events_ >= 0, "events", static_cast<double>(events_));
  need(std::isfinite(pileup_mu_) && pileup_mu_ >= 0 && pileup_mu_ <= 1000, "pileup", pileup_mu_);
  need(electron_fraction_ >= 0 && electron_fraction_ <= 1, "electron_fraction", electron_fraction_);
  need(std::isfinite(zero_suppression_) && zero_suppression_ >= 0, "zero_suppression", zero_suppression_);
  need(std::isfinite(noise_sigma_) && noise_sigma_ >= 0, "noise_sigma", noise_sigma_);
  need(em_radius_cm_ > 0 && std::isfinite(em_radius_cm_), "em_radius_cm", em_radius_cm_);
  need(jet_radius_cm_ > 0 && std::isfinite(jet_radius_cm_), "jet_radius_cm", jet_radius_cm_);
  need(jet_spread_cm_ >= 0 && std::isfinite(jet_spread_cm_), "jet_spread_cm", jet_spread_cm_);
  need(electron_shower_fraction_ >= 0 && electron_shower_fraction_ <= 1, "electron_shower_fraction",
       electron_shower_fraction_);
  need(jet_shower_fraction_ >= 0 && jet_shower_fraction_ <= 1, "jet_shower_fraction", jet_shower_fraction_);
}

std::string SynthOptions::to_json() const {
  const nlohmann::json j = {{"events", events_},
                            {"seed", seed_},
                            {"pileup_mu", pileup_mu_},
                            {"electron_fraction", electron_fraction_},
                            {"zero_suppression", zero_suppression_},
                            {"noise_sigma", noise_sigma_},
                            {"em_radius_cm", em_radius_cm_},
                            {"jet_radius_cm", jet_radius_cm_},
                            {"jet_spread_cm", jet_spread_cm_},
                            {"electron_shower_fraction", electron_shower_fraction_},
                            {"jet_shower_fraction", jet_shower_fraction_}};
  return j.dump();
}

void synthesize(const SynthOptions& options, const WaferGeometry& geometry, int64_t first, int64_t count,
                float* calq, int32_t* labels) {
  options.validate();
  for (int64_t k = 0; k < count; ++k) {
    Rng rng(options.seed(), static_cast<uint64_t>(first + k));
    float* out = calq + k * kCellsPerWafer;
    std::fill(out, out + kCellsPerWafer, 0.0f);
    const bool electron = rng.uniform() < options.electron_fraction();
    // Real samples hold hit wafers only: redraw the particle until a cell
    // passes zero suppression (bounded; a pathological threshold gives up).
    for (int attempt = 0; attempt < 1000; ++attempt) {
      one_wafer(options, geometry, rng, electron, out);
      if (std::any_of(out, out + kCellsPerWafer, [](float q) { return q > 0.0f; })) break;
    }
    const int64_t pileup = rng.poisson(options.pileup_mu());
    for (int64_t p = 0; p < pileup; ++p) one_wafer(options, geometry, rng, false, out);
    if (labels) labels[k] = electron ? 1 : 0;
  }
}

EventTable synthesize(const SynthOptions& options, const WaferGeometry& geometry) {
  options.validate();
  EventTable t;
  t.calq.resize(static_cast<size_t>(options.events()) * kCellsPerWafer);
  t.label.resize(static_cast<size_t>(options.events()));
  synthesize(options, geometry, 0, options.events(), t.calq.data(), t.label.data());
  return t;
}

void synthesize_to_file(const SynthOptions& options, const std::string& output, Progress* progress) {
  options.validate();
  EventFileWriter writer(output, true);
  constexpr int64_t kBlock = 8192;
  std::vector<float> calq(kBlock * kCellsPerWafer);
  std::vector<int32_t> labels(kBlock);
  for (int64_t first = 0; first < options.events(); first += kBlock) {
    const int64_t n = std::min(kBlock, options.events() - first);
    synthesize(options, WaferGeometry::hgcal(), first, n, calq.data(), labels.data());
    writer.append(calq.data(), labels.data(), n);
    if (progress) progress->advance(n);
  }
  writer.set_attribute("creator", std::string("ddaq data synth"));
  writer.set_attribute("seed", static_cast<int64_t>(options.seed()));
  writer.set_attribute("pileup_mu", options.pileup_mu());
  writer.set_attribute("provenance",
                       nlohmann::json({{"creator", "ddaq data synth"},
                                       {"generator", nlohmann::json::parse(options.to_json())},
                                       {"geometry", "embedded CMS HGCAL 8-inch wafer (48 trigger cells)"}})
                           .dump());
  writer.commit();
}

}  // namespace ddaq
