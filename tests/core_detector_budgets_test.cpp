// A detector plan under a power budget (plan_within, detector_plan.h): a case
// by hand, and random small detectors against every group assignment
// enumerated here.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "ddaq/core/detector_plan.h"
#include "ddaq/error.h"

namespace {

// One module per entry of `group_of`, each on its own board (no uplink
// budget here).
ddaq::DetectorModel model_of(const std::vector<int>& group_of) {
  ddaq::DetectorModel m;
  for (size_t i = 0; i < group_of.size(); ++i) {
    ddaq::ModuleSite s;
    s.layer = 1, s.motherboard = static_cast<int>(i), s.group = group_of[i];
    m.sites.push_back(s);
  }
  return m;
}

}  // namespace

DOCTEST_TEST_SUITE("detector") {
  DOCTEST_TEST_CASE("power budget: the plan fits it and stays within its bound of the enumerated optimum") {
    // By hand: two one-module groups at 1 e-link each; an autoencoder saves
    // 1.0 EMD in group A and 1.8 in B for 40 mW more. 70 mW pays for one:
    // it goes to B. Without a power budget both take it.
    std::vector<ddaq::GroupTable> groups(2);
    groups[0].modules = groups[1].modules = 1;
    groups[0].choices = {{"best_choice", 1, 2.0, 10.0}, {"ae", 1, 1.0, 50.0}};
    groups[1].choices = {{"best_choice", 1, 3.0, 10.0}, {"ae", 1, 1.2, 50.0}};
    const ddaq::DetectorModel model = model_of({0, 1});
    const ddaq::BudgetedPlan free = ddaq::plan_within(groups, model, {2, 0, 0.0}, 230);
    DOCTEST_CHECK(free.chosen[0]->algorithm == "ae");
    DOCTEST_CHECK(free.chosen[1]->algorithm == "ae");
    DOCTEST_CHECK(free.power_w == doctest::Approx(0.1));
    DOCTEST_CHECK(!free.power_binding);
    const ddaq::BudgetedPlan tight = ddaq::plan_within(groups, model, {2, 0, 0.070}, 230);
    DOCTEST_CHECK(tight.power_binding);
    DOCTEST_CHECK(tight.chosen[0] == &groups[0].choices[0]);  // pointers into the tables given
    DOCTEST_CHECK(tight.chosen[1] == &groups[1].choices[1]);
    DOCTEST_CHECK(tight.power_w == doctest::Approx(0.060));
    DOCTEST_CHECK(tight.emd_lower_bound <= (2.0 + 1.2) / 2 + 1e-12);
    const ddaq::TableScore s = ddaq::score_choices("tight", model, tight.chosen, tight.elinks, 230);
    DOCTEST_CHECK(s.emd_mean == doctest::Approx(1.6));
    DOCTEST_CHECK(s.power_w == doctest::Approx(0.060));
    // Below the least power any plan has: one line naming the budget.
    std::string error;
    try {
      ddaq::plan_within(groups, model, {2, 0, 0.015}, 230);
    } catch (const ddaq::Error& e) {
      error = e.what();
    }
    DOCTEST_CHECK(error.find("--budget power=0.015 W: the least power found") == 0);

    // The bound by hand: one module, 1 e-link, 20 mW. A (1 e-link, EMD 1.0,
    // 10 mW) is the only plan: B needs 2 e-links, C 30 mW. C gives way to A
    // at the price 0.025 EMD per mW; there the dual is min(1.25 + mu, 0.25 +
    // 2 mu, 1.25 + mu) - 0.5 - mu, largest (0.75) for mu >= 1. Without the
    // e-link multiplier (mu = 0) it would be -0.25.
    std::vector<ddaq::GroupTable> one(1);
    one[0].modules = 1;
    one[0].choices = {{"best_choice", 1, 1.0, 10.0}, {"ae", 2, 0.0, 10.0}, {"ae", 1, 0.5, 30.0}};
    const ddaq::BudgetedPlan only = ddaq::plan_within(one, model_of({0}), {1, 0, 0.020}, 230);
    DOCTEST_CHECK(only.chosen[0] == &one[0].choices[0]);
    DOCTEST_CHECK(only.power_price == doctest::Approx(0.025).epsilon(1e-6));
    DOCTEST_CHECK(only.emd_lower_bound == doctest::Approx(0.75).epsilon(1e-6));

    // Random detectors: 3 groups of 1-3 modules, 4 choices each (e-links
    // 1-3, EMD and power drawn); every assignment of choices to groups
    // enumerated, per group and per module. Whenever a per-group one fits
    // both budgets the plan fits them, its EMD is at least the per-module
    // optimum and its bound at most it; when none fits, the plan refuses.
    std::mt19937 gen(23);
    int binding = 0, refused_count = 0, filled = 0;
    for (int trial = 0; trial < 200; ++trial) {
      std::vector<ddaq::GroupTable> g(3);
      std::vector<int> group_of;
      for (size_t k = 0; k < g.size(); ++k) {
        g[k].modules = 1 + static_cast<int64_t>(gen() % 3);
        for (int64_t i = 0; i < g[k].modules; ++i) group_of.push_back(static_cast<int>(k));
        for (int c = 0; c < 4; ++c)
          g[k].choices.push_back({c % 2 ? "ae" : "best_choice", 1 + static_cast<int>(gen() % 3),
                                  std::uniform_real_distribution<double>(0.1, 4.0)(gen),
                                  std::uniform_real_distribution<double>(5.0, 100.0)(gen)});
      }
      const ddaq::DetectorModel m = model_of(group_of);
      const int64_t n = static_cast<int64_t>(group_of.size());
      const int64_t elinks = n + static_cast<int64_t>(gen() % static_cast<unsigned>(2 * n + 1));
      const double power_w = std::uniform_real_distribution<double>(0.01, 0.07)(gen) * static_cast<double>(n);
      // The optimum with one choice per group (best), and with one per
      // module (best_any: modules of a group may differ, as after the fill).
      double best = std::numeric_limits<double>::infinity(), best_any = best;
      int64_t codes = 1;
      for (int64_t i = 0; i < n; ++i) codes *= 4;
      std::vector<size_t> pick(static_cast<size_t>(n));
      for (int64_t code = 0; code < codes; ++code) {
        for (int64_t i = 0, c = code; i < n; ++i, c /= 4) pick[static_cast<size_t>(i)] = static_cast<size_t>(c % 4);
        int64_t e = 0;
        double emd = 0, mw = 0;
        bool per_group = true;
        for (size_t i = 0; i < pick.size(); ++i) {
          if (i > 0 && group_of[i - 1] == group_of[i] && pick[i - 1] != pick[i]) per_group = false;
          const ddaq::AllocationChoice& x = g[static_cast<size_t>(group_of[i])].choices[pick[i]];
          e += x.elinks, emd += x.emd, mw += x.power_mw;
        }
        if (e > elinks || mw > power_w * 1000.0) continue;
        best_any = std::min(best_any, emd / static_cast<double>(n));
        if (per_group) best = std::min(best, emd / static_cast<double>(n));
      }
      bool refused = false;
      ddaq::BudgetedPlan p;
      try {
        p = ddaq::plan_within(g, m, {elinks, 0, power_w}, 230);
      } catch (const ddaq::Error&) {
        refused = true;
      }
      DOCTEST_REQUIRE(refused == std::isinf(best));
      if (refused) {
        ++refused_count;
        continue;
      }
      int64_t e = 0;
      double emd = 0, mw = 0;
      for (size_t i = 0; i < group_of.size(); ++i) {
        // Each module's choice is one of its own group's.
        const auto& choices = g[static_cast<size_t>(group_of[i])].choices;
        DOCTEST_REQUIRE(p.chosen[i] >= choices.data());
        DOCTEST_REQUIRE(p.chosen[i] < choices.data() + choices.size());
        e += p.chosen[i]->elinks, emd += p.chosen[i]->emd, mw += p.chosen[i]->power_mw;
      }
      DOCTEST_CHECK(e <= elinks);
      DOCTEST_CHECK(mw <= power_w * 1000.0 + 1e-9);
      // No power left that one module could spend on a better algorithm at
      // its e-links (the fill's work, checked swap by swap).
      for (size_t i = 0; i < group_of.size(); ++i)
        for (const auto& c : g[static_cast<size_t>(group_of[i])].choices)
          if (c.elinks == p.elinks[i] && c.emd < p.chosen[i]->emd)
            DOCTEST_CHECK(mw - p.chosen[i]->power_mw + c.power_mw > power_w * 1000.0 - 1e-6);
      filled += p.modules_power_filled > 0;
      DOCTEST_CHECK(emd / static_cast<double>(n) >= best_any - 1e-9);
      if (p.power_binding) {
        ++binding;
        DOCTEST_CHECK(p.emd_lower_bound <= best_any + 1e-9);
      }
    }
    DOCTEST_CHECK(binding > 50);  // the budgets drawn do bind
    DOCTEST_CHECK(refused_count > 5);
    DOCTEST_CHECK(filled > 10);  // the price alone leaves power unspent
  }

  DOCTEST_TEST_CASE("power fill: the power left goes to the swaps worth most per mW at each module's e-links") {
    // Four one-module groups, A-C at 1 e-link and D at 2, all on Best Choice
    // (40 mW), 55 mW left. By hand: D's threshold is better for no power
    // (first); then C (1.0 EMD for 20 mW: 0.05 per mW), then A (1.0 for 25:
    // 0.04); B (1.8 for 50: 0.036, the largest gain) no longer fits. A's
    // 2-e-link choice is beyond its e-link, D's 1-e-link one below its two
    // (a module runs at the e-links it holds, as allocation.csv says). The
    // best of every such assignment within 95 mW, by hand: A, C and D
    // swapped (B with C needs 70 mW), EMD 1.0 + 3.0 + 0.5 + 0.8.
    std::vector<ddaq::GroupTable> g(4);
    g[0].choices = {{"best_choice", 1, 2.0, 10.0}, {"ae", 1, 1.0, 35.0}, {"ae", 2, 0.1, 11.0}};
    g[1].choices = {{"best_choice", 1, 3.0, 10.0}, {"ae", 1, 1.2, 60.0}};
    g[2].choices = {{"best_choice", 1, 1.5, 10.0}, {"ae", 1, 0.5, 30.0}};
    g[3].choices = {{"best_choice", 2, 1.0, 10.0}, {"threshold", 2, 0.8, 10.0}, {"ae", 1, 0.2, 12.0}};
    for (auto& x : g) x.modules = 1;
    const ddaq::DetectorModel model = model_of({0, 1, 2, 3});
    std::vector<const ddaq::AllocationChoice*> chosen = {&g[0].choices[0], &g[1].choices[0], &g[2].choices[0],
                                                         &g[3].choices[0]};
    const std::vector<int> elinks = {1, 1, 1, 2};
    DOCTEST_CHECK(ddaq::fill_power(g, model, elinks, chosen, 95.0) == 3);
    DOCTEST_CHECK(chosen[0] == &g[0].choices[1]);
    DOCTEST_CHECK(chosen[1] == &g[1].choices[0]);
    DOCTEST_CHECK(chosen[2] == &g[2].choices[1]);
    DOCTEST_CHECK(chosen[3] == &g[3].choices[1]);
    const ddaq::TableScore s = ddaq::score_choices("filled", model, chosen, elinks, 230);
    DOCTEST_CHECK(s.emd_mean == doctest::Approx((1.0 + 3.0 + 0.5 + 0.8) / 4));
    DOCTEST_CHECK(s.power_w == doctest::Approx(0.085));
  }

  DOCTEST_TEST_CASE("power table: each choice power from its algorithm and e-links and a missing one named") {
    std::vector<ddaq::GroupTable> groups(1);
    groups[0].choices = {{"best_choice", 2, 1.0}, {"ae_mu10", 3, 0.5}};
    std::map<std::string, ddaq::PowerEntry> table = {{"best_choice", {40.0, 5.0}}, {"ae_mu10", {90.0, 5.0}}};
    ddaq::apply_power_table(table, groups, "d.json");
    DOCTEST_CHECK(groups[0].choices[0].power_mw == 50.0);   // 40 + 2 x 5
    DOCTEST_CHECK(groups[0].choices[1].power_mw == 105.0);  // 90 + 3 x 5
    table.erase("ae_mu10");
    std::string error;
    try {
      ddaq::apply_power_table(table, groups, "d.json");
    } catch (const ddaq::Error& e) {
      error = e.what();
    }
    DOCTEST_CHECK(error == "d.json: power: no entry for 'ae_mu10' (every algorithm the plan has needs one)");
  }

  DOCTEST_TEST_CASE("shipped power configs price every algorithm their plans offer") {
    // A plan refuses a table without an entry for one of its algorithms:
    // caught here, before an hour of planning, when a config gains one.
    for (const char* name : {"quick_power.json", "hgcal_power.json"}) {
      const ddaq::DetectorConfig c =
          ddaq::DetectorConfig::load(std::string(DDAQ_SOURCE_DIR) + "/experiments/detector/" + name);
      DOCTEST_INFO(name);
      std::set<std::string> offered(c.algorithms.begin(), c.algorithms.end()), priced;
      for (const auto& run : c.autoencoder_runs) offered.insert(run.first);
      for (const auto& entry : c.power) priced.insert(entry.first);
      DOCTEST_CHECK(priced == offered);
    }
  }
}
