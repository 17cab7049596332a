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

#include "ddaq/core/layouts.h"
#include "ddaq/core/stages.h"
#include "ddaq/error.h"
#include "ddaq/files.h"
#include "ddaq/quant/layers.h"
#include "ddaq/surrogates/energy.h"
#include "ddaq/surrogates/fpga_resources.h"
#include "ddaq/surrogates/link_budget.h"

namespace ddaq {

PipelineOptions PipelineOptions::from_config(const Config& c) {
  c.reject_unknown({"layout", "conv_filters", "latent", "latent_bits", "latent_integer_bits", "learn_latent_bits",
                    "weight_bits", "learn_weight_bits", "input_bits", "learn_input_bits", "threshold", "learn_threshold",
                    "classifier_hidden", "learn_conv_filters", "learn_latent_gates", "per_latent_bits"});
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
      .per_latent_bits(c.boolean("per_latent_bits", o.per_latent_bits()));
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

// Removes the weakest unit of the hidden layer with the most units left
// (the last weighted layer makes the latents and is never pruned); false
// when no unit can go.
bool drop_weakest_hidden_unit(const QuantizedStack& encoder) {
  std::vector<std::shared_ptr<QLayerImpl>> hidden;
  for (const auto& l : encoder->layers())
    if (l->kept_units() > 0) hidden.push_back(l);
  if (!hidden.empty()) hidden.pop_back();
  std::shared_ptr<QLayerImpl> widest;
  for (const auto& l : hidden)
    if (!widest || l->kept_units() > widest->kept_units()) widest = l;
  return widest && widest->drop_weakest_unit();
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
            {"filters", o.conv_filters()},
            {"layout", o.layout()}},
           classifier}}};
  (void)layout;
  return g.dump(2);
}

struct EconTPipeline::Impl {
  PipelineOptions options;  // given, or read from the graph (graph_options)
  bool from_graph = false;  // built from a config's graph section (saved as such)
  Graph graph;
  FrontEndStage* frontend = nullptr;
  QuantizedStackStage *encoder = nullptr, *classifier = nullptr;
  Stage* decoder = nullptr;
  std::string target, reconstruction;                                              // tensor names
  torch::Tensor pinned_latent_fractional;                                          // set by fit_latent_payload
  std::vector<std::pair<FixedPointQuantizer, torch::Tensor>> pinned_encoder_bits;  // set by fit_encoder_energy

  Impl(const PipelineOptions& o, const GraphSpec& spec, bool from_graph_section, uint64_t seed)
      : options(o), from_graph(from_graph_section), graph(spec, seed) {
    find_roles();
  }
  // The stages the trainer and evaluation address by role.
  void find_roles() {
    const std::string at = graph.spec().source + ": graph: ";
    EconTLinkBudgetStage* link = nullptr;
    for (Stage* s : graph.stages()) {
      if (auto* f = dynamic_cast<FrontEndStage*>(s)) frontend = frontend ? frontend : f;
      if (auto* l = dynamic_cast<EconTLinkBudgetStage*>(s)) link = link ? link : l;
    }
    for (const StageSpec& s : graph.spec().stages)
      if (s.writes.count("reconstruction")) {
        decoder = graph.find(s.name);
        reconstruction = s.writes.at("reconstruction");
      }
    if (!frontend) throw Error(at + "needs a front_end stage (its target is what reconstructions are judged against)");
    for (const StageSpec& s : graph.spec().stages)
      if (s.name == frontend->name()) target = s.writes.at("target");
    if (!link) throw Error(at + "needs an econt_link_budget stage (it names the encoder whose latents are sent)");
    encoder = const_cast<QuantizedStackStage*>(&link->encoder());
    if (!decoder) throw Error(at + "needs a stage that writes a reconstruction (e.g. econt_decoder)");
    for (Stage* s : graph.stages())
      if (auto* q = dynamic_cast<QuantizedStackStage*>(s))
        if (q != encoder && q->input_name() == encoder->output_name() &&
            q->stack->output_shape() == std::vector<int64_t>{1})
          classifier = q;
    if (!classifier)
      throw Error(at + "needs a classifier: a quantized_stack that reads '" + encoder->output_name() +
                  "' and writes one value per event");
  }
};

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
      if (l.type == "econt_link_budget" && l.options.string("encoder", "encoder") == s.name) is_encoder = true;
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
  if (root.has("graph")) return from_graph(root.section("graph"), seed);
  if (!root.has("pipeline")) throw Error(root.source() + ": no 'graph' or 'pipeline' section to build");
  return EconTPipeline(PipelineOptions::from_config(root.section("pipeline")), seed);
}

