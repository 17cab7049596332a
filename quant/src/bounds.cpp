#include "ddaq/quant/bounds.h"

#include <algorithm>
#include <cmath>

#include "ddaq/error.h"

namespace ddaq {
namespace {

bool weighted(const LayerDescription& l) {
  return l.kind == LayerKind::Dense || l.kind == LayerKind::Conv2d || l.kind == LayerKind::ConvTranspose2d;
}

// Index of weight (unit, k) where k runs over the taps feeding one output of
// `unit` (dense: inputs; conv: in-channel x kh x kw; conv-transpose: the
// same, over dim 0 and the kernel).
int64_t taps(const LayerDescription& l) {
  if (l.kind == LayerKind::Dense) return l.weight_shape[1];
  if (l.kind == LayerKind::Conv2d) return l.weight_shape[1] * l.weight_shape[2] * l.weight_shape[3];
  return l.weight_shape[0] * l.weight_shape[2] * l.weight_shape[3];
}
int64_t units(const LayerDescription& l) {
  return l.kind == LayerKind::ConvTranspose2d ? l.weight_shape[1] : l.weight_shape[0];
}
int64_t weight_raw_at(const LayerDescription& l, int64_t unit, int64_t k) {
  if (l.kind != LayerKind::ConvTranspose2d) return l.weight_raw[unit * taps(l) + k];
  const int64_t kk = l.weight_shape[2] * l.weight_shape[3], c = k / kk, ab = k % kk;
  return l.weight_raw[(c * l.weight_shape[1] + unit) * kk + ab];
}

}  // namespace

std::vector<Interval> accumulator_ranges(const LayerDescription& l) {
  if (!weighted(l)) throw Error("accumulator ranges: layer '" + l.name + "' has no accumulator");
  const double xmin = l.input_type.min_value(), xmax = l.input_type.max_value();
  const double ws = std::ldexp(1.0, -l.weight_type.fractional()), bs = std::ldexp(1.0, -l.bias_type.fractional());
  std::vector<Interval> out(static_cast<size_t>(units(l)));
  for (int64_t u = 0; u < units(l); ++u) {
    const double b = l.bias_raw.empty() ? 0.0 : static_cast<double>(l.bias_raw[u]) * bs;
    Interval r{b, b};
    for (int64_t k = 0; k < taps(l); ++k) {
      const double w = static_cast<double>(weight_raw_at(l, u, k)) * ws;
      r.hi += w > 0 ? w * xmax : w * xmin;
      r.lo += w > 0 ? w * xmin : w * xmax;
    }
    out[u] = r;
  }
  return out;
}

FixedPointType exact_accumulator_type(const LayerDescription& l) {
  double bound = 0.0;
  for (const Interval& r : accumulator_ranges(l)) bound = std::max({bound, r.hi, -r.lo});
  // Signed with I integer bits holds [-2^(I-1), 2^(I-1)): I = floor(log2 bound) + 2.
  const int integer = bound > 0 ? static_cast<int>(std::floor(std::log2(bound))) + 2 : 1;
  const int frac = std::max(l.weight_type.fractional() + l.input_type.fractional(), l.bias_type.fractional());
  return FixedPointType(integer + frac, integer, true);
}

std::vector<std::vector<double>> accumulator_bound_inputs(const ModelDescription& model) {
  if (model.empty() || model.front().kind != LayerKind::InputQuant)
    throw Error("accumulator bound inputs: the model must start with an input quantizer");
  const FixedPointType& t = model.front().output_type;
  const int64_t n = elements(model.front().input_shape);
  const double xmin = t.min_value(), xmax = t.max_value(), rest = xmin <= 0.0 && xmax >= 0.0 ? 0.0 : xmin;
  std::vector<std::vector<double>> out{std::vector<double>(n, xmin), std::vector<double>(n, xmax)};
  if (model.size() < 2 || !weighted(model[1])) return out;
  const LayerDescription& l = model[1];
  if (l.kind == LayerKind::Dense) {
    for (int64_t u = 0; u < units(l); ++u)
      for (int sign : {1, -1}) {
        std::vector<double> x(n, rest);
        for (int64_t i = 0; i < taps(l); ++i) {
          const int64_t w = weight_raw_at(l, u, i) * sign;
          x[i] = w > 0 ? xmax : w < 0 ? xmin : rest;
        }
        out.push_back(std::move(x));
      }
  } else if (l.kind == LayerKind::Conv2d) {
    const int64_t ci = l.weight_shape[1], kh = l.weight_shape[2], kw = l.weight_shape[3];
    const int64_t h = l.input_shape[1], w = l.input_shape[2];
    for (int64_t u = 0; u < units(l); ++u)
      for (int64_t y = 0; y < l.output_shape[1]; ++y)
        for (int64_t z = 0; z < l.output_shape[2]; ++z)
          for (int sign : {1, -1}) {
            std::vector<double> x(n, rest);
            for (int64_t c = 0; c < ci; ++c)
              for (int64_t a = 0; a < kh; ++a)
                for (int64_t b = 0; b < kw; ++b) {
                  const int64_t iy = y * l.stride - l.padding + a, ix = z * l.stride - l.padding + b;
                  if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
                  const int64_t wr = weight_raw_at(l, u, (c * kh + a) * kw + b) * sign;
                  x[(c * h + iy) * w + ix] = wr > 0 ? xmax : wr < 0 ? xmin : rest;
                }
            out.push_back(std::move(x));
          }
  }
  return out;
}

}  // namespace ddaq
