// ddaq/quant/layers.h: quantization-aware layers for LibTorch graphs.
//
// Every layer fake-quantizes with ap_fixed semantics (fixed_point.h): the
// forward values are exactly those of the fixed-point hardware; gradients are
// straight-through inside the representable range and zero outside.
// Evaluated in float64 the forward equals IntegerReference bit for bit; in
// float32 (training) only the accumulation may round.
//
// Learnable precision (HGQ-style, `QuantizerOptions::learnable`): fractional
// bits are trainable (rounded with a straight-through estimator; surrogate
// gradient d(xq)/df = -ln2 * (xq - x)), integer bits follow the tracked
// range, and ebops() is differentiable in the bits. An element whose width
// reaches zero is exactly zero: its weight is pruned. An activation group's
// fractional bits start, at the first non-zero values it sees in training,
// at (configured width - integer bits of that range), so every group starts
// alive at the configured width; a group that never sees a non-zero value
// keeps width 0 (it carries nothing).
//
// Structured pruning: every Dense/Conv layer has an output-unit mask
// (magnitude pruning to a target sparsity, with PolynomialSchedule), a group
// lasso penalty, and optional learned gates. describe() removes pruned units
// physically and shrinks the next layer.
#pragma once
#include <map>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <memory>
#include <string>
#include <vector>

#include "ddaq/options.h"
#include "ddaq/quant/description.h"

namespace ddaq {

enum class Granularity { PerTensor, PerChannel, PerElement };

struct QuantizerOptions {
  QuantizerOptions() = default;
  /* implicit */ QuantizerOptions(FixedPointType t) : type_(t) {}
  // Fixed mode: the type. Learnable mode: signedness, modes and the initial
  // fractional bits (width - integer); integer bits come from the range.
  DDAQ_OPTION(FixedPointType, type);
  DDAQ_OPTION(Granularity, granularity) = Granularity::PerTensor;
  DDAQ_OPTION(bool, learnable) = false;
  // Learnable mode: every group takes the largest group's integer bits, so
  // the tensor has one saturation level and groups differ only in
  // fractional bits. That is what one fixed-point type followed by a
  // per-channel truncation expresses (LayerDescription::channel_fractional),
  // which is how per-channel activation widths export.
  DDAQ_OPTION(bool, shared_integer_bits) = false;
  // Learnable mode: the fractional bits stay within [min, max]. Per-channel
  // activation widths export as power-of-two scales 2^f that hls4ml's
  // documented flow holds in its default fixed<16,6>: |f| <= 4.
  DDAQ_OPTION(int, min_fractional) = -64;
  DDAQ_OPTION(int, max_fractional) = 64;
};

// The fake quantizer. `shape`: the quantized tensor's shape, without the
// batch dimension for activations (is_activation) and whole for weights;
// per-channel means dim 0 for weights, dim 1 (after the batch) for activations.
class FixedPointQuantizerImpl : public torch::nn::Module {
 public:
  FixedPointQuantizerImpl(QuantizerOptions options, std::vector<int64_t> shape, bool is_activation);
  torch::Tensor forward(const torch::Tensor& x);

  // Bits per quantization group (integer + fractional, >= 0), differentiable
  // in learnable mode; shaped for broadcasting against the quantized tensor.
  torch::Tensor bits() const;
  // One type able to hold every group's values exactly (max integer bits,
  // max fractional bits): what exporters use.
  FixedPointType export_type() const;
  // The learned fractional bits per group before rounding, clamped to the
  // limits, detached (a projection ranks groups by them).
  torch::Tensor learned_fractional_bits() const;
  // Rounded fractional bits per group (as forward uses them), flattened.
  std::vector<int> group_fractional_bits() const;
  const QuantizerOptions& options() const { return options_; }
  // Learnable mode: integer bits from the largest |x| seen in training
  // (activations) or from the current values (weights).
  void observe(const torch::Tensor& x);
  // Off: forward passes values through unchanged (float training before
  // quantization-aware training starts); ranges are still observed.
  void set_enabled(bool on) { enabled_ = on; }
  bool enabled() const { return enabled_; }
  // Learnable mode: integer bits per group from the tracked range.
  torch::Tensor integer_bits() const;
  // Learnable mode: sets the fractional bits (e.g. a projection to a budget);
  // with `freeze_range` the tracked range stops growing, so the widths stay.
  void set_fractional_bits(const torch::Tensor& fractional, bool freeze_range);
  void set_range_frozen(bool frozen) { range_frozen_ = frozen; }
  // Learnable mode: moves the fractional bits back inside [min_fractional,
  // max_fractional]; the trainer calls it after every optimizer step. Why:
  // forward clamps them, and a clamp passes no gradient outside its range,
  // so a bit that Adam's momentum carried past a limit would stay there,
  // deaf to every term (a budget could not narrow it).
  void clamp_to_limits();

