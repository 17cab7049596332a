// ddaq/core/pipeline.h: the ECON-T data-acquisition chain as one
// differentiable graph of stages (stage.h):
//
//   FrontEnd      zero suppression (learnable threshold, smooth in training,
//                 exact in evaluation), ECON-T normalization by
//                 2^floor(log2 sum), cell layout (8x8 or 4x4x3)
//   Encoder       QuantizedStack: input quantizer, conv 3x3 stride 2, ReLU,
//                 dense to the latent, ReLU with the latent's fixed-point type
//   LinkBudget    latent bits -> payload bits -> e-links (relaxed in training)
//   Decoder       off detector, float: dense, conv-transpose, conv, softmax
//                 over the 48 cells (a unit-sum wafer)
//   Classifier    QuantizedStack on the transmitted latent: electron vs jet
// Objectives and training live elsewhere (objectives/, trainer.h).
#pragma once
#include <ATen/core/Tensor.h>  // PipelineResult holds tensors; lighter than <torch/torch.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "ddaq/core/config.h"
#include "ddaq/core/front_end.h"
#include "ddaq/core/graph.h"
#include "ddaq/core/stage.h"
#include "ddaq/options.h"
#include "ddaq/quant/description.h"
#include "ddaq/surrogates/ground_metric.h"

namespace ddaq {

struct PipelineOptions {
  DDAQ_OPTION(std::string, layout) = "8x8";
  DDAQ_OPTION(int64_t, conv_filters) = 8;
  DDAQ_OPTION(int64_t, latent) = 16;
  DDAQ_OPTION(int, latent_bits) = 3;  // unsigned latent: ap_ufixed<latent_bits, latent_integer_bits>
  DDAQ_OPTION(int, latent_integer_bits) = 2;
  DDAQ_OPTION(bool, learn_latent_bits) = false;
  DDAQ_OPTION(int, weight_bits) = 6;  // ap_fixed<weight_bits, 1>: sign + fractional bits
  DDAQ_OPTION(bool, learn_weight_bits) = false;
  DDAQ_OPTION(int, input_bits) = 10;  // ap_ufixed<input_bits, 3>
  DDAQ_OPTION(bool, learn_input_bits) = false;  // fractional bits learned, integer bits from the range seen
  DDAQ_OPTION(double, threshold) = 0.0;  // zero suppression, CALQ
  DDAQ_OPTION(bool, learn_threshold) = true;
  DDAQ_OPTION(int64_t, classifier_hidden) = 8;
  // The off-detector decoder's size (no ECON-T area): its filters (0: the
  // encoder's conv_filters) and an optional hidden dense layer (0: none).
  DDAQ_OPTION(int64_t, decoder_filters) = 0;
  DDAQ_OPTION(int64_t, decoder_hidden) = 0;
  // Learned gates on the encoder's convolution filters (a lever for FPGA
  // budgets): a filter whose gate closes is removed at export, and the
  // dense layer after it shrinks.
  DDAQ_OPTION(bool, learn_conv_filters) = false;
  // Learned gates on the latent units (how many latents are transmitted): a
  // latent whose gate closes is not sent (width 0 in the ECON-T frame), and
  // is removed from the exported encoder's output and the classifier's input.
  // The gates are 0 or 1 in training too (straight-through gradient), so the
  // relaxed payload counts whole latents. An e-link budget then acts on
  // latents x width (fit_latent_payload).
  DDAQ_OPTION(bool, learn_latent_gates) = false;
  // With learn_latent_bits: one learned width per latent (HGQ-style) instead
  // of one for all. The latents share their integer bits (the largest
  // range's), so widths differ in fractional bits, which stay in [-4, 4]
  // (what hls4ml's documented QONNX flow holds exactly); the exported
  // encoder emits one type and truncates each latent to its own width. The
  // payload is the sum of the sent latents' widths.
  DDAQ_OPTION(bool, per_latent_bits) = false;
 public:
  // From a config section; unknown keys and bad values are errors naming them.
  static PipelineOptions from_config(const Config& section);
  std::string to_json() const;
};

// Named outputs of one forward pass (tensors on the batch's device).
using PipelineResult = NamedTensors;

// The ECON-T pipeline of `options` as a `graph` section (graph.h): the
// stages EconTPipeline builds from a `pipeline` section, in JSON.
std::string econt_graph_json(const PipelineOptions& options);

// The key of an objective's tensor (role "logits", "target",
// "reconstruction" or "prediction") in forward()'s result:
// "objective.<name>.<role>".
std::string objective_output(const ObjectiveSpec& objective, const std::string& role);
// A regression objective's mean squared error in `result` (prediction and
// target compared value by value; ddaq::Error when their sizes differ).
at::Tensor regression_mse(const ObjectiveSpec& objective, const NamedTensors& result);
// A classification objective with more than 2 classes: its logits [N,
// classes] in `result` (ddaq::Error naming the objective for another shape).
at::Tensor class_logits(const ObjectiveSpec& objective, const NamedTensors& result);

class EconTPipeline {
 public:
  // The ECON-T graph of `options` (econt_graph_json).
  EconTPipeline(const PipelineOptions& options, uint64_t seed);
  // Any graph with the roles the trainer and evaluation address: a
  // front_end (its target), an econt_link_budget naming the encoder (a
  // quantized_stack), a stage writing a reconstruction, and a classifier (a
  // quantized_stack reading the encoder's output and writing one value per
  // event). Throws ddaq::Error naming the file and what is missing.
  static EconTPipeline from_graph(const Config& graph_section, uint64_t seed);
  // From a config's root: its `graph` section, else its `pipeline` section
  // (one of them, not both).
  static EconTPipeline from_config(const Config& root, uint64_t seed);
  ~EconTPipeline();
  EconTPipeline(EconTPipeline&&) noexcept;

