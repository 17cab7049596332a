// The detector-wide allocation (detector.h): the dynamic program against
// brute-force enumeration, its errors, and the module table's parser.
#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "ddaq/core/detector.h"
#include "ddaq/core/random.h"
#include "ddaq/error.h"

namespace {

// Every combination of choices: the least module-weighted EMD within the
// budget, and the fewest e-links among those. EMDs are multiples of 1/8, so
// sums are exact and ties are real ties.
std::pair<double, int64_t> brute_force(const ddaq::AllocationProblem& p) {
  std::pair<double, int64_t> best{std::numeric_limits<double>::infinity(), 0};
  std::vector<size_t> at(p.groups.size(), 0);
  while (true) {
    double cost = 0;
    int64_t elinks = 0;
    for (size_t g = 0; g < at.size(); ++g) {
      cost += static_cast<double>(p.groups[g].modules) * p.groups[g].choices[at[g]].emd;
      elinks += p.groups[g].modules * p.groups[g].choices[at[g]].elinks;
    }
    if (elinks <= p.budget_elinks && (cost < best.first || (cost == best.first && elinks < best.second)))
      best = {cost, elinks};
    size_t g = 0;
    while (g < at.size() && ++at[g] == p.groups[g].choices.size()) at[g++] = 0;
    if (g == at.size()) break;
  }
  return best;
}

}  // namespace

