#include "ddaq/quant/fixed_point.h"

#include <cmath>

#include "ddaq/error.h"

namespace ddaq {

const char* to_string(Rounding r) {
  switch (r) {
    case Rounding::TRN: return "TRN";
    case Rounding::RND: return "RND";
    default: return "RND_CONV";
  }
}

const char* to_string(Overflow o) {
  switch (o) {
    case Overflow::WRAP: return "WRAP";
    case Overflow::SAT: return "SAT";
    default: return "SAT_SYM";
  }
}

Rounding rounding_from_string(const std::string& s) {
  const std::string t = s.rfind("AP_", 0) == 0 ? s.substr(3) : s;
  if (t == "TRN") return Rounding::TRN;
  if (t == "RND") return Rounding::RND;
  if (t == "RND_CONV") return Rounding::RND_CONV;
  throw Error("unknown rounding mode '" + s + "' (expected TRN, RND or RND_CONV)");
}

Overflow overflow_from_string(const std::string& s) {
  const std::string t = s.rfind("AP_", 0) == 0 ? s.substr(3) : s;
  if (t == "WRAP") return Overflow::WRAP;
  if (t == "SAT") return Overflow::SAT;
  if (t == "SAT_SYM") return Overflow::SAT_SYM;
  throw Error("unknown overflow mode '" + s + "' (expected WRAP, SAT or SAT_SYM)");
}

void FixedPointType::validate() const {
  if (width < 1 || width > 62)
    throw Error("fixed-point width " + std::to_string(width) + " outside 1..62");
  if (integer < -64 || integer > 126) throw Error("fixed-point integer bits " + std::to_string(integer) + " out of range");
}

int64_t FixedPointType::min_raw() const {
  if (!is_signed) return 0;
  const int64_t m = -(int64_t(1) << (width - 1));
  return overflow == Overflow::SAT_SYM ? m + 1 : m;
}

int64_t FixedPointType::max_raw() const {
  return is_signed ? (int64_t(1) << (width - 1)) - 1 : (int64_t(1) << width) - 1;
}

double FixedPointType::lsb() const { return std::ldexp(1.0, -fractional()); }

namespace {

// Wraps an integer-valued double into the W-bit range (two's complement).
int64_t wrap(double q, int width, bool is_signed) {
  const double modulus = std::ldexp(1.0, width);
  double r = std::fmod(q, modulus);  // exact for integer-valued doubles
  if (r < 0) r += modulus;
  int64_t raw = static_cast<int64_t>(r);
  if (is_signed && raw >= (int64_t(1) << (width - 1))) raw -= int64_t(1) << width;
  return raw;
}

}  // namespace

int64_t FixedPointType::to_raw(double x) const {
  if (std::isnan(x)) throw Error("fixed point: cannot quantize NaN");
  const double scaled = std::ldexp(x, fractional());
  double q;
  switch (rounding) {
    case Rounding::TRN: q = std::floor(scaled); break;
    case Rounding::RND: q = std::floor(scaled + 0.5); break;
    default: q = std::nearbyint(scaled); break;  // FE_TONEAREST: half to even
  }
  if (overflow == Overflow::WRAP) {
    if (std::isinf(q)) throw Error("fixed point: cannot wrap an infinite value");
    return wrap(q, width, is_signed);
  }
  const double lo = static_cast<double>(min_raw()), hi = static_cast<double>(max_raw());
  return static_cast<int64_t>(q < lo ? lo : (q > hi ? hi : q));
}

int64_t FixedPointType::raw_from_raw(int64_t raw, int from_fractional) const {
  const int shift = from_fractional - fractional();
  int64_t q;
  if (shift <= 0) {
    q = raw * (int64_t(1) << -shift);  // more fractional bits: exact
  } else {
    const int64_t floor_q = raw >> shift;  // arithmetic shift = floor
    const int64_t rem = raw - (floor_q << shift);
    const int64_t half = int64_t(1) << (shift - 1);
    switch (rounding) {
      case Rounding::TRN: q = floor_q; break;
      case Rounding::RND: q = floor_q + (rem >= half ? 1 : 0); break;
      default: q = floor_q + ((rem > half || (rem == half && (floor_q & 1))) ? 1 : 0); break;
    }
  }
  if (overflow == Overflow::WRAP) {
    const uint64_t mask = width >= 64 ? ~uint64_t(0) : ((uint64_t(1) << width) - 1);
    int64_t w = static_cast<int64_t>(static_cast<uint64_t>(q) & mask);
    if (is_signed && w >= (int64_t(1) << (width - 1))) w -= int64_t(1) << width;
    return w;
  }
  return std::min(std::max(q, min_raw()), max_raw());
}

std::string FixedPointType::hls_type() const {
  std::string s = std::string(is_signed ? "ap_fixed<" : "ap_ufixed<") + std::to_string(width) + "," +
                  std::to_string(integer);
  if (rounding != Rounding::TRN || overflow != Overflow::WRAP) {
    s += std::string(",AP_") + to_string(rounding);
    if (overflow != Overflow::WRAP) s += std::string(",AP_") + to_string(overflow);
  }
  return s + ">";
}

}  // namespace ddaq
