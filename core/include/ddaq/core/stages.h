// ddaq/core/stages.h: the built-in stage types of the DAQ graph (graph.h).
//
//   type               reads               writes                  what
//   front_end          charges             target, normalized      zero suppression (learnable threshold,
//                                                                  smooth in training, exact in evaluation),
//                                                                  target = kept / sum, normalized = kept /
//                                                                  2^floor(log2 sum) ("econt"), / sum ("sum")
//                                                                  or kept ("none")
//   quantized_stack    input               output                  firmware: an input quantizer and layers
//                                                                  declared one by one (dense, conv2d,
//                                                                  conv_transpose, relu), each quantizer
//                                                                  fixed or learnable; optional cell layout
//   link_budget        (none)              (costs only)            payload bits of the named encoder's
//                                                                  sent outputs -> links (header, bits per link)
//   econt_link_budget  (none)              (costs only)            the same through the ECON-T frame -> e-links
//   float_stack        input               output                  float layers (dense, conv2d,
//                                                                  conv_transpose, relu, reshape) + head
//   econt_decoder      latent              reconstruction          off detector, float: dense,
//                                                                  conv-transpose, conv, softmax over cells
//   best_choice        charges             cells                   classical ECON-T compressors at a
//   threshold_cells    charges             cells                   bandwidth (baselines.h): the cells the
//   super_trigger_cells charges            cells                   format sends, the others 0
//   module_sum         charges             sum                     log2(1 + sum of charges) at the frame's
//                                                                  module-sum width (the ECON-T sends it)
//   concat             first, second       output                  [N, a + b]: two tensors side by side
//   dead_cells         charges             charges                 listed cells (or a seeded random
//                                                                  fraction) read as 0: a robustness study
//
// Options of each type are listed at its class; docs/graph.md has them all
// with examples. The ECON-T pipeline (pipeline.h) is these stages in this
// order.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "ddaq/core/graph.h"
#include "ddaq/core/layouts.h"
#include "ddaq/quant/layers.h"

namespace ddaq {

// A stage whose state is one torch::nn::Module.
class ModuleStage : public Stage {
 public:
  explicit ModuleStage(std::string name) : name_(std::move(name)) {}
  const std::string& name() const override { return name_; }
  std::vector<std::pair<std::string, at::Tensor>> named_parameters() const override;
  std::vector<std::pair<std::string, at::Tensor>> named_buffers() const override;
  void train(bool on) override;
  void to(const std::string& device) override;
  bool training() const { return training_; }

 protected:
  virtual torch::nn::Module& module() const = 0;
  bool training_ = true;

 private:
  std::string name_;
};

// front_end. Options: threshold (CALQ, default 0), learn_threshold (default
// true), normalization ("econt" default, "sum", "none"). Writes `normalized`
// (the encoder's input: cells below the threshold suppressed) and `target`
// (the wafer as it arrived, unit sum, threshold NOT applied: what the
// deployed evaluation compares with). A target after the threshold let a
// learned threshold hide cells from the loss: a 60-epoch mu-10 encoder
// raised it until half the cells were gone, its loss fell while its exact
// EMD doubled.
class FrontEndStage : public ModuleStage {
 public:
  static std::vector<std::string> reads() { return {"charges"}; }
  static std::vector<std::string> writes() { return {"target", "normalized"}; }
  static std::vector<std::string> option_keys() { return {"threshold", "learn_threshold", "normalization"}; }
  FrontEndStage(const StageSpec& spec, const Graph& built);
  void forward(NamedTensors& flow) override;
  at::Tensor threshold;  // CALQ (a parameter when learned)

  const std::string& normalization() const { return normalization_; }

 protected:
  torch::nn::Module& module() const override { return *holder_; }