EconTPipeline::~EconTPipeline() = default;
EconTPipeline::EconTPipeline(EconTPipeline&&) noexcept = default;

const PipelineOptions& EconTPipeline::options() const { return impl_->options; }

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
      }
    }
  if (ebops.defined()) r.set("ebops", ebops);
  return r;
}

namespace {
// Charges of the graph's input shape, as float, or one line saying why not.
torch::Tensor checked_input(const GraphSpec& spec, const at::Tensor& x) {
  std::vector<int64_t> want{x.dim() > 0 ? x.size(0) : 0};
  want.insert(want.end(), spec.input_shape.begin(), spec.input_shape.end());
  if (x.sizes().vec() != want) {
    std::string shape = "[N";
    for (int64_t d : spec.input_shape) shape += ", " + std::to_string(d);
    throw Error("pipeline: expected charges of shape " + shape + "]");
  }
  return x.to(torch::kFloat);
}
}  // namespace

PipelineResult EconTPipeline::forward(const at::Tensor& calq_in, bool with_costs) {
  NamedTensors flow;
  flow.set(impl_->graph.spec().input, checked_input(impl_->graph.spec(), calq_in));
  impl_->graph.forward(flow);
  PipelineResult r;
  r.set("target", flow.get(impl_->target));
  r.set("reconstruction", flow.get(impl_->reconstruction));
  r.set("latent", flow.get(impl_->encoder->output_name()));
  r.set("logits", flow.get(impl_->classifier->output_name()));
  if (with_costs)
    for (const auto& kv : costs().named) r.set(kv.first, kv.second);
  return r;
}

void EconTPipeline::train(bool on) {
  for (Stage* s : impl_->graph.stages()) s->train(on);
}

