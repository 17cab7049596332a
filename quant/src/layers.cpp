// Quantization-aware layers: the one <torch/torch.h> translation unit of quant/.
#include <torch/torch.h>

#include <unistd.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <sstream>

#include "ddaq/error.h"
#include "ddaq/files.h"
#include "ddaq/quant/bounds.h"
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

// Kaiming-uniform initialization as torch::nn::Linear / Conv2d do.
torch::Tensor init_weight(std::vector<int64_t> shape, int64_t fan_in) {
  const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
  return torch::empty(shape).uniform_(-bound, bound);
}

// Integer bits able to hold |values| <= bound, for exact accumulators.

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

// ---------------------------------------------------------------- layers

torch::Tensor QLayerImpl::group_lasso() const { return torch::zeros({}); }
torch::Tensor QLayerImpl::gate_penalty() const { return torch::zeros({}); }
QLayerImpl::ResourceShape QLayerImpl::resource_shape(const torch::Tensor&, const torch::Tensor& kept_share) const {
  ResourceShape r;
  r.kept_share = kept_share;
  return r;
}

namespace {

torch::Tensor index_tensor(const std::vector<int64_t>& v) { return torch::tensor(v, torch::kLong); }

std::vector<int64_t> raw_values(const torch::Tensor& values, const FixedPointType& type) {
  const torch::Tensor v = values.detach().to(torch::kDouble).contiguous();
  std::vector<int64_t> raw(static_cast<size_t>(v.numel()));
  const double* p = v.data_ptr<double>();
  for (int64_t k = 0; k < v.numel(); ++k) {
    raw[k] = type.to_raw(p[k]);
    if (type.from_raw(raw[k]) != p[k])
      throw Error("export: value " + std::to_string(p[k]) + " is not representable in " + type.hls_type());
  }
  return raw;
}

// Common state of layers with weights: quantizers, masks, gates.
struct Weighted {
  torch::Tensor weight, bias, mask, gate_logits;
  FixedPointQuantizer wq{nullptr}, bq{nullptr}, outq{nullptr};
  int64_t units = 0;  // output units (rows for dense, channels for conv)
  int64_t min_kept = 1;  // hard gates keep at least this many (set_min_kept_units)
  int unit_dim = 0;   // weight dimension of the units (1 for transposed convs)
  bool gates = false, straight_through = false;

