#include <doctest/doctest.h>

#include <algorithm>
#include <numeric>

#include "ddaq/core/baselines.h"
#include "ddaq/core/synth.h"
#include "ddaq/error.h"

DOCTEST_TEST_SUITE("baselines") {
  DOCTEST_TEST_CASE("Best Choice keeps the k largest / threshold truncates / super trigger cells keep the energy") {
    std::vector<float> x(48, 0.0f), y(48);
    for (int c = 0; c < 48; ++c) x[c] = static_cast<float>((c * 7) % 48);
    ddaq::best_choice(x.data(), 1, 4, y.data());
    int kept = 0;
    for (int c = 0; c < 48; ++c)
      if (y[c] > 0) {
        ++kept;
        DOCTEST_CHECK(y[c] >= 44.0f);
      }
    DOCTEST_CHECK(kept == 4);
    ddaq::threshold_truncated(x.data(), 1, 40.5f, 48, y.data());
    DOCTEST_CHECK(std::count_if(y.begin(), y.end(), [](float v) { return v > 0; }) == 7);  // 41..47
    const ddaq::EventTable t = ddaq::synthesize(ddaq::SynthOptions().events(200).seed(4).pileup_mu(10));
    std::vector<float> s(t.calq.size());
    for (int group : {4, 16}) {
      ddaq::super_trigger_cells(t.calq.data(), 200, group, s.data());
      for (int64_t i = 0; i < 200; ++i) {
        const float in = std::accumulate(t.calq.begin() + i * 48, t.calq.begin() + (i + 1) * 48, 0.0f);
        const float out = std::accumulate(s.begin() + i * 48, s.begin() + (i + 1) * 48, 0.0f);
        DOCTEST_REQUIRE(out == doctest::Approx(in).epsilon(1e-5));
        DOCTEST_REQUIRE(std::count_if(s.begin() + i * 48, s.begin() + (i + 1) * 48, [](float v) { return v > 0; }) <=
                        48 / group);
      }
    }
    DOCTEST_CHECK_THROWS_AS(ddaq::super_trigger_cells(x.data(), 1, 8, y.data()), ddaq::Error);
  }
}
