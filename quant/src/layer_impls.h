// The quantization-aware layer classes (private to quant/src): shared by the
// layer code and the stack (layers.cpp). Their bodies stay in the class
// definitions, as before the split; one more translation unit compiles them.
#pragma once
#include <torch/torch.h>

#include <cmath>
#include <string>
#include <vector>

#include "ddaq/error.h"
#include "ddaq/quant/bounds.h"
#include "ddaq/quant/layers.h"

namespace ddaq {
namespace detail {

// Kaiming-uniform initialization as torch::nn::Linear / Conv2d do.
inline torch::Tensor init_weight(std::vector<int64_t> shape, int64_t fan_in) {
  const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
  return torch::empty(shape).uniform_(-bound, bound);
}

inline torch::Tensor index_tensor(const std::vector<int64_t>& v) { return torch::tensor(v, torch::kLong); }

inline std::vector<int64_t> raw_values(const torch::Tensor& values, const FixedPointType& type) {
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

inline std::vector<int64_t> all_indices(int64_t n) {
  std::vector<int64_t> v(static_cast<size_t>(n));
  for (int64_t k = 0; k < n; ++k) v[k] = k;
  return v;
}



// Learnable activation bits export per tensor, or per element of a 1-D
// unsigned TRN tensor with shared integer bits (one type, then a truncation
// per element: LayerDescription::channel_fractional).
inline bool exports_per_channel(const FixedPointQuantizer& q, const std::vector<int64_t>& shape, const std::string& name) {
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
inline void check_activation_export(const FixedPointQuantizer& q, const std::string& name) {
  if (exports_per_channel(q, {}, name))
    throw Error("layer '" + name + "': per-channel output bits of a weighted layer do not export");
}

// Input bits as a per-channel vector [C] (per-tensor bits broadcast).
inline torch::Tensor channel_bits(const torch::Tensor& input_bits, const std::vector<int64_t>& input_shape) {
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

}  // namespace detail
}  // namespace ddaq