  torch::Tensor unit_view(const torch::Tensor& per_unit, int64_t dims) const {
    std::vector<int64_t> shape(static_cast<size_t>(dims), 1);
    shape[unit_dim] = units;
    return per_unit.view(shape);
  }
  torch::Tensor effective_mask(bool training) const {
    if (!gates) return mask;
    if (training && !straight_through) return mask * torch::sigmoid(gate_logits);
    // Hard gates; a layer keeps at least its `min_kept` strongest units (at
    // least one: a layer with none could not be described, exported or
    // evaluated).
    torch::Tensor hard = (gate_logits > 0).to(mask.dtype());
    const int64_t need = std::min<int64_t>(min_kept, static_cast<int64_t>(mask.sum().item<double>()));
    if ((mask * hard).sum().item<double>() < static_cast<double>(need)) {
      const torch::Tensor strongest = std::get<1>((gate_logits.detach() - 1e30 * (1 - mask)).topk(need));
      hard = hard.index_fill(0, strongest, 1.0);
    }
    if (!training) return mask * hard;
    const torch::Tensor soft = torch::sigmoid(gate_logits);
    return mask * (hard + soft - soft.detach());  // straight through
  }
  torch::Tensor unit_norms() const {
    std::vector<int64_t> dims;
    for (int64_t d = 0; d < weight.dim(); ++d)
      if (d != unit_dim) dims.push_back(d);
    return weight.pow(2).sum(dims).sqrt();
  }
  void prune_to(double sparsity) {
    if (!(sparsity >= 0 && sparsity < 1)) throw Error("pruning: sparsity must be in [0, 1)");
    torch::NoGradGuard no_grad;
    const int64_t drop = static_cast<int64_t>(std::floor(sparsity * static_cast<double>(units)));
    mask.fill_(1.0);
    if (drop == 0) return;
    const auto order = std::get<1>(unit_norms().sort());
    mask.index_fill_(0, order.narrow(0, 0, drop), 0.0);
  }
  // ResourceShape for `inputs_per_unit` full inputs.
  QLayerImpl::ResourceShape resource_shape(double inputs_per_unit, const torch::Tensor& input_bits,
                                           const torch::Tensor& kept_share, bool training) const {
    QLayerImpl::ResourceShape r;
    r.in = kept_share * inputs_per_unit;
    r.out = effective_mask(training).sum();
    r.weight_bits = wq->bits().max();
    r.act_bits = input_bits.max();
    r.kept_share = r.out / static_cast<double>(units);
    return r;
  }
  void harden_gates() {
    if (!gates) return;
    torch::NoGradGuard no_grad;
    // As in effective_mask: a layer keeps at least its strongest unit.
    mask.copy_(effective_mask(false));
    gate_logits.fill_(30.0);  // sigmoid(30) is 1 in float32: the kept units pass unscaled
  }
  void keep_strongest_units(int64_t k) {
    torch::NoGradGuard no_grad;
    const torch::Tensor score = (gates ? gate_logits : unit_norms()).detach() - 1e30 * (1 - mask);
    const int64_t available = static_cast<int64_t>(mask.sum().item<double>());
    const int64_t keep = std::max<int64_t>(1, std::min(k, available));
    const torch::Tensor order = std::get<1>(score.sort(0, /*descending=*/true));
    mask.fill_(0.0);
    mask.index_fill_(0, order.narrow(0, 0, keep), 1.0);
    if (gates) gate_logits.fill_(30.0);
  }
  bool drop_weakest_unit() {
    const std::vector<int64_t> kept = kept_units();
    if (kept.size() <= 1) return false;
    torch::NoGradGuard no_grad;
    const torch::Tensor score = gates && (gate_logits < 30.0).any().item<bool>() ? gate_logits : unit_norms();
    int64_t weakest = kept.front();
    for (int64_t u : kept)
      if (score[u].item<double>() < score[weakest].item<double>()) weakest = u;
    mask[weakest] = 0.0;
    return true;
  }
  std::vector<int64_t> kept_units() const {
    const torch::Tensor m = effective_mask(false);
    std::vector<int64_t> kept;
    for (int64_t u = 0; u < units; ++u)
      if (m[u].item<double>() > 0) kept.push_back(u);
    return kept;
  }
  // The end of describe() shared by dense and conv layers: bias (kept units
  // only), an accumulator exactly wide enough (bounds.h), the output type.
  void describe_tail(LayerDescription& d, const torch::Tensor& float_bias, const std::vector<int64_t>& kept) {
    if (float_bias.defined()) {
      d.bias_type = bq->export_type();
      const torch::Tensor b = bq->forward(float_bias * effective_mask(false)).index_select(0, index_tensor(kept));
      d.bias_raw = raw_values(b, d.bias_type);
    } else {
      d.bias_type = FixedPointType(1, 1);
    }
    d.accumulator_type = exact_accumulator_type(d);
    d.output_type = outq->export_type();
  }
  // For describe(): the kept units; a layer with none left cannot be exported.
  std::vector<int64_t> kept_units_for_export(const std::string& name) const {
    auto kept = kept_units();
    if (kept.empty()) throw Error("layer '" + name + "': every unit is pruned");
    return kept;
  }
};

std::vector<int64_t> all_indices(int64_t n) {
  std::vector<int64_t> v(static_cast<size_t>(n));
  for (int64_t k = 0; k < n; ++k) v[k] = k;
  return v;
}



// Learnable activation bits export per tensor, or per element of a 1-D
// unsigned TRN tensor with shared integer bits (one type, then a truncation
// per element: LayerDescription::channel_fractional).
bool exports_per_channel(const FixedPointQuantizer& q, const std::vector<int64_t>& shape, const std::string& name) {
  const QuantizerOptions& o = q->options();
  if (!o.learnable() || o.granularity() == Granularity::PerTensor) return false;
  if (o.granularity() == Granularity::PerChannel && o.shared_integer_bits() && shape.size() == 1 &&
      !o.type().is_signed && o.type().rounding == Rounding::TRN)
    return true;
  throw Error("layer '" + name +
              "': learnable activation bits export per tensor, or per channel of a 1-D unsigned TRN tensor with "
              "shared integer bits (other per-channel ones are for cost estimates)");
}
// Weighted layers' outputs: per tensor only.
void check_activation_export(const FixedPointQuantizer& q, const std::string& name) {
  if (exports_per_channel(q, {}, name))
    throw Error("layer '" + name + "': per-channel output bits of a weighted layer do not export");
}

// Input bits as a per-channel vector [C] (per-tensor bits broadcast).
torch::Tensor channel_bits(const torch::Tensor& input_bits, const std::vector<int64_t>& input_shape) {
  std::vector<int64_t> full{1};
  full.insert(full.end(), input_shape.begin(), input_shape.end());
  torch::Tensor b = input_bits.expand(full).reshape({input_shape[0], -1});
  return b.mean(1);
}

// Element-wise layers: the input quantizer (identity, then the output type)
// and ReLU (then the output type). Shapes pass through; pruned channels too.
class ActivationImpl : public QLayerImpl {
 public:
  ActivationImpl(LayerKind kind, QuantizerOptions o, std::vector<int64_t> shape, std::string name)
      : kind_(kind), shape_(shape), name_(std::move(name)) {
    outq_ = register_module("output", FixedPointQuantizer(o, shape, true));
  }
  torch::Tensor forward(const torch::Tensor& x) override {
    return outq_->forward(kind_ == LayerKind::Relu ? torch::relu(x) : x);
  }
  std::vector<int64_t> output_shape() const override { return shape_; }
  FixedPointQuantizer output_quantizer() const override { return outq_; }
  LayerDescription describe(const FixedPointType& input_type, const std::vector<int64_t>& input_shape,
                            const std::vector<int64_t>& kept_inputs, std::vector<int64_t>& kept_outputs) override {
    const bool per_channel = exports_per_channel(outq_, shape_, name_);
    LayerDescription d;
    d.kind = kind_;
    d.name = name_;
    d.input_shape = input_shape;
    d.output_shape = input_shape;
    d.input_type = input_type;
    d.output_type = outq_->export_type();
    kept_outputs = kept_inputs;
    if (per_channel) {
      // The kept elements' fractional bits; none when all equal the type's.
      const std::vector<int> f = outq_->group_fractional_bits();
      const std::vector<int64_t> kept = kept_inputs.empty() ? all_indices(shape_[0]) : kept_inputs;
      bool uniform = true;
      for (int64_t k : kept) {
        d.channel_fractional.push_back(f.at(static_cast<size_t>(k)));
        uniform = uniform && d.channel_fractional.back() == d.output_type.fractional();
      }
      if (uniform) d.channel_fractional.clear();
    }
    return d;
  }
  torch::Tensor ebops(const torch::Tensor&) const override { return torch::zeros({}); }
  bool rectifies() const override { return kind_ == LayerKind::Relu; }
  LayerKind kind() const { return kind_; }

