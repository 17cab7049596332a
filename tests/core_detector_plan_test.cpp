// The detector plan (detector_plan.h): the occupancy model against its
// definitions and an independent Monte Carlo, the group tables against EMDs
// computed here, and the judging and scaling of e-link tables by hand.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "ddaq/core/detector_plan.h"
#include "ddaq/core/random.h"
#include "ddaq/core/wafer_metric.h"
#include "ddaq/error.h"
#include "ddaq/surrogates/emd.h"
#include "ddaq/surrogates/link_budget.h"

namespace {

const char* kHeader =
    "layer,u,v,density,mod_type,motherboard,cassette,econt_elinks_pu,econt_elinks_signal,econd_elinks,eta,phi\n";

// Layers 1 and 3, modules (u, 0) for u = 0..11; in layer 3 sinh(eta) is 1.1
// times layer 1's at the same (u, v) (z 1.1 times farther), and (5, 0) has no eta.
std::string two_layer_table() {
  std::ostringstream s;
  s << kHeader;
  s.precision(17);
  for (int layer : {1, 3})
    for (int u = 0; u < 12; ++u) {
      const double eta1 = 1.6 + 0.1 * u;
      const double eta = layer == 1 ? eta1 : std::asinh(1.1 * std::sinh(eta1));
      s << layer << "," << u << ",0,LD,a," << u / 4 << ",1,2,3,1,";
      if (layer == 3 && u == 5)
        s << ",\n";
      else
        s << eta << ",0.1\n";
    }
  return s.str();
}

ddaq::EventTable wafers(int64_t n, int cells_on, uint64_t seed) {
  ddaq::EventTable t;
  t.calq.assign(static_cast<size_t>(n) * 48, 0.0f);
  std::mt19937_64 g(seed);
  for (int64_t i = 0; i < n; ++i)
    for (int k = 0; k < cells_on; ++k) t.calq[static_cast<size_t>(i * 48 + static_cast<int64_t>(g() % 48))] = 1.0f + k;
  return t;
}

// The model of two_layer_table() calibrated to 6 occupied cells.
ddaq::DetectorConfig six_cells() {
  ddaq::DetectorConfig config;
  config.modules_file = "t.csv";
  config.target_mean_occupancy = 6.0;
  return config;
}

// two_layer_table() with 50 signal and 200 pool wafers, calibrated to 6
// occupied cells: the occupancy-model tests' detector.
struct TwoLayerDetector {
  ddaq::ModuleTable table = ddaq::ModuleTable::parse(two_layer_table(), "t.csv");
  ddaq::EventTable signal = wafers(50, 1, 1), pool = wafers(200, 3, 2);
  ddaq::DetectorConfig config = six_cells();
  ddaq::DetectorModel model() const { return ddaq::build_detector_model(config, table, signal, pool); }
};

struct OverlayMeans {
  double occupancy = 0, sum = 0;
};

// Mean occupancy and wafer sum over the model's sites by a Monte Carlo of
// the overlay written here (std:: random numbers, not the model's): a signal
// wafer of the 50 plus Poisson(mu) of the 200 pool wafers, times `scale`.
OverlayMeans overlay_means(const ddaq::DetectorModel& m, const ddaq::EventTable& signal, const ddaq::EventTable& pool,
                           float scale, uint64_t seed) {
  std::mt19937_64 g(seed);
  OverlayMeans r;
  const int per_site = 3000;
  for (const auto& s : m.sites) {
    std::poisson_distribution<int> k(s.mu);
    for (int j = 0; j < per_site; ++j) {
      float w[48];
      const float* sig = signal.calq.data() + (g() % 50) * 48;
      std::copy(sig, sig + 48, w);
      for (int i = k(g); i > 0; --i) {
        const float* p = pool.calq.data() + (g() % 200) * 48;
        for (int c = 0; c < 48; ++c) w[c] += scale * p[c];
      }
      for (float x : w) r.occupancy += x > 0, r.sum += x;
    }
  }
  const double n = static_cast<double>(m.sites.size()) * per_site;
  r.occupancy /= n, r.sum /= n;
  return r;
}

}  // namespace

