#include <doctest/doctest.h>

#include <cstdio>
#include <cstdlib>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "ddaq/core/random.h"
#include "ddaq/core/synth.h"
#include "ddaq/core/wafer_metric.h"
#include "ddaq/error.h"
#include "ddaq/surrogates/emd.h"
#include "row_minimum.h"

namespace {

std::vector<double> one_hot(int cell, double q = 1.0) {
  std::vector<double> w(48, 0.0);
  w[cell] = q;
  return w;
}

// Random wafers with `hits` cells hit (dense with pileup-like occupancy).
std::vector<double> random_wafer(ddaq::Rng& rng, int hits) {
  std::vector<double> w(48, 0.0);
  for (int h = 0; h < hits; ++h) w[rng.below(48)] += std::floor(1 + 100 * rng.uniform() * rng.uniform());
  return w;
}

}  // namespace

DOCTEST_TEST_SUITE("exact emd") {
  DOCTEST_TEST_CASE("single cells: EMD is their distance in sensor-cell pitch units") {
    ddaq::ExactEmd emd(ddaq::trigger_cell_metric());
    // Cells 0 and 1 are one trigger-cell pitch apart = 2 sensor-cell pitches.
    DOCTEST_CHECK(emd(one_hot(0).data(), one_hot(1).data()) == doctest::Approx(2.0).epsilon(1e-9));
    DOCTEST_CHECK(emd(one_hot(5, 7.0).data(), one_hot(5, 2.0).data()) == 0.0);
    const auto& g = ddaq::WaferGeometry::hgcal();
    const double d = std::hypot(g.cell(3).x_cm - g.cell(40).x_cm, g.cell(3).y_cm - g.cell(40).y_cm) / 1.20840075;
    DOCTEST_CHECK(emd(one_hot(3).data(), one_hot(40).data()) == doctest::Approx(d).epsilon(1e-12));
    // Half the energy moves one pitch.
    std::vector<double> split(48, 0.0);
    split[0] = split[1] = 1.0;
    DOCTEST_CHECK(emd(one_hot(0).data(), split.data()) == doctest::Approx(1.0).epsilon(1e-12));
  }

  DOCTEST_TEST_CASE("empty wafers: both empty is 0 / one empty is NaN / bad charges throw") {
    ddaq::ExactEmd emd(ddaq::trigger_cell_metric());
    const std::vector<double> zero(48, 0.0);
    DOCTEST_CHECK(emd(zero.data(), zero.data()) == 0.0);
    DOCTEST_CHECK(std::isnan(emd(zero.data(), one_hot(3).data())));
    DOCTEST_CHECK(std::isnan(emd(one_hot(3).data(), zero.data())));
    std::vector<double> bad = one_hot(2);
    bad[7] = -1.0;
    DOCTEST_CHECK_THROWS_AS(emd(bad.data(), one_hot(3).data()), ddaq::Error);
    bad[7] = NAN;
    DOCTEST_CHECK_THROWS_AS(emd(one_hot(3).data(), bad.data()), ddaq::Error);
  }

  DOCTEST_TEST_CASE("huge charges whose sum overflows give the EMD of the same wafers at any scale") {
    ddaq::ExactEmd emd(ddaq::trigger_cell_metric());
    ddaq::Rng rng(11);
    for (int trial = 0; trial < 20; ++trial) {
      const std::vector<double> a = random_wafer(rng, 30), b = random_wafer(rng, 30);
      std::vector<double> huge = a;
      for (double& q : huge) q *= 1e306;  // charges up to ~1e308: finite, their sum is not
      const double expected = emd(a.data(), b.data());
      DOCTEST_CHECK(emd(huge.data(), b.data()) == doctest::Approx(expected).epsilon(1e-12));
      DOCTEST_CHECK(emd(b.data(), huge.data()) == doctest::Approx(expected).epsilon(1e-12));
    }
  }

  DOCTEST_TEST_CASE("metric properties on dense random wafers and agreement with the full problem") {
    const ddaq::GroundMetric metric = ddaq::trigger_cell_metric();
    DOCTEST_REQUIRE(metric.is_metric());
    ddaq::ExactEmd reduced(metric), full(metric, /*transport_difference_only=*/false);
    ddaq::Rng rng(17);
    int pivoted = 0;
    for (int t = 0; t < 300; ++t) {
      const auto a = random_wafer(rng, 1 + static_cast<int>(rng.below(60)));
      const auto b = random_wafer(rng, 1 + static_cast<int>(rng.below(60)));
      const auto c = random_wafer(rng, 1 + static_cast<int>(rng.below(60)));
      const double ab = reduced(a.data(), b.data());
      pivoted += reduced.last_pivots() > 0;
      DOCTEST_REQUIRE(ab == doctest::Approx(full(a.data(), b.data())).epsilon(1e-10));
      DOCTEST_REQUIRE(ab == doctest::Approx(reduced(b.data(), a.data())).epsilon(1e-10));  // symmetric
      DOCTEST_REQUIRE(ab <= reduced(a.data(), c.data()) + reduced(c.data(), b.data()) + 1e-9);
      std::vector<double> a3 = a;
      for (double& q : a3) q *= 3.0;  // scale invariant (normalized)
      DOCTEST_REQUIRE(reduced(a3.data(), b.data()) == doctest::Approx(ab).epsilon(1e-10));
    }
    DOCTEST_CHECK(pivoted > 100);  // the simplex, not only the closed forms, was exercised
  }

  DOCTEST_TEST_CASE("degenerate problems terminate (ties everywhere)") {
    // Equal masses on a regular lattice: many equal costs and zero-flow basic arcs.
    ddaq::ExactEmd emd(ddaq::trigger_cell_metric());
    for (int shift = 1; shift < 48; shift += 5) {
      std::vector<double> a(48, 0.0), b(48, 0.0);
      for (int c = 0; c < 48; c += 2) a[c] = 1.0;
      for (int c = 0; c < 48; c += 2) b[(c + shift) % 48] += 1.0;
      const double e = emd(a.data(), b.data());
      DOCTEST_CHECK(std::isfinite(e));
      DOCTEST_CHECK(e >= 0.0);
    }
  }

  DOCTEST_TEST_CASE("degenerate problems: the small-tree simplex agrees with the general one") {
    // The reduced problem has at most 48 nodes (bit-mask tree); the full one
    // with every cell charged has more than 64 (the general tree). Small
    // integer charges make equal flows, zero-flow basic arcs and cost ties.
    const ddaq::GroundMetric metric = ddaq::trigger_cell_metric();
    ddaq::ExactEmd reduced(metric), full(metric, /*transport_difference_only=*/false);
    ddaq::Rng rng(5);
    for (int t = 0; t < 200; ++t) {
      std::vector<double> a(48), b(48, 0.0);
      for (double& q : a) q = static_cast<double>(1 + rng.below(3));
      const int cells = 17 + static_cast<int>(rng.below(32));  // 48 + 17 > 64 nodes in the full problem
      for (int charged = 0; charged < cells;) {
        double& q = b[rng.below(48)];
        charged += q == 0.0;
        q += static_cast<double>(1 + rng.below(2));
      }
      DOCTEST_REQUIRE(reduced(a.data(), b.data()) == doctest::Approx(full(a.data(), b.data())).epsilon(1e-10));
    }
  }

  DOCTEST_TEST_CASE("a non-metric cost matrix takes the full problem") {
    // 3 points, d(0,2) > d(0,1) + d(1,2): moving via 1 is not allowed to be cheaper.
    const auto g = ddaq::GroundMetric::from_matrix({0, 1, 5, 1, 0, 1, 5, 1, 0}, 3);
    DOCTEST_CHECK_FALSE(g.is_metric());
    ddaq::ExactEmd emd(g);
    const double a[3] = {1, 0, 0}, b[3] = {0, 0, 1}, c[3] = {0.5, 0.5, 0};
    DOCTEST_CHECK(emd(a, b) == doctest::Approx(5.0));
    DOCTEST_CHECK(emd(c, b) == doctest::Approx(3.0));  // 0.5*5 + 0.5*1
    DOCTEST_CHECK_THROWS_AS(ddaq::GroundMetric::from_matrix({0, -1, 1, 0}, 2), ddaq::Error);
    DOCTEST_CHECK_THROWS_AS(ddaq::GroundMetric::from_matrix({0, 1, 1}, 2), ddaq::Error);
  }

  DOCTEST_TEST_CASE("profile: counts calls and pivots and leaves every result as it was") {
    // Both simplex paths: the reduced problem (small tree) and the full one
    // (general tree, more than 64 nodes when both wafers are dense).
    for (const bool reduce : {true, false}) {
      const ddaq::GroundMetric metric = ddaq::trigger_cell_metric();
      ddaq::ExactEmd plain(metric, reduce), profiled(metric, reduce);
      profiled.set_profiling(true);
      ddaq::Rng rng(23);
      int64_t pivots = 0, simplex_calls = 0;
      for (int t = 0; t < 100; ++t) {
        const auto a = random_wafer(rng, 1 + static_cast<int>(rng.below(60)));
        const auto b = random_wafer(rng, 1 + static_cast<int>(rng.below(60)));
        DOCTEST_REQUIRE(profiled(a.data(), b.data()) == plain(a.data(), b.data()));  // bit for bit
        DOCTEST_REQUIRE(profiled.last_pivots() == plain.last_pivots());
        pivots += profiled.last_pivots();
        simplex_calls += profiled.last_pivots() > 0;
      }
      const ddaq::ExactEmd::Profile& p = profiled.profile();
      DOCTEST_CHECK(p.calls == 100);
      DOCTEST_CHECK(p.pivots == pivots);
      DOCTEST_CHECK(p.simplex_calls >= simplex_calls);  // a start can be optimal already (0 pivots)
      DOCTEST_CHECK(p.simplex_calls <= p.calls);
      DOCTEST_CHECK(p.nodes >= 4 * p.simplex_calls);  // at least two sources and two sinks
      DOCTEST_CHECK(p.degenerate_pivots <= p.pivots);
      // Each replaced arc came in with a pivot of its own.
      DOCTEST_CHECK(p.replaced_start_arcs > 0);
      DOCTEST_CHECK(p.replaced_start_arcs <= p.pivots);
      DOCTEST_CHECK(p.start_ticks > 0);
      DOCTEST_CHECK(p.pricing_ticks > 0);
      DOCTEST_CHECK(p.start_ticks + p.tree_ticks + p.pricing_ticks + p.update_ticks <= p.total_ticks);
      DOCTEST_CHECK(p.to_text().find("ticks per pivot") != std::string::npos);
      profiled.set_profiling(false);  // a new (empty) profile, nothing counted while off
      profiled(one_hot(0).data(), one_hot(1).data());
      DOCTEST_CHECK(profiled.profile().calls == 0);
      DOCTEST_CHECK(profiled.profile().total_ticks == 0);
    }
  }

  DOCTEST_TEST_CASE("rows: results do not depend on the thread count") {
    const ddaq::EventTable a = ddaq::synthesize(ddaq::SynthOptions().events(400).seed(1).pileup_mu(20));
    const ddaq::EventTable b = ddaq::synthesize(ddaq::SynthOptions().events(400).seed(2).pileup_mu(20));
    const auto metric = ddaq::trigger_cell_metric();
    std::vector<double> one(400), four(400);
    ddaq::emd_exact_rows(metric, a.calq.data(), b.calq.data(), 400, one.data(), 1);
    ddaq::emd_exact_rows(metric, a.calq.data(), b.calq.data(), 400, four.data(), 4);
    DOCTEST_CHECK(one == four);
    ddaq::ExactEmd single(metric);
    DOCTEST_CHECK(one[123] == single(a.calq.data() + 123 * 48, b.calq.data() + 123 * 48));
  }

  DOCTEST_TEST_CASE("pricing: the AVX2 row minimum equals the portable one bit for bit") {
    if (!ddaq::detail::cpu_has_avx2()) {
      // ctest's SKIP_RETURN_CODE: reported as Skipped, never as Passed.
      std::fprintf(stderr, "skipped: this CPU has no AVX2 (the solver runs the portable kernel)\n");
      std::exit(77);
    }
    ddaq::Rng rng(7);
    for (int trial = 0; trial < 2000; ++trial) {
      const int padded = 4 * (1 + static_cast<int>(rng.below(12)));
      std::vector<double> cost(padded), v(padded);
      for (int j = 0; j < padded; ++j) {
        cost[j] = trial % 3 == 0 && j % 5 == 0 ? 1e300 : 10 * rng.uniform();  // padding-like entries too
        v[j] = 8 * rng.uniform() - 4;
      }
      const double u = 8 * rng.uniform() - 4;
      const double portable = ddaq::detail::row_minimum_portable(cost.data(), u, v.data(), padded);
      DOCTEST_REQUIRE(ddaq::detail::row_minimum_avx2(cost.data(), u, v.data(), padded) == portable);
      double expected = cost[0] - u - v[0];
      for (int j = 1; j < padded; ++j) expected = std::min(expected, cost[j] - u - v[j]);
      DOCTEST_REQUIRE(portable == expected);
    }
  }
}