 private:
  LayerKind kind_;
  std::vector<int64_t> shape_;
  std::string name_;
  FixedPointQuantizer outq_{nullptr};
};

// Dense and conv layers: the unit-level hooks (masks, gates, pruning) of
// their Weighted part, written once.
class WeightedLayerImpl : public QLayerImpl {
 public:
  void harden_gates() override { w_.harden_gates(); }
  bool drop_weakest_unit() override { return w_.drop_weakest_unit(); }
  int64_t kept_units() const override { return static_cast<int64_t>(w_.kept_units().size()); }
  torch::Tensor unit_mask() const override { return w_.effective_mask(is_training()); }
  std::vector<int64_t> kept_unit_indices() const override { return w_.kept_units(); }
  void keep_strongest_units(int64_t k) override { w_.keep_strongest_units(k); }
  void set_min_kept_units(int64_t k) override {
    w_.min_kept = std::max<int64_t>(1, k);
    if (!w_.gates || k <= 1) return;
    // The units the floor keeps get logits >= 0 (open as they are), so the
    // kept set stays the same from step to step: pushed alike, the logits
    // would tie, and a set that changed every step trained no latent.
    torch::NoGradGuard no_grad;
    const int64_t need = std::min<int64_t>(k, static_cast<int64_t>(w_.mask.sum().item<double>()));
    const torch::Tensor top = std::get<1>((w_.gate_logits - 1e30 * (1 - w_.mask)).topk(need));
    w_.gate_logits.index_copy_(0, top, w_.gate_logits.index_select(0, top).clamp_min(0.0));
  }
  FixedPointQuantizer weight_quantizer() const override { return w_.wq; }
  void prune_to(double s) override { w_.prune_to(s); }
  torch::Tensor group_lasso() const override { return (w_.unit_norms() * w_.mask).sum(); }
  torch::Tensor gate_penalty() const override {
    return w_.gates ? torch::sigmoid(w_.gate_logits).sum() : torch::zeros({});
  }
  double sparsity() const override { return 1.0 - static_cast<double>(w_.kept_units().size()) / w_.units; }
  bool add_to_bias(const torch::Tensor& delta) override {
    if (!w_.bias.defined()) return false;  // built without a bias
    torch::NoGradGuard no_grad;
    w_.bias.add_(delta.to(w_.bias.device(), w_.bias.scalar_type()));
    return true;
  }

 protected:
  Weighted w_;
};

class DenseImpl : public WeightedLayerImpl {
 public:
  DenseImpl(const QLinearOptions& o, std::string name) : o_(o), name_(std::move(name)) {
    w_.units = o.out();
    w_.unit_dim = 0;
    w_.weight = register_parameter("weight", init_weight({o.out(), o.in()}, o.in()));
    if (o.bias()) w_.bias = register_parameter("bias", init_weight({o.out()}, o.in()));
    w_.mask = register_buffer("unit_mask", torch::ones({o.out()}));
    w_.gates = o.pruning().gates();
    w_.straight_through = o.pruning().straight_through();
    if (w_.gates) w_.gate_logits = register_parameter("gate_logits", torch::full({o.out()}, 3.0));
    w_.wq = register_module("weight_quant", FixedPointQuantizer(o.weight(), std::vector<int64_t>{o.out(), o.in()}, false));
    if (o.bias()) w_.bq = register_module("bias_quant", FixedPointQuantizer(o.bias_quant(), std::vector<int64_t>{o.out()}, false));
    w_.outq = register_module("output", FixedPointQuantizer(o.output(), std::vector<int64_t>{o.out()}, true));
  }
  torch::Tensor forward(const torch::Tensor& x) override {
    const torch::Tensor flat = x.reshape({x.size(0), -1});
    const torch::Tensor m = w_.effective_mask(is_training());
    const torch::Tensor w = w_.wq->forward(w_.weight * m.unsqueeze(1)).to(flat.scalar_type());
    torch::Tensor y = torch::matmul(flat, w.t());
    if (o_.bias()) y = y + w_.bq->forward(w_.bias * m).to(flat.scalar_type());
    return w_.outq->forward(y);
  }
  std::vector<int64_t> output_shape() const override { return {o_.out()}; }
  FixedPointQuantizer output_quantizer() const override { return w_.outq; }
  LayerDescription describe(const FixedPointType& input_type, const std::vector<int64_t>& input_shape,
                            const std::vector<int64_t>& kept_inputs, std::vector<int64_t>& kept_outputs) override {
    check_activation_export(w_.outq, name_);
    torch::NoGradGuard no_grad;
    const bool was = is_training();
    eval();
    kept_outputs = w_.kept_units_for_export(name_);
    std::vector<int64_t> columns = columns_for(input_shape, kept_inputs);
    const torch::Tensor wfull = w_.wq->forward(w_.weight * w_.effective_mask(false).unsqueeze(1));
    const torch::Tensor wk = wfull.index_select(0, index_tensor(kept_outputs)).index_select(1, index_tensor(columns));
    LayerDescription d;
    d.kind = LayerKind::Dense;
    d.name = name_;
    d.input_shape = {static_cast<int64_t>(columns.size())};
    d.output_shape = {static_cast<int64_t>(kept_outputs.size())};
    d.input_type = input_type;
    d.weight_type = w_.wq->export_type();
    d.weight_shape = {d.output_shape[0], d.input_shape[0]};
    d.weight_raw = raw_values(wk, d.weight_type);
    w_.describe_tail(d, o_.bias() ? w_.bias : torch::Tensor(), kept_outputs);
    d.multiplies = 0;
    for (int64_t v : d.weight_raw) d.multiplies += v != 0;
    const torch::Tensor wb = w_.wq->bits().expand({o_.out(), o_.in()}).index_select(0, index_tensor(kept_outputs))
                                 .index_select(1, index_tensor(columns));
    d.ebops = (wb * (wk != 0).to(wb.dtype())).sum().item<double>() * input_type.width;
    train(was);
    return d;
  }
  torch::Tensor ebops(const torch::Tensor& input_bits) const override {
    std::vector<int64_t> full{1};
    full.insert(full.end(), upstream_shape_.begin(), upstream_shape_.end());
    const torch::Tensor bx = input_bits.expand(full).reshape({-1});
    const torch::Tensor wb = w_.wq->bits().expand({o_.out(), o_.in()}) * w_.effective_mask(is_training()).unsqueeze(1);
    return (wb * bx.unsqueeze(0)).sum();
  }
  ResourceShape resource_shape(const torch::Tensor& input_bits, const torch::Tensor& kept_share) const override {
    return w_.resource_shape(static_cast<double>(o_.in()), input_bits, kept_share, is_training());
  }

