// The ECON-T pipeline: stages as LibTorch modules in one autograd graph.
#include "ddaq/core/pipeline.h"

#include <torch/torch.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <numeric>
#include <sstream>

#include "ddaq/core/cell_geometry.h"
#include "ddaq/core/layouts.h"
#include "ddaq/core/stages.h"
#include "ddaq/core/wafer_metric.h"
#include "ddaq/error.h"
#include "ddaq/files.h"
#include "ddaq/quant/layers.h"
#include "ddaq/surrogates/energy.h"
#include "ddaq/surrogates/fpga_resources.h"
#include "ddaq/surrogates/link_budget.h"
#include "pipeline_impl.h"

namespace ddaq {

PipelineOptions PipelineOptions::from_config(const Config& c) {
  c.reject_unknown({"layout", "conv_filters", "latent", "latent_bits", "latent_integer_bits", "learn_latent_bits",
                    "weight_bits", "learn_weight_bits", "input_bits", "learn_input_bits", "threshold",
                    "learn_threshold", "classifier_hidden", "learn_conv_filters", "learn_latent_gates",
                    "per_latent_bits", "decoder_filters", "decoder_hidden"});
  PipelineOptions o;
  o.layout(c.string("layout", o.layout()))
      .conv_filters(c.integer("conv_filters", o.conv_filters(), 1, 256))
      .latent(c.integer("latent", o.latent(), 1, 48))
      .latent_bits(static_cast<int>(c.integer("latent_bits", o.latent_bits(), 1, 16)))
      .latent_integer_bits(static_cast<int>(c.integer("latent_integer_bits", o.latent_integer_bits(), -8, 16)))
      .learn_latent_bits(c.boolean("learn_latent_bits", o.learn_latent_bits()))
      .weight_bits(static_cast<int>(c.integer("weight_bits", o.weight_bits(), 2, 24)))
      .learn_weight_bits(c.boolean("learn_weight_bits", o.learn_weight_bits()))
      .input_bits(static_cast<int>(c.integer("input_bits", o.input_bits(), 4, 24)))
      .learn_input_bits(c.boolean("learn_input_bits", o.learn_input_bits()))
      .threshold(c.number("threshold", o.threshold(), 0.0, 1e6))
      .learn_threshold(c.boolean("learn_threshold", o.learn_threshold()))
      .classifier_hidden(c.integer("classifier_hidden", o.classifier_hidden(), 1, 256))
      .learn_conv_filters(c.boolean("learn_conv_filters", o.learn_conv_filters()))
      .learn_latent_gates(c.boolean("learn_latent_gates", o.learn_latent_gates()))
      .per_latent_bits(c.boolean("per_latent_bits", o.per_latent_bits()))
      .decoder_filters(c.integer("decoder_filters", o.decoder_filters(), 0, 1024))
      .decoder_hidden(c.integer("decoder_hidden", o.decoder_hidden(), 0, 4096));
  if (o.per_latent_bits() && !o.learn_latent_bits())
    throw Error(c.source() + ": " + c.where() + ".per_latent_bits: needs learn_latent_bits: true (the widths are learned)");
  if (o.layout() != "8x8" && o.layout() != "4x4x3")
    throw Error(c.source() + ": " + c.where() + ".layout: '" + o.layout() + "' (expected \"8x8\" or \"4x4x3\")");
  return o;
}

std::string PipelineOptions::to_json() const {
  nlohmann::json j({{"layout", layout_},
                         {"conv_filters", conv_filters_},
                         {"latent", latent_},
                         {"latent_bits", latent_bits_},
                         {"latent_integer_bits", latent_integer_bits_},
                         {"learn_latent_bits", learn_latent_bits_},
                         {"weight_bits", weight_bits_},
                         {"learn_weight_bits", learn_weight_bits_},
                         {"input_bits", input_bits_},
                         {"learn_input_bits", learn_input_bits_},
                         {"threshold", threshold_},
                         {"learn_threshold", learn_threshold_},
                         {"classifier_hidden", classifier_hidden_}});
  // Written only when on: run ids (a hash of this text) of runs saved before
  // the option existed stay valid.
  if (learn_conv_filters_) j["learn_conv_filters"] = true;
  if (learn_latent_gates_) j["learn_latent_gates"] = true;
  if (per_latent_bits_) j["per_latent_bits"] = true;
  if (decoder_filters_ > 0) j["decoder_filters"] = decoder_filters_;
  if (decoder_hidden_ > 0) j["decoder_hidden"] = decoder_hidden_;
  return j.dump(2);
}

bool NamedTensors::has(const std::string& name) const {
  for (const auto& kv : named)
    if (kv.first == name) return true;
  return false;
}

const at::Tensor& NamedTensors::get(const std::string& name) const {
  for (const auto& kv : named)
    if (kv.first == name) return kv.second;
  throw Error("pipeline: no output named '" + name + "'");
}

void NamedTensors::set(const std::string& name, const at::Tensor& value) {
  for (auto& kv : named)
    if (kv.first == name) {
      kv.second = value;
      return;
    }
  named.emplace_back(name, value);
}

namespace {

using nlohmann::json;

json quantizer_json(const FixedPointType& t, bool learnable = false) {
  return json{{"bits", t.width},
              {"integer_bits", t.integer},
              {"signed", t.is_signed},
              {"rounding", std::string(to_string(t.rounding))},
              {"overflow", std::string(to_string(t.overflow))},
              {"learnable", learnable}};
}

}  // namespace

std::string econt_graph_json(const PipelineOptions& o) {
  const CellLayout layout = CellLayout::by_name(o.layout());
  json weight = quantizer_json(FixedPointType(o.weight_bits(), 1, true, Rounding::RND_CONV, Overflow::SAT),
                               o.learn_weight_bits());
  weight["granularity"] = o.learn_weight_bits() ? "element" : "tensor";
  json latent_q =
      quantizer_json(FixedPointType(o.latent_bits(), o.latent_integer_bits(), false, Rounding::TRN, Overflow::SAT),
                     o.learn_latent_bits());
  if (o.per_latent_bits()) {
    latent_q["granularity"] = "channel";
    latent_q["shared_integer_bits"] = true;
    latent_q["min_fractional"] = -4;
    latent_q["max_fractional"] = 4;
  }
  const json wide = quantizer_json(FixedPointType(16, 6, true, Rounding::TRN, Overflow::SAT));
  const json relu8 = quantizer_json(FixedPointType(8, 3, false, Rounding::TRN, Overflow::SAT));
  json encoder{{"type", "quantized_stack"},
               {"name", "encoder"},
               {"reads", {{"input", "normalized"}}},
               {"writes", {{"output", "latent"}}},
               {"layout", o.layout()},
               {"input", quantizer_json(FixedPointType(o.input_bits(), 3, false, Rounding::TRN, Overflow::SAT),
                                        o.learn_input_bits())},
               {"layers",
                {{{"type", "conv2d"},
                  {"filters", o.conv_filters()},
                  {"kernel", 3},
                  {"stride", 2},
                  {"padding", 1},
                  {"weight", weight},
                  {"output", wide},
                  {"gates", o.learn_conv_filters()}},
                 {{"type", "relu"}, {"output", relu8}},
                 {{"type", "dense"},
                  {"units", o.latent()},
                  {"weight", weight},
                  {"output", wide},
                  {"gates", o.learn_latent_gates()},
                  {"straight_through", o.learn_latent_gates()}},
                 {{"type", "relu"}, {"output", latent_q}}}}};
  // The latent arrives already quantized: the classifier's input type is the
  // transmitted latent type (learned bits: ufixed<15,5>, which holds any
  // latent of up to 5 integer and 10 fractional bits). Both fit hls4ml's
  // default input precision fixed<16,6>, so the documented QONNX flow needs
  // no configuration edit.
  const json fixed_weight = quantizer_json(FixedPointType(o.weight_bits(), 1, true, Rounding::RND_CONV, Overflow::SAT));
  json classifier{
      {"type", "quantized_stack"},
      {"name", "classifier"},
      {"reads", {{"input", "latent"}}},
      {"writes", {{"output", "logits"}}},
      {"input", quantizer_json(o.learn_latent_bits() ? FixedPointType(15, 5, false, Rounding::TRN, Overflow::SAT)
                                                     : FixedPointType(o.latent_bits(), o.latent_integer_bits(), false,
                                                                      Rounding::TRN, Overflow::SAT))},
      {"layers",
       {{{"type", "dense"}, {"units", o.classifier_hidden()}, {"weight", fixed_weight}, {"output", wide}},
        {{"type", "relu"}, {"output", relu8}},
        {{"type", "dense"}, {"units", 1}, {"weight", fixed_weight}, {"output", wide}}}}};
  json g{{"input", {{"name", "calq"}, {"shape", {48}}}},
         {"stages",
          {{{"type", "front_end"},
            {"name", "frontend"},
            {"reads", {{"charges", "calq"}}},
            {"writes", {{"target", "target"}, {"normalized", "normalized"}}},
            {"threshold", o.threshold()},
            {"learn_threshold", o.learn_threshold()},
            {"normalization", "econt"}},
           encoder,
           {{"type", "econt_link_budget"}, {"name", "link_budget"}, {"encoder", "encoder"}},
           {{"type", "econt_decoder"},
            {"name", "decoder"},
            {"reads", {{"latent", "latent"}}},
            {"writes", {{"reconstruction", "reconstruction"}}},
            {"filters", o.decoder_filters() > 0 ? o.decoder_filters() : o.conv_filters()},
            {"hidden", o.decoder_hidden()},
            {"layout", o.layout()}},
           classifier}}};
  (void)layout;
  return g.dump(2);
}

namespace {
GraphSpec spec_of(const std::string& json_text, const std::string& source) {
  return GraphSpec::parse(Config::from_json_text(json_text, source, "graph"));
}

// What the rest of the pipeline asks of its options, read from a graph's encoder.
PipelineOptions graph_options(const GraphSpec& spec, const Graph& graph) {
  PipelineOptions o;
  for (const StageSpec& s : spec.stages) {
    auto* q = graph.find_as<QuantizedStackStage>(s.name);
    if (!q || s.options.list("layers").size() < 2) continue;
    const auto layers = s.options.list("layers");
    // The encoder: the stack an econt_link_budget names (default "encoder").
    bool is_encoder = false;
    for (const StageSpec& l : spec.stages)
      if ((l.type == "econt_link_budget" || l.type == "link_budget") &&
          l.options.string("encoder", "encoder") == s.name)
        is_encoder = true;
    if (!is_encoder) continue;
    const auto quant = q->stack->layers().back()->output_quantizer();
    const FixedPointType t = quant->options().type();
    int64_t latent = 1;
    for (int64_t d : q->stack->output_shape()) latent *= d;
    o.latent(latent)
        .latent_bits(t.width)
        .latent_integer_bits(t.integer)
        .learn_latent_bits(quant->options().learnable())
        .per_latent_bits(quant->options().learnable() && quant->options().granularity() != Granularity::PerTensor)
        .layout(q->layout() ? q->layout()->name() : "none");
    for (auto it = layers.rbegin(); it != layers.rend(); ++it)
      if (it->string("type", "") != "relu") {
        o.learn_latent_gates(it->boolean("gates", false));
        break;
      }
  }
  return o;
}
}  // namespace

EconTPipeline::EconTPipeline(const PipelineOptions& options, uint64_t seed)
    : impl_(new Impl(options, spec_of(econt_graph_json(options), "pipeline"), false, seed)) {}

EconTPipeline EconTPipeline::from_graph(const Config& graph_section, uint64_t seed) {
  const GraphSpec spec = GraphSpec::parse(graph_section);
  EconTPipeline p(std::unique_ptr<Impl>(new Impl(PipelineOptions(), spec, true, seed)));
  p.impl_->options = graph_options(spec, p.impl_->graph);
  return p;
}

EconTPipeline::EconTPipeline(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

EconTPipeline EconTPipeline::from_config(const Config& root, uint64_t seed) {
  if (root.has("graph") && root.has("pipeline"))
    throw Error(root.source() + ": graph: a config has a 'graph' or a 'pipeline' section, not both");
  if (root.has("graph")) {
    EconTPipeline p = from_graph(root.section("graph"), seed);
    // Declared objectives carry their own weights: the training section's
    // would be silently unused.
    if (!p.objectives().empty() && root.has("training"))
      for (const char* key : {"reconstruction_weight", "classification_weight"})
        if (root.section("training").has(key))
          throw Error(root.source() + ": training." + key +
                      ": the graph declares objectives, whose weights replace it (graph.objectives[i].weight)");
    return p;
  }
  if (!root.has("pipeline")) throw Error(root.source() + ": no 'graph' or 'pipeline' section to build");
  return EconTPipeline(PipelineOptions::from_config(root.section("pipeline")), seed);
}

EconTPipeline::~EconTPipeline() = default;
EconTPipeline::EconTPipeline(EconTPipeline&&) noexcept = default;

const PipelineOptions& EconTPipeline::options() const { return impl_->options; }

const std::vector<ObjectiveSpec>& EconTPipeline::objectives() const { return impl_->graph.spec().objectives; }

std::string objective_output(const ObjectiveSpec& objective, const std::string& role) {
  return "objective." + objective.name + "." + role;
}

at::Tensor regression_mse(const ObjectiveSpec& objective, const NamedTensors& result) {
  const at::Tensor p = result.get(objective_output(objective, "prediction")),
                   y = result.get(objective_output(objective, "target"));
  // Compared value by value: [N] against [N, 1] must not broadcast to [N, N].
  if (p.numel() != y.numel())
    throw Error("objective '" + objective.name + "': prediction '" + objective.tensor("prediction") + "' holds " +
                std::to_string(p.numel()) + " values, target '" + objective.tensor("target") + "' " +
                std::to_string(y.numel()));
  return (p.reshape({-1}) - y.reshape({-1})).pow(2).mean();
}

at::Tensor class_logits(const ObjectiveSpec& objective, const NamedTensors& result) {
  const at::Tensor l = result.get(objective_output(objective, "logits"));
  if (l.dim() != 2 || l.size(1) != objective.classes)
    throw Error("objective '" + objective.name + "': logits '" + objective.tensor("logits") + "' must be [N, " +
                std::to_string(objective.classes) + "] (one value per class), not " +
                std::to_string(l.numel() / std::max<int64_t>(l.dim() > 0 ? l.size(0) : 1, 1)) + " values per event");
  return l;
}

std::vector<Stage*> EconTPipeline::stages() const { return impl_->graph.stages(); }

PipelineResult EconTPipeline::forward(const at::Tensor& calq_in) { return forward(calq_in, true); }

PipelineResult EconTPipeline::costs() const {
  // Every stage's terms; EBOPs add up over the firmware stages.
  PipelineResult r;
  torch::Tensor ebops;
  for (Stage* s : impl_->graph.stages())
    for (const auto& kv : s->costs().named) {
      if (kv.first == "ebops") {
        ebops = ebops.defined() ? ebops + kv.second : kv.second;
        r.set(s->name() + "_ebops", kv.second);
      } else if (kv.first == "lut" || kv.first == "ff" || kv.first == "dsp" || kv.first == "latency_cycles") {
        r.set(s->name() + "_" + kv.first, kv.second);
      } else {
        r.set(kv.first, kv.second);
        // A generic link_budget's links are what the trainer's "elinks" budget counts.
        if (kv.first == "links" && s == impl_->link) r.set("elinks", kv.second);
      }
    }
  if (ebops.defined()) r.set("ebops", ebops);
  return r;
}

PipelineResult EconTPipeline::forward(const at::Tensor& calq_in, bool with_costs) {
  NamedTensors flow;
  flow.set(impl_->graph.spec().input, checked_input(impl_->graph.spec(), calq_in));
  impl_->graph.forward(flow);
  PipelineResult r;
  r.set("target", flow.get(impl_->target));
  r.set("reconstruction", flow.get(impl_->reconstruction));
  r.set("latent", flow.get(impl_->encoder->output_name()));
  if (!impl_->logits.empty()) r.set("logits", flow.get(impl_->logits));
  for (const ObjectiveSpec& o : impl_->graph.spec().objectives)
    for (const auto& role : o.tensors) r.set(objective_output(o, role.first), flow.get(role.second));
  if (with_costs)
    for (const auto& kv : costs().named) r.set(kv.first, kv.second);
  return r;
}

void EconTPipeline::train(bool on) {
  for (Stage* s : impl_->graph.stages()) s->train(on);
}

void EconTPipeline::set_quantization(bool on) {
  for (Stage* stage : impl_->graph.stages())
    if (auto* q = dynamic_cast<QuantizedStackStage*>(stage)) q->stack->set_quantization(on);
}

void EconTPipeline::prune_encoder(double sparsity) { impl_->encoder->stack->prune_to(sparsity); }

std::vector<std::pair<std::string, at::Tensor>> EconTPipeline::named_parameters() const {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (Stage* s : impl_->graph.stages())
    for (const auto& p : s->named_parameters()) out.emplace_back(s->name() + "." + p.first, p.second);
  return out;
}

std::vector<std::pair<std::string, at::Tensor>> EconTPipeline::named_state() const {
  std::vector<std::pair<std::string, at::Tensor>> out = named_parameters();
  for (Stage* s : impl_->graph.stages())
    for (const auto& b : s->named_buffers()) out.emplace_back(s->name() + "." + b.first, b.second);
  return out;
}

void EconTPipeline::to(const std::string& device) {
  torch::Device d(torch::kCPU);
  try {
    d = torch::Device(device);
  } catch (const c10::Error&) {
    throw Error("pipeline: device '" + device + "' (expected cpu, cuda or cuda:N)");
  }
  if (d.is_cuda() && !torch::cuda::is_available())
    throw Error("pipeline: device '" + device + "' requested but this LibTorch sees no CUDA device");
  for (Stage* s : impl_->graph.stages()) s->to(device);
}

std::vector<at::Tensor> EconTPipeline::parameters() const {
  std::vector<at::Tensor> out;
  for (const auto& p : named_parameters()) out.push_back(p.second);
  return out;
}

std::vector<LayerDescription> EconTPipeline::encoder_description() const { return impl_->encoder->describe(); }

int EconTPipeline::cells() const { return static_cast<int>(impl_->graph.spec().input_cells()); }

bool EconTPipeline::hgcal() const { return impl_->graph.spec().cell_positions.empty(); }

GroundMetric EconTPipeline::metric() const {
  if (hgcal()) return trigger_cell_metric();
  const CellGeometry g = CellGeometry::from_positions(impl_->graph.spec().cell_positions, "graph.geometry");
  return g.metric(g.pitch());
}

EconTFrontEnd EconTPipeline::front_end() const {
  EconTFrontEnd f;
  f.cells = cells();
  f.normalization = impl_->frontend->normalization();
  f.threshold = impl_->frontend->threshold.detach().to(torch::kCPU).to(torch::kFloat).item<float>();
  const CellLayout* layout = impl_->encoder->layout();
  if (layout) {
    f.grid_to_cell = layout->grid_to_cell();
  } else {
    for (int64_t c = 0; c < f.cells; ++c) f.grid_to_cell.push_back(c);
  }
  return f;
}

namespace {

// A run's files name each other: each carries the run id, a hash of the
// options and of every tensor as saved. Loading recomputes it, so a file
// from another run, an edited pipeline.json or a half-replaced folder is
// refused by name instead of being silently mixed.
std::string content_id(const std::string& options_json, const std::vector<torch::Tensor>& tensors) {
  uint64_t h = fnv1a(options_json.data(), options_json.size());
  for (const torch::Tensor& t : tensors) {
    const torch::Tensor c = t.detach().to(torch::kCPU).contiguous();
    h = fnv1a(c.data_ptr(), static_cast<size_t>(c.numel()) * c.element_size(), h);
  }
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(h));
  return text;
}

}  // namespace

std::string EconTPipeline::description_json() const {
  if (!impl_->from_graph) return impl_->options.to_json();
  return nlohmann::json{{"graph", nlohmann::json::parse(impl_->graph.spec().json)}}.dump(2);
}

namespace {
// Stages kept in the float archive (decoder.pt): all but the quantized
// stacks, which have their own files. Keys are "<stage>.<tensor>", bare for
// the stage named "decoder" (the archive's first and only content once).
std::string archive_key(const Stage& s, const std::string& tensor) {
  return s.name() == "decoder" ? tensor : s.name() + "." + tensor;
}
}  // namespace

std::string EconTPipeline::run_id() const {
  // The quantized stacks, then the float stages' tensors with the front
  // ends last (the order of the first runs' ids, which must stay valid).
  std::vector<torch::Tensor> tensors;
  for (Stage* s : impl_->graph.stages())
    if (auto* q = dynamic_cast<QuantizedStackStage*>(s)) {
      for (const auto& p : q->stack->named_parameters()) tensors.push_back(p.value());
      for (const auto& b : q->stack->named_buffers()) tensors.push_back(b.value());
    }
  for (bool front_ends : {false, true})
    for (Stage* s : impl_->graph.stages())
      if (!dynamic_cast<QuantizedStackStage*>(s) && (dynamic_cast<FrontEndStage*>(s) != nullptr) == front_ends) {
        for (const auto& p : s->named_parameters()) tensors.push_back(p.second);
        for (const auto& b : s->named_buffers()) tensors.push_back(b.second);
      }
  return content_id(description_json(), tensors);
}

void EconTPipeline::save(const std::string& run_dir) const {
  // Never a run with NaN weights (predict would write NaN with exit 0).
  for (const auto& kv : named_state())
    if (!torch::isfinite(kv.second).all().item<bool>())
      throw Error(run_dir + ": not saved: '" + kv.first + "' has non-finite values");
  make_directories(run_dir);
  const std::string id = run_id();
  nlohmann::json options = nlohmann::json::parse(description_json());
  options["kind"] = "ddaq-pipeline-1";
  options["run_id"] = id;
  write_file_atomic(run_dir + "/pipeline.json", options.dump(2) + "\n");
  for (Stage* s : impl_->graph.stages())
    if (auto* q = dynamic_cast<QuantizedStackStage*>(s))
      save_quantized_stack(q->stack, run_dir + "/" + s->name() + ".qstack", {{"run_id", id}, {"part", s->name()}});
  const std::string path = run_dir + "/decoder.pt";
  std::ostringstream bytes;
  try {
    torch::serialize::OutputArchive archive;
    archive.write("kind", c10::IValue(std::string("ddaq-decoder-1")));
    archive.write("run_id", c10::IValue(id));
    for (Stage* s : impl_->graph.stages())
      if (!dynamic_cast<QuantizedStackStage*>(s)) {
        for (const auto& p : s->named_parameters()) archive.write(archive_key(*s, p.first), p.second.detach());
        for (const auto& b : s->named_buffers()) archive.write(archive_key(*s, b.first), b.second.detach());
      }
    archive.save_to(bytes);
  } catch (const c10::Error& e) {
    throw Error(path + ": cannot write (" + e.what_without_backtrace() + ")");
  }
  write_file_atomic(path, bytes.str());
}

EconTPipeline EconTPipeline::load(const std::string& run_dir) {
  const std::string json_path = run_dir + "/pipeline.json";
  Config c = Config::load(json_path);
  // The file's kind and run id (runs saved before they existed have neither
  // and load unchecked).
  std::string expected_id;
  {
    std::ifstream in(json_path);
    nlohmann::json j = nlohmann::json::parse(std::string(std::istreambuf_iterator<char>(in), {}), nullptr, false);
    if (j.is_object() && j.contains("kind")) {
      if (j["kind"] != "ddaq-pipeline-1")
        throw Error(json_path + ": kind " + j["kind"].dump() + " is not a ddaq pipeline (ddaq-pipeline-1)");
      expected_id = j.value("run_id", "");
      j.erase("kind");
      j.erase("run_id");
      c = Config::parse(j.dump(), json_path);
    }
  }
  EconTPipeline p =
      c.has("graph") ? from_graph(c.section("graph"), 1) : EconTPipeline(PipelineOptions::from_config(c), 1);
  if (c.has("graph")) c.reject_unknown({"graph"});
  auto check_id = [&](const std::string& file, const std::string& id) {
    if (!expected_id.empty() && id != expected_id)
      throw Error(file + ": belongs to another run (run id " + (id.empty() ? std::string("none") : id) + ", " +
                  json_path + " says " + expected_id + ")");
  };
  for (Stage* s : p.impl_->graph.stages()) {
    auto* q = dynamic_cast<QuantizedStackStage*>(s);
    if (!q) continue;
    const std::string file = run_dir + "/" + s->name() + ".qstack";
    std::map<std::string, std::string> labels;
    q->stack = load_quantized_stack(file, &labels);
    check_id(file, labels["run_id"]);
    if (labels.count("part") && labels["part"] != s->name())
      throw Error(file + ": is the " + labels["part"] + " of a run, not its " + s->name());
  }
  torch::serialize::InputArchive archive;
  const std::string path = run_dir + "/decoder.pt";
  if (::access(path.c_str(), R_OK) != 0) throw Error(path + ": cannot open (missing or unreadable)");
  torch::NoGradGuard no_grad;
  std::string decoder_id;
  try {
    archive.load_from(path);
    c10::IValue id;
    if (archive.try_read("run_id", id) && id.isString()) decoder_id = id.toStringRef();
    for (Stage* s : p.impl_->graph.stages()) {
      if (dynamic_cast<QuantizedStackStage*>(s)) continue;
      auto state = s->named_parameters();
      for (const auto& b : s->named_buffers()) state.push_back(b);
      for (auto& q : state) {
        torch::Tensor v;
        archive.read(archive_key(*s, q.first), v);
        if (!v.sizes().equals(q.second.sizes()))
          throw Error(path + ": '" + archive_key(*s, q.first) + "' has another shape than " + json_path + " gives");
        q.second.copy_(v);
      }
    }
  } catch (const Error&) {
    throw;
  } catch (const std::exception&) {
    throw Error(wrong_kind_message(path, "a run's decoder"));
  }
  check_id(path, decoder_id);
  // Everything as saved: the recomputed id covers the options too, so an
  // edit of pipeline.json (latent_bits, threshold, ...) is refused here.
  if (!expected_id.empty() && p.run_id() != expected_id)
    throw Error(json_path + ": changed after the run was saved (its options or tensors no longer give run id " +
                expected_id + "); restore it or train again");
  p.train(false);
  return p;
}

}  // namespace ddaq