void EconTPipeline::set_quantization(bool on) {
  impl_->encoder->stack->set_quantization(on);
  impl_->classifier->stack->set_quantization(on);
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

EconTFrontEnd EconTPipeline::front_end() const {
  EconTFrontEnd f;
  f.threshold = impl_->frontend->threshold.detach().to(torch::kCPU).to(torch::kFloat).item<float>();
  const CellLayout* layout = impl_->encoder->layout();
  if (layout) {
    f.grid_to_cell = layout->grid_to_cell();
  } else {
    for (int64_t c = 0; c < kCellsPerWafer; ++c) f.grid_to_cell.push_back(c);
  }
  return f;
}

int EconTPipeline::latent_bits() const {
  return impl_->encoder->stack->layers().back()->output_quantizer()->export_type().width;
}

namespace {
// Each latent's integer width as export rounds it (integer bits of the
// range + rounded fractional bits; the fixed width without learned bits),
// sent or not: [n] doubles on the CPU.
torch::Tensor latent_width_per_unit(const FixedPointQuantizer& q, int64_t n, int fixed_width) {
  if (!q->options().learnable()) return torch::full({n}, static_cast<double>(fixed_width), torch::kDouble);
  return q->bits().detach().to(torch::kCPU, torch::kDouble).round().clamp_min(0).expand({1, n}).flatten().contiguous();
}
}  // namespace

std::vector<int> EconTPipeline::latent_widths() const {
  const auto q = impl_->encoder->stack->layers().back()->output_quantizer();
  const int64_t n = impl_->options.latent();
  std::vector<int> out(static_cast<size_t>(n));
  const torch::Tensor w = latent_width_per_unit(q, n, latent_bits());
  for (int64_t k = 0; k < n; ++k) out[k] = static_cast<int>(w.data_ptr<double>()[k]);
  // Latents whose gates are closed are not sent.
  std::vector<char> sent(static_cast<size_t>(n), 0);
  for (int64_t k : transmitted_latents()) sent[static_cast<size_t>(k)] = 1;
  for (int64_t k = 0; k < n; ++k)
    if (!sent[static_cast<size_t>(k)]) out[static_cast<size_t>(k)] = 0;
  return out;
}

std::vector<int64_t> EconTPipeline::transmitted_latents() const {
  std::vector<int64_t> kept;
  if (impl_->options.learn_latent_gates())
    kept = last_weighted_layer(impl_->encoder->stack)->kept_unit_indices();
  else
    for (int64_t k = 0; k < impl_->options.latent(); ++k) kept.push_back(k);
  return kept;
}

int64_t EconTPipeline::payload_bits() const {
  int64_t sum = 0;
  for (int w : latent_widths()) sum += w;
  return sum;
}

void EconTPipeline::fit_latent_payload(int64_t max_payload_bits) {
  auto q = impl_->encoder->stack->layers().back()->output_quantizer();
  const bool gates = impl_->options.learn_latent_gates();
  if (!q->options().learnable() && !gates)
    throw Error("pipeline: the latent bits are fixed and there are no latent gates; nothing to fit to a payload");
  int64_t n = impl_->options.latent();
  if (gates) last_weighted_layer(impl_->encoder->stack)->set_min_kept_units(1);  // the projection decides now
  if (gates) {
    // The latents the gates keep; then the weakest go while even the
    // narrowest width (1 bit learned, else the fixed width) does not fit.
    // How many latents: with a fixed width, as many as fit (more latents
    // inside the budget cost nothing); with learned bits, those the gates
    // keep open, within [budget / 16, budget] (widths 1..16). The strongest
    // gates (largest logits) are the ones kept.
    const auto layer = last_weighted_layer(impl_->encoder->stack);
    const int64_t budget = std::max<int64_t>(1, max_payload_bits);
    const int64_t k = q->options().learnable()
                          ? std::min(budget, std::max((budget + 15) / 16, layer->kept_units()))
                          : budget / latent_bits();
    layer->keep_strongest_units(k);
    n = layer->kept_units();
    if (!q->options().learnable()) return;
  }
  if (q->options().granularity() != Granularity::PerTensor) {
    fit_latent_widths(max_payload_bits);
    return;
  }
  // One width for all latents (the exported latent type): the widest that
  // fits. Also upwards: finer latent steps cost no e-links inside the budget
  // (the Lagrangian's relaxation may have stopped below the capacity).
  const int64_t width = std::min<int64_t>(16, std::max<int64_t>(0, max_payload_bits) / n);
  const double integer = q->integer_bits().detach().to(torch::kCPU, torch::kDouble).max().item<double>();
  const torch::Tensor f = torch::full(q->bits().sizes(), static_cast<double>(width) - integer, torch::kDouble);
  q->set_fractional_bits(f, /*freeze_range=*/true);
  impl_->pinned_latent_fractional = f;
}

void EconTPipeline::fit_latent_widths(int64_t max_payload_bits) {
  auto q = impl_->encoder->stack->layers().back()->output_quantizer();
  const auto layer = last_weighted_layer(impl_->encoder->stack);
  const QuantizerOptions& o = q->options();
  const double integer = q->integer_bits().detach().to(torch::kCPU, torch::kDouble).max().item<double>();
  // Widths a sent latent may take: fractional bits within the limits, at
  // least 1 bit, at most 16.
  const double lo = std::max(1.0, integer + o.min_fractional());
  const double hi = std::min(16.0, integer + o.max_fractional());
  const torch::Tensor learned = (integer + q->learned_fractional_bits().to(torch::kCPU, torch::kDouble)).flatten();
  // The learned widths, all shifted by one offset d and rounded, keep their
  // differences; the smallest d whose widths fit is taken (d < 0 widens:
  // spare capacity costs no e-link), then bits left over go one each by
  // largest remainder.
  auto widths = [&](double d, const std::vector<int64_t>& sent) {
    std::vector<double> w(static_cast<size_t>(learned.numel()), 0.0);
    for (int64_t k : sent) w[k] = std::min(hi, std::max(lo, std::round(learned[k].item<double>() - d)));
    return w;
  };
  auto total = [](const std::vector<double>& w) { return std::accumulate(w.begin(), w.end(), 0.0); };
  std::vector<int64_t> sent = transmitted_latents();
  const double budget = static_cast<double>(std::max<int64_t>(0, max_payload_bits));
  while (total(widths(1e9, sent)) > budget) {  // even the narrowest widths do not fit
    if (!impl_->options.learn_latent_gates() || sent.size() <= 1)
      throw Error("pipeline: " + std::to_string(sent.size()) + " latents of at least " +
                  std::to_string(static_cast<int>(lo)) + " bits do not fit a payload of " +
                  std::to_string(max_payload_bits) + " bits");
    layer->keep_strongest_units(static_cast<int64_t>(sent.size()) - 1);
    sent = transmitted_latents();
  }
  double a = -64.0, b = 64.0;  // total(widths(b)) fits; bisect to the smallest fitting offset
  for (int it = 0; it < 60; ++it) {
    const double m = 0.5 * (a + b);
    (total(widths(m, sent)) <= budget ? b : a) = m;
  }
  std::vector<double> w = widths(b, sent);
  // Bits left over (rounding ties): one more to the latents whose learned
  // widths were cut the most (largest remainder), while they fit.
  std::vector<int64_t> order = sent;
  std::stable_sort(order.begin(), order.end(), [&](int64_t i, int64_t j) {
    return learned[i].item<double>() - b - w[i] > learned[j].item<double>() - b - w[j];
  });
  double used = total(w);
  for (int64_t k : order)
    if (used + 1 <= budget && w[k] + 1 <= hi) {
      w[k] += 1;
      used += 1;
    }
  torch::Tensor f = torch::full({learned.numel()}, static_cast<double>(o.min_fractional()), torch::kDouble);
  for (int64_t k : sent) f[k] = w[k] - integer;
  f = f.view(q->bits().sizes());
  q->set_fractional_bits(f, /*freeze_range=*/true);
  impl_->pinned_latent_fractional = f;
}

void EconTPipeline::pin_latent_bits() {
  if (!impl_->pinned_latent_fractional.defined()) return;
  impl_->encoder->stack->layers().back()->output_quantizer()->set_fractional_bits(impl_->pinned_latent_fractional, true);
}

int EconTPipeline::fit_encoder_resources(const std::map<std::string, double>& limits) {
  for (const auto& l : impl_->encoder->stack->layers()) {
    l->harden_gates();  // keeps the floor's units (keep_units_that_fit) too
    l->set_min_kept_units(1);
  }
  const AnalyticResourceModel& m = AnalyticResourceModel::shipped();
  auto over = [&] {
    const ResourceValues r = m.predict(design_from(encoder_description(), 1));
    for (const auto& kv : limits) {
      if (kv.first == "lut" && r[static_cast<size_t>(ResourceTarget::LUT)] > kv.second) return true;
      if (kv.first == "ff" && r[static_cast<size_t>(ResourceTarget::FF)] > kv.second) return true;
      if (kv.first == "dsp" && r[static_cast<size_t>(ResourceTarget::DSP)] > kv.second) return true;
    }
    return false;
  };
  int removed = 0;
  if (limits.count("dsp")) {
    // DSPs come from layers whose weights have 9 bits or more: learned
    // weight widths that wide go to 8 bits, layer by layer, while the limit
    // is exceeded; then every learned width is frozen and pinned (as the
    // energy projection does), so the fine-tune cannot widen them again.
    torch::NoGradGuard no_grad;
    while (over()) {
      FixedPointQuantizer widest{nullptr};
      for (const auto& l : impl_->encoder->stack->layers()) {
        const FixedPointQuantizer w = l->weight_quantizer();
        if (w && w->options().learnable() && w->export_type().width >= 9 &&
            (!widest || w->export_type().width > widest->export_type().width))
          widest = w;
      }
      if (!widest) break;
      // The exported type takes the largest integer and the largest
      // fractional bits over the groups: fractional bits <= 8 - max integer.
      const torch::Tensor f = (widest->bits() - widest->integer_bits()).round();
      widest->set_fractional_bits(torch::min(f, 8.0 - widest->integer_bits().max()), /*freeze_range=*/true);
      ++removed;
    }
    fit_encoder_energy({});  // freezes and pins every learned width
  }
  while (over() && drop_weakest_hidden_unit(impl_->encoder->stack)) ++removed;
  return removed;
}

int EconTPipeline::fit_encoder_energy(const std::map<std::string, double>& limits) {
  torch::NoGradGuard no_grad;
  std::vector<FixedPointQuantizer> learned;
  const auto layers = impl_->encoder->stack->layers();
  if (layers.front()->output_quantizer()->options().learnable()) learned.push_back(layers.front()->output_quantizer());
  for (const auto& l : layers) {
    const FixedPointQuantizer w = l->weight_quantizer();
    if (w && w->options().learnable()) learned.push_back(w);
  }
  auto over = [&] {
    const ModelDescription d = encoder_description();
    double ebops = 0;
    for (const auto& l : d) ebops += l.ebops;
    const double power = estimate_energy(d).power_mw;
    for (const auto& kv : limits)
      if ((kv.first == "ebops" && ebops > kv.second) || (kv.first == "power_mw" && power > kv.second)) return true;
    return false;
  };
  // Rounded fractional bits as the forward pass uses them.
  auto fractional = [](const FixedPointQuantizer& q) { return (q->bits() - q->integer_bits()).round(); };
  // No limits: only the pins of the current widths (a resumed run). Nothing
  // is described then: describing a stack observes its weights, which would
  // move ranges the run being continued had frozen.
  for (auto q : learned)
    if (limits.empty()) q->set_range_frozen(true);
  int removed = 0;
  // Per quantizer, its elements that can still lose a fractional bit.
  auto narrowable = [&](const FixedPointQuantizer& q) {
    const double narrowest = q->options().type().is_signed ? 2 : 1;
    return fractional(q) > narrowest - q->integer_bits();
  };
  while (!limits.empty() && over()) {
    // The quantizer whose exported type is widest (the energy model charges
    // that width on every multiply and accumulator).
    FixedPointQuantizer widest{nullptr};
    int widest_bits = 0;
    for (const auto& q : learned) {
      const int w = q->export_type().width;
      if (narrowable(q).any().item<bool>() && w > widest_bits) widest = q, widest_bits = w;
    }
    if (!widest) break;
    // Only its elements with the most fractional bits lose one (all of them
    // for one shared width): the exported width is the largest integer bits
    // plus the largest fractional bits, so this narrows the type by a bit
    // at the cost of the fewest weights. Cutting every element instead
    // zeroed most weights of a per-weight layer whose type one outlier made
    // 22 bits wide (measured: a real-data power budget at half died at the projection).
    const torch::Tensor fr = fractional(widest), can = narrowable(widest);
    const torch::Tensor finest = can & (fr >= fr.masked_select(can).max());
    widest->set_fractional_bits(torch::where(finest, fr - 1, fr), /*freeze_range=*/true);
    ++removed;
  }
  // Widths alone did not reach the limit (fixed weights, a low limit):
  // hidden units go too, the weakest of the layer with the most (as in
  // fit_encoder_resources; the latent layer is never pruned). Units only
  // after widths: power is not monotone in the widths (narrower widths
  // change ranges and zero weights), so no cheaper order is known to work.
  while (!limits.empty() && over() && drop_weakest_hidden_unit(impl_->encoder->stack)) ++removed;
  impl_->pinned_encoder_bits.clear();
  for (auto q : learned) {
    const torch::Tensor f = fractional(q).detach().clone();
    q->set_fractional_bits(f, /*freeze_range=*/true);
    impl_->pinned_encoder_bits.emplace_back(q, f);
  }
  return removed;
}

void EconTPipeline::pin_encoder_bits() {
  for (auto& qf : impl_->pinned_encoder_bits) qf.first->set_fractional_bits(qf.second, true);
}

int64_t EconTPipeline::raise_silent_units(const at::Tensor& calq, const std::vector<std::string>& frozen) {
  auto is_frozen = [&](const std::string& stage) {
    return std::find(frozen.begin(), frozen.end(), stage) != frozen.end();
  };
  const torch::Tensor x = checked_input(impl_->graph.spec(), calq);
  torch::NoGradGuard no_grad;
  // The stages before the encoder, as exported (hard zero suppression).
  NamedTensors flow;
  flow.set(impl_->graph.spec().input, x);
  for (Stage* s : impl_->graph.stages()) {
    if (s == impl_->encoder) break;
    const bool was = dynamic_cast<ModuleStage*>(s) ? dynamic_cast<ModuleStage*>(s)->training() : true;
    s->train(false);
    s->forward(flow);
    s->train(was);
  }
  const torch::Tensor grid = impl_->encoder->stack_input(flow.get(impl_->encoder->input_name()));
  int64_t raised = is_frozen(impl_->encoder->name()) ? 0 : impl_->encoder->stack->raise_silent_units(grid);
  const bool enc_was = impl_->encoder->stack->is_training();
  impl_->encoder->stack->eval();
  const torch::Tensor latent = impl_->encoder->stack->forward(grid).reshape({calq.size(0), -1});
  impl_->encoder->stack->train(enc_was);
  if (!is_frozen(impl_->classifier->name())) raised += impl_->classifier->stack->raise_silent_units(latent);
  return raised;
}

void EconTPipeline::keep_latents_that_fit(int64_t max_payload_bits) {
  if (!impl_->options.learn_latent_gates()) return;
  const auto q = impl_->encoder->stack->layers().back()->output_quantizer();
  const auto layer = last_weighted_layer(impl_->encoder->stack);
  const int64_t n = impl_->options.latent();
  // Current integer widths (as the exact payload counts them), in the order
  // of the gate logits, strongest first: the longest prefix that fits.
  const torch::Tensor width = latent_width_per_unit(q, n, latent_bits());
  const torch::Tensor logits = layer->named_parameters(false)["gate_logits"].detach().to(torch::kCPU);
  const torch::Tensor order = std::get<1>(logits.sort(0, /*descending=*/true));
  const torch::Tensor used = width.index_select(0, order).cumsum(0);
  const int64_t fit = (used <= static_cast<double>(max_payload_bits)).sum().item<int64_t>();
  layer->set_min_kept_units(fit);
}

void EconTPipeline::keep_units_that_fit(const std::map<std::string, double>& limits, double fixed_energy_pj) {
  torch::NoGradGuard no_grad;
  std::vector<std::shared_ptr<QLayerImpl>> weighted;
  for (const auto& l : impl_->encoder->stack->layers())
    if (l->unit_mask().defined()) weighted.push_back(l);
  const auto shapes = impl_->encoder->stack->resource_shapes();
  const size_t n = shapes.size();
  if (weighted.size() != n || n < 2) return;
  // The design with every hidden unit the mask keeps and the latents sent
  // now, as dense-equivalent layers (inputs per unit from the shapes).
  std::vector<double> per_unit(n), units(n), count(n), weight_bits(n), act_bits(n);
  double share = 1.0;
  for (size_t i = 0; i < n; ++i) {
    units[i] = static_cast<double>(weighted[i]->unit_mask().numel());
    per_unit[i] = shapes[i].in.item<double>() / share;
    share = shapes[i].kept_share.item<double>();
    weight_bits[i] = shapes[i].weight_bits.item<double>();
    act_bits[i] = shapes[i].act_bits.item<double>();
    count[i] = i + 1 < n ? units[i] : shapes[i].out.item<double>();
  }
  // Energy budgets: each layer's relaxed EBOPs per open unit at the current
  // widths; a layer's EBOPs scale with its units and its kept inputs (as
  // the exact description counts them).
  const bool energy = limits.count("ebops") + limits.count("power_mw") > 0;
  std::vector<double> ebops_per_unit(n, 0.0);
  if (energy) {
    torch::Tensor bits;
    size_t i = 0;
    for (const auto& l : impl_->encoder->stack->layers()) {
      if (bits.defined() && l->unit_mask().defined() && i < n)
        ebops_per_unit[i++] = l->ebops(bits).item<double>() / std::max(1e-6, l->unit_mask().sum().item<double>());
      bits = l->output_quantizer()->bits();
    }
  }
  auto ebops_of = [&] {
    double ebops = 0;
    for (size_t i = 0; i < n; ++i) ebops += ebops_per_unit[i] * count[i] * (i > 0 ? count[i - 1] / units[i - 1] : 1.0);
    return ebops;
  };
  const double full_ebops = std::max(1e-9, ebops_of());
  const AnalyticResourceModel& m = AnalyticResourceModel::shipped();
  auto over = [&] {
    if (energy) {
      const double ebops = ebops_of();
      // The rest of the estimate (mostly one add per multiply) shrinks with
      // the multiplies: kept at the full design's value it was so
      // conservative that the floor let the gates collapse anyway.
      const EnergyModel e;
      const double power =
          (ebops * e.mult_pj_per_bit_product + fixed_energy_pj * ebops / full_ebops) * (e.inference_rate_hz * 1e-9);
      if ((limits.count("ebops") && ebops > limits.at("ebops")) ||
          (limits.count("power_mw") && power > limits.at("power_mw")))
        return true;
    }
    if (!limits.count("lut") && !limits.count("ff")) return false;
    DesignSpec d;
    for (size_t i = 0; i < n; ++i) {
      const double in = per_unit[i] * (i > 0 ? count[i - 1] / units[i - 1] : 1.0);
      d.layers.push_back({static_cast<int64_t>(std::llround(in)), static_cast<int64_t>(count[i]), weight_bits[i],
                          act_bits[i], 1});
    }
    const ResourceValues r = m.predict(d);
    return (limits.count("lut") && r[static_cast<size_t>(ResourceTarget::LUT)] > limits.at("lut")) ||
           (limits.count("ff") && r[static_cast<size_t>(ResourceTarget::FF)] > limits.at("ff"));
  };
  // The projection's order: a unit of the widest hidden layer at a time.
  while (over()) {
    size_t widest = n;
    for (size_t i = 0; i + 1 < n; ++i)
      if (count[i] > 1 && (widest == n || count[i] > count[widest])) widest = i;
    if (widest == n) break;
    count[widest] -= 1;
  }
  for (size_t i = 0; i + 1 < n; ++i) weighted[i]->set_min_kept_units(static_cast<int64_t>(count[i]));
}

void EconTPipeline::clamp_bits_to_limits() {
  for (const QuantizedStackStage* s : {impl_->encoder, impl_->classifier})
    for (const auto& m : s->stack->modules())
      if (const auto q = std::dynamic_pointer_cast<FixedPointQuantizerImpl>(m)) q->clamp_to_limits();
}

void EconTPipeline::pin_encoder_gates() {
  for (const auto& l : impl_->encoder->stack->layers()) l->harden_gates();
}

int EconTPipeline::elinks() const { return AutoencoderFrame().elinks_for_payload(payload_bits()); }

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