 private:
  // Flattened input columns kept, given the kept upstream channels.
  std::vector<int64_t> columns_for(const std::vector<int64_t>& pruned_shape, const std::vector<int64_t>& kept) const {
    if (kept.empty()) return all_indices(o_.in());
    const int64_t per = o_.in() / upstream_shape_[0];
    std::vector<int64_t> cols;
    for (int64_t c : kept)
      for (int64_t p = 0; p < per; ++p) cols.push_back(c * per + p);
    (void)pruned_shape;
    return cols;
  }

 public:
  std::vector<int64_t> upstream_shape_;  // the unpruned input shape (set by the stack)

 private:
  QLinearOptions o_;
  std::string name_;
};

class ConvImpl : public WeightedLayerImpl {
 public:
  ConvImpl(const QConvOptions& o, std::vector<int64_t> input_shape, std::string name)
      : o_(o), in_shape_(input_shape), name_(std::move(name)) {
    if (input_shape.size() != 3 || input_shape[0] != o.in())
      throw Error("layer '" + name_ + "': expected an input [" + std::to_string(o.in()) + ", H, W]");
    const int64_t k = o.kernel(), s = o.stride(), p = o.padding();
    int64_t h, w;
    if (o.transposed()) {
      h = (input_shape[1] - 1) * s - 2 * p + k + o.output_padding();
      w = (input_shape[2] - 1) * s - 2 * p + k + o.output_padding();
    } else {
      h = (input_shape[1] + 2 * p - k) / s + 1;
      w = (input_shape[2] + 2 * p - k) / s + 1;
    }
    if (h < 1 || w < 1) throw Error("layer '" + name_ + "': output would be empty");
    out_shape_ = {o.out(), h, w};
    w_.units = o.out();
    w_.unit_dim = o.transposed() ? 1 : 0;
    const std::vector<int64_t> wshape =
        o.transposed() ? std::vector<int64_t>{o.in(), o.out(), k, k} : std::vector<int64_t>{o.out(), o.in(), k, k};
    w_.weight = register_parameter("weight", init_weight(wshape, o.in() * k * k));
    if (o.bias() || o.batchnorm()) w_.bias = register_parameter("bias", torch::zeros({o.out()}));
    w_.mask = register_buffer("unit_mask", torch::ones({o.out()}));
    w_.gates = o.pruning().gates();
    w_.straight_through = o.pruning().straight_through();
    if (w_.gates) w_.gate_logits = register_parameter("gate_logits", torch::full({o.out()}, 3.0));
    if (o.batchnorm()) {
      gamma_ = register_parameter("bn_gamma", torch::ones({o.out()}));
      beta_ = register_parameter("bn_beta", torch::zeros({o.out()}));
      running_mean_ = register_buffer("bn_running_mean", torch::zeros({o.out()}));
      running_var_ = register_buffer("bn_running_var", torch::ones({o.out()}));
    }
    // Per-channel weight quantization means per output channel.
    w_.wq = register_module("weight_quant", FixedPointQuantizer(o.weight(), weight_quant_shape(wshape), false));
    if (o.bias() || o.batchnorm())
      w_.bq = register_module("bias_quant", FixedPointQuantizer(o.bias_quant(), std::vector<int64_t>{o.out()}, false));
    w_.outq = register_module("output", FixedPointQuantizer(o.output(), out_shape_, true));
  }

  torch::Tensor conv(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b) const {
    if (o_.transposed())
      return torch::conv_transpose2d(x, w, b, o_.stride(), o_.padding(), o_.output_padding());
    return torch::conv2d(x, w, b, o_.stride(), o_.padding());
  }

  // Folded (BatchNorm) float weights and bias, before quantization.
  std::pair<torch::Tensor, torch::Tensor> folded(const torch::Tensor& x) {
    if (!o_.batchnorm()) return {w_.weight, w_.bias};
    torch::Tensor mean = running_mean_, var = running_var_;
    if (is_training()) {
      const torch::Tensor y = conv(x.to(torch::kFloat), w_.weight, w_.bias);
      mean = y.mean({0, 2, 3});
      var = y.var({0, 2, 3}, false);
      torch::NoGradGuard no_grad;
      running_mean_.mul_(0.9).add_(mean.detach() * 0.1);
      running_var_.mul_(0.9).add_(var.detach() * 0.1);
    }
    const torch::Tensor inv = gamma_ / torch::sqrt(var + 1e-3);
    const torch::Tensor w = w_.weight * w_.unit_view(inv, 4);
    const torch::Tensor b = beta_ + (w_.bias - mean) * inv;
    return {w, b};
  }