  // calq: [N, cells()] raw charges (CALQ for HGCAL), or [N, input shape]. Outputs: "target" (unit-sum wafer after
  // the front end), "reconstruction" (unit-sum), "latent" [N, latent],
  // "logits" [N] (absent when the graph has no classification),
  // "payload_bits", "elinks" (relaxed), "ebops" (scalars); with declared
  // objectives also each objective's tensors (objective_output()).
  PipelineResult forward(const at::Tensor& calq);
  // A hash of the options and every saved tensor: stored in each file of a
  // saved run, checked on load (files of other runs, edits are refused).
  std::string run_id() const;
  // The same; the cost outputs (payload_bits, elinks, ebops) only when
  // `with_costs` (they depend on the parameters alone: a trainer that gives
  // them no weight skips their per-step graph).
  PipelineResult forward(const at::Tensor& calq, bool with_costs);
  // payload_bits, elinks (relaxed), ebops (all firmware stages) and per
  // stage encoder_ebops, classifier_ebops; encoder_lut, encoder_ff and
  // encoder_latency_cycles (the shipped analytic FPGA model at reuse factor
  // 1, as `ddaq eval` reports them), of the current parameters.
  PipelineResult costs() const;

  void train(bool on);
  // Fake quantization of encoder and classifier on (default) or off.
  void set_quantization(bool on);
  // Structured pruning of the encoder's hidden units (conv filters) to
  // `sparsity` by magnitude; the latent layer is never pruned.
  void prune_encoder(double sparsity);
  std::vector<at::Tensor> parameters() const;
  std::vector<std::pair<std::string, at::Tensor>> named_parameters() const;
  // Parameters and buffers (observed ranges, masks, fixed bit widths): the
  // whole state a checkpoint must hold, named "<stage>.<name>".
  std::vector<std::pair<std::string, at::Tensor>> named_state() const;
  // Moves every stage to `device` ("cpu", "cuda", "cuda:1"); inputs to
  // forward must live there too.
  void to(const std::string& device);
  // The stages in order (frontend, encoder, link_budget, decoder,
  // classifier), owned by the pipeline.
  std::vector<Stage*> stages() const;
  // Exact integer width of each latent as exported (0: not transmitted);
  // the payload is their sum, the e-links the ECON-T frame's count for it.
  std::vector<int> latent_widths() const;
  int64_t payload_bits() const;
  // Links of the graph's link stage for payload_bits(): ECON-T e-links, or
  // a generic link_budget's links (the trainer's "elinks" budget counts them).
  int elinks() const;
  // Bits per bunch crossing of one such link (32 for ECON-T e-links).
  int link_bits() const;
  // The largest payload that `links` links of that stage carry.
  int64_t payload_capacity(int links) const;
  // Charges per event (the graph input's values) and the detector's cells:
  // the ground metric of the exact EMD and of Sinkhorn, in cell pitches.
  int cells() const;
  GroundMetric metric() const;
  // true for HGCAL's 48 trigger cells (no `geometry`): the classical
  // formats, the overlay and the EMD surrogate apply.
  bool hgcal() const;
  // Learned latent bits: the widest integer latent width (at most 16) whose
  // payload, latents x width, is at most
  // `max_payload_bits`; sets the fractional bits to it and freezes the
  // latent's range, so later steps keep the width (pin_latent_bits()
  // restores it after an optimizer step, against Adam's momentum).
  // Learned latent gates, first: with a fixed width, as many latents as fit
  // are kept; with learned bits, as many as the gates keep open, within
  // [budget / 16, budget]; the kept ones are those with the largest gate
  // logits, the others removed, the gates hardened (pinned with
  // pin_encoder_gates()). Then, with learned bits, the width as above, or
  // with per_latent_bits, fit_latent_widths().
  void fit_latent_payload(int64_t max_payload_bits);
  // Per-latent widths: the learned widths of the sent latents, shifted by one
  // common offset (so their learned differences stay) and rounded, within
  // [max(1, I - 4), min(16, I + 4)] for the shared integer bits I; the
  // smallest offset whose total fits `max_payload_bits` (widening too when
  // there is room), then single bits left over to the latents rounded down
  // the most. If even the narrowest widths do not fit, the weakest
  // gates close (without latent gates: ddaq::Error). Pinned like the above.
  void fit_latent_widths(int64_t max_payload_bits);
  // Indices of the transmitted latents (all without latent gates).
  std::vector<int64_t> transmitted_latents() const;
  void pin_latent_bits();
  // Before the projection, with latent gates: the latent layer keeps at
  // least as many latents open (strongest gates first, at their current
  // widths) as `max_payload_bits` holds. Why: a budget pushes every gate
  // alike and Adam moves them at one speed, so without a floor they all
  // close in the same step and never reopen (measured on main.json: 30
  // epochs at one latent before the projection). Sending fewer latents
  // than fit never helps; the gates still choose which.
  void keep_latents_that_fit(int64_t max_payload_bits);
  // The same for hidden units under "lut" / "ff" / "ebops" / "power_mw"
  // limits: each hidden layer keeps at least the units that fit the limits
  // in the design with all of them (and the latents sent now), removing
  // from the widest layer first. LUT/FF from the analytic FPGA model; EBOPs
  // from each layer's relaxed EBOPs per open unit at the current widths,
  // scaled by its units and kept inputs; power from those EBOPs as the
  // relaxed power term computes it, with `fixed_energy_pj` (the rest of the
  // full design's estimate, mostly adds) scaled like the EBOPs. Without
  // it a LUT budget closed every filter gate in one step (measured:
  // main.json with learned filters at half its LUT), and so did a power
  // budget (main.json, 32 filters, half its power: 3.6 mW of 54.6).
  void keep_units_that_fit(const std::map<std::string, double>& limits, double fixed_energy_pj = 0.0);
  // A data-aware start (QuantizedStackImpl::raise_silent_units) for the
  // encoder, then the classifier, then every other quantized stack of the
  // graph in order, on charges `calq` [N, 48]: units that would be zero on
  // most of these events get their bias raised. Returns the number of units
  // raised. Stages named in `frozen` are left alone.
  int64_t raise_silent_units(const at::Tensor& calq, const std::vector<std::string>& frozen = {});
  // After every optimizer step: learned fractional bits back inside their
  // limits (FixedPointQuantizerImpl::clamp_to_limits).
  void clamp_bits_to_limits();
  // Projection onto FPGA budgets: hardens the encoder's learned gates (the
  // fine-tune keeps the exported architecture), then removes the weakest
  // hidden unit (smallest gate logit, else weight norm) while the exact
  // estimate of the encoder at reuse factor 1 exceeds a limit ("lut",
  // "ff"). Returns the units removed; the latent layer is never pruned, so a
  // limit below the smallest architecture stays unmet (the report says so).
  int fit_encoder_resources(const std::map<std::string, double>& limits);
  // Re-hardens gates after an optimizer step (pin, like pin_latent_bits).
  void pin_encoder_gates();
  // Projection onto "ebops" and "power_mw" budgets (the exact EBOPs and 45 nm
  // power of the described encoder, as `ddaq eval` reports them): while a
  // limit is exceeded, the learned quantizer of the encoder (its input, or
  // one layer's weights) whose exported type is widest loses one fractional
  // bit in the elements that have the most (all elements of a shared width;
  // widths stay >= 1 bit, >= 2 signed); if the narrowest widths still
  // exceed it, hidden units go
  // (the weakest of the layer with the most, as fit_encoder_resources;
  // never the latents) while it is exceeded. Every learned
  // width of the encoder is then frozen, its range too, and pinned after
  // each step (pin_encoder_bits()). Returns the bits and units removed; a
  // limit below the one-filter, narrowest design stays unmet (the report
  // says so).
  // Without limits it only freezes and pins the current widths (resume).
  int fit_encoder_energy(const std::map<std::string, double>& limits);
  void pin_encoder_bits();
  // The widest latent: the exported latent type's width.
  int latent_bits() const;
  // The front end as evaluation applies it (zero-suppression threshold and
  // the encoder's cell layout), in plain C++ (front_end.h).
  EconTFrontEnd front_end() const;
  // The encoder's integer description (what goes on detector).
  ModelDescription encoder_description() const;
  // The graph's declared objectives (empty: the ECON-T roles, weighted by
  // the training section).
  const std::vector<ObjectiveSpec>& objectives() const;
  // A `pipeline` section's options; for a graph, what the encoder gives
  // (latent, its bits and gates, layout; "none" without one).
  const PipelineOptions& options() const;
  // What pipeline.json holds and run ids hash: the options, or {"graph": ...}.
  std::string description_json() const;

  // RUN/pipeline.json, encoder.qstack, classifier.qstack, decoder.pt.
  void save(const std::string& run_dir) const;
  static EconTPipeline load(const std::string& run_dir);

 private:
  struct Impl;
  explicit EconTPipeline(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace ddaq
