#include <doctest/doctest.h>

#include <cmath>

#include "ddaq/core/random.h"
#include "ddaq/error.h"
#include "ddaq/quant/fixed_point.h"

using ddaq::FixedPointType;
using ddaq::Overflow;
using ddaq::Rounding;

namespace {
double q(int w, int i, bool s, Rounding r, Overflow o, double x) { return FixedPointType(w, i, s, r, o).quantize(x); }
}  // namespace

DOCTEST_TEST_SUITE("fixed point") {
  DOCTEST_TEST_CASE("rounding modes at ties and negatives (ap_fixed<4 2>: lsb 0.25)") {
    const auto W = Overflow::WRAP;
    // TRN: floor.
    DOCTEST_CHECK(q(4, 2, true, Rounding::TRN, W, 0.3) == 0.25);
    DOCTEST_CHECK(q(4, 2, true, Rounding::TRN, W, -0.3) == -0.5);
    DOCTEST_CHECK(q(4, 2, true, Rounding::TRN, W, -0.25) == -0.25);
    // RND: half towards +inf.
    DOCTEST_CHECK(q(4, 2, true, Rounding::RND, W, 0.125) == 0.25);
    DOCTEST_CHECK(q(4, 2, true, Rounding::RND, W, -0.125) == 0.0);
    DOCTEST_CHECK(q(4, 2, true, Rounding::RND, W, 0.375) == 0.5);
    DOCTEST_CHECK(q(4, 2, true, Rounding::RND, W, -0.375) == -0.25);
    DOCTEST_CHECK(q(4, 2, true, Rounding::RND, W, 0.36) == 0.25);
    // RND_CONV: half to even.
    DOCTEST_CHECK(q(4, 2, true, Rounding::RND_CONV, W, 0.125) == 0.0);
    DOCTEST_CHECK(q(4, 2, true, Rounding::RND_CONV, W, 0.375) == 0.5);
    DOCTEST_CHECK(q(4, 2, true, Rounding::RND_CONV, W, 0.625) == 0.5);
    DOCTEST_CHECK(q(4, 2, true, Rounding::RND_CONV, W, -0.375) == -0.5);
    DOCTEST_CHECK(q(4, 2, true, Rounding::RND_CONV, W, -0.625) == -0.5);
  }

  DOCTEST_TEST_CASE("overflow modes at the extremes") {
    const auto T = Rounding::TRN;
    // Signed <4,2>: raw -8..7 = -2.0..1.75.
    DOCTEST_CHECK(q(4, 2, true, T, Overflow::WRAP, 1.75) == 1.75);
    DOCTEST_CHECK(q(4, 2, true, T, Overflow::WRAP, 2.0) == -2.0);
    DOCTEST_CHECK(q(4, 2, true, T, Overflow::WRAP, 2.25) == -1.75);
    DOCTEST_CHECK(q(4, 2, true, T, Overflow::WRAP, -2.25) == 1.75);
    DOCTEST_CHECK(q(4, 2, true, T, Overflow::WRAP, 6.0) == -2.0);  // 24 mod 16 = 8 -> -8
    DOCTEST_CHECK(q(4, 2, true, T, Overflow::SAT, 5.0) == 1.75);
    DOCTEST_CHECK(q(4, 2, true, T, Overflow::SAT, -5.0) == -2.0);
    DOCTEST_CHECK(q(4, 2, true, T, Overflow::SAT_SYM, -5.0) == -1.75);
    DOCTEST_CHECK(q(4, 2, true, T, Overflow::SAT_SYM, -2.0) == -1.75);
    DOCTEST_CHECK(q(4, 2, true, T, Overflow::SAT_SYM, 5.0) == 1.75);
    // Rounding up into overflow: 1.9 rounds to 2.0, which then overflows.
    DOCTEST_CHECK(q(4, 2, true, Rounding::RND, Overflow::SAT, 1.9) == 1.75);
    DOCTEST_CHECK(q(4, 2, true, Rounding::RND, Overflow::WRAP, 1.9) == -2.0);
    // Unsigned <4,2>: raw 0..15 = 0..3.75.
    DOCTEST_CHECK(q(4, 2, false, T, Overflow::SAT, -0.5) == 0.0);
    DOCTEST_CHECK(q(4, 2, false, T, Overflow::SAT, 9.0) == 3.75);
    DOCTEST_CHECK(q(4, 2, false, T, Overflow::WRAP, -0.25) == 3.75);
    DOCTEST_CHECK(q(4, 2, false, T, Overflow::WRAP, 4.0) == 0.0);
    DOCTEST_CHECK(q(4, 2, false, T, Overflow::SAT_SYM, -1.0) == 0.0);
    // Integer bits beyond the width and negative integer bits.
    DOCTEST_CHECK(q(4, 6, true, T, Overflow::SAT, 13.0) == 12.0);  // lsb 4
    DOCTEST_CHECK(q(4, -1, true, T, Overflow::SAT, 0.2) == 0.1875);  // lsb 1/32, max 7/32
    DOCTEST_CHECK(FixedPointType(6, 1).lsb() == 1.0 / 32);
  }

  DOCTEST_TEST_CASE("raw rescaling equals quantizing the real value (every mode)") {
    ddaq::Rng rng(3);
    for (int trial = 0; trial < 20000; ++trial) {
      const int w = 1 + static_cast<int>(rng.below(20));
      const int i = static_cast<int>(rng.below(16)) - 4;
      const FixedPointType t(w, i, rng.below(2) == 0, static_cast<Rounding>(rng.below(3)),
                             static_cast<Overflow>(rng.below(3)));
      const int from = static_cast<int>(rng.below(24)) - 2;
      const int64_t raw = static_cast<int64_t>(rng.below(1 << 22)) - (1 << 21);
      DOCTEST_REQUIRE(t.raw_from_raw(raw, from) == t.to_raw(std::ldexp(static_cast<double>(raw), -from)));
    }
  }

  DOCTEST_TEST_CASE("HLS type names / validation / mode names") {
    DOCTEST_CHECK(FixedPointType(8, 3).hls_type() == "ap_fixed<8,3>");
    DOCTEST_CHECK(FixedPointType(8, 3, false, Rounding::RND, Overflow::SAT).hls_type() == "ap_ufixed<8,3,AP_RND,AP_SAT>");
    DOCTEST_CHECK(FixedPointType(8, 3, true, Rounding::RND_CONV).hls_type() == "ap_fixed<8,3,AP_RND_CONV>");
    DOCTEST_CHECK_THROWS_AS(FixedPointType(0, 0).validate(), ddaq::Error);
    DOCTEST_CHECK_THROWS_AS(FixedPointType(4, 2).to_raw(NAN), ddaq::Error);
    DOCTEST_CHECK(ddaq::rounding_from_string("AP_RND_CONV") == Rounding::RND_CONV);
    DOCTEST_CHECK(ddaq::overflow_from_string("SAT_SYM") == Overflow::SAT_SYM);
    DOCTEST_CHECK_THROWS_WITH_AS(ddaq::rounding_from_string("RND_ZERO"),
                                 "unknown rounding mode 'RND_ZERO' (expected TRN, RND or RND_CONV)", ddaq::Error);
  }
}