 private:
  bool enabled_ = true;
  bool range_frozen_ = false;
  torch::Tensor fractional_bits() const;  // clamped to the limits, rounded, straight-through
  QuantizerOptions options_;
  bool is_activation_;
  torch::Tensor fractional_;  // parameter (learnable) or buffer
  torch::Tensor range_;       // largest |x| per group (learnable mode)
};
TORCH_MODULE(FixedPointQuantizer);

// Masks, gates and penalties for structured pruning of output units.
struct PruningOptions {
  DDAQ_OPTION(bool, gates) = false;  // learned gates (sigmoid of a logit per unit)
  // Gates 0 or 1 in training too (logit > 0), with the sigmoid's gradient
  // (straight through): a unit is either there or not, so what a cost counts
  // in training is what is exported; soft gates could instead scale every
  // unit down a little and meet a count budget without removing any.
  DDAQ_OPTION(bool, straight_through) = false;
};

struct QLinearOptions {
  QLinearOptions(int64_t in, int64_t out) : in_(in), out_(out) {}
  DDAQ_OPTION(int64_t, in);
  DDAQ_OPTION(int64_t, out);
  DDAQ_OPTION(bool, bias) = true;
  DDAQ_OPTION(QuantizerOptions, weight) = QuantizerOptions(FixedPointType(6, 1));
  DDAQ_OPTION(QuantizerOptions, bias_quant) = QuantizerOptions(FixedPointType(12, 4));
  DDAQ_OPTION(QuantizerOptions, output) = QuantizerOptions(FixedPointType(16, 6, true, Rounding::TRN, Overflow::SAT));
  DDAQ_OPTION(PruningOptions, pruning);
};

struct QConvOptions {
  QConvOptions(int64_t in, int64_t out, int64_t kernel) : in_(in), out_(out), kernel_(kernel) {}
  DDAQ_OPTION(int64_t, in);
  DDAQ_OPTION(int64_t, out);
  DDAQ_OPTION(int64_t, kernel);
  DDAQ_OPTION(int64_t, stride) = 1;
  DDAQ_OPTION(int64_t, padding) = 0;
  DDAQ_OPTION(int64_t, output_padding) = 0;  // transposed only
  DDAQ_OPTION(bool, bias) = true;
  DDAQ_OPTION(bool, transposed) = false;
  // BatchNorm after the convolution, folded into weights and bias for
  // evaluation and export (trained on batch statistics).
  DDAQ_OPTION(bool, batchnorm) = false;
  DDAQ_OPTION(QuantizerOptions, weight) = QuantizerOptions(FixedPointType(6, 1));
  DDAQ_OPTION(QuantizerOptions, bias_quant) = QuantizerOptions(FixedPointType(12, 4));
  DDAQ_OPTION(QuantizerOptions, output) = QuantizerOptions(FixedPointType(16, 6, true, Rounding::TRN, Overflow::SAT));
  DDAQ_OPTION(PruningOptions, pruning);
};

// A quantized layer of a QuantizedStack: one of input quantizer, dense,
// conv2d / conv-transpose2d, ReLU. Shapes are fixed at construction.
class QLayerImpl : public torch::nn::Module {
 public:
  virtual torch::Tensor forward(const torch::Tensor& x) = 0;
  virtual std::vector<int64_t> output_shape() const = 0;
  virtual FixedPointQuantizer output_quantizer() const = 0;
  // The weights' quantizer (null for layers without weights).
  virtual FixedPointQuantizer weight_quantizer() const { return nullptr; }
  // Description given the input type and which input channels survive
  // pruning upstream (empty: all); fills kept_outputs.
  virtual LayerDescription describe(const FixedPointType& input_type, const std::vector<int64_t>& input_shape,
                                    const std::vector<int64_t>& kept_inputs, std::vector<int64_t>& kept_outputs) = 0;
  // sum over multiplies of input bits x weight bits (differentiable).
  virtual torch::Tensor ebops(const torch::Tensor& input_bits) const = 0;
  // The layer as a dense-equivalent for the FPGA resource model, in
  // differentiable form (the shape design_from() gives its description):
  // inputs per unit (C_in k^2 for a convolution) times the kept share of the
  // upstream units, kept units (soft gates in training), the widest weight
  // and input bits. Layers without weights have no `in` and pass the kept
  // share through.
  struct ResourceShape {
    torch::Tensor in, out, weight_bits, act_bits, kept_share;
  };
  virtual ResourceShape resource_shape(const torch::Tensor& input_bits, const torch::Tensor& kept_share) const;
  // Hardens learned gates to the units they keep now (mask <- gate > 0, gate
  // fully open), so that training goes on with the exported architecture.
  virtual void harden_gates() {}
  // Removes the kept unit with the smallest gate logit (or weight norm
  // without gates); false when only one is left.
  virtual bool drop_weakest_unit() { return false; }
  // Hard gates keep at least the k units with the largest gate logits (of
  // those the mask keeps), in training and evaluation; default 1. A floor
  // set from a budget (EconTPipeline::keep_latents_that_fit) stops gates
  // that a budget pushes alike from all closing at once.
  virtual void set_min_kept_units(int64_t) {}
  // Output units kept (mask and hard gates); 0 for layers without weights.
  virtual int64_t kept_units() const { return 0; }
  // Per output unit, how much of it is kept: mask x gate, the gate soft
  // (sigmoid) in training and hard otherwise (what forward applies);
  // undefined for layers without weights. The e-link payload of a gated
  // latent is its width times this.
  virtual torch::Tensor unit_mask() const { return {}; }
  // Indices of the kept output units (hard gates), as export keeps them.
  virtual std::vector<int64_t> kept_unit_indices() const { return {}; }
  // Keeps the `k` units with the largest gate logits (weight norms without
  // gates) among those not pruned, prunes the rest, hardens the gates.
  virtual void keep_strongest_units(int64_t /*k*/) {}
  // True for ReLU layers (QuantizedStack::raise_silent_units looks for the
  // weighted layer before one).
  virtual bool rectifies() const { return false; }
  // Adds `delta` (one value per output unit) to the layer's bias; false
  // where there is none to add to (no bias, or batch norm, which centres
  // its units itself).
  virtual bool add_to_bias(const torch::Tensor& /*delta*/) { return false; }
  // Structured pruning hooks (no-ops for layers without weights).
  virtual void prune_to(double /*sparsity*/) {}
  virtual torch::Tensor group_lasso() const;
  virtual torch::Tensor gate_penalty() const;
  virtual double sparsity() const { return 0.0; }
};

// A chain of quantized layers with static shapes (without batch), built
// fluently: QuantizedStack({1, 8, 8}).input(type).conv(...).relu(...).dense(...).
class QuantizedStackImpl : public torch::nn::Module {
 public:
  explicit QuantizedStackImpl(std::vector<int64_t> input_shape);