DOCTEST_TEST_SUITE("detector") {
  DOCTEST_TEST_CASE("occupancy model: layer distances, estimated eta, flux and the calibrated occupancy") {
    TwoLayerDetector d;
    ddaq::DetectorConfig& config = d.config;
    const ddaq::EventTable &signal = d.signal, &pool = d.pool;
    config.calibration_wafers = 2000;
    const ddaq::DetectorModel m = d.model();
    DOCTEST_REQUIRE(m.sites.size() == 24);
    DOCTEST_CHECK(m.layer_z[3] == doctest::Approx(1.1).epsilon(1e-12));
    DOCTEST_CHECK(m.eta_estimated == 1);
    for (const auto& s : m.sites) {
      if (s.layer == 3 && s.u == 5) {
        // Its nearest modules with eta in layer 3: (4, 0) and (6, 0).
        const double e4 = std::asinh(1.1 * std::sinh(2.0)), e6 = std::asinh(1.1 * std::sinh(2.2));
        DOCTEST_CHECK(s.eta_estimated);
        DOCTEST_CHECK(s.eta == doctest::Approx(0.5 * (e4 + e6)).epsilon(1e-12));
      }
      const double sh = std::sinh(s.eta), z = s.layer == 1 ? 1.0 : 1.1;
      DOCTEST_CHECK(s.flux == doctest::Approx(std::tanh(s.eta) * sh * sh / (z * z)).epsilon(1e-9));
      DOCTEST_CHECK(s.mu == doctest::Approx(m.mu_per_flux * s.flux));
    }
    DOCTEST_CHECK(m.mean_occupancy == doctest::Approx(6.0).epsilon(1e-3));
    // An independent Monte Carlo of the same overlay at the calibrated mu.
    DOCTEST_CHECK(overlay_means(m, signal, pool, 1.0f, 7).occupancy == doctest::Approx(6.0).epsilon(0.02));
    // A pool that adds nothing cannot reach 6 cells on average.
    DOCTEST_CHECK_THROWS_WITH_AS(ddaq::build_detector_model(config, d.table, signal, wafers(10, 0, 3)),
                                 doctest::Contains("target_mean_occupancy 6"), ddaq::Error);
  }

  DOCTEST_TEST_CASE("occupancy model: layer weights multiply a layer's flux before the calibration") {
    TwoLayerDetector d;
    ddaq::DetectorConfig& config = d.config;
    const ddaq::EventTable &signal = d.signal, &pool = d.pool;
    const ddaq::DetectorModel flat = d.model();
    config.layer_weights = {{3, 2.5}};
    const ddaq::DetectorModel m = d.model();
    DOCTEST_REQUIRE(m.sites.size() == flat.sites.size());
    for (size_t i = 0; i < m.sites.size(); ++i)
      DOCTEST_CHECK(m.sites[i].flux == doctest::Approx((m.sites[i].layer == 3 ? 2.5 : 1.0) * flat.sites[i].flux));
    // Recalibrated: the same mean occupancy, so a smaller scale, and layer
    // 3's share of the pileup grows.
    DOCTEST_CHECK(m.mean_occupancy == doctest::Approx(6.0).epsilon(1e-3));
    DOCTEST_CHECK(m.mu_per_flux < flat.mu_per_flux);
    auto layer3_share = [](const ddaq::DetectorModel& x) {
      double l3 = 0, all = 0;
      for (const auto& s : x.sites) all += s.mu, l3 += s.layer == 3 ? s.mu : 0.0;
      return l3 / all;
    };
    DOCTEST_CHECK(layer3_share(m) > layer3_share(flat));
    DOCTEST_CHECK(overlay_means(m, signal, pool, 1.0f, 13).occupancy == doctest::Approx(6.0).epsilon(0.02));
    config.layer_weights = {{2, 1.5}};  // no trigger module in layer 2
    DOCTEST_CHECK_THROWS_WITH_AS(d.model(), doctest::Contains("layer_weights: layer 2 has no trigger module"),
                                 ddaq::Error);
  }

  DOCTEST_TEST_CASE("occupancy model: pileup charges scaled to a reference mean wafer sum") {
    TwoLayerDetector d;
    ddaq::DetectorConfig& config = d.config;
    const ddaq::EventTable &signal = d.signal, &pool = d.pool;
    const ddaq::DetectorModel plain = d.model();
    DOCTEST_CHECK(plain.pileup_scale == 1.0);
    config.match_reference_sum = true;
    config.reference_mean_sum = 1.5 * plain.mean_sum;
    const ddaq::DetectorModel m = d.model();
    DOCTEST_CHECK(m.mu_per_flux == plain.mu_per_flux);  // occupancy is calibrated first, unchanged
    DOCTEST_CHECK(m.pileup_scale > 1.5);                // the signal's share is not scaled
    DOCTEST_CHECK(m.mean_sum == doctest::Approx(config.reference_mean_sum).epsilon(1e-9));
    // An independent Monte Carlo of the overlay with the pool's charges
    // times the scale: its mean sum is the reference, its occupancy still 6.
    const OverlayMeans mc = overlay_means(m, signal, pool, static_cast<float>(m.pileup_scale), 11);
    DOCTEST_CHECK(mc.sum == doctest::Approx(config.reference_mean_sum).epsilon(0.02));
    DOCTEST_CHECK(mc.occupancy == doctest::Approx(6.0).epsilon(0.02));
    // The module wafers the plan draws carry the scale.
    ddaq::Rng a(5, 1), b(5, 1);
    float scaled[48], unscaled[48];
    ddaq::draw_module_wafer(a, 40.0, signal, pool, scaled, m.pileup_scale);
    ddaq::draw_module_wafer(b, 40.0, signal, pool, unscaled);
    double s_scaled = 0, s_unscaled = 0, s_signal = 0;
    for (int c = 0; c < 48; ++c) s_scaled += scaled[c], s_unscaled += unscaled[c];
    ddaq::Rng r(5, 1);
    const float* sig = signal.calq.data() + r.below(50) * 48;
    for (int c = 0; c < 48; ++c) s_signal += sig[c];
    DOCTEST_CHECK(s_scaled - s_signal == doctest::Approx(m.pileup_scale * (s_unscaled - s_signal)).epsilon(1e-5));
    // A reference the signal alone exceeds: one line naming the key.
    config.reference_mean_sum = 0.5;
    DOCTEST_CHECK_THROWS_WITH_AS(d.model(), doctest::Contains("occupancy.match_reference_sum"), ddaq::Error);
  }

  DOCTEST_TEST_CASE("detector mix overlay: each wafer takes a uniformly drawn module's Poisson pileup") {
    // Two modules, mu 0 and 30; every pool wafer is 1 CALQ in every cell and
    // the charges are scaled by 0.5, so a wafer's added charge is k / 2 in
    // each cell, k the number of pool wafers it got.
    ddaq::DetectorModel m;
    m.sites.resize(2);
    m.sites[0].mu = 0.0, m.sites[1].mu = 30.0;
    m.pileup_scale = 0.5;
    ddaq::EventTable pool;
    pool.calq.assign(7 * 48, 1.0f);
    const int64_t n = 4000;
    std::vector<float> calq(static_cast<size_t>(n * 48), 0.0f), mu(static_cast<size_t>(n), -1.0f);
    for (int64_t i = 0; i < n; ++i) calq[static_cast<size_t>(i * 48 + i % 48)] = 2.0f;  // a signal cell
    ddaq::overlay_detector_mix(m, pool, 9, 0, n, calq.data(), mu.data());
    int64_t dense = 0;
    double k_sum = 0, k_sq = 0;
    bool uniform_cells = true, signal_kept = true;
    for (int64_t i = 0; i < n; ++i) {
      const float* w = calq.data() + i * 48;
      const int sig = static_cast<int>(i % 48);
      const float added = w[(sig + 1) % 48];
      for (int c = 0; c < 48; ++c) uniform_cells = uniform_cells && w[c] == added + (c == sig ? 2.0f : 0.0f);
      signal_kept = signal_kept && w[sig] - added == 2.0f;
      const double k = 2.0 * added;
      DOCTEST_REQUIRE((mu[static_cast<size_t>(i)] == 0.0f || mu[static_cast<size_t>(i)] == 30.0f));
      if (mu[static_cast<size_t>(i)] == 0.0f) {
        DOCTEST_CHECK(k == 0.0);
      } else {
        ++dense, k_sum += k, k_sq += k * k;
      }
    }
    DOCTEST_CHECK(uniform_cells);
    DOCTEST_CHECK(signal_kept);
    // Modules drawn uniformly: Binomial(4000, 1/2), sd 31.6; Poisson(30) counts.
    DOCTEST_CHECK(std::abs(static_cast<double>(dense) - 2000.0) < 4 * 31.7);
    const double mean = k_sum / static_cast<double>(dense), var = k_sq / static_cast<double>(dense) - mean * mean;
    DOCTEST_CHECK(std::abs(mean - 30.0) < 4 * std::sqrt(30.0 / static_cast<double>(dense)));
    DOCTEST_CHECK(var == doctest::Approx(30.0).epsilon(0.15));
    // Wafer i depends only on (seed, i): rows 100..149 alone equal the same rows of the whole run.
    std::vector<float> part(50 * 48, 0.0f);
    for (int64_t i = 100; i < 150; ++i) part[static_cast<size_t>((i - 100) * 48 + i % 48)] = 2.0f;
    ddaq::overlay_detector_mix(m, pool, 9, 100, 50, part.data());
    DOCTEST_CHECK(std::equal(part.begin(), part.end(), calq.begin() + 100 * 48));
    ddaq::EventTable empty;
    DOCTEST_CHECK_THROWS_WITH_AS(ddaq::overlay_detector_mix(m, empty, 9, 0, 1, part.data()),
                                 doctest::Contains("pool has no events"), ddaq::Error);
  }

  DOCTEST_TEST_CASE("group tables: layer x eta ring, and each algorithm's exact EMD on the drawn wafers") {
    // One signal wafer and a pool of empty wafers: every drawn wafer is W.
    ddaq::EventTable signal, pool = wafers(5, 0, 1);
    for (int c = 0; c < 48; ++c) signal.calq.push_back(c % 3 == 0 ? 0.0f : static_cast<float>((c * 37) % 101 + 1));
    ddaq::DetectorModel model;
    for (const auto& [layer, eta] :
         std::vector<std::pair<int, double>>{{1, 1.55}, {1, 1.65}, {1, 1.7}, {1, 1.85}, {3, 1.5}}) {
      ddaq::ModuleSite s;
      s.layer = layer, s.eta = eta, s.mu = 2.0;
      model.sites.push_back(s);
    }
    ddaq::DetectorConfig config;
    config.wafers_per_group = 20;
    config.max_elinks = 6;
    const auto groups = ddaq::build_group_tables(config, model, signal, pool);
    DOCTEST_REQUIRE(groups.size() == 4);
    DOCTEST_CHECK(groups[0].name == "L01 eta 1.40-1.60");
    DOCTEST_CHECK(groups[1].modules == 2);
    DOCTEST_CHECK(groups[3].name == "L03 eta 1.40-1.60");
    DOCTEST_CHECK(model.sites[2].group == 1);
    int occupied = 0;
    double sum = 0;
    for (float x : signal.calq) occupied += x > 0, sum += x;
    ddaq::ExactEmd emd(ddaq::trigger_cell_metric());
    const ddaq::ClassicalFormats formats;
    for (const auto& g : groups) {
      DOCTEST_CHECK(g.occupancy_mean == occupied);
      DOCTEST_CHECK(g.sum_mean == doctest::Approx(sum));
      for (int e = 1; e <= 6; ++e) {
        // Best Choice written here: the k largest cells (all charges differ).
        std::vector<float> sorted = signal.calq, kept(48, 0.0f);
        std::sort(sorted.begin(), sorted.end(), std::greater<float>());
        const float cut = sorted[static_cast<size_t>(formats.best_choice_cells_for(e) - 1)];
        for (int c = 0; c < 48; ++c)
          kept[static_cast<size_t>(c)] =
              signal.calq[static_cast<size_t>(c)] >= cut ? signal.calq[static_cast<size_t>(c)] : 0.0f;
        const double expected = emd(signal.calq.data(), kept.data());
        bool found = false;
        for (const auto& c : g.choices)
          if (c.algorithm == "best_choice" && c.elinks == e) {
            found = true;
            DOCTEST_CHECK(c.emd == doctest::Approx(expected).epsilon(1e-9));
          }
        DOCTEST_CHECK(found);
      }
      // Threshold keeping as many cells as Best Choice is the same choice: listed once.
      for (const auto& c : g.choices)
        for (const auto& d : g.choices)
          if (&c != &d) DOCTEST_CHECK_FALSE((c.elinks == d.elinks && c.emd == d.emd));
      const ddaq::AllocationChoice* best = ddaq::best_choice_within(g, 3);
      DOCTEST_REQUIRE(best);
      for (const auto& c : g.choices)
        if (c.elinks <= 3) DOCTEST_CHECK(best->emd <= c.emd);
    }
    // With a pool that adds charge, the model's pileup scale reaches the
    // drawn wafers: the same draws, the pileup's share of the sum doubled.
    const ddaq::EventTable charged = wafers(5, 4, 3);
    const auto once = ddaq::build_group_tables(config, model, signal, charged);
    model.pileup_scale = 2.0;
    const auto twice = ddaq::build_group_tables(config, model, signal, charged);
    for (size_t k = 0; k < once.size(); ++k) {
      DOCTEST_CHECK(once[k].sum_mean > sum + 1.0);
      DOCTEST_CHECK(twice[k].sum_mean - sum == doctest::Approx(2.0 * (once[k].sum_mean - sum)).epsilon(1e-6));
    }
  }

  DOCTEST_TEST_CASE("e-link tables judged under the model, uplinks per motherboard, tables scaled exactly") {
    ddaq::DetectorModel model;
    std::vector<ddaq::GroupTable> groups(2);
    groups[0].choices = {{"best_choice", 1, 3.0}, {"best_choice", 2, 2.0}, {"threshold", 4, 0.5}};
    groups[1].choices = {{"stc16", 2, 1.0}, {"best_choice", 3, 1.5}};
    for (const auto& [layer, mb, group] : std::vector<std::tuple<int, int, int>>{{1, 0, 0}, {1, 0, 0}, {3, 0, 1}}) {
      ddaq::ModuleSite s;
      s.layer = layer, s.motherboard = mb, s.group = group;
      model.sites.push_back(s);
    }
    // 5 e-links: threshold (0.5); 4: threshold (0.5); 3 in group 1: stc16 at 2 (1.0) beats best_choice at 3.
    const ddaq::TableScore t = ddaq::score_table("t", model, groups, {5, 4, 3}, 230);
    DOCTEST_CHECK(t.emd_mean == doctest::Approx((0.5 + 0.5 + 1.0) / 3.0));
    DOCTEST_CHECK(t.elinks == 12);
    DOCTEST_CHECK(t.uplinks == 3);  // layer 1 board: 9 e-links -> 2 uplinks of 7; layer 3 board: 1
    DOCTEST_CHECK(t.emd_by_layer[1] == doctest::Approx(0.5));
    DOCTEST_CHECK(t.emd_by_layer[3] == doctest::Approx(1.0));
    DOCTEST_CHECK(std::isnan(t.emd_by_layer[2]));
    // Tables restricted to some algorithms: group 1 at 3 e-links must take best_choice (1.5).
    const ddaq::TableScore r = ddaq::score_table("t", model, groups, {5, 4, 3}, 230, {"best_choice", "threshold"});
    DOCTEST_CHECK(r.emd_mean == doctest::Approx((0.5 + 0.5 + 1.5) / 3.0));
    DOCTEST_CHECK_THROWS_WITH_AS(ddaq::score_table("t", model, groups, {5, 4, 1}, 230),
                                 doctest::Contains("1 e-links: no algorithm fits"), ddaq::Error);
    DOCTEST_CHECK(ddaq::scale_table({2, 2, 2, 5}, 22) == std::vector<int>({4, 4, 4, 10}));
    DOCTEST_CHECK(ddaq::scale_table({2, 2, 2, 5}, 7) == std::vector<int>({2, 1, 1, 3}));
    DOCTEST_CHECK(ddaq::scale_table({1, 1, 1, 9}, 4) == std::vector<int>({1, 1, 1, 1}));
    DOCTEST_CHECK_THROWS_AS(ddaq::scale_table({2, 2, 2, 5}, 3), ddaq::Error);
  }
  DOCTEST_TEST_CASE("fill_uplinks spends only free uplink slots and equals brute force on convex tables") {
    // By hand: layer 1 board with 3 modules at 2 e-links (6 of 7 slots: 1
    // free), layer 2 board with 7 at 1 (full). The free slot goes to a
    // layer-1 module (2 -> 3 e-links: EMD 1.0 -> 0.4); budget room 5.
    ddaq::DetectorModel model;
    std::vector<ddaq::GroupTable> groups(2);
    groups[0].choices = {{"best_choice", 1, 3.0}, {"best_choice", 2, 1.0}, {"best_choice", 3, 0.4}};
    groups[1].choices = {{"best_choice", 1, 2.0}, {"best_choice", 2, 0.1}};
    std::vector<int> elinks;
    for (int i = 0; i < 10; ++i) {
      ddaq::ModuleSite s;
      s.layer = i < 3 ? 1 : 2, s.motherboard = 0, s.group = i < 3 ? 0 : 1;
      model.sites.push_back(s);
      elinks.push_back(i < 3 ? 2 : 1);
    }
    std::vector<int> filled = elinks;
    DOCTEST_CHECK(ddaq::fill_uplinks(model, groups, filled, 13 + 5, 230) == 1);
    DOCTEST_CHECK(filled == std::vector<int>({3, 2, 2, 1, 1, 1, 1, 1, 1, 1}));
    DOCTEST_CHECK(ddaq::count_uplinks(model, filled, 230) == ddaq::count_uplinks(model, elinks, 230));
    std::vector<int> no_room = elinks;
    DOCTEST_CHECK(ddaq::fill_uplinks(model, groups, no_room, 13, 230) == 0);  // the budget is spent
    DOCTEST_CHECK(no_room == elinks);

    // Random small detectors, tables convex in e-links: the fill equals the
    // best of every assignment with e-links >= the start, no board's uplinks
    // above its start, and the total within the budget (enumerated here).
    std::mt19937 gen(11);
    for (int trial = 0; trial < 60; ++trial) {
      ddaq::DetectorModel m;
      std::vector<ddaq::GroupTable> g(2);
      for (auto& G : g) {
        double emd = 4.0, step = 1.0 + std::uniform_real_distribution<double>(0.0, 1.5)(gen);
        for (int e = 1; e <= 6; ++e) {
          G.choices.push_back({"best_choice", e, emd});
          emd -= step, step *= std::uniform_real_distribution<double>(0.3, 0.9)(gen);
        }
      }
      const int n = 5;
      std::vector<int> start;
      for (int i = 0; i < n; ++i) {
        ddaq::ModuleSite s;
        s.layer = 1 + static_cast<int>(gen() % 2), s.motherboard = 0, s.group = static_cast<int>(gen() % 2);
        m.sites.push_back(s);
        start.push_back(1 + static_cast<int>(gen() % 3));
      }
      int64_t start_total = 0;
      for (int e : start) start_total += e;
      const int64_t budget = start_total + static_cast<int64_t>(gen() % 6);
      auto emd_of = [&](const std::vector<int>& e) {
        double t = 0;
        for (int i = 0; i < n; ++i)
          t += g[static_cast<size_t>(m.sites[static_cast<size_t>(i)].group)].choices[static_cast<size_t>(e[i] - 1)].emd;
        return t;
      };
      auto uplinks_by_layer = [&](const std::vector<int>& e, int layer) {
        int64_t sum = 0;
        for (int i = 0; i < n; ++i)
          if (m.sites[static_cast<size_t>(i)].layer == layer) sum += e[static_cast<size_t>(i)];
        return (sum + 6) / 7;
      };
      double best = emd_of(start);
      std::vector<int> e(n);
      for (int code = 0; code < 7776; ++code) {  // 6^5 assignments
        int c = code;
        bool ok = true;
        int64_t total = 0;
        for (int i = 0; i < n; ++i, c /= 6) {
          e[static_cast<size_t>(i)] = 1 + c % 6;
          ok = ok && e[static_cast<size_t>(i)] >= start[static_cast<size_t>(i)];
          total += e[static_cast<size_t>(i)];
        }
        if (!ok || total > budget) continue;
        if (uplinks_by_layer(e, 1) > uplinks_by_layer(start, 1) || uplinks_by_layer(e, 2) > uplinks_by_layer(start, 2))
          continue;
        best = std::min(best, emd_of(e));
      }
      std::vector<int> got = start;
      ddaq::fill_uplinks(m, g, got, budget, 230);
      int64_t got_total = 0;
      for (int x : got) got_total += x;
      DOCTEST_CHECK(got_total <= budget);
      DOCTEST_CHECK(uplinks_by_layer(got, 1) <= uplinks_by_layer(start, 1));
      DOCTEST_CHECK(uplinks_by_layer(got, 2) <= uplinks_by_layer(start, 2));
      DOCTEST_CHECK(emd_of(got) == doctest::Approx(best).epsilon(1e-12));
    }
  }
}