  torch::Tensor forward(const torch::Tensor& x) override {
    const torch::Tensor m = w_.effective_mask(is_training());
    const auto wb = folded(x);
    const torch::Tensor w = w_.wq->forward(wb.first * w_.unit_view(m, 4)).to(x.scalar_type());
    torch::Tensor b;
    if (wb.second.defined()) b = w_.bq->forward(wb.second * m).to(x.scalar_type());
    return w_.outq->forward(conv(x, w, b));
  }
  std::vector<int64_t> output_shape() const override { return out_shape_; }
  // With batch norm the shift after the convolution sets the offset, not the bias.
  bool add_to_bias(const torch::Tensor& delta) override {
    return !o_.batchnorm() && WeightedLayerImpl::add_to_bias(delta);
  }
  FixedPointQuantizer output_quantizer() const override { return w_.outq; }

  LayerDescription describe(const FixedPointType& input_type, const std::vector<int64_t>& input_shape,
                            const std::vector<int64_t>& kept_inputs, std::vector<int64_t>& kept_outputs) override {
    check_activation_export(w_.outq, name_);
    torch::NoGradGuard no_grad;
    const bool was = is_training();
    eval();
    kept_outputs = w_.kept_units_for_export(name_);
    const std::vector<int64_t> ins = kept_inputs.empty() ? all_indices(o_.in()) : kept_inputs;
    const auto wb = folded(torch::Tensor());
    const torch::Tensor wq = w_.wq->forward(wb.first * w_.unit_view(w_.effective_mask(false), 4));
    const int in_dim = o_.transposed() ? 0 : 1, out_dim = o_.transposed() ? 1 : 0;
    const torch::Tensor wk = wq.index_select(out_dim, index_tensor(kept_outputs)).index_select(in_dim, index_tensor(ins));
    LayerDescription d;
    d.kind = o_.transposed() ? LayerKind::ConvTranspose2d : LayerKind::Conv2d;
    d.name = name_;
    d.input_shape = {static_cast<int64_t>(ins.size()), input_shape[1], input_shape[2]};
    d.output_shape = {static_cast<int64_t>(kept_outputs.size()), out_shape_[1], out_shape_[2]};
    d.input_type = input_type;
    d.weight_type = w_.wq->export_type();
    d.weight_shape = wk.sizes().vec();
    d.weight_raw = raw_values(wk, d.weight_type);
    d.stride = o_.stride();
    d.padding = o_.padding();
    d.output_padding = o_.output_padding();
    w_.describe_tail(d, wb.second, kept_outputs);
    const int64_t positions = o_.transposed() ? input_shape[1] * input_shape[2] : out_shape_[1] * out_shape_[2];
    int64_t nonzero = 0;
    for (int64_t v : d.weight_raw) nonzero += v != 0;
    d.multiplies = nonzero * positions;
    const torch::Tensor bits = w_.wq->bits().expand(w_.weight.sizes()).index_select(out_dim, index_tensor(kept_outputs))
                                   .index_select(in_dim, index_tensor(ins));
    d.ebops = (bits * (wk != 0).to(bits.dtype())).sum().item<double>() * positions * input_type.width;
    train(was);
    return d;
  }

  torch::Tensor ebops(const torch::Tensor& input_bits) const override {
    const torch::Tensor bx = channel_bits(input_bits, in_shape_);  // [C_in]
    const int in_dim = o_.transposed() ? 0 : 1;
    torch::Tensor wb = w_.wq->bits().expand(w_.weight.sizes()) * w_.unit_view(w_.effective_mask(is_training()), 4);
    wb = wb.sum({2, 3});  // [out, in] or [in, out]
    std::vector<int64_t> shape{1, 1};
    shape[in_dim] = o_.in();
    const int64_t positions = o_.transposed() ? in_shape_[1] * in_shape_[2] : out_shape_[1] * out_shape_[2];
    return (wb * bx.view(shape)).sum() * static_cast<double>(positions);
  }
  ResourceShape resource_shape(const torch::Tensor& input_bits, const torch::Tensor& kept_share) const override {
    return w_.resource_shape(static_cast<double>(o_.in() * o_.kernel() * o_.kernel()), input_bits, kept_share,
                             is_training());
  }

 private:
  // Per-channel weight groups are along dim 0 of the LibTorch weight: output
  // channels for Conv2d, input channels for ConvTranspose2d.
  static std::vector<int64_t> weight_quant_shape(const std::vector<int64_t>& wshape) { return wshape; }
  QConvOptions o_;
  std::vector<int64_t> in_shape_, out_shape_;
  std::string name_;
  torch::Tensor gamma_, beta_, running_mean_, running_var_;
};

}  // namespace

// ---------------------------------------------------------------- stack

QuantizedStackImpl::QuantizedStackImpl(std::vector<int64_t> input_shape) : input_shape_(std::move(input_shape)) {}

std::vector<int64_t> QuantizedStackImpl::output_shape() const {
  return layers_.empty() ? input_shape_ : layers_.back()->output_shape();
}