  QuantizedStackImpl& input(QuantizerOptions output);
  QuantizedStackImpl& dense(QLinearOptions options);     // flattens its input
  QuantizedStackImpl& conv(QConvOptions options);
  QuantizedStackImpl& relu(QuantizerOptions output);

  torch::Tensor forward(const torch::Tensor& x);  // [N, input_shape...] -> [N, output_shape...]
  std::vector<int64_t> output_shape() const;

  // Integer descriptions, pruned units removed. The first layer must be an
  // input quantizer (it fixes the input type). `kept_inputs`: only these
  // input channels (dim 0) exist, e.g. a classifier reading an encoder whose
  // pruned latents are not sent (empty: all). `kept_outputs`, when given,
  // receives the indices of the last layer's units that remain.
  ModelDescription describe(const std::vector<int64_t>& kept_inputs = {},
                            std::vector<int64_t>* kept_outputs = nullptr);
  torch::Tensor ebops() const;  // differentiable
  // The weighted layers' ResourceShape, in order (differentiable).
  std::vector<QLayerImpl::ResourceShape> resource_shapes() const;
  torch::Tensor group_lasso() const;
  torch::Tensor gate_penalty() const;
  // Every weighted layer but the last (its outputs are the interface), by magnitude.
  void prune_to(double sparsity);
  // A data-aware start for units that would be silent: each weighted layer
  // followed by a ReLU gets, for every unit it keeps whose median output on
  // `x` (evaluation mode) lies below the ReLU's smallest step (2^-f of its
  // configured type), its bias raised so that its median sits just above
  // that step (by a sixteenth of it). Such a unit is
  // zero on most events, and a unit that is zero on every event gets no
  // gradient: it stays dead (measured: 6 to 8 of 16 ECON-T latents on real
  // data). Layer by layer, so each sees its raised inputs. Returns the
  // number of units raised.
  int64_t raise_silent_units(const torch::Tensor& x);
  // Every quantizer of the stack on or off (FixedPointQuantizer::set_enabled).
  void set_quantization(bool on);
  std::vector<std::shared_ptr<QLayerImpl>> layers() const { return layers_; }
  const std::vector<int64_t>& input_shape() const { return input_shape_; }

