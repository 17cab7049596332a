#include <doctest/doctest.h>

#include <cmath>

#include "ddaq/error.h"
#include "ddaq/core/events.h"
#include "ddaq/core/overlay.h"
#include "ddaq/core/statistics.h"
#include "ddaq/core/synth.h"
#include "test_support.h"

namespace {
double mean_sum(const ddaq::EventTable& t) {
  double s = 0;
  for (float q : t.calq) s += q;
  return s / static_cast<double>(t.size());
}
double mean_occupancy(const ddaq::EventTable& t) {
  double s = 0;
  for (float q : t.calq) s += q > 0;
  return s / static_cast<double>(t.size());
}
}  // namespace

DOCTEST_TEST_SUITE("synth") {
  DOCTEST_TEST_CASE("a seed fixes every event bit for bit / any slice can be made alone") {
    const auto o = ddaq::SynthOptions().events(2000).seed(11);
    const ddaq::EventTable a = ddaq::synthesize(o), b = ddaq::synthesize(o);
    DOCTEST_CHECK(a.calq == b.calq);
    DOCTEST_CHECK(a.label == b.label);
    const ddaq::EventTable c = ddaq::synthesize(ddaq::SynthOptions(o).seed(12));
    DOCTEST_CHECK(a.calq != c.calq);
    std::vector<float> slice(10 * 48);
    std::vector<int32_t> labels(10);
    ddaq::synthesize(o, ddaq::WaferGeometry::hgcal(), 1500, 10, slice.data(), labels.data());
    DOCTEST_CHECK(std::equal(slice.begin(), slice.end(), a.calq.begin() + 1500 * 48));
    DOCTEST_CHECK(std::equal(labels.begin(), labels.end(), a.label.begin() + 1500));
  }

  DOCTEST_TEST_CASE("0PU wafers look like the real samples' hit wafers") {
    const ddaq::EventTable t = ddaq::synthesize(ddaq::SynthOptions().events(20000).seed(3));
    int64_t electrons = 0;
    for (int32_t l : t.label) electrons += l == 1;
    DOCTEST_CHECK(electrons == doctest::Approx(10000).epsilon(0.03));
    for (int64_t i = 0; i < t.size(); ++i) {
      int hit = 0;
      for (int c = 0; c < 48; ++c) {
        const float q = t.calq[i * 48 + c];
        hit += q > 0;
        DOCTEST_REQUIRE((q == 0.0f || (q >= 2.0f && q == std::floor(q))));  // integer, zero-suppressed
      }
      DOCTEST_REQUIRE(hit > 0);  // no empty wafers, like the real samples
    }
    // Real samples (domain-facts.md): mean occupancy 1.7-1.8, median wafer sum 4.
    DOCTEST_CHECK(mean_occupancy(t) > 1.5);
    DOCTEST_CHECK(mean_occupancy(t) < 2.5);
  }

  DOCTEST_TEST_CASE("pileup fills the wafer") {
    const ddaq::EventTable p0 = ddaq::synthesize(ddaq::SynthOptions().events(2000).seed(3));
    const ddaq::EventTable p40 = ddaq::synthesize(ddaq::SynthOptions().events(2000).seed(3).pileup_mu(40));
    DOCTEST_CHECK(mean_occupancy(p40) > 30);
    DOCTEST_CHECK(mean_occupancy(p40) > 10 * mean_occupancy(p0));
  }

  DOCTEST_TEST_CASE("options out of range are rejected by name") {
    DOCTEST_CHECK_THROWS_WITH_AS(ddaq::synthesize(ddaq::SynthOptions().events(10).electron_fraction(1.5)),
                                 "synth: option electron_fraction = 1.500000 is out of range", ddaq::Error);
    DOCTEST_CHECK_THROWS_AS(ddaq::synthesize(ddaq::SynthOptions().pileup_mu(-1)), ddaq::Error);
    DOCTEST_CHECK_THROWS_AS(ddaq::synthesize(ddaq::SynthOptions().pileup_mu(NAN)), ddaq::Error);
  }
}

