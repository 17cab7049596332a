// The detector plan's configuration and occupancy model (detector_plan.h).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <utility>

#include "ddaq/core/config.h"
#include "ddaq/core/detector_plan.h"
#include "ddaq/core/random.h"
#include "ddaq/error.h"

namespace ddaq {

namespace {

std::string beside(const std::string& config_path, const std::string& file) {
  if (file.empty() || std::filesystem::path(file).is_absolute()) return file;
  return (std::filesystem::path(config_path).parent_path() / file).lexically_normal().string();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// Linear interpolation of `y` over `x` (increasing); clamped at the ends.
double interpolate(const std::vector<double>& x, const std::vector<double>& y, double at) {
  if (at <= x.front()) return y.front();
  if (at >= x.back()) return y.back();
  const size_t i = static_cast<size_t>(std::upper_bound(x.begin(), x.end(), at) - x.begin());
  const double t = (at - x[i - 1]) / (x[i] - x[i - 1]);
  return y[i - 1] + t * (y[i] - y[i - 1]);
}

// Poisson(mu) pool wafers, each drawn uniformly with replacement, added to
// `out` with their charges times `scale`.
void add_pileup(Rng& rng, double mu, const EventTable& pool, float scale, float* out) {
  const int64_t k = rng.poisson(mu);
  for (int64_t i = 0; i < k; ++i) {
    const float* p = pool.calq.data() + rng.below(static_cast<uint64_t>(pool.size())) * kCellsPerWafer;
    for (int c = 0; c < kCellsPerWafer; ++c) out[c] += scale * p[c];
  }
}

}  // namespace

void draw_module_wafer(Rng& rng, double mu, const EventTable& signal, const EventTable& pool, float* out,
                       double pileup_scale) {
  const float* s = signal.calq.data() + rng.below(static_cast<uint64_t>(signal.size())) * kCellsPerWafer;
  std::copy(s, s + kCellsPerWafer, out);
  add_pileup(rng, mu, pool, static_cast<float>(pileup_scale), out);
}

void overlay_detector_mix(const DetectorModel& model, const EventTable& pool, uint64_t seed, int64_t first_index,
                          int64_t rows, float* calq, float* mu_out) {
  if (model.sites.empty()) throw Error("detector overlay: the model has no trigger modules");
  if (pool.size() == 0) throw Error("detector overlay: the pileup pool has no events");
  const float scale = static_cast<float>(model.pileup_scale);
  for (int64_t r = 0; r < rows; ++r) {
    Rng rng(seed, static_cast<uint64_t>(first_index + r));
    const double mu = model.sites[rng.below(static_cast<uint64_t>(model.sites.size()))].mu;
    add_pileup(rng, mu, pool, scale, calq + r * kCellsPerWafer);
    if (mu_out) mu_out[r] = static_cast<float>(mu);
  }
}

DetectorModel between_mu_quantiles(const DetectorModel& model, double lo, double hi) {
  char range[64];
  std::snprintf(range, sizeof range, "mu quantiles %g:%g", lo, hi);
  if (!(lo >= 0 && lo < hi && hi <= 1)) throw Error(std::string(range) + ": expected 0 <= LO < HI <= 1");
  const size_t n = model.sites.size();
  std::vector<size_t> order(n);
  for (size_t i = 0; i < n; ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return model.sites[a].mu < model.sites[b].mu; });
  DetectorModel out = model;
  out.sites.clear();
  const double count = static_cast<double>(n);
  for (size_t r = 0; r < n; ++r) {
    const double rank = static_cast<double>(r);
    if (rank >= lo * count && rank < hi * count) out.sites.push_back(model.sites[order[r]]);
  }
  if (out.sites.empty())
    throw Error(std::string(range) + ": no trigger module in the range (" + std::to_string(n) + " in the model)");
  return out;
}

DetectorConfig DetectorConfig::load(const std::string& path) {
  const Config c = Config::load(path);
  c.reject_unknown({"name",
                    "description",
                    "modules",
                    "signal",
                    "pool",
                    "occupancy",
                    "groups",
                    "wafers_per_group",
                    "algorithms",
                    "autoencoders",
                    "table_algorithms",
                    "max_elinks",
                    "budget_elinks",
                    "budget_uplinks",
                    "power",
                    "budget_power_w",
                    "pareto_elinks",
                    "lpgbt_user_bits",
                    "seed",
                    "threads"});
  DetectorConfig d;
  d.name = c.string("name", d.name);
  (void)c.string("description", "");  // for the reader; a string when present
  d.modules_file = beside(path, c.string("modules", ""));
  d.signal_file = beside(path, c.string("signal", ""));
  d.pool_file = beside(path, c.string("pool", ""));
  if (d.modules_file.empty() || d.signal_file.empty() || d.pool_file.empty())
    throw Error(path + ": 'modules', 'signal' and 'pool' are needed (a module table and two event files)");
  const Config occ = c.section("occupancy");
  occ.reject_unknown(
      {"target_mean_occupancy", "reference_mean_sum", "match_reference_sum", "calibration_wafers", "layer_weights"});
  d.target_mean_occupancy = occ.number("target_mean_occupancy", d.target_mean_occupancy, 0.01, 47.99);
  d.reference_mean_sum = occ.number("reference_mean_sum", d.reference_mean_sum, 0.0);
  d.match_reference_sum = occ.boolean("match_reference_sum", d.match_reference_sum);
  d.calibration_wafers = occ.integer("calibration_wafers", d.calibration_wafers, 10, 1000000);
  if (occ.has("layer_weights")) {
    const Config w = occ.section("layer_weights");
    for (const std::string& key : w.keys()) {
      char* end = nullptr;
      const long layer = std::strtol(key.c_str(), &end, 10);
      if (key.empty() || *end != '\0' || layer < 1 || layer > 60)
        throw Error(path + ": occupancy.layer_weights: '" + key + "' is not a layer number (1..60)");
      if (!d.layer_weights.emplace(static_cast<int>(layer), w.number(key, 1.0, 1e-6, 1e6)).second)
        throw Error(path + ": occupancy.layer_weights: layer " + std::to_string(layer) + " is listed twice");
    }
  }
  const Config groups = c.section("groups");
  groups.reject_unknown({"eta_ring_width", "layers"});
  d.eta_ring_width = groups.number("eta_ring_width", d.eta_ring_width, 0.01, 10.0);
  for (int64_t l : groups.integers("layers", {}, 1, 60)) d.layers.push_back(static_cast<int>(l));
  d.wafers_per_group = c.integer("wafers_per_group", d.wafers_per_group, 10, 1000000);
  d.algorithms = c.strings("algorithms", d.algorithms);
  for (const std::string& a : d.algorithms)
    if (a != "best_choice" && a != "threshold" && a != "stc4" && a != "stc16")
      throw Error(path + ": algorithms: '" + a + "' is not one of best_choice, threshold, stc4, stc16");
  for (const std::string& entry : c.strings("autoencoders", {})) {
    const size_t eq = entry.find('=');
    const std::string name = eq == std::string::npos ? "autoencoder" : entry.substr(0, eq);
    if (name.empty() || name.find_first_of(", \"") != std::string::npos)
      throw Error(path + ": autoencoders: '" + entry + "': NAME must be non-empty, without commas, spaces or quotes");
    d.autoencoder_runs.push_back({name, beside(path, eq == std::string::npos ? entry : entry.substr(eq + 1))});
  }
  d.table_algorithms = c.strings("table_algorithms", {});
  d.max_elinks = static_cast<int>(c.integer("max_elinks", d.max_elinks, 1, 13));
  d.budget_elinks = c.integer("budget_elinks", 0, 0);
  d.budget_uplinks = c.integer("budget_uplinks", 0, 0);
  if (c.has("power")) {
    const Config power = c.section("power");
    for (const std::string& algorithm : power.keys()) {
      const Config e = power.section(algorithm);
      e.reject_unknown({"base_mw", "per_elink_mw"});
      d.power[algorithm] = {e.number("base_mw", 0.0, 0.0, 1e6), e.number("per_elink_mw", 0.0, 0.0, 1e6)};
    }
  }
  d.budget_power_w = c.number("budget_power_w", 0.0, 0.0, 1e9);
  if (d.budget_power_w > 0 && d.power.empty())
    throw Error(path + ": budget_power_w: needs the \"power\" table (mW per algorithm: base_mw, per_elink_mw)");
  d.pareto_elinks = c.integers("pareto_elinks", {}, 1);
  d.lpgbt_user_bits = static_cast<int>(c.integer("lpgbt_user_bits", d.lpgbt_user_bits, 32, 100000));
  d.seed = static_cast<uint64_t>(c.integer("seed", 1, 0));
  d.threads = static_cast<int>(c.integer("threads", 0, 0, 1024));
  return d;
}

DetectorModel build_detector_model(const DetectorConfig& config, const ModuleTable& modules, const EventTable& signal,
                                   const EventTable& pool) {
  if (signal.size() == 0 || pool.size() == 0) throw Error("detector: the signal and pool event files need wafers");
  DetectorModel m;
  const auto& rows = modules.modules();
  // Eta by (layer, u, v) where the map has it.
  std::map<int, std::map<std::pair<int, int>, double>> eta;
  int max_layer = 0;
  for (const auto& r : rows) {
    max_layer = std::max(max_layer, r.layer);
    if (r.has_eta_phi) eta[r.layer][{r.u, r.v}] = r.eta;
  }
  if (!eta.count(1)) throw Error(config.modules_file + ": no eta for layer 1 (the reference for layer distances)");
  // Layer distances relative to layer 1, from modules at the same (u,v);
  // chained from the previous placed layer where layer 1 shares too few.
  m.layer_z.assign(static_cast<size_t>(max_layer) + 1, NAN);
  m.layer_z[1] = 1.0;
  int previous = 1;
  for (const auto& [layer, cells] : eta) {
    if (layer == 1) continue;
    auto ratios_to = [&](int ref) {
      std::vector<double> r;
      for (const auto& [uv, e] : cells) {
        auto it = eta[ref].find(uv);
        if (it != eta[ref].end()) r.push_back(std::sinh(e) / std::sinh(it->second));
      }
      return r;
    };
    std::vector<double> r = ratios_to(1);
    int ref = 1;
    if (r.size() < 10) r = ratios_to(ref = previous);
    if (r.size() < 10)
      throw Error(config.modules_file + ": layer " + std::to_string(layer) +
                  " shares fewer than 10 module positions with the layers before it: cannot place it in z");
    m.layer_z[static_cast<size_t>(layer)] = m.layer_z[static_cast<size_t>(ref)] * median(r);
    previous = layer;
  }
  // The trigger modules of the planned layers, with eta (estimated: the
  // mean eta of the nearest modules of the same layer that have it).
  std::vector<bool> wanted(static_cast<size_t>(max_layer) + 1, config.layers.empty());
  for (int l : config.layers) {
    if (l > max_layer) throw Error(config.modules_file + ": groups.layers: no layer " + std::to_string(l));
    wanted[static_cast<size_t>(l)] = true;
  }
  for (const auto& r : rows) {
    if (r.elinks_pu <= 0 || !wanted[static_cast<size_t>(r.layer)]) continue;
    ModuleSite s;
    s.layer = r.layer, s.u = r.u, s.v = r.v, s.motherboard = r.motherboard;
    s.elinks_pu = r.elinks_pu, s.elinks_signal = r.elinks_signal;
    if (r.has_eta_phi) {
      s.eta = r.eta;
    } else {
      const auto& known = eta[r.layer];
      if (known.empty())
        throw Error(config.modules_file + ": layer " + std::to_string(r.layer) + " has no module with eta");
      int best = 1 << 30;
      double sum = 0;
      int n = 0;
      for (const auto& [uv, e] : known) {
        const int du = uv.first - r.u, dv = uv.second - r.v;
        const int d = (std::abs(du) + std::abs(dv) + std::abs(du - dv)) / 2;  // hexagonal distance
        if (d < best) best = d, sum = 0, n = 0;
        if (d == best) sum += e, ++n;
      }
      s.eta = sum / n;
      s.eta_estimated = true;
      ++m.eta_estimated;
    }
    s.z = m.layer_z[static_cast<size_t>(r.layer)];
    if (!std::isfinite(s.z))
      throw Error(config.modules_file + ": layer " + std::to_string(r.layer) + " has no module with eta");
    const double sh = std::sinh(s.eta);
    const auto weight = config.layer_weights.find(r.layer);
    s.flux = (weight == config.layer_weights.end() ? 1.0 : weight->second) * std::tanh(s.eta) * sh * sh / (s.z * s.z);
    m.sites.push_back(s);
  }
  if (m.sites.empty()) throw Error(config.modules_file + ": no module with trigger data in the planned layers");
  for (const auto& [layer, weight] : config.layer_weights) {
    (void)weight;
    if (std::none_of(m.sites.begin(), m.sites.end(), [l = layer](const ModuleSite& s) { return s.layer == l; }))
      throw Error("detector: occupancy.layer_weights: layer " + std::to_string(layer) + " has no trigger module in " +
                  config.modules_file);
  }
  // The overlay's occupancy and wafer sum as functions of mu.
  m.curve_mu.push_back(0.0);
  for (double mu = 0.01; mu < 20000.0; mu *= 1.25) m.curve_mu.push_back(mu);
  std::vector<float> w(kCellsPerWafer);
  for (size_t k = 0; k < m.curve_mu.size(); ++k) {
    double occ = 0, sum = 0;
    for (int64_t j = 0; j < config.calibration_wafers; ++j) {
      Rng rng(config.seed, (static_cast<uint64_t>(k) << 40) + static_cast<uint64_t>(j));
      draw_module_wafer(rng, m.curve_mu[k], signal, pool, w.data());
      for (float x : w) occ += x > 0, sum += x;
    }
    m.curve_occupancy.push_back(occ / static_cast<double>(config.calibration_wafers));
    m.curve_sum.push_back(sum / static_cast<double>(config.calibration_wafers));
  }
  auto mean_over_sites = [&](double scale, const std::vector<double>& curve) {
    double t = 0;
    for (const auto& s : m.sites) t += interpolate(m.curve_mu, curve, scale * s.flux);
    return t / static_cast<double>(m.sites.size());
  };
  double lo = 1e-9, hi = 1e6;
  if (mean_over_sites(lo, m.curve_occupancy) > config.target_mean_occupancy ||
      mean_over_sites(hi, m.curve_occupancy) < config.target_mean_occupancy)
    throw Error("detector: occupancy.target_mean_occupancy " + std::to_string(config.target_mean_occupancy) +
                " is outside what the signal and pool wafers reach (" +
                std::to_string(mean_over_sites(lo, m.curve_occupancy)) + " to " +
                std::to_string(mean_over_sites(hi, m.curve_occupancy)) + ")");
  for (int it = 0; it < 200; ++it) {  // bisection in log(scale)
    const double mid = std::sqrt(lo * hi);
    (mean_over_sites(mid, m.curve_occupancy) < config.target_mean_occupancy ? lo : hi) = mid;
  }
  m.mu_per_flux = std::sqrt(lo * hi);
  for (auto& s : m.sites) s.mu = m.mu_per_flux * s.flux;
  m.mean_occupancy = mean_over_sites(m.mu_per_flux, m.curve_occupancy);
  m.mean_sum = mean_over_sites(m.mu_per_flux, m.curve_sum);
  if (config.match_reference_sum) {
    // The sum is the signal's (the curve at mu 0) plus the pileup's, which
    // the scale multiplies: solved for the scale, the curve rescaled.
    const double signal_sum = m.curve_sum.front(), pileup_sum = m.mean_sum - signal_sum;
    if (!(config.reference_mean_sum > signal_sum) || !(pileup_sum > 0))
      throw Error("detector: occupancy.match_reference_sum: the signal wafers alone average " +
                  std::to_string(signal_sum) + " CALQ, the pileup " + std::to_string(pileup_sum) +
                  ": no pileup scale reaches reference_mean_sum " + std::to_string(config.reference_mean_sum));
    m.pileup_scale = (config.reference_mean_sum - signal_sum) / pileup_sum;
    for (double& s : m.curve_sum) s = signal_sum + m.pileup_scale * (s - signal_sum);
    m.mean_sum = mean_over_sites(m.mu_per_flux, m.curve_sum);
  }
  return m;
}

}  // namespace ddaq
