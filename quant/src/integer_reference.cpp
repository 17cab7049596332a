#include "ddaq/quant/integer_reference.h"

#include <algorithm>

#include "ddaq/error.h"

namespace ddaq {

const char* to_string(LayerKind kind) {
  switch (kind) {
    case LayerKind::InputQuant: return "input_quant";
    case LayerKind::Dense: return "dense";
    case LayerKind::Conv2d: return "conv2d";
    case LayerKind::ConvTranspose2d: return "conv_transpose2d";
    default: return "relu";
  }
}

int64_t elements(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  return n;
}

FixedPointType channel_type(const LayerDescription& l, int64_t k) {
  if (l.channel_fractional.empty()) return l.output_type;
  const FixedPointType& t = l.output_type;
  const int f = l.channel_fractional.at(static_cast<size_t>(k));
  return FixedPointType(t.integer + f, t.integer, t.is_signed, t.rounding, t.overflow);
}

int channel_width(const LayerDescription& l, int64_t k) { return std::max(0, channel_type(l, k).width); }

namespace {

// Floor division by 2^shift (shift >= 0), for negative values too.
int64_t floor_shift(int64_t v, int shift) {
  const int64_t d = int64_t(1) << shift;
  return v >= 0 ? v / d : -((-v + d - 1) / d);
}

void check(bool ok, const LayerDescription& l, const std::string& what) {
  if (!ok) throw Error("layer '" + l.name + "' (" + to_string(l.kind) + "): " + what);
}

// Raw values at `from` fractional bits (exact, int64) rescaled into `type`.
std::vector<int64_t> requantize(const std::vector<int64_t>& acc, int from, const FixedPointType& type) {
  std::vector<int64_t> out(acc.size());
  for (size_t k = 0; k < acc.size(); ++k) out[k] = type.raw_from_raw(acc[k], from);
  return out;
}

// Per-element truncation (LayerDescription::channel_fractional): raw values
// stay at the output type's fractional bits, their low bits cleared. Equal
// to quantizing straight to channel_type() because both truncate and the
// output type already saturated at the same integer bits.
std::vector<int64_t> truncate_channels(std::vector<int64_t> x, const LayerDescription& l) {
  if (l.channel_fractional.empty()) return x;
  const int F = l.output_type.fractional();
  for (size_t k = 0; k < x.size(); ++k) {
    if (channel_width(l, static_cast<int64_t>(k)) == 0) {
      x[k] = 0;
      continue;
    }
    const int shift = F - l.channel_fractional[k];
    x[k] = floor_shift(x[k], shift) * (int64_t(1) << shift);
  }
  return x;
}

// Fractional bits of the exact accumulator (products or bias, the finer) and
// the left shift that brings products to it.
int accumulator_fraction(const LayerDescription& l, int& product_shift) {
  const int products = l.weight_type.fractional() + l.input_type.fractional();
  const int frac = std::max(products, l.bias_type.fractional());
  product_shift = frac - products;
  return frac;
}

// Bias raw values aligned to `frac` fractional bits (frac >= bias fractional bits).
int64_t aligned_bias(const LayerDescription& l, int64_t o, int frac) {
  if (l.bias_raw.empty()) return 0;
  return l.bias_raw[o] * (int64_t(1) << (frac - l.bias_type.fractional()));
}

std::vector<int64_t> dense(const LayerDescription& l, const std::vector<int64_t>& x, int& frac) {
  const int64_t out = l.weight_shape[0], in = l.weight_shape[1];
  int shift = 0;
  frac = accumulator_fraction(l, shift);
  std::vector<int64_t> acc(static_cast<size_t>(out));
  for (int64_t o = 0; o < out; ++o) {
    int64_t s = 0;
    const int64_t* w = &l.weight_raw[o * in];
    for (int64_t i = 0; i < in; ++i) s += w[i] * x[i];
    acc[o] = s * (int64_t(1) << shift) + aligned_bias(l, o, frac);
  }
  return acc;
}

std::vector<int64_t> conv2d(const LayerDescription& l, const std::vector<int64_t>& x, int& frac) {
  const int64_t co = l.weight_shape[0], ci = l.weight_shape[1], kh = l.weight_shape[2], kw = l.weight_shape[3];
  const int64_t h = l.input_shape[1], w = l.input_shape[2], ho = l.output_shape[1], wo = l.output_shape[2];
  int shift = 0;
  frac = accumulator_fraction(l, shift);
  std::vector<int64_t> acc(static_cast<size_t>(co * ho * wo));
  for (int64_t o = 0; o < co; ++o)
    for (int64_t y = 0; y < ho; ++y)
      for (int64_t z = 0; z < wo; ++z) {
        int64_t s = 0;
        for (int64_t c = 0; c < ci; ++c)
          for (int64_t a = 0; a < kh; ++a) {
            const int64_t iy = y * l.stride - l.padding + a;
            if (iy < 0 || iy >= h) continue;
            for (int64_t b = 0; b < kw; ++b) {
              const int64_t ix = z * l.stride - l.padding + b;
              if (ix < 0 || ix >= w) continue;
              s += l.weight_raw[((o * ci + c) * kh + a) * kw + b] * x[(c * h + iy) * w + ix];
            }
          }
        acc[(o * ho + y) * wo + z] = s * (int64_t(1) << shift) + aligned_bias(l, o, frac);
      }
  return acc;
}

std::vector<int64_t> conv_transpose2d(const LayerDescription& l, const std::vector<int64_t>& x, int& frac) {
  const int64_t ci = l.weight_shape[0], co = l.weight_shape[1], kh = l.weight_shape[2], kw = l.weight_shape[3];
  const int64_t h = l.input_shape[1], w = l.input_shape[2], ho = l.output_shape[1], wo = l.output_shape[2];
  int shift = 0;
  frac = accumulator_fraction(l, shift);
  std::vector<int64_t> acc(static_cast<size_t>(co * ho * wo), 0);
  for (int64_t c = 0; c < ci; ++c)
    for (int64_t i = 0; i < h; ++i)
      for (int64_t j = 0; j < w; ++j) {
        const int64_t v = x[(c * h + i) * w + j];
        if (v == 0) continue;
        for (int64_t o = 0; o < co; ++o)
          for (int64_t a = 0; a < kh; ++a) {
            const int64_t y = i * l.stride - l.padding + a;
            if (y < 0 || y >= ho) continue;
            for (int64_t b = 0; b < kw; ++b) {
              const int64_t z = j * l.stride - l.padding + b;
              if (z < 0 || z >= wo) continue;
              acc[(o * ho + y) * wo + z] += l.weight_raw[((c * co + o) * kh + a) * kw + b] * v;
            }
          }
      }
  for (int64_t o = 0; o < co; ++o)
    for (int64_t p = 0; p < ho * wo; ++p)
      acc[o * ho * wo + p] = acc[o * ho * wo + p] * (int64_t(1) << shift) + aligned_bias(l, o, frac);
  return acc;
}

}  // namespace

IntegerReference::IntegerReference(ModelDescription model) : model_(std::move(model)) {
  if (model_.empty()) throw Error("integer reference: empty model");
  for (size_t k = 0; k < model_.size(); ++k) {
    const LayerDescription& l = model_[k];
    l.input_type.validate();
    l.output_type.validate();
    if (k > 0) {
      check(elements(l.input_shape) == elements(model_[k - 1].output_shape), l, "input size does not match the previous layer");
      check(l.input_type == model_[k - 1].output_type, l, "input type differs from the previous layer's output type");
    }
    if (l.kind == LayerKind::Dense || l.kind == LayerKind::Conv2d || l.kind == LayerKind::ConvTranspose2d) {
      check(static_cast<int64_t>(l.weight_raw.size()) == elements(l.weight_shape), l, "weight size mismatch");
      const int64_t outs = l.kind == LayerKind::ConvTranspose2d ? l.weight_shape[1] : l.weight_shape[0];
      check(l.bias_raw.empty() || static_cast<int64_t>(l.bias_raw.size()) == outs, l, "bias size mismatch");
    }
    if (!l.channel_fractional.empty()) {
      check(l.kind == LayerKind::Relu, l, "per-element fractional bits on a layer that is not a ReLU");
      check(l.output_shape.size() == 1 && static_cast<int64_t>(l.channel_fractional.size()) == l.output_shape[0], l,
            "per-element fractional bits need a 1-D output with one value per element");
      check(l.output_type.rounding == Rounding::TRN && !l.output_type.is_signed, l,
            "per-element fractional bits need an unsigned TRN output type");
      for (int f : l.channel_fractional)
        check(f <= l.output_type.fractional() && f > l.output_type.fractional() - 62, l,
              "per-element fractional bits " + std::to_string(f) + " outside [F - 61, F] of " + l.output_type.hls_type());
    }
    if (l.kind == LayerKind::Conv2d || l.kind == LayerKind::ConvTranspose2d)
      check(l.input_shape.size() == 3 && l.output_shape.size() == 3 && l.weight_shape.size() == 4, l,
            "convolutions need [C, H, W] shapes and 4-D weights");
  }
}

std::vector<int64_t> IntegerReference::run_raw(const std::vector<double>& input) const {
  const LayerDescription& first = model_.front();
  if (static_cast<int64_t>(input.size()) != elements(first.input_shape))
    throw Error("integer reference: input has " + std::to_string(input.size()) + " values, expected " +
                std::to_string(elements(first.input_shape)));
  std::vector<int64_t> x(input.size());
  // An input quantizer converts the real input straight to its output type;
  // otherwise the input must already be values of the first input type.
  const bool quantize_first = first.kind == LayerKind::InputQuant;
  const FixedPointType& entry = quantize_first ? first.output_type : first.input_type;
  for (size_t k = 0; k < input.size(); ++k) x[k] = entry.to_raw(input[k]);
  for (size_t k = quantize_first ? 1 : 0; k < model_.size(); ++k) {
    const LayerDescription& l = model_[k];
    int frac = l.input_type.fractional();
    switch (l.kind) {
      case LayerKind::InputQuant:
        x = requantize(x, frac, l.output_type);
        break;
      case LayerKind::Relu:
        for (auto& v : x) v = std::max<int64_t>(v, 0);
        x = truncate_channels(requantize(x, frac, l.output_type), l);
        break;
      case LayerKind::Dense: {
        const auto acc = dense(l, x, frac);
        x = requantize(acc, frac, l.output_type);
        break;
      }
      case LayerKind::Conv2d: {
        const auto acc = conv2d(l, x, frac);
        x = requantize(acc, frac, l.output_type);
        break;
      }
      case LayerKind::ConvTranspose2d: {
        const auto acc = conv_transpose2d(l, x, frac);
        x = requantize(acc, frac, l.output_type);
        break;
      }
    }
  }
  return x;
}

std::vector<double> IntegerReference::run(const std::vector<double>& input) const {
  const auto raw = run_raw(input);
  std::vector<double> out(raw.size());
  for (size_t k = 0; k < raw.size(); ++k) out[k] = model_.back().output_type.from_raw(raw[k]);
  return out;
}

}  // namespace ddaq
