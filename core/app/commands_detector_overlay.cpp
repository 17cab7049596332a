// `ddaq detector overlay CONFIG INPUT -o OUT [--seed S] [--mu-quantiles LO:HI]`: training wafers
// with the detector's mix of pileup (docs/detector.md). Each wafer of INPUT
// gets the pileup of a trigger module drawn uniformly from CONFIG's
// occupancy model, calibrated exactly as `ddaq detector plan` calibrates it.
// What the published ECON-T autoencoders were trained on (one 200-pileup
// sample of the whole detector), in this model: the honest baseline for the
// hand-made tables' "one autoencoder per e-link count". With --mu-quantiles
// only a band of the modules (an encoder class: the plan's own encoders for
// the detector's sparse, middle or dense modules).
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "commands.h"
#include "ddaq/core/detector_plan.h"
#include "ddaq/core/events.h"
#include "ddaq/error.h"
#include "ddaq/files.h"

namespace ddaq {
namespace cli {
namespace {

// "LO:HI", two numbers with 0 <= LO < HI <= 1.
std::pair<double, double> parse_quantiles(const std::string& text) {
  const size_t colon = text.find(':');
  double q[2] = {0, 0};
  bool ok = colon != std::string::npos;
  for (int k = 0; ok && k < 2; ++k) {
    const std::string part = k == 0 ? text.substr(0, colon) : text.substr(colon + 1);
    char* end = nullptr;
    q[k] = std::strtod(part.c_str(), &end);
    ok = !part.empty() && end == part.c_str() + part.size() && std::isfinite(q[k]);
  }
  if (!ok || !(q[0] >= 0 && q[0] < q[1] && q[1] <= 1)) return {-1, -1};
  return {q[0], q[1]};
}

void detector_overlay(const std::string& config_path, const std::string& input, const std::string& output,
                      uint64_t seed, const std::string& quantiles) {
  const DetectorConfig config = DetectorConfig::load(config_path);
  check_outputs({config_path, config.modules_file, config.signal_file, config.pool_file, input}, {output});
  const ModuleTable modules = ModuleTable::load(config.modules_file);
  const EventTable signal = read_wafers(config.signal_file);
  const EventTable pool = read_wafers(config.pool_file);
  const DetectorModel detector = build_detector_model(config, modules, signal, pool);
  const auto [q_lo, q_hi] = quantiles.empty() ? std::make_pair(0.0, 1.0) : parse_quantiles(quantiles);
  const DetectorModel model = between_mu_quantiles(detector, q_lo, q_hi);
  EventTable wafers = read_wafers(input);
  if (wafers.cells != kCellsPerWafer) throw Error(input + ": not 48-cell HGCAL wafers");
  if (wafers.size() == 0) throw Error(input + ": no events");
  const int64_t n = wafers.size();
  std::vector<float> mu(static_cast<size_t>(n));
  overlay_detector_mix(model, pool, seed, 0, n, wafers.calq.data(), mu.data());

  double occupancy = 0, sum = 0, mu_sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    for (int c = 0; c < kCellsPerWafer; ++c) {
      const float x = wafers.calq[static_cast<size_t>(i * kCellsPerWafer + c)];
      occupancy += x > 0, sum += x;
    }
    mu_sum += mu[static_cast<size_t>(i)];
  }
  EventFileWriter writer(output, wafers.has_labels());
  writer.append(wafers);
  writer.add_dataset("mu", mu, {n});
  writer.set_attribute("creator", std::string("ddaq detector overlay"));
  writer.set_attribute("seed", static_cast<int64_t>(seed));
  writer.set_attribute("provenance", nlohmann::json({{"creator", "ddaq detector overlay"},
                                                     {"config", config_path},
                                                     {"input", input},
                                                     {"pool", config.pool_file},
                                                     {"mu_per_flux", model.mu_per_flux},
                                                     {"pileup_scale", model.pileup_scale},
                                                     {"mu_quantiles", {q_lo, q_hi}},
                                                     {"seed", seed}})
                                         .dump());
  writer.commit();
  std::vector<double> site_mu;
  for (const auto& s : model.sites) site_mu.push_back(s.mu);
  std::sort(site_mu.begin(), site_mu.end());
  auto at = [&](double q) { return site_mu[static_cast<size_t>(q * static_cast<double>(site_mu.size() - 1))]; };
  const double events = static_cast<double>(n);
  std::string among = "";
  if (model.sites.size() < detector.sites.size()) {
    char text[160];
    std::snprintf(text, sizeof text, " of the %zu between mu quantiles %g and %g (mu %.2f to %.2f)",
                  detector.sites.size(), q_lo, q_hi, site_mu.front(), site_mu.back());
    among = text;
  }
  std::printf(
      "wrote %s: %lld events, pileup of %zu trigger modules%s drawn uniformly (their mu 5%% %.2f, median %.2f, "
      "95%% %.2f); mean mu %.2f, mean occupancy %.2f cells, mean wafer sum %.1f CALQ (seed %llu)\n",
      output.c_str(), static_cast<long long>(n), site_mu.size(), among.c_str(), at(0.05), at(0.5), at(0.95),
      mu_sum / events, occupancy / events, sum / events, static_cast<unsigned long long>(seed));
}

}  // namespace

void add_detector_overlay_command(CLI::App& detector) {
  struct Args {
    std::string config, input, output;
    uint64_t seed = 1;
    std::string quantiles;
  };
  auto a = std::make_shared<Args>();
  CLI::App* c = detector.add_subcommand(
      "overlay", "Training wafers with the detector's pileup mix: each wafer gets a random trigger module's pileup");
  c->add_option("config", a->config, "detector configuration (JSON): occupancy model, pool")->required();
  c->add_option("input", a->input, "signal wafers (.h5, or a CALQ CSV)")->required();
  c->add_option("-o,--output", a->output, "output event file (.h5; a dataset 'mu' holds each wafer's module mu)")
      ->required();
  c->add_option("--seed", a->seed, "random seed")->capture_default_str()->check(seed_number());
  c->add_option("--mu-quantiles", a->quantiles,
                "LO:HI: only the trigger modules between these quantiles of the model's mu (0:0.33 the sparsest "
                "third): the wafers of one encoder class")
      ->check(CLI::Validator(
          [](std::string& text) -> std::string {
            return parse_quantiles(text).first < 0 ? "'" + text + "' is not LO:HI with 0 <= LO < HI <= 1" : "";
          },
          "LO:HI", "quantiles"));
  c->callback([a] { detector_overlay(a->config, a->input, a->output, a->seed, a->quantiles); });
}

}  // namespace cli
}  // namespace ddaq
