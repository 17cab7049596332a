// ddaq/quant/fixed_point.h: fixed-point number types with the semantics of
// Xilinx ap_fixed<W, I, Q, O> / ap_ufixed, bit for bit.
//
// A value is raw * 2^-F with F = W - I fractional bits and raw a W-bit
// integer (two's complement when signed). Converting a real number x:
//   1. quantization (Q) of x * 2^F to an integer:
//        TRN       floor (AP_TRN, the ap_fixed default)
//        RND       round half up, towards +inf (AP_RND)
//        RND_CONV  round half to even (AP_RND_CONV)
//   2. overflow (O) into the W-bit range:
//        WRAP      keep the low W bits (AP_WRAP, the default)
//        SAT       clamp to [min, max] (AP_SAT)
//        SAT_SYM   clamp to [-max, max] when signed (AP_SAT_SYM)
// Exact for |x * 2^F| < 2^53 (the double mantissa) and W <= 62.
#pragma once
#include <cstdint>
#include <string>

namespace ddaq {

enum class Rounding { TRN, RND, RND_CONV };
enum class Overflow { WRAP, SAT, SAT_SYM };

const char* to_string(Rounding r);
const char* to_string(Overflow o);
// "TRN"/"AP_TRN", ...; throws ddaq::Error naming the value otherwise.
Rounding rounding_from_string(const std::string& s);
Overflow overflow_from_string(const std::string& s);

struct FixedPointType {
  int width = 16;     // W, total bits (1..62)
  int integer = 6;    // I, integer bits including the sign bit when signed; may be < 0 or > W
  bool is_signed = true;
  Rounding rounding = Rounding::TRN;
  Overflow overflow = Overflow::WRAP;

  FixedPointType() = default;
  FixedPointType(int w, int i, bool s = true, Rounding r = Rounding::TRN, Overflow o = Overflow::WRAP)
      : width(w), integer(i), is_signed(s), rounding(r), overflow(o) {}

  int fractional() const { return width - integer; }
  int64_t min_raw() const;  // -2^(W-1) (signed; -max with SAT_SYM) or 0
  int64_t max_raw() const;  // 2^(W-1) - 1 or 2^W - 1
  double lsb() const;       // 2^-F
  double min_value() const { return static_cast<double>(min_raw()) * lsb(); }
  double max_value() const { return static_cast<double>(max_raw()) * lsb(); }

  // The integer representation of x after quantization and overflow.
  int64_t to_raw(double x) const;
  double from_raw(int64_t raw) const { return static_cast<double>(raw) * lsb(); }
  double quantize(double x) const { return from_raw(to_raw(x)); }
  // Rescales a raw value of `from_fractional` fractional bits to this type
  // (exact integer arithmetic, same result as quantize(raw * 2^-from)).
  int64_t raw_from_raw(int64_t raw, int from_fractional) const;

  // "ap_fixed<8,3,AP_RND,AP_SAT>" (defaults omitted) or "ap_ufixed<...>".
  std::string hls_type() const;
  // Throws ddaq::Error if W is outside 1..62.
  void validate() const;
  bool operator==(const FixedPointType& o) const {
    return width == o.width && integer == o.integer && is_signed == o.is_signed && rounding == o.rounding &&
           overflow == o.overflow;
  }
};

}  // namespace ddaq