namespace {

using nlohmann::json;

json to_json(const FixedPointType& t) {
  return {{"width", t.width}, {"integer", t.integer}, {"signed", t.is_signed}, {"rounding", to_string(t.rounding)},
          {"overflow", to_string(t.overflow)}};
}
FixedPointType type_from(const json& j) {
  return FixedPointType(j.at("width").get<int>(), j.at("integer").get<int>(), j.at("signed").get<bool>(),
                        rounding_from_string(j.at("rounding").get<std::string>()),
                        overflow_from_string(j.at("overflow").get<std::string>()));
}
const char* granularity_name(Granularity g) {
  return g == Granularity::PerTensor ? "tensor" : (g == Granularity::PerChannel ? "channel" : "element");
}
json to_json(const QuantizerOptions& q) {
  json j{{"type", to_json(q.type())}, {"granularity", granularity_name(q.granularity())}, {"learnable", q.learnable()}};
  // Written only when set, so the specs (and run ids) of earlier stacks stay.
  const QuantizerOptions d;
  if (q.shared_integer_bits()) j["shared_integer_bits"] = true;
  if (q.min_fractional() != d.min_fractional()) j["min_fractional"] = q.min_fractional();
  if (q.max_fractional() != d.max_fractional()) j["max_fractional"] = q.max_fractional();
  return j;
}
QuantizerOptions quantizer_from(const json& j) {
  const std::string g = j.at("granularity").get<std::string>();
  if (g != "tensor" && g != "channel" && g != "element") throw Error("quantized stack spec: granularity '" + g + "'");
  return QuantizerOptions(type_from(j.at("type")))
      .granularity(g == "tensor" ? Granularity::PerTensor : (g == "channel" ? Granularity::PerChannel : Granularity::PerElement))
      .learnable(j.at("learnable").get<bool>())
      .shared_integer_bits(j.value("shared_integer_bits", false))
      .min_fractional(j.value("min_fractional", QuantizerOptions().min_fractional()))
      .max_fractional(j.value("max_fractional", QuantizerOptions().max_fractional()));
}

}  // namespace

QuantizedStackImpl& QuantizedStackImpl::input(QuantizerOptions output) {
  if (!layers_.empty()) throw Error("quantized stack: input() must come first");
  layer_specs_.push_back(json({{"kind", "input"}, {"output", to_json(output)}}).dump());
  layers_.push_back(
      register_module("input", std::make_shared<ActivationImpl>(LayerKind::InputQuant, output, input_shape_, "input")));
  return *this;
}

QuantizedStackImpl& QuantizedStackImpl::dense(QLinearOptions options) {
  const auto shape = output_shape();
  if (elements(shape) != options.in())
    throw Error("quantized stack: dense layer expects " + std::to_string(options.in()) + " inputs, the stack gives " +
                std::to_string(elements(shape)));
  const std::string name = "dense" + std::to_string(layers_.size());
  auto layer = std::make_shared<DenseImpl>(options, name);
  json spec({{"kind", "dense"},
                               {"in", options.in()},
                               {"out", options.out()},
                               {"bias", options.bias()},
                               {"weight", to_json(options.weight())},
                               {"bias_quant", to_json(options.bias_quant())},
                               {"output", to_json(options.output())},
                               {"gates", options.pruning().gates()}});
  // Only when on: specs (and run ids) of stacks saved before it stay the same.
  if (options.pruning().straight_through()) spec["straight_through"] = true;
  layer_specs_.push_back(spec.dump());
  layer->upstream_shape_ = shape;
  layers_.push_back(register_module(name, layer));
  return *this;
}

QuantizedStackImpl& QuantizedStackImpl::conv(QConvOptions options) {
  const std::string name = (options.transposed() ? "convtranspose" : "conv") + std::to_string(layers_.size());
  auto layer = std::make_shared<ConvImpl>(options, output_shape(), name);
  layer_specs_.push_back(json({{"kind", "conv"},
                               {"in", options.in()},
                               {"out", options.out()},
                               {"kernel", options.kernel()},
                               {"stride", options.stride()},
                               {"padding", options.padding()},
                               {"output_padding", options.output_padding()},
                               {"bias", options.bias()},
                               {"transposed", options.transposed()},
                               {"batchnorm", options.batchnorm()},
                               {"weight", to_json(options.weight())},
                               {"bias_quant", to_json(options.bias_quant())},
                               {"output", to_json(options.output())},
                               {"gates", options.pruning().gates()}})
                             .dump());
  layers_.push_back(register_module(name, layer));
  return *this;
}

QuantizedStackImpl& QuantizedStackImpl::relu(QuantizerOptions output) {
  const std::string name = "relu" + std::to_string(layers_.size());
  layer_specs_.push_back(json({{"kind", "relu"}, {"output", to_json(output)}}).dump());
  layers_.push_back(register_module(name, std::make_shared<ActivationImpl>(LayerKind::Relu, output, output_shape(), name)));
  return *this;
}

torch::Tensor QuantizedStackImpl::forward(const torch::Tensor& x) {
  torch::Tensor y = x;
  for (const auto& l : layers_) y = l->forward(y);
  return y;
}

int64_t QuantizedStackImpl::raise_silent_units(const torch::Tensor& x) {
  torch::NoGradGuard no_grad;
  const bool was = is_training();
  eval();
  int64_t raised = 0;
  torch::Tensor h = x;
  for (size_t i = 0; i < layers_.size(); ++i) {
    torch::Tensor y = layers_[i]->forward(h);
    const torch::Tensor kept = layers_[i]->unit_mask();  // hard gates in evaluation mode
    if (kept.defined() && i + 1 < layers_.size() && layers_[i + 1]->rectifies()) {
      const int64_t units = y.size(1);  // dense [N, U], conv [N, C, H, W]
      // The ReLU's step as its forward uses it now: learned fractional bits
      // (clamped, rounded) where learnable, per unit where it has one per
      // unit. After a projection that narrowed a latent, the configured step
      // would be far below the one that silences it.
      const auto f = layers_[i + 1]->output_quantizer()->group_fractional_bits();
      torch::Tensor step = torch::exp2(-torch::tensor(std::vector<double>(f.begin(), f.end()), torch::kDouble));
      step = (static_cast<int64_t>(f.size()) == units ? step : step.min().expand({units})).to(y.device());
      const torch::Tensor sent = kept.to(torch::kDouble) > 0;
      torch::Tensor moved = torch::zeros_like(sent);
      // A few passes: the bias is quantized, so one raise can round to just
      // below the step.
      for (int pass = 0; pass < 4; ++pass) {
        const torch::Tensor median = std::get<0>(y.transpose(0, 1).reshape({units, -1}).median(1)).to(torch::kDouble);
        const torch::Tensor silent = sent & (median < step);
        if (!silent.any().item<bool>()) break;
        // A sixteenth of a step above the first: many wafers can share the
        // median value (e.g. the bias alone, for wafers that leave the
        // layer's inputs at zero), and on the rounding edge a change of
        // 1e-9 silenced them again. (Higher starts, half a step above or
        // where the layer's firing units typically sit, made budgeted runs
        // with learned latent widths worse on synthetic data:
        // scripts/codesign_grid.py.)
        const torch::Tensor delta = (step * (1.0 + 1.0 / 16) - median) * silent.to(torch::kDouble);
        if (!layers_[i]->add_to_bias(delta)) break;
        moved = moved | silent;
        y = layers_[i]->forward(h);
      }
      raised += moved.sum().item<int64_t>();
    }
    h = y;
  }
  train(was);
  return raised;
}