  // The construction as JSON text (shapes, layer options, types): with the
  // parameters and buffers it rebuilds the stack (save/load below).
  std::string spec() const;

 private:
  std::vector<int64_t> input_shape_;
  std::vector<std::shared_ptr<QLayerImpl>> layers_;
  std::vector<std::string> layer_specs_;  // JSON per layer
};
TORCH_MODULE(QuantizedStack);

// A quantized stack as one file (LibTorch archive: spec + parameters +
// buffers), written atomically. Loading rebuilds it from the spec; a file
// that is not one, or does not match its spec, throws ddaq::Error.
// `labels` are extra strings stored beside it (e.g. the run it belongs to)
// and read back into `*labels` by the loader. The file's kind is stored
// too: loading another kind of ddaq file says what that file is.
void save_quantized_stack(QuantizedStack& stack, const std::string& path,
                          const std::map<std::string, std::string>& labels = {});
QuantizedStack load_quantized_stack(const std::string& path, std::map<std::string, std::string>* labels = nullptr);

// What a ddaq LibTorch archive is, in words ("a quantized stack", "a
// training checkpoint", "an EMD surrogate", ...), from its own markers;
// "not a ddaq LibTorch archive" when it has none or cannot be read.
std::string ddaq_archive_kind(const std::string& path);
// "PATH: is a ddaq decoder ..., not WANTED" or "PATH: not WANTED (not a ddaq
// LibTorch archive)": the one line a loader throws for the wrong file.
std::string wrong_kind_message(const std::string& path, const std::string& wanted);
QuantizedStack quantized_stack_from_spec(const std::string& json);

// Polynomial sparsity schedule (Zhu & Gupta 2017): from `initial` at
// begin_step to `final` at end_step, s(t) = final + (initial - final)(1 - p)^3.
struct PolynomialSchedule {
  double initial = 0.0, final = 0.5;
  int64_t begin_step = 0, end_step = 1000;
  double power = 3.0;
  double at(int64_t step) const;
};

}  // namespace ddaq
