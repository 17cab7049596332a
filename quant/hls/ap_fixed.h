// ap_fixed.h: the subset of Xilinx ap_fixed / ap_ufixed that ddaq's emitted
// HLS projects use, for C simulation with a plain C++ compiler (no Vitis).
// With Vitis HLS on the include path first, its own header is used instead.
//
// Semantics: value = raw * 2^-(W - I), raw a W-bit integer (two's complement
// when signed). Conversions quantize (AP_TRN floor, AP_RND half up,
// AP_RND_CONV half to even) then handle overflow (AP_WRAP, AP_SAT,
// AP_SAT_SYM). Products are exact (W1 + W2 bits, I1 + I2 integer bits),
// sums are exact before assignment. Supported widths: W <= 62, products of
// up to 62 bits. Written by ddaq (quant/hls/ap_fixed.h); not Xilinx code.
#ifndef DDAQ_AP_FIXED_SIM_H
#define DDAQ_AP_FIXED_SIM_H

#include <cmath>
#include <cstdint>

enum ap_q_mode { AP_RND, AP_RND_ZERO, AP_RND_MIN_INF, AP_RND_INF, AP_RND_CONV, AP_TRN, AP_TRN_ZERO };
enum ap_o_mode { AP_SAT, AP_SAT_ZERO, AP_SAT_SYM, AP_WRAP, AP_WRAP_SM };

namespace ddaq_ap {

// Rescales raw (with `from` fractional bits) to `to` fractional bits with a
// quantization mode; exact integer arithmetic.
inline int64_t rescale(int64_t raw, int from, int to, ap_q_mode q) {
  if (to >= from) return raw * (int64_t(1) << (to - from));
  const int shift = from - to;
  const int64_t floor_q = raw >> shift;  // arithmetic shift: floor
  const int64_t rem = raw - floor_q * (int64_t(1) << shift);
  const int64_t half = int64_t(1) << (shift - 1);
  switch (q) {
    case AP_RND: return floor_q + (rem >= half ? 1 : 0);
    case AP_RND_CONV: return floor_q + ((rem > half || (rem == half && (floor_q & 1))) ? 1 : 0);
    default: return floor_q;  // AP_TRN (other modes are not emitted by ddaq)
  }
}

inline int64_t overflow(int64_t v, int w, bool is_signed, ap_o_mode o) {
  const int64_t max = is_signed ? (int64_t(1) << (w - 1)) - 1 : (int64_t(1) << w) - 1;
  int64_t min = is_signed ? -(int64_t(1) << (w - 1)) : 0;
  if (o == AP_WRAP) {
    const uint64_t mask = (uint64_t(1) << w) - 1;
    int64_t r = static_cast<int64_t>(static_cast<uint64_t>(v) & mask);
    if (is_signed && r > max) r -= int64_t(1) << w;
    return r;
  }
  if (o == AP_SAT_SYM && is_signed) min = -max;
  return v < min ? min : (v > max ? max : v);
}

template <int W, int I, bool S, ap_q_mode Q, ap_o_mode O>
class fixed {
 public:
  static_assert(W >= 1 && W <= 62, "ddaq's ap_fixed simulation supports 1..62 bits");
  static constexpr int width = W, iwidth = I, fwidth = W - I;
  static constexpr bool sign = S;
  int64_t raw = 0;

  fixed() = default;
  fixed(double x) {  // NOLINT: implicit, as ap_fixed
    const double scaled = std::ldexp(x, fwidth);
    double q;
    switch (Q) {
      case AP_RND: q = std::floor(scaled + 0.5); break;
      case AP_RND_CONV: q = std::nearbyint(scaled); break;
      default: q = std::floor(scaled); break;
    }
    if (O == AP_WRAP) {
      const double m = std::ldexp(1.0, W);
      double r = std::fmod(q, m);
      if (r < 0) r += m;
      raw = overflow(static_cast<int64_t>(r), W, S, O);
    } else {
      const double hi = static_cast<double>(overflow(INT64_MAX / 4, W, S, O));
      const double lo = static_cast<double>(overflow(-(INT64_MAX / 4), W, S, O));
      raw = static_cast<int64_t>(q < lo ? lo : (q > hi ? hi : q));
    }
  }
  fixed(int x) : fixed(static_cast<double>(x)) {}  // NOLINT
  template <int W2, int I2, bool S2, ap_q_mode Q2, ap_o_mode O2>
  fixed(const fixed<W2, I2, S2, Q2, O2>& o)  // NOLINT
      : raw(overflow(rescale(o.raw, W2 - I2, fwidth, Q), W, S, O)) {}

  template <int W2, int I2, bool S2, ap_q_mode Q2, ap_o_mode O2>
  fixed& operator+=(const fixed<W2, I2, S2, Q2, O2>& o) {
    // Exact sum at the finer grid, then assigned to this type.
    constexpr int f2 = W2 - I2, fmax = (fwidth > f2 ? fwidth : f2);
    const int64_t sum = rescale(raw, fwidth, fmax, AP_TRN) + rescale(o.raw, f2, fmax, AP_TRN);
    raw = overflow(rescale(sum, fmax, fwidth, Q), W, S, O);
    return *this;
  }
  double to_double() const { return std::ldexp(static_cast<double>(raw), -fwidth); }
  operator double() const { return to_double(); }  // NOLINT
  bool operator>(int zero) const { return raw > static_cast<int64_t>(zero) * (int64_t(1) << (fwidth > 0 ? fwidth : 0)); }
};

// Exact product: W1 + W2 bits, I1 + I2 integer bits.
template <int W1, int I1, bool S1, ap_q_mode Q1, ap_o_mode O1, int W2, int I2, bool S2, ap_q_mode Q2, ap_o_mode O2>
fixed<W1 + W2, I1 + I2, (S1 || S2), AP_TRN, AP_WRAP> operator*(const fixed<W1, I1, S1, Q1, O1>& a,
                                                                const fixed<W2, I2, S2, Q2, O2>& b) {
  fixed<W1 + W2, I1 + I2, (S1 || S2), AP_TRN, AP_WRAP> r;
  r.raw = a.raw * b.raw;
  return r;
}

}  // namespace ddaq_ap

template <int W, int I, ap_q_mode Q = AP_TRN, ap_o_mode O = AP_WRAP, int N = 0>
using ap_fixed = ddaq_ap::fixed<W, I, true, Q, O>;
template <int W, int I, ap_q_mode Q = AP_TRN, ap_o_mode O = AP_WRAP, int N = 0>
using ap_ufixed = ddaq_ap::fixed<W, I, false, Q, O>;

#endif  // DDAQ_AP_FIXED_SIM_H