 private:
  std::shared_ptr<torch::nn::Module> holder_;
  std::string charges_, target_, normalized_, normalization_;
};

// quantized_stack. Options:
//   layout   "8x8" or "4x4x3" (HGCAL: the input is [N, 48] cells, gathered
//            onto that grid), or "geometry" (the graph's own cells on a
//            square grid at their pitch, CellLayout::from_positions);
//            without it the input is [N, input_shape...]
//   input_shape  per event (default: the graph input's, or the grid's)
//   input    quantizer of the input: {bits, integer_bits, signed (false),
//            rounding ("TRN"), overflow ("SAT"), learnable (false)}
//   layers   [{type: "dense", units, weight, output, bias, gates,
//              straight_through},
//             {type: "conv2d" | "conv_transpose", filters, kernel, stride (1),
//              padding (0), output_padding (0), weight, output, bias, gates},
//             {type: "relu", output}]
//            weight: a quantizer {bits (6), integer_bits (1), signed (true),
//            rounding ("RND_CONV"), learnable, granularity ("tensor",
//            "channel", "element")}; output: a quantizer (default fixed<16,6>).
//            relu's output quantizer may also set shared_integer_bits,
//            min_fractional, max_fractional (per-channel learned widths).
// Writes [N, outputs] ([N] when the stack ends in one value per event).
class QuantizedStackStage : public ModuleStage {
 public:
  static std::vector<std::string> reads() { return {"input"}; }
  static std::vector<std::string> writes() { return {"output"}; }
  static std::vector<std::string> option_keys() { return {"layout", "input_shape", "input", "layers"}; }
  QuantizedStackStage(const StageSpec& spec, const Graph& built);
  void forward(NamedTensors& flow) override;
  // ebops, lut, ff, dsp, latency_cycles (shipped analytic model, reuse 1).
  NamedTensors costs() const override;
  ModelDescription describe() const override;
  // What the stack's first layer sees for a flow tensor (the layout's grid).
  at::Tensor stack_input(const at::Tensor& x) const;
  // The cell layout (nullptr without one).
  const CellLayout* layout() const { return layout_.get(); }
  const std::string& input_name() const { return input_; }
  const std::string& output_name() const { return output_; }
  QuantizedStack stack;

 protected:
  torch::nn::Module& module() const override { return *stack.ptr(); }

 private:
  std::string input_, output_;
  std::shared_ptr<CellLayout> layout_;
};

// link_budget: a generic readout link. Options: encoder (the
// quantized_stack whose outputs are sent; default "encoder"), header_bits
// (0), link_bits (bits per link per bunch crossing, 32), max_links (1000).
// Costs: payload_bits (sum of the sent outputs' widths), links (relaxed:
// (header + payload) / link_bits; the exact count is its ceiling).
class LinkBudgetStage : public ModuleStage {
 public:
  static std::vector<std::string> reads() { return {}; }
  static std::vector<std::string> writes() { return {}; }
  static std::vector<std::string> option_keys() { return {"encoder", "header_bits", "link_bits", "max_links"}; }
  LinkBudgetStage(const StageSpec& spec, const Graph& built);
  void forward(NamedTensors&) override {}  // costs only: they depend on the output types, not the batch
  NamedTensors costs() const override;
  // Exact links for a payload; throws ddaq::Error above max_links.
  virtual int links_for_payload(int64_t payload_bits) const;
  // The largest payload that `links` links carry.
  virtual int64_t payload_capacity(int links) const;
  // Bits per link per bunch crossing (ECON-T e-links: 32).
  int link_bits() const { return link_bits_; }
  const QuantizedStackStage& encoder() const { return *encoder_; }

 protected:
  torch::nn::Module& module() const override { return *none_; }
  // Sum of the sent outputs' widths (differentiable).
  at::Tensor payload() const;

