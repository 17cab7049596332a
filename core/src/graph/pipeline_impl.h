// The ECON-T pipeline's private state, shared by pipeline.cpp (building,
// running, files) and pipeline_codesign.cpp (projections onto budgets).
#pragma once
#include <torch/torch.h>

#include <string>
#include <utility>
#include <vector>

#include "ddaq/core/graph.h"
#include "ddaq/core/pipeline.h"
#include "ddaq/core/stages.h"
#include "ddaq/error.h"

namespace ddaq {

struct EconTPipeline::Impl {
  PipelineOptions options;  // given, or read from the graph (graph_options)
  bool from_graph = false;  // built from a config's graph section (saved as such)
  Graph graph;
  FrontEndStage* frontend = nullptr;
  QuantizedStackStage *encoder = nullptr, *classifier = nullptr;
  LinkBudgetStage* link = nullptr;             // econt_link_budget or link_budget
  std::string target, reconstruction, logits;  // tensor names (logits "" without a classification)
  torch::Tensor pinned_latent_fractional;                                          // set by fit_latent_payload
  std::vector<std::pair<FixedPointQuantizer, torch::Tensor>> pinned_encoder_bits;  // set by fit_encoder_energy

  Impl(const PipelineOptions& o, const GraphSpec& spec, bool from_graph_section, uint64_t seed)
      : options(o), from_graph(from_graph_section), graph(spec, seed) {
    find_roles();
  }
  // The stages the trainer and evaluation address by role.
  void find_roles() {
    const std::string at = graph.spec().source + ": graph: ";
    for (Stage* s : graph.stages()) {
      if (auto* f = dynamic_cast<FrontEndStage*>(s)) frontend = frontend ? frontend : f;
      if (auto* l = dynamic_cast<LinkBudgetStage*>(s)) link = link ? link : l;
    }
    for (const StageSpec& s : graph.spec().stages)
      if (s.writes.count("reconstruction")) reconstruction = s.writes.at("reconstruction");
    if (!frontend) throw Error(at + "needs a front_end stage (its target is what reconstructions are judged against)");
    for (const StageSpec& s : graph.spec().stages)
      if (s.name == frontend->name()) target = s.writes.at("target");
    if (!link)
      throw Error(at + "needs an econt_link_budget or link_budget stage (it names the encoder whose latents are sent)");
    encoder = const_cast<QuantizedStackStage*>(&link->encoder());
    // Declared objectives name the tensors: the first reconstruction
    // objective is what evaluation judges, the first classification
    // objective's logits are the run's "logits".
    bool first_reconstruction = true;
    for (const ObjectiveSpec& o : graph.spec().objectives) {
      if (o.type == "reconstruction" && first_reconstruction) {
        first_reconstruction = false;
        target = o.tensor("target");
        reconstruction = o.tensor("reconstruction");
      }
      if (o.type == "classification" && logits.empty()) logits = o.tensor("logits");
    }
    if (reconstruction.empty())
      throw Error(at + "needs a stage that writes a reconstruction (e.g. econt_decoder) or a reconstruction objective");
    // The classifier role (fake quantization and the silent-unit start apply
    // to it). With objectives: the quantized_stack writing the first
    // classification's logits, if one does. Without: the quantized_stack
    // reading the encoder's output and writing one value per event.
    for (Stage* s : graph.stages())
      if (auto* q = dynamic_cast<QuantizedStackStage*>(s)) {
        if (!graph.spec().objectives.empty()) {
          if (!logits.empty() && q->output_name() == logits) classifier = q;
        } else if (q != encoder && q->input_name() == encoder->output_name() &&
                   q->stack->output_shape() == std::vector<int64_t>{1}) {
          if (classifier)
            throw Error(at + "stages '" + classifier->name() + "' and '" + q->name() +
                        "' both read the encoder's output and write one value: declare objectives to say which "
                        "is trained on the labels");
          classifier = q;
        }
      }
    if (graph.spec().objectives.empty()) {
      if (!classifier)
        throw Error(at + "needs a classifier: a quantized_stack that reads '" + encoder->output_name() +
                    "' and writes one value per event (or declare objectives)");
      logits = classifier->output_name();
    }
  }
};

// Charges of the graph's input shape, as float, or one line saying why not
// ([N, cells] rows of an event file take the input's shape).
inline torch::Tensor checked_input(const GraphSpec& spec, const at::Tensor& x) {
  std::vector<int64_t> want{x.dim() > 0 ? x.size(0) : 0};
  if (spec.input_shape.size() > 1 && x.dim() == 2 && x.size(1) == spec.input_cells()) {
    want.insert(want.end(), spec.input_shape.begin(), spec.input_shape.end());
    return x.reshape(want).to(torch::kFloat);
  }
  want.insert(want.end(), spec.input_shape.begin(), spec.input_shape.end());
  if (x.sizes().vec() != want) {
    std::string shape = "[N";
    for (int64_t d : spec.input_shape) shape += ", " + std::to_string(d);
    throw Error("pipeline: expected charges of shape " + shape + "]");
  }
  return x.to(torch::kFloat);
}

}  // namespace ddaq