DOCTEST_TEST_SUITE("overlay") {
  DOCTEST_TEST_CASE("the added count is Poisson(mu): mean and variance") {
    // A pool of identical one-hit wafers: the charge added to cell 0 is k.
    ddaq::EventTable pool;
    pool.calq.assign(5 * 48, 0.0f);
    for (int i = 0; i < 5; ++i) pool.calq[i * 48] = 1.0f;
    for (double mu : {0.7, 10.0, 40.0}) {
      const int64_t n = 50000;
      std::vector<float> calq(n * 48, 0.0f);
      ddaq::overlay_pileup(ddaq::OverlayOptions().mu(mu).seed(5), pool, 0, n, calq.data());
      double s = 0, s2 = 0;
      for (int64_t i = 0; i < n; ++i) {
        const double k = calq[i * 48];
        s += k;
        s2 += k * k;
        DOCTEST_REQUIRE(calq[i * 48 + 1] == 0.0f);
      }
      const double mean = s / n, var = s2 / n - mean * mean;
      DOCTEST_INFO("mu " << mu);
      DOCTEST_CHECK(mean == doctest::Approx(mu).epsilon(0.02));
      DOCTEST_CHECK(var == doctest::Approx(mu).epsilon(0.05));
    }
  }

  DOCTEST_TEST_CASE("pool wafers are drawn uniformly and added whole") {
    ddaq::EventTable pool;
    pool.calq.assign(4 * 48, 0.0f);
    for (int i = 0; i < 4; ++i) pool.calq[i * 48 + i] = 1.0f;  // wafer i hits cell i
    const int64_t n = 40000;
    std::vector<float> calq(n * 48, 0.0f);
    ddaq::overlay_pileup(ddaq::OverlayOptions().mu(3).seed(1), pool, 0, n, calq.data());
    double per_cell[4] = {0, 0, 0, 0};
    for (int64_t i = 0; i < n; ++i)
      for (int c = 0; c < 4; ++c) per_cell[c] += calq[i * 48 + c];
    for (double v : per_cell) DOCTEST_CHECK(v / n == doctest::Approx(0.75).epsilon(0.03));
  }

  DOCTEST_TEST_CASE("deterministic per wafer / whatever the block split") {
    const ddaq::EventTable pool = ddaq::synthesize(ddaq::SynthOptions().events(500).seed(9));
    const ddaq::EventTable sig = ddaq::synthesize(ddaq::SynthOptions().events(300).seed(1));
    std::vector<float> whole = sig.calq, split = sig.calq;
    const auto o = ddaq::OverlayOptions().mu(10).seed(4);
    ddaq::overlay_pileup(o, pool, 0, 300, whole.data());
    ddaq::overlay_pileup(o, pool, 0, 123, split.data());
    ddaq::overlay_pileup(o, pool, 123, 177, split.data() + 123 * 48);
    DOCTEST_CHECK(whole == split);
    std::vector<float> zero = sig.calq;
    ddaq::overlay_pileup(ddaq::OverlayOptions().mu(0), pool, 0, 300, zero.data());
    DOCTEST_CHECK(zero == sig.calq);
  }

  DOCTEST_TEST_CASE("file to file: labels kept / mean sum grows by mu x pool mean / provenance") {
    ddaq_test::TempDir dir;
    ddaq::synthesize_to_file(ddaq::SynthOptions().events(3000).seed(1), dir.file("sig.h5"));
    ddaq::synthesize_to_file(ddaq::SynthOptions().events(1000).seed(2).electron_fraction(0), dir.file("pool.h5"));
    ddaq::overlay_file(ddaq::OverlayOptions().mu(10).seed(3), dir.file("sig.h5"), dir.file("pool.h5"),
                       dir.file("out.h5"));
    const ddaq::EventTable sig = ddaq::EventFileReader(dir.file("sig.h5")).read_all();
    const ddaq::EventTable pool = ddaq::EventFileReader(dir.file("pool.h5")).read_all();
    const ddaq::EventTable out = ddaq::EventFileReader(dir.file("out.h5")).read_all();
    DOCTEST_CHECK(out.label == sig.label);
    DOCTEST_CHECK(mean_sum(out) - mean_sum(sig) == doctest::Approx(10 * mean_sum(pool)).epsilon(0.1));
    const auto attrs = ddaq::EventFileReader(dir.file("out.h5")).attributes();
    DOCTEST_CHECK(attrs.at("creator") == "ddaq data overlay");
    DOCTEST_CHECK(attrs.at("provenance").find("\"mu\":10.0") != std::string::npos);
    DOCTEST_CHECK_THROWS_AS(ddaq::overlay_file(ddaq::OverlayOptions().mu(-2), dir.file("sig.h5"),
                                               dir.file("pool.h5"), dir.file("bad.h5")),
                            ddaq::Error);
    DOCTEST_CHECK_FALSE(ddaq_test::exists(dir.file("bad.h5")));
  }

  DOCTEST_TEST_CASE("statistics of a file") {
    ddaq_test::TempDir dir;
    ddaq::synthesize_to_file(ddaq::SynthOptions().events(1000).seed(1), dir.file("s.h5"));
    const ddaq::EventStatistics s = ddaq::compute_statistics(dir.file("s.h5"));
    DOCTEST_CHECK(s.events == 1000);
    DOCTEST_CHECK(s.empty_wafers == 0);
    DOCTEST_CHECK(s.labels.at(0) + s.labels.at(1) == 1000);
    DOCTEST_CHECK(s.occupancy.quantiles[2] >= 1);
    DOCTEST_CHECK(s.to_json().find("\"wafer_sum\"") != std::string::npos);
  }
}