 private:
  const QuantizedStackStage* encoder_;
  std::shared_ptr<torch::nn::Module> none_;
  int header_bits_ = 0, link_bits_ = 32, max_links_ = 1000;
};

// econt_link_budget: the ECON-T autoencoder frame. Options: encoder (as
// link_budget). Costs: payload_bits, elinks (ECON-T frame, relaxed).
class EconTLinkBudgetStage : public LinkBudgetStage {
 public:
  static std::vector<std::string> option_keys() { return {"encoder"}; }
  EconTLinkBudgetStage(const StageSpec& spec, const Graph& built) : LinkBudgetStage(spec, built) {}
  NamedTensors costs() const override;
  int links_for_payload(int64_t payload_bits) const override;
  int64_t payload_capacity(int links) const override;
};

// float_stack: off-detector float layers (decoders, trigger heads).
// Options: input_shape (as quantized_stack), layers ([{type: "dense", units},
// {type: "conv2d" | "conv_transpose", filters, kernel, stride (1), padding
// (0), output_padding (0)}, {type: "batchnorm"} (per feature or channel),
// {type: "relu"}, {type: "reshape", shape}]),
// layout ("8x8" / "4x4x3" / "geometry": the last layer's grid read back as cells),
// head: "softmax" (a unit-sum output per event), "sigmoid" or "none".
// Writes [N, outputs] ([N] for one value per event).
class FloatStackStage : public ModuleStage {
 public:
  static std::vector<std::string> reads() { return {"input"}; }
  static std::vector<std::string> writes() { return {"output"}; }
  static std::vector<std::string> option_keys() { return {"input_shape", "layers", "layout", "head"}; }
  FloatStackStage(const StageSpec& spec, const Graph& built);
  void forward(NamedTensors& flow) override;

 protected:
  torch::nn::Module& module() const override;

 private:
  struct Net;
  std::shared_ptr<Net> net_;
  std::shared_ptr<CellLayout> layout_;
  std::string input_, output_, head_;
  std::vector<int64_t> input_shape_;
};

// econt_decoder. Options: filters (8), hidden (0: none; else a dense layer of
// that many units before the one that fills the grid), layout ("8x8", "4x4x3"
// or "geometry"), latent (inputs; default: the size of the tensor it reads,
// from the encoder). Off detector, so its size costs no ECON-T area.
class EconTDecoderStage : public ModuleStage {
 public:
  static std::vector<std::string> reads() { return {"latent"}; }
  static std::vector<std::string> writes() { return {"reconstruction"}; }
  static std::vector<std::string> option_keys() { return {"filters", "hidden", "layout", "latent"}; }
  EconTDecoderStage(const StageSpec& spec, const Graph& built);
  void forward(NamedTensors& flow) override;

 protected:
  torch::nn::Module& module() const override;

 private:
  struct Net;
  std::shared_ptr<Net> net_;
  std::shared_ptr<CellLayout> layout_;
  std::string latent_, reconstruction_;
};

// The classical compressors as stages (stages_classical.cpp), so they are
// trained beside and judged against learned encoders in one graph at the
// same bandwidth. Read charges [N, 48] (CALQ), write [N, 48]: the cells the
// format sends, the others 0. Exactly the functions evaluation's baselines
// use (baselines.h), so a stage at E e-links equals the report's row at E.
// Gradients reach the sent cells' charges (Best Choice, threshold); super
// trigger cells (sums placed at the largest cell) pass none.
class ClassicalCompressorStage : public ModuleStage {
 public:
  static std::vector<std::string> reads() { return {"charges"}; }
  static std::vector<std::string> writes() { return {"cells"}; }
  ClassicalCompressorStage(const StageSpec& spec, const Graph& built);
  void forward(NamedTensors& flow) override;
  int cells_sent() const { return cells_; }  // at most (every cell for STC: its group sums)

 protected:
  torch::nn::Module& module() const override { return *none_; }
  // rows x 48 CALQ in, the format's cells out (CPU, float).
  virtual void compress(const float* calq, int64_t rows, float* out) const = 0;
  virtual bool passes_gradient() const { return true; }
  int cells_ = 48;

 private:
  std::shared_ptr<torch::nn::Module> none_;
  std::string charges_, cells_name_;
};

// best_choice. Options: elinks (1..13: the ECON-T table's cells) or cells (1..48).
class BestChoiceStage : public ClassicalCompressorStage {
 public:
  static std::vector<std::string> option_keys() { return {"elinks", "cells"}; }
  BestChoiceStage(const StageSpec& spec, const Graph& built);