ModelDescription QuantizedStackImpl::describe(const std::vector<int64_t>& kept_inputs,
                                              std::vector<int64_t>* kept_outputs) {
  const auto first = layers_.empty() ? nullptr : std::dynamic_pointer_cast<ActivationImpl>(layers_.front());
  if (!first || first->kind() != LayerKind::InputQuant)
    throw Error("quantized stack: describe() needs an input quantizer first");
  for (int64_t c : kept_inputs)
    if (c < 0 || c >= input_shape_[0])
      throw Error("quantized stack: kept input channel " + std::to_string(c) + " outside 0.." +
                  std::to_string(input_shape_[0] - 1));
  ModelDescription model;
  FixedPointType type = layers_.front()->output_quantizer()->export_type();
  std::vector<int64_t> shape = input_shape_, kept;
  if (!kept_inputs.empty() && static_cast<int64_t>(kept_inputs.size()) != input_shape_[0]) {
    kept = kept_inputs;
    shape[0] = static_cast<int64_t>(kept.size());
  }
  std::vector<int64_t> kept_out;
  for (const auto& l : layers_) {
    kept_out.clear();
    LayerDescription d = l->describe(type, shape, kept, kept_out);
    type = d.output_type;
    shape = d.output_shape;
    // Channels (or units) of the unpruned output that survive; empty = all.
    kept = static_cast<int64_t>(kept_out.size()) == l->output_shape()[0] ? std::vector<int64_t>{} : kept_out;
    model.push_back(std::move(d));
  }
  if (kept_outputs) {
    *kept_outputs = kept;
    if (kept_outputs->empty())
      for (int64_t k = 0; k < layers_.back()->output_shape()[0]; ++k) kept_outputs->push_back(k);
  }
  // The input quantizer's own input: real numbers, described by its output type.
  model.front().input_type = model.front().output_type;
  return model;
}

torch::Tensor QuantizedStackImpl::ebops() const {
  torch::Tensor total = torch::zeros({});
  torch::Tensor bits;
  for (const auto& l : layers_) {
    if (bits.defined()) total = total + l->ebops(bits);
    bits = l->output_quantizer()->bits();
  }
  return total;
}

std::vector<QLayerImpl::ResourceShape> QuantizedStackImpl::resource_shapes() const {
  std::vector<QLayerImpl::ResourceShape> out;
  torch::Tensor bits, share = torch::ones({});
  for (const auto& l : layers_) {
    if (bits.defined()) {
      QLayerImpl::ResourceShape r = l->resource_shape(bits, share);
      share = r.kept_share;
      if (r.in.defined()) out.push_back(r);
    }
    bits = l->output_quantizer()->bits();
  }
  return out;
}

torch::Tensor QuantizedStackImpl::group_lasso() const {
  torch::Tensor total = torch::zeros({});
  for (const auto& l : layers_) total = total + l->group_lasso();
  return total;
}

torch::Tensor QuantizedStackImpl::gate_penalty() const {
  torch::Tensor total = torch::zeros({});
  for (const auto& l : layers_) total = total + l->gate_penalty();
  return total;
}

void QuantizedStackImpl::prune_to(double sparsity) {
  // The last layer with weights is left whole: its outputs are the stack's
  // interface (a transmitted latent, a classifier score).
  int64_t last = -1;
  for (size_t k = 0; k < layers_.size(); ++k)
    if (!std::dynamic_pointer_cast<ActivationImpl>(layers_[k])) last = static_cast<int64_t>(k);
  for (int64_t k = 0; k < last; ++k) layers_[k]->prune_to(sparsity);
}

void QuantizedStackImpl::set_quantization(bool on) {
  for (const auto& m : modules())
    if (auto q = std::dynamic_pointer_cast<FixedPointQuantizerImpl>(m)) q->set_enabled(on);
}

std::string QuantizedStackImpl::spec() const {
  json layers = json::array();
  for (const auto& l : layer_specs_) layers.push_back(json::parse(l));
  return json({{"format", "ddaq-quantized-stack-1"}, {"input_shape", input_shape_}, {"layers", layers}}).dump();
}