DOCTEST_TEST_SUITE("detector") {
  DOCTEST_TEST_CASE("allocation: the dynamic program equals brute-force enumeration") {
    ddaq::Rng rng(11);
    int solved = 0;
    for (int trial = 0; trial < 300; ++trial) {
      ddaq::AllocationProblem p;
      const int groups = 1 + static_cast<int>(rng.below(5));
      int64_t least = 0, most = 0;
      for (int g = 0; g < groups; ++g) {
        ddaq::AllocationGroup group;
        group.name = "g" + std::to_string(g);
        group.modules = 1 + static_cast<int64_t>(rng.below(6));
        const int choices = 1 + static_cast<int>(rng.below(4));
        int64_t lo = std::numeric_limits<int64_t>::max(), hi = 0;
        for (int c = 0; c < choices; ++c) {
          const int elinks = static_cast<int>(rng.below(7));
          group.choices.push_back({"a" + std::to_string(c), elinks, static_cast<double>(rng.below(24)) / 8.0});
          lo = std::min(lo, group.modules * elinks);
          hi = std::max(hi, group.modules * elinks);
        }
        least += lo;
        most += hi;
        p.groups.push_back(group);
      }
      p.budget_elinks = least + static_cast<int64_t>(rng.below(static_cast<uint64_t>(most - least + 1)));
      const ddaq::AllocationSummary s = ddaq::solve_allocation(p);
      const auto expected = brute_force(p);
      double cost = 0;
      int64_t elinks = 0, modules = 0;
      for (size_t g = 0; g < p.groups.size(); ++g) {
        const auto& c = p.groups[g].choices.at(static_cast<size_t>(s.choice[g]));
        cost += static_cast<double>(p.groups[g].modules) * c.emd;
        elinks += p.groups[g].modules * c.elinks;
        modules += p.groups[g].modules;
      }
      DOCTEST_CHECK(elinks <= p.budget_elinks);
      DOCTEST_CHECK(cost == expected.first);
      DOCTEST_CHECK(elinks == expected.second);
      DOCTEST_CHECK(s.elinks == elinks);
      DOCTEST_CHECK(s.modules == modules);
      DOCTEST_CHECK(s.emd_mean == doctest::Approx(cost / static_cast<double>(modules)).epsilon(1e-12));
      solved += cost == expected.first && elinks == expected.second;
    }
    DOCTEST_CHECK(solved == 300);
  }

  DOCTEST_TEST_CASE("allocation: errors name the group or the budget") {
    ddaq::AllocationProblem p;
    p.groups.push_back({"layer9", 10, {{"best_choice", 2, 1.0}, {"best_choice", 5, 0.5}}});
    p.groups.push_back({"layer1", 20, {{"threshold", 1, 2.0}}});
    p.budget_elinks = 39;  // 10 x 2 + 20 x 1 = 40 needed
    DOCTEST_CHECK_THROWS_WITH_AS(ddaq::solve_allocation(p),
                                 "allocation: budget 39 e-links is below the 40 that the fewest e-links of every group need",
                                 ddaq::Error);
    p.budget_elinks = 70;  // room for layer9 at 5 e-links
    const ddaq::AllocationSummary s = ddaq::solve_allocation(p);
    DOCTEST_CHECK(s.choice == std::vector<int>{1, 0});
    DOCTEST_CHECK(s.elinks == 70);
    DOCTEST_CHECK(s.emd_mean == doctest::Approx((10 * 0.5 + 20 * 2.0) / 30));
    DOCTEST_CHECK(s.to_text(p).find("layer9") != std::string::npos);
    p.groups[1].choices[0].emd = std::nan("");
    DOCTEST_CHECK_THROWS_WITH_AS(ddaq::solve_allocation(p), doctest::Contains("group 'layer1': threshold at 1 e-links: EMD"),
                                 ddaq::Error);
    p.groups[1].choices.clear();
    DOCTEST_CHECK_THROWS_WITH_AS(ddaq::solve_allocation(p), "allocation: group 'layer1': has no choice", ddaq::Error);
  }

  DOCTEST_TEST_CASE("module table: rows, totals, and one-line errors") {
    const std::string header =
        "layer,u,v,density,mod_type,motherboard,cassette,econt_elinks_pu,econt_elinks_signal,econd_elinks,eta,phi\n";
    const ddaq::ModuleTable t = ddaq::ModuleTable::parse(
        header + "1,-10,-8,LD,cO,6,3,0,0,0,,\n9,2,3,HD,aF,5,1,4,5,2,2.25,-0.5\n9,3,3,HD,aF,5,1,3,5,2,2.5,0.25\n", "m.csv");
    DOCTEST_REQUIRE(t.modules().size() == 3);
    DOCTEST_CHECK(!t.modules()[0].has_eta_phi);
    DOCTEST_CHECK(t.modules()[1].high_density);
    DOCTEST_CHECK(t.modules()[1].eta == 2.25);
    DOCTEST_CHECK(t.modules()[2].phi == 0.25);
    DOCTEST_CHECK(t.total_elinks_pu() == 7);
    DOCTEST_CHECK(t.total_elinks_signal() == 10);
    DOCTEST_CHECK_THROWS_WITH_AS(ddaq::ModuleTable::parse("layer,u,v\n", "m.csv"),
                                 doctest::Contains("m.csv:1: expected the header"), ddaq::Error);
    DOCTEST_CHECK_THROWS_WITH_AS(ddaq::ModuleTable::parse(header + "1,0,0,MD,a,1,1,2,2,1,2,0\n", "m.csv"),
                                 "m.csv:2: density 'MD' (expected HD or LD)", ddaq::Error);
    DOCTEST_CHECK_THROWS_WITH_AS(ddaq::ModuleTable::parse(header + "1,0,0,LD,a,1,1,14,2,1,2,0\n", "m.csv"),
                                 "m.csv:2: ECON-T e-links 14 outside 0..13", ddaq::Error);
    DOCTEST_CHECK_THROWS_WITH_AS(ddaq::ModuleTable::parse(header + "1,0,0,LD,a,1,1,2,2,1,2,\n", "m.csv"),
                                 "m.csv:2: eta and phi are both given or both empty", ddaq::Error);
    DOCTEST_CHECK_THROWS_WITH_AS(ddaq::ModuleTable::load("/nonexistent/modules.csv"),
                                 doctest::Contains("cannot open the module table"), ddaq::Error);
  }
}