 protected:
  void compress(const float* calq, int64_t rows, float* out) const override;
};

// threshold_cells: every cell above `threshold` (CALQ, default 0) is sent,
// as many as fit: elinks (2..13, beside the header and the 48-bit cell map,
// 7 bits a cell: link_budget.h ClassicalFormats) or cells (1..48).
class ThresholdCellsStage : public ClassicalCompressorStage {
 public:
  static std::vector<std::string> option_keys() { return {"threshold", "elinks", "cells"}; }
  ThresholdCellsStage(const StageSpec& spec, const Graph& built);

 protected:
  void compress(const float* calq, int64_t rows, float* out) const override;

 private:
  float threshold_ = 0.0f;
};

// super_trigger_cells. Options: group (4: 2x2 squares, 16: the 4x4 blocks).
class SuperTriggerCellsStage : public ClassicalCompressorStage {
 public:
  static std::vector<std::string> option_keys() { return {"group"}; }
  SuperTriggerCellsStage(const StageSpec& spec, const Graph& built);

 protected:
  void compress(const float* calq, int64_t rows, float* out) const override;
  bool passes_gradient() const override { return false; }

 private:
  int group_ = 4;
};

// module_sum: the wafer's charge sum as the frame sends it, as
// log2(1 + sum) in ufixed<bits, integer_bits> (truncated, saturated;
// straight-through gradient). Options: bits (9, the ECON-T frame's
// module-sum width), integer_bits (4: sums up to 2^16 - 1 CALQ). The real
// ECON-T encodes its 9-bit sum in its own format; this is a stand-in of
// the same width. Writes [N, 1].
class ModuleSumStage : public ModuleStage {
 public:
  static std::vector<std::string> reads() { return {"charges"}; }
  static std::vector<std::string> writes() { return {"sum"}; }
  static std::vector<std::string> option_keys() { return {"bits", "integer_bits"}; }
  ModuleSumStage(const StageSpec& spec, const Graph& built);
  void forward(NamedTensors& flow) override;

 protected:
  torch::nn::Module& module() const override { return *none_; }

 private:
  std::shared_ptr<torch::nn::Module> none_;
  std::string charges_, sum_;
  int bits_ = 9, integer_bits_ = 4;
};

// concat: [N, a + b] from two tensors of N events (each flattened per event).
class ConcatStage : public ModuleStage {
 public:
  static std::vector<std::string> reads() { return {"first", "second"}; }
  static std::vector<std::string> writes() { return {"output"}; }
  static std::vector<std::string> option_keys() { return {}; }
  ConcatStage(const StageSpec& spec, const Graph& built);
  void forward(NamedTensors& flow) override;

 protected:
  torch::nn::Module& module() const override { return *none_; }

 private:
  std::shared_ptr<torch::nn::Module> none_;
  std::string first_, second_, output_;
};

// dead_cells: cells that read 0 (dead channels). Options: cells (a list of
// cell indices of the last dimension) and/or fraction (of the cells, drawn
// once from `seed`, default 1, at construction: fixed for the run).
class DeadCellsStage : public ModuleStage {
 public:
  static std::vector<std::string> reads() { return {"charges"}; }
  static std::vector<std::string> writes() { return {"charges"}; }
  static std::vector<std::string> option_keys() { return {"cells", "fraction", "seed"}; }
  DeadCellsStage(const StageSpec& spec, const Graph& built);
  void forward(NamedTensors& flow) override;
  const std::vector<int64_t>& dead() const { return dead_; }  // sorted

 protected:
  torch::nn::Module& module() const override { return *holder_; }

 private:
  std::shared_ptr<torch::nn::Module> holder_;
  std::string in_, out_;
  std::vector<int64_t> dead_;
  at::Tensor alive_;  // buffer: 1 for live cells, 0 for dead ones
};

// The weighted layer of `stack` that makes its outputs (the latents).
std::shared_ptr<QLayerImpl> last_weighted_layer(const QuantizedStack& stack);
// Per output unit, how much of it is kept (undefined without gates: all).
at::Tensor output_unit_mask(const QuantizedStack& stack);

}  // namespace ddaq
