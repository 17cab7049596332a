// Fixed-point fake quantization with learnable bits (FixedPointQuantizerImpl,
// layers.h): a <torch/torch.h> translation unit of quant/.
#include <torch/torch.h>

#include <cmath>

#include "ddaq/error.h"
#include "ddaq/quant/layers.h"

namespace ddaq {
namespace {

constexpr double kLn2 = 0.69314718055994530942;

std::vector<int64_t> group_shape(const std::vector<int64_t>& shape, Granularity g, bool is_activation) {
  std::vector<int64_t> out;
  if (is_activation) out.push_back(1);
  for (size_t d = 0; d < shape.size(); ++d) {
    if (g == Granularity::PerElement || (g == Granularity::PerChannel && d == 0))
      out.push_back(shape[d]);
    else
      out.push_back(1);
  }
  if (out.empty()) out.push_back(1);
  return out;
}

torch::Tensor round_mode(const torch::Tensor& s, Rounding r) {
  switch (r) {
    case Rounding::TRN: return torch::floor(s);
    case Rounding::RND: return torch::floor(s + 0.5);
    default: return torch::round(s);  // half to even
  }
}

}  // namespace

// ---------------------------------------------------------------- quantizer

namespace {

// Fake quantization to a fixed type: the value of the type (rounded,
// saturated or wrapped), straight-through gradient inside the representable
// range and zero outside it.
struct FixedFakeQuant : torch::autograd::Function<FixedFakeQuant> {
  static torch::Tensor apply(const torch::Tensor& x, const FixedPointType& t) {
    return torch::autograd::Function<FixedFakeQuant>::apply(x, t.width, t.integer, t.is_signed,
                                                            static_cast<int64_t>(t.rounding),
                                                            static_cast<int64_t>(t.overflow));
  }
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x, int64_t width,
                               int64_t integer, bool is_signed, int64_t rounding, int64_t overflow) {
    const double scale = std::ldexp(1.0, static_cast<int>(width - integer));
    const double hi = is_signed ? std::ldexp(1.0, static_cast<int>(width) - 1) - 1 : std::ldexp(1.0, static_cast<int>(width)) - 1;
    const double lo = is_signed ? -std::ldexp(1.0, static_cast<int>(width) - 1) +
                                      (static_cast<Overflow>(overflow) == Overflow::SAT_SYM ? 1 : 0)
                                : 0.0;
    torch::Tensor q = round_mode(x * scale, static_cast<Rounding>(rounding));
    q = static_cast<Overflow>(overflow) == Overflow::WRAP
            ? torch::remainder(q - lo, std::ldexp(1.0, static_cast<int>(width))) + lo
            : q.clamp(lo, hi);
    if (x.requires_grad())
      ctx->save_for_backward({torch::logical_and(x >= lo / scale, x <= hi / scale).to(x.scalar_type())});
    return q.div_(scale);
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad) {
    const torch::Tensor inside = ctx->get_saved_variables()[0];
    return {grad[0] * inside, torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace


FixedPointQuantizerImpl::FixedPointQuantizerImpl(QuantizerOptions options, std::vector<int64_t> shape,
                                                 bool is_activation)
    : options_(std::move(options)), is_activation_(is_activation) {
  options_.type().validate();
  const auto g = group_shape(shape, options_.granularity(), is_activation);
  // Learnable: within the limits (outside them a bit gets no gradient).
  const double f0 = options_.learnable() ? std::min<double>(std::max(options_.type().fractional(), options_.min_fractional()),
                                                            options_.max_fractional())
                                         : options_.type().fractional();
  const auto f = torch::full(g, f0);
  if (options_.learnable()) {
    fractional_ = register_parameter("fractional_bits", f);
    range_ = register_buffer("range", torch::zeros(g));
  } else {
    fractional_ = register_buffer("fractional_bits", f);
  }
}

void FixedPointQuantizerImpl::set_fractional_bits(const torch::Tensor& fractional, bool freeze_range) {
  if (!options_.learnable()) throw Error("quantizer: fractional bits are set only in learnable mode");
  torch::NoGradGuard no_grad;
  fractional_.copy_(fractional.to(fractional_.device(), fractional_.scalar_type()).expand_as(fractional_));
  range_frozen_ = freeze_range;
}

void FixedPointQuantizerImpl::clamp_to_limits() {
  if (!options_.learnable()) return;
  torch::NoGradGuard no_grad;
  fractional_.clamp_(options_.min_fractional(), options_.max_fractional());
}

void FixedPointQuantizerImpl::observe(const torch::Tensor& x) {
  if (!options_.learnable() || range_frozen_) return;
  torch::NoGradGuard no_grad;
  torch::Tensor m = x.detach().abs().to(torch::kFloat);
  // Reduce every dimension where the group shape is 1.
  for (int64_t d = 0; d < m.dim(); ++d)
    if (range_.size(d) == 1 && m.size(d) != 1) m = std::get<0>(m.max(d, true));
  if (is_activation_) {
    // First values seen by a group: its fractional bits start where the
    // group's width equals the configured width (HGQ's data-aware start).
    // Without it a latent of values below 1 and 1 fractional bit would start
    // at width <= 0: exactly zero, with no gradient to anything before it.
    const torch::Tensor first = (range_ == 0) & (m > 0);
    range_.copy_(torch::max(range_, m));  // largest seen
    if (first.any().item<bool>()) {
      // Within the limits: a start outside them would get no gradient.
      const torch::Tensor start = (static_cast<double>(options_.type().width) - integer_bits())
                                      .clamp(options_.min_fractional(), options_.max_fractional());
      fractional_.copy_(torch::where(first, start.to(fractional_.scalar_type()), fractional_));
    }
  } else {
    range_.copy_(m);  // weights: their current values
  }
}

torch::Tensor FixedPointQuantizerImpl::integer_bits() const {
  const FixedPointType& t = options_.type();
  if (!options_.learnable()) return torch::full_like(fractional_, static_cast<double>(t.integer));
  // floor(log2 r) + 1 (+ sign) holds r with room: never saturates what was seen.
  const torch::Tensor i = torch::floor(torch::log2(range_.clamp_min(1e-30))) + 1 + (t.is_signed ? 1 : 0);
  const torch::Tensor own = torch::where(range_ > 0, i, -fractional_bits().detach());
  if (!options_.shared_integer_bits() || !(range_ > 0).any().item<bool>()) return own;
  return torch::full_like(own, i.masked_select(range_ > 0).max().item<double>());
}

torch::Tensor FixedPointQuantizerImpl::fractional_bits() const {
  if (!options_.learnable()) return fractional_;
  torch::Tensor f = fractional_;
  if (options_.min_fractional() != QuantizerOptions().min_fractional() ||
      options_.max_fractional() != QuantizerOptions().max_fractional())
    f = f.clamp(options_.min_fractional(), options_.max_fractional());
  return f + (torch::round(f) - f).detach();
}

torch::Tensor FixedPointQuantizerImpl::bits() const { return torch::relu(integer_bits().detach() + fractional_bits()); }

torch::Tensor FixedPointQuantizerImpl::forward(const torch::Tensor& x) {
  const FixedPointType& t = options_.type();
  if (!enabled_) {
    if (options_.learnable() && (!is_activation_ || is_training())) observe(x);
    return x;
  }
  // Fixed type: one autograd node with scalar constants (training steps of
  // small models are bound by the number of ops).
  if (!options_.learnable()) return FixedFakeQuant::apply(x, t);
  if (options_.learnable() && (!is_activation_ || is_training())) observe(x);
  const torch::Tensor f = fractional_bits();
  const auto dtype = x.scalar_type();
  const torch::Tensor fd = f.detach().to(dtype);
  const torch::Tensor wd = (integer_bits().detach() + f.detach()).to(dtype);
  const torch::Tensor scale = torch::exp2(fd);
  torch::Tensor lo, hi;
  if (t.is_signed) {
    hi = torch::exp2(wd - 1) - 1;
    lo = -torch::exp2(wd - 1) + (t.overflow == Overflow::SAT_SYM ? 1 : 0);
  } else {
    hi = torch::exp2(wd) - 1;
    lo = torch::zeros_like(hi);
  }
  const torch::Tensor alive = wd > 0;
  torch::Tensor xq;
  {
    torch::NoGradGuard no_grad;
    torch::Tensor q = round_mode(x.detach() * scale, t.rounding);
    if (t.overflow == Overflow::WRAP)
      q = torch::remainder(q - lo, torch::exp2(wd)) + lo;
    else
      q = torch::max(torch::min(q, hi), lo);
    xq = torch::where(alive, q / scale, torch::zeros_like(q));
  }
  const torch::Tensor inside = ((x >= lo / scale) & (x <= hi / scale) & alive).to(dtype).detach();
  torch::Tensor y = x * inside + (xq - x * inside).detach();
  if (options_.learnable())  // value 0; gradient -ln2 (xq - x) towards the fractional bits
    y = y + (-kLn2) * (xq - x.detach()) * (f - f.detach()).to(dtype);
  return y;
}

FixedPointType FixedPointQuantizerImpl::export_type() const {
  const FixedPointType& t = options_.type();
  if (!options_.learnable()) return t;
  const torch::Tensor f_round = fractional_bits().detach();
  const torch::Tensor w = integer_bits().detach() + f_round;
  const torch::Tensor alive = w > 0;
  if (!alive.any().item<bool>())
    return FixedPointType(1, 1 - static_cast<int>(f_round.max().item<double>()), t.is_signed, t.rounding, Overflow::SAT);
  const int i = static_cast<int>(integer_bits().detach().masked_select(alive).max().item<double>());
  const int f = static_cast<int>(f_round.masked_select(alive).max().item<double>());
  return FixedPointType(std::max(1, i + f), i, t.is_signed, t.rounding, Overflow::SAT);
}

torch::Tensor FixedPointQuantizerImpl::learned_fractional_bits() const {
  return fractional_.detach().clamp(options_.min_fractional(), options_.max_fractional());
}

std::vector<int> FixedPointQuantizerImpl::group_fractional_bits() const {
  const torch::Tensor f = fractional_bits().detach().to(torch::kCPU, torch::kDouble).flatten().contiguous();
  std::vector<int> out(static_cast<size_t>(f.numel()));
  for (int64_t k = 0; k < f.numel(); ++k) out[static_cast<size_t>(k)] = static_cast<int>(f.data_ptr<double>()[k]);
  return out;
}

}  // namespace ddaq