QuantizedStack quantized_stack_from_spec(const std::string& text) {
  try {
    const json j = json::parse(text);
    if (j.at("format").get<std::string>() != "ddaq-quantized-stack-1") throw Error("quantized stack spec: unknown format");
    QuantizedStack s(j.at("input_shape").get<std::vector<int64_t>>());
    for (const json& l : j.at("layers")) {
      const std::string kind = l.at("kind").get<std::string>();
      if (kind == "input") {
        s->input(quantizer_from(l.at("output")));
      } else if (kind == "relu") {
        s->relu(quantizer_from(l.at("output")));
      } else if (kind == "dense") {
        s->dense(QLinearOptions(l.at("in").get<int64_t>(), l.at("out").get<int64_t>())
                     .bias(l.at("bias").get<bool>())
                     .weight(quantizer_from(l.at("weight")))
                     .bias_quant(quantizer_from(l.at("bias_quant")))
                     .output(quantizer_from(l.at("output")))
                     .pruning(PruningOptions()
                                  .gates(l.at("gates").get<bool>())
                                  .straight_through(l.value("straight_through", false))));
      } else if (kind == "conv") {
        s->conv(QConvOptions(l.at("in").get<int64_t>(), l.at("out").get<int64_t>(), l.at("kernel").get<int64_t>())
                    .stride(l.at("stride").get<int64_t>())
                    .padding(l.at("padding").get<int64_t>())
                    .output_padding(l.at("output_padding").get<int64_t>())
                    .bias(l.at("bias").get<bool>())
                    .transposed(l.at("transposed").get<bool>())
                    .batchnorm(l.at("batchnorm").get<bool>())
                    .weight(quantizer_from(l.at("weight")))
                    .bias_quant(quantizer_from(l.at("bias_quant")))
                    .output(quantizer_from(l.at("output")))
                    .pruning(PruningOptions().gates(l.at("gates").get<bool>())));
      } else {
        throw Error("quantized stack spec: unknown layer kind '" + kind + "'");
      }
    }
    return s;
  } catch (const json::exception& e) {
    throw Error(std::string("quantized stack spec: ") + e.what());
  }
}

void save_quantized_stack(QuantizedStack& stack, const std::string& path,
                          const std::map<std::string, std::string>& labels) {
  std::ostringstream bytes;
  try {
    torch::serialize::OutputArchive archive;
    archive.write("kind", c10::IValue(std::string("ddaq-quantized-stack-1")));
    for (const auto& kv : labels) archive.write("label." + kv.first, c10::IValue(kv.second));
    archive.write("spec", c10::IValue(stack->spec()));
    for (const auto& p : stack->named_parameters()) archive.write("p." + p.key(), p.value().detach());
    for (const auto& b : stack->named_buffers()) archive.write("b." + b.key(), b.value());
    archive.save_to(bytes);
  } catch (const c10::Error& e) {
    throw Error(path + ": cannot write the quantized stack (" + e.what_without_backtrace() + ")");
  }
  write_file_atomic(path, bytes.str());
}

std::string ddaq_archive_kind(const std::string& path) {
  torch::serialize::InputArchive archive;
  try {
    archive.load_from(path);
  } catch (const std::exception&) {
    return "not a ddaq LibTorch archive";
  }
  c10::IValue v;
  for (const char* key : {"kind", "format"})
    if (archive.try_read(key, v) && v.isString()) {
      const std::string k = v.toStringRef();
      if (k.rfind("ddaq-quantized-stack", 0) == 0) return "a ddaq quantized stack";
      if (k.rfind("ddaq-decoder", 0) == 0) return "a ddaq decoder (decoder.pt of a run)";
      if (k.rfind("ddaq-emd-surrogate", 0) == 0) return "a ddaq EMD surrogate";
      if (k.rfind("ddaq-resource-net", 0) == 0) return "a ddaq learned resource model";
      return "a ddaq file of kind '" + k + "'";
    }
  if (archive.try_read("meta", v)) return "a ddaq training checkpoint";
  if (archive.try_read("spec", v)) return "a ddaq quantized stack";
  if (archive.try_read("frontend.threshold", v)) return "a ddaq decoder (decoder.pt of a run)";
  return "not a ddaq LibTorch archive";
}

std::string wrong_kind_message(const std::string& path, const std::string& wanted) {
  const std::string kind = ddaq_archive_kind(path);
  return kind.rfind("a ", 0) == 0 ? path + ": is " + kind + ", not " + wanted
                                  : path + ": not " + wanted + " (" + kind + ")";
}

QuantizedStack load_quantized_stack(const std::string& path, std::map<std::string, std::string>* labels) {
  if (::access(path.c_str(), R_OK) != 0) throw Error(path + ": cannot open (missing or unreadable)");
  torch::serialize::InputArchive archive;
  c10::IValue spec;
  try {
    archive.load_from(path);
  } catch (const std::exception&) {
    throw Error(wrong_kind_message(path, "a quantized stack"));
  }
  if (!archive.try_read("spec", spec) || !spec.isString())
    throw Error(wrong_kind_message(path, "a quantized stack"));
  if (labels) {
    labels->clear();
    for (const std::string key : {"run_id", "part"}) {
      c10::IValue v;
      if (archive.try_read("label." + key, v) && v.isString()) (*labels)[key] = v.toStringRef();
    }
  }
  QuantizedStack s = quantized_stack_from_spec(spec.toStringRef());
  torch::NoGradGuard no_grad;
  auto restore = [&](const std::string& key, torch::Tensor& target) {
    torch::Tensor v;
    try {
      archive.read(key, v);
    } catch (const c10::Error&) {
      throw Error(path + ": missing '" + key + "'");
    }
    if (v.sizes() != target.sizes()) throw Error(path + ": '" + key + "' has the wrong shape");
    target.copy_(v);
  };
  for (auto& p : s->named_parameters()) restore("p." + p.key(), p.value());
  for (auto& b : s->named_buffers()) restore("b." + b.key(), b.value());
  s->eval();
  return s;
}

double PolynomialSchedule::at(int64_t step) const {
  if (step <= begin_step) return initial;
  if (step >= end_step) return final;
  const double p = static_cast<double>(step - begin_step) / static_cast<double>(end_step - begin_step);
  return final + (initial - final) * std::pow(1.0 - p, power);
}

}  // namespace ddaq
