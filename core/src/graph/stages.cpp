// The built-in stage types (stages.h), each registered by one line.
#include "ddaq/core/stages.h"

#include <torch/torch.h>

#include "ddaq/error.h"
#include "ddaq/surrogates/fpga_resources.h"
#include "ddaq/surrogates/link_budget.h"

namespace ddaq {

// Referenced by the registry, so this file's registrations are linked
// wherever the registry is.
int ddaq_builtin_stages_anchor = 0;

std::vector<std::pair<std::string, at::Tensor>> ModuleStage::named_parameters() const {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const auto& p : module().named_parameters()) out.emplace_back(p.key(), p.value());
  return out;
}

std::vector<std::pair<std::string, at::Tensor>> ModuleStage::named_buffers() const {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const auto& b : module().named_buffers()) out.emplace_back(b.key(), b.value());
  return out;
}

void ModuleStage::train(bool on) {
  training_ = on;
  module().train(on);
}

void ModuleStage::to(const std::string& device) { module().to(torch::Device(device)); }

namespace {

// Zero suppression with a learnable threshold (CALQ): a sigmoid gate of
// width kGate in training, the exact comparison in evaluation.
constexpr double kGate = 0.5;

// 2^floor(log2(max(sum, 1))) per wafer, exactly: the sum in float64 (exact
// for integer CALQ, whatever the summation order) and floor(log2) from the
// binary exponent (frexp), not from a rounded log2. The emulator library
// (export.h) computes the same in C.
torch::Tensor econt_normalization_scale(const torch::Tensor& kept) {
  const torch::Tensor sum = kept.to(torch::kDouble).sum(1, true).clamp_min(1.0);
  const torch::Tensor exponent = std::get<1>(torch::frexp(sum));  // sum = m * 2^e, m in [0.5, 1)
  return torch::ldexp(torch::ones_like(sum), exponent - 1).to(kept.scalar_type());
}

std::shared_ptr<CellLayout> layout_option(const Config& c, const std::string& key, bool required, const Graph& built) {
  const std::string at = c.source() + ": " + c.where() + "." + key;
  if (!c.has(key)) {
    if (required) throw Error(at + ": required (\"8x8\", \"4x4x3\" or \"geometry\")");
    return nullptr;
  }
  const std::string name = c.string(key, "");
  if (name == "geometry") {
    // The graph's own cells on a square grid (GraphSpec::cell_positions).
    if (built.spec().cell_positions.empty())
      throw Error(at + ": \"geometry\" needs the graph's geometry (HGCAL's cells: \"8x8\" or \"4x4x3\")");
    try {
      return std::make_shared<CellLayout>(CellLayout::from_positions(built.spec().cell_positions));
    } catch (const Error& e) {
      throw Error(at + ": " + e.what());
    }
  }
  if (name != "8x8" && name != "4x4x3")
    throw Error(at + ": '" + name + "' (expected \"8x8\", \"4x4x3\" or \"geometry\")");
  if (!built.spec().cell_positions.empty())
    throw Error(at + ": '" + name + "' is HGCAL's wafer layout; this graph has its own geometry (use \"geometry\")");
  return std::make_shared<CellLayout>(CellLayout::by_name(name));
}

// A quantizer from {bits, integer_bits, signed, rounding, overflow,
// learnable, granularity, shared_integer_bits, min_fractional,
// max_fractional}; `fallback` gives the defaults of its role.
QuantizerOptions quantizer_option(const Config& parent, const std::string& key, const QuantizerOptions& fallback) {
  if (!parent.has(key)) return fallback;
  const Config c = parent.section(key);
  c.reject_unknown({"bits", "integer_bits", "signed", "rounding", "overflow", "learnable", "granularity",
                    "shared_integer_bits", "min_fractional", "max_fractional"});
  const FixedPointType& d = fallback.type();
  auto where = [&](const std::string& k) { return c.source() + ": " + c.where() + "." + k; };
  Rounding rounding = d.rounding;
  Overflow overflow = d.overflow;
  try {
    if (c.has("rounding")) rounding = rounding_from_string(c.string("rounding", ""));
  } catch (const Error& e) {
    throw Error(where("rounding") + ": " + e.what());
  }
  try {
    if (c.has("overflow")) overflow = overflow_from_string(c.string("overflow", ""));
  } catch (const Error& e) {
    throw Error(where("overflow") + ": " + e.what());
  }
  const int bits = static_cast<int>(c.integer("bits", d.width, 1, 32));
  const int integer_bits = static_cast<int>(c.integer("integer_bits", d.integer, -16, 32));
  QuantizerOptions q(FixedPointType(bits, integer_bits, c.boolean("signed", d.is_signed), rounding, overflow));
  q.learnable(c.boolean("learnable", fallback.learnable()));
  const std::string g = c.string("granularity", fallback.granularity() == Granularity::PerTensor    ? "tensor"
                                                : fallback.granularity() == Granularity::PerChannel ? "channel"
                                                                                                    : "element");
  if (g == "tensor")
    q.granularity(Granularity::PerTensor);
  else if (g == "channel")
    q.granularity(Granularity::PerChannel);
  else if (g == "element")
    q.granularity(Granularity::PerElement);
  else
    throw Error(where("granularity") + ": '" + g + "' (expected \"tensor\", \"channel\" or \"element\")");
  q.shared_integer_bits(c.boolean("shared_integer_bits", fallback.shared_integer_bits()))
      .min_fractional(static_cast<int>(c.integer("min_fractional", fallback.min_fractional(), -64, 64)))
      .max_fractional(static_cast<int>(c.integer("max_fractional", fallback.max_fractional(), -64, 64)));
  return q;
}

// Values per event of `tensor` (the default input size of the stages that
// read it): an earlier quantized stack's outputs, else what the stages built
// so far make (Graph::probe_shape); 0 when none writes it.
int64_t stack_output_size(const Graph& built, const std::string& tensor) {
  int64_t size = 0;
  for (Stage* s : built.stages())
    if (const auto* q = dynamic_cast<QuantizedStackStage*>(s))
      if (q->output_name() == tensor) {
        size = 1;
        for (int64_t d : q->stack->output_shape()) size *= d;
      }
  if (size == 0) {
    // Any other stage's output: as a dry run of the stages so far makes it.
    const std::vector<int64_t> shape = built.probe_shape(tensor);
    if (!shape.empty()) {
      size = 1;
      for (int64_t d : shape) size *= d;
    }
  }
  return size;
}

const QuantizerOptions kWeightDefault(FixedPointType(6, 1, true, Rounding::RND_CONV, Overflow::SAT));
const QuantizerOptions kWideDefault(FixedPointType(16, 6, true, Rounding::TRN, Overflow::SAT));
const QuantizerOptions kActivationDefault(FixedPointType(8, 3, false, Rounding::TRN, Overflow::SAT));

QuantizedStack stack_from_options(const Config& c, const std::vector<int64_t>& input_shape) {
  QuantizedStack s(input_shape);
  if (!c.has("input")) throw Error(c.source() + ": " + c.where() + ".input: required (the input quantizer)");
  s->input(quantizer_option(c, "input", QuantizerOptions(FixedPointType(10, 3, false, Rounding::TRN, Overflow::SAT))));
  const std::vector<Config> layers = c.list("layers");
  if (layers.empty()) throw Error(c.source() + ": " + c.where() + ".layers: required (at least one layer)");
  for (const Config& l : layers) {
    const std::string type = l.string("type", "");
    auto where = [&](const std::string& k) { return l.source() + ": " + l.where() + "." + k; };
    try {
      if (type == "dense") {
        l.reject_unknown({"type", "units", "weight", "output", "bias", "gates", "straight_through"});
        if (!l.has("units")) throw Error(where("units") + ": required");
        const auto shape = s->output_shape();
        int64_t in = 1;
        for (int64_t d : shape) in *= d;
        s->dense(QLinearOptions(in, l.integer("units", 1, 1, 4096))
                     .bias(l.boolean("bias", true))
                     .weight(quantizer_option(l, "weight", kWeightDefault))
                     .output(quantizer_option(l, "output", kWideDefault))
                     .pruning(PruningOptions()
                                  .gates(l.boolean("gates", false))
                                  .straight_through(l.boolean("straight_through", false))));
      } else if (type == "conv2d" || type == "conv_transpose") {
        l.reject_unknown({"type", "filters", "kernel", "stride", "padding", "output_padding", "weight", "output",
                          "bias", "gates", "batchnorm"});
        const auto shape = s->output_shape();
        if (shape.size() != 3)
          throw Error(where("type") + ": " + type + " needs a [channels, height, width] input; the stack gives " +
                      std::to_string(shape.size()) + " dimensions here (set a layout or input_shape)");
        if (!l.has("filters") || !l.has("kernel")) throw Error(where("filters") + ": filters and kernel are required");
        s->conv(QConvOptions(shape[0], l.integer("filters", 1, 1, 4096), l.integer("kernel", 1, 1, 15))
                    .stride(l.integer("stride", 1, 1, 8))
                    .padding(l.integer("padding", 0, 0, 8))
                    .output_padding(l.integer("output_padding", 0, 0, 8))
                    .transposed(type == "conv_transpose")
                    .batchnorm(l.boolean("batchnorm", false))
                    .bias(l.boolean("bias", true))
                    .weight(quantizer_option(l, "weight", kWeightDefault))
                    .output(quantizer_option(l, "output", kWideDefault))
                    .pruning(PruningOptions().gates(l.boolean("gates", false))));
      } else if (type == "relu") {
        l.reject_unknown({"type", "output"});
        s->relu(quantizer_option(l, "output", kActivationDefault));
      } else {
        throw Error(where("type") + ": unknown layer type '" + type +
                    "' (expected \"dense\", \"conv2d\", \"conv_transpose\" or \"relu\")");
      }
    } catch (const Error& e) {
      const std::string what = e.what();
      if (what.rfind(l.source() + ": ", 0) == 0) throw;
      throw Error(where("type") + ": " + what);  // a layer's own check, named by its place
    }
  }
  return s;
}

}  // namespace

// ---------------------------------------------------------------- front_end

FrontEndStage::FrontEndStage(const StageSpec& spec, const Graph&)
    : ModuleStage(spec.name), holder_(std::make_shared<torch::nn::Module>()) {
  const Config& c = spec.options;
  const torch::Tensor t = torch::full({}, c.number("threshold", 0.0, 0.0, 1e6));
  threshold = c.boolean("learn_threshold", true) ? holder_->register_parameter("threshold", t)
                                                 : holder_->register_buffer("threshold", t);
  normalization_ = c.string("normalization", "econt");
  if (normalization_ != "econt" && normalization_ != "sum" && normalization_ != "none")
    throw Error(c.source() + ": " + c.where() + ".normalization: '" + normalization_ +
                "' (expected \"econt\", \"sum\" or \"none\")");
  charges_ = spec.read("charges");
  target_ = spec.write("target");
  normalized_ = spec.write("normalized");
}

void FrontEndStage::forward(NamedTensors& flow) {
  const torch::Tensor calq = flow.get(charges_);
  const torch::Tensor gate =
      training_ ? torch::sigmoid((calq - threshold) / kGate) : (calq > threshold).to(torch::kFloat);
  const torch::Tensor kept = calq * gate;
  const torch::Tensor sum = kept.sum(1, true);
  flow.set(target_, calq / calq.sum(1, true).clamp_min(1e-6));
  if (normalization_ == "econt")
    flow.set(normalized_, kept / econt_normalization_scale(kept.detach()));
  else if (normalization_ == "sum")
    flow.set(normalized_, kept / sum.detach().clamp_min(1e-6));
  else
    flow.set(normalized_, kept);
}

DDAQ_REGISTER_STAGE("front_end", FrontEndStage);

// ---------------------------------------------------------- quantized_stack

QuantizedStackStage::QuantizedStackStage(const StageSpec& spec, const Graph& built)
    : ModuleStage(spec.name), stack(nullptr), input_(spec.read("input")), output_(spec.write("output")) {
  const Config& c = spec.options;
  layout_ = layout_option(c, "layout", false, built);
  std::vector<int64_t> shape;
  if (layout_) {
    const auto g = layout_->grid_shape();
    shape = {g[0], g[1], g[2]};
    if (c.has("input_shape"))
      throw Error(c.source() + ": " + c.where() + ".input_shape: not with a layout (the layout's grid is the shape)");
  } else {
    // Default: the graph input's shape when the stack reads it, else required.
    const std::vector<int64_t> fallback =
        input_ == built.spec().input ? built.spec().input_shape : std::vector<int64_t>{};
    if (!c.has("input_shape") && fallback.empty()) {
      // The size of a stack's output it reads.
      if (const int64_t n = stack_output_size(built, input_)) shape = {n};
      if (shape.empty())
        throw Error(c.source() + ": " + c.where() + ".input_shape: required (the shape of '" + input_ +
                    "' per event is not known here)");
    } else {
      shape = c.integers("input_shape", fallback, 1, 1 << 20);
    }
  }
  stack = stack_from_options(c, shape);
}

torch::Tensor QuantizedStackStage::stack_input(const torch::Tensor& x) const {
  if (layout_) return layout_->to_grid(x);
  std::vector<int64_t> shape{x.size(0)};
  for (int64_t d : stack->input_shape()) shape.push_back(d);
  return x.reshape(shape);
}

void QuantizedStackStage::forward(NamedTensors& flow) {
  const torch::Tensor x = flow.get(input_);
  const torch::Tensor y = stack->forward(stack_input(x));
  // One value per event: a score [N] (the classifier's logits).
  flow.set(output_, y[0].numel() == 1 ? y.reshape({-1}) : y.reshape({x.size(0), -1}));
}

NamedTensors QuantizedStackStage::costs() const {
  NamedTensors c{{{"ebops", stack->ebops()}}};
  // Dense-equivalent layers at reuse factor 1 through the shipped model.
  std::vector<AnalyticResourceModel::LayerTensors> layers;
  const auto shapes = stack->resource_shapes();
  for (const auto& r : shapes) layers.push_back({&r.in, &r.out, &r.weight_bits, &r.act_bits, 1});
  const AnalyticResourceModel& m = AnalyticResourceModel::shipped();
  c.set("lut", m.predict_differentiable(layers, ResourceTarget::LUT).to(torch::kFloat));
  c.set("ff", m.predict_differentiable(layers, ResourceTarget::FF).to(torch::kFloat));
  c.set("dsp", m.predict_differentiable(layers, ResourceTarget::DSP).to(torch::kFloat));
  c.set("latency_cycles", m.predict_differentiable(layers, ResourceTarget::LatencyCycles).to(torch::kFloat));
  return c;
}

ModelDescription QuantizedStackStage::describe() const { return stack.ptr()->describe(); }

DDAQ_REGISTER_STAGE("quantized_stack", QuantizedStackStage);

std::shared_ptr<QLayerImpl> last_weighted_layer(const QuantizedStack& stack) {
  std::shared_ptr<QLayerImpl> last;
  for (const auto& l : stack->layers())
    if (l->unit_mask().defined()) last = l;  // weighted layers only
  return last;
}

torch::Tensor output_unit_mask(const QuantizedStack& stack) {
  const auto l = last_weighted_layer(stack);
  return l ? l->unit_mask() : torch::Tensor();
}

// -------------------------------------------------------------- link budgets

LinkBudgetStage::LinkBudgetStage(const StageSpec& spec, const Graph& built)
    : ModuleStage(spec.name), none_(std::make_shared<torch::nn::Module>()) {
  const Config& c = spec.options;
  const std::string name = c.string("encoder", "encoder");
  encoder_ = built.find_as<QuantizedStackStage>(name);
  if (!encoder_)
    throw Error(c.source() + ": " + c.where() + ".encoder: '" + name +
                "' is not a quantized_stack stage before this one");
  header_bits_ = static_cast<int>(c.integer("header_bits", 0, 0, 1 << 20));
  link_bits_ = static_cast<int>(c.integer("link_bits", 32, 1, 1 << 20));
  max_links_ = static_cast<int>(c.integer("max_links", 1000, 1, 1 << 20));
}

torch::Tensor LinkBudgetStage::payload() const {
  const auto latent_q = encoder_->stack->layers().back()->output_quantizer();
  // Width x the outputs sent (the last weighted layer's unit mask: all ones
  // without gates, 0/1 straight-through gates with them).
  const torch::Tensor sent = output_unit_mask(encoder_->stack);
  // One width per output: the sum of the sent outputs' widths.
  return latent_q->options().granularity() == Granularity::PerTensor ? latent_q->bits().mean() * sent.sum()
                                                                     : (latent_q->bits().flatten() * sent).sum();
}

NamedTensors LinkBudgetStage::costs() const {
  const torch::Tensor p = payload();
  return NamedTensors{{{"payload_bits", p}, {"links", (p + header_bits_) / static_cast<double>(link_bits_)}}};
}

int LinkBudgetStage::links_for_payload(int64_t payload_bits) const {
  const int64_t bits = payload_bits + header_bits_;
  const int64_t links = (bits + link_bits_ - 1) / link_bits_;
  if (links > max_links_)
    throw Error("link budget '" + name() + "': " + std::to_string(payload_bits) + " payload bits need " +
                std::to_string(links) + " links (max_links " + std::to_string(max_links_) + ")");
  return static_cast<int>(links);
}

int64_t LinkBudgetStage::payload_capacity(int links) const {
  return std::max<int64_t>(0, static_cast<int64_t>(std::min(links, max_links_)) * link_bits_ - header_bits_);
}

DDAQ_REGISTER_STAGE("link_budget", LinkBudgetStage);

NamedTensors EconTLinkBudgetStage::costs() const {
  const torch::Tensor p = payload();
  return NamedTensors{{{"payload_bits", p}, {"elinks", fractional_elinks(p)}}};
}

int EconTLinkBudgetStage::links_for_payload(int64_t payload_bits) const {
  return AutoencoderFrame().elinks_for_payload(payload_bits);
}

int64_t EconTLinkBudgetStage::payload_capacity(int links) const { return AutoencoderFrame().payload_capacity(links); }

DDAQ_REGISTER_STAGE("econt_link_budget", EconTLinkBudgetStage);

// ------------------------------------------------------------ econt_decoder

struct EconTDecoderStage::Net : torch::nn::Module {
  torch::nn::Linear hidden{nullptr};  // optional: latent -> units -> grid
  torch::nn::Linear dense{nullptr};
  torch::nn::ConvTranspose2d up{nullptr};
  torch::nn::Conv2d out{nullptr};
  std::vector<int64_t> hidden_shape;  // [F, h, w]
  Net(int64_t latent, int64_t filters, int64_t units, std::array<int64_t, 3> grid) {
    const int64_t h = (grid[1] + 1) / 2, w = (grid[2] + 1) / 2;
    hidden_shape = {filters, h, w};
    // Registered only when asked for: decoders saved without it keep their
    // parameter names and load unchanged.
    if (units > 0) hidden = register_module("hidden", torch::nn::Linear(latent, units));
    dense = register_module("dense", torch::nn::Linear(units > 0 ? units : latent, filters * h * w));
    up = register_module("up", torch::nn::ConvTranspose2d(torch::nn::ConvTranspose2dOptions(filters, filters, 3)
                                                              .stride(2)
                                                              .padding(1)
                                                              .output_padding(grid[1] % 2 == 0 ? 1 : 0)));
    // No bias: the softmax over the cells ignores a constant shift, so a bias
    // would get only rounding noise as gradient, which Adam turns into a
    // random walk (and data-parallel runs into spurious differences).
    out =
        register_module("out", torch::nn::Conv2d(torch::nn::Conv2dOptions(filters, grid[0], 3).padding(1).bias(false)));
  }
  torch::Tensor forward(const torch::Tensor& latent, const CellLayout& layout) {
    torch::Tensor h = hidden ? torch::relu(hidden->forward(latent)) : latent;
    h = torch::relu(dense->forward(h)).view({-1, hidden_shape[0], hidden_shape[1], hidden_shape[2]});
    h = torch::relu(up->forward(h));
    return torch::softmax(layout.to_cells(out->forward(h)), 1);
  }
};

EconTDecoderStage::EconTDecoderStage(const StageSpec& spec, const Graph& built)
    : ModuleStage(spec.name), latent_(spec.read("latent")), reconstruction_(spec.write("reconstruction")) {
  const Config& c = spec.options;
  layout_ = layout_option(c, "layout", true, built);
  // Default size: the quantized stack that writes what this decoder reads.
  const int64_t latent = c.integer("latent", stack_output_size(built, latent_), 1, 4096);
  if (latent < 1)
    throw Error(c.source() + ": " + c.where() + ".latent: required (no quantized_stack before it writes '" + latent_ +
                "')");
  net_ = std::make_shared<Net>(latent, c.integer("filters", 8, 1, 1024), c.integer("hidden", 0, 0, 4096),
                               layout_->grid_shape());
}

torch::nn::Module& EconTDecoderStage::module() const { return *net_; }

void EconTDecoderStage::forward(NamedTensors& flow) {
  flow.set(reconstruction_, net_->forward(flow.get(latent_), *layout_));
}

DDAQ_REGISTER_STAGE("econt_decoder", EconTDecoderStage);

// -------------------------------------------------------------- float_stack

struct FloatStackStage::Net : torch::nn::Module {
  // One entry per layer: its module (null for relu/reshape) and what it does.
  struct Layer {
    std::string type;
    std::shared_ptr<torch::nn::Module> module;
    std::vector<int64_t> shape;  // reshape target (without the batch)
  };
  std::vector<Layer> layers;
  torch::Tensor forward(torch::Tensor x) {
    for (const Layer& l : layers) {
      if (l.type == "relu")
        x = torch::relu(x);
      else if (l.type == "reshape") {
        std::vector<int64_t> s{x.size(0)};
        s.insert(s.end(), l.shape.begin(), l.shape.end());
        x = x.reshape(s);
      } else if (l.type == "dense")
        x = std::dynamic_pointer_cast<torch::nn::LinearImpl>(l.module)->forward(x.flatten(1));
      else if (l.type == "batchnorm")
        x = x.dim() == 2 ? std::dynamic_pointer_cast<torch::nn::BatchNorm1dImpl>(l.module)->forward(x)
                         : std::dynamic_pointer_cast<torch::nn::BatchNorm2dImpl>(l.module)->forward(x);
      else if (l.type == "conv2d")
        x = std::dynamic_pointer_cast<torch::nn::Conv2dImpl>(l.module)->forward(x);
      else
        x = std::dynamic_pointer_cast<torch::nn::ConvTranspose2dImpl>(l.module)->forward(x);
    }
    return x;
  }
};

FloatStackStage::FloatStackStage(const StageSpec& spec, const Graph& built)
    : ModuleStage(spec.name), net_(std::make_shared<Net>()), input_(spec.read("input")), output_(spec.write("output")) {
  const Config& c = spec.options;
  auto at = [&](const Config& k, const std::string& key) { return k.source() + ": " + k.where() + "." + key; };
  layout_ = layout_option(c, "layout", false, built);
  head_ = c.string("head", "none");
  if (head_ != "softmax" && head_ != "sigmoid" && head_ != "none")
    throw Error(at(c, "head") + ": '" + head_ + "' (expected \"softmax\", \"sigmoid\" or \"none\")");
  // The input's shape per event: given, the graph input's, or the size of a
  // stack's output it reads.
  std::vector<int64_t> shape;
  if (c.has("input_shape"))
    shape = c.integers("input_shape", {}, 1, 1 << 20);
  else if (input_ == built.spec().input)
    shape = built.spec().input_shape;
  else if (const int64_t n = stack_output_size(built, input_))
    shape = {n};
  if (shape.empty())
    throw Error(at(c, "input_shape") + ": required (the shape of '" + input_ + "' per event is not known here)");
  input_shape_ = shape;
  const std::vector<Config> layers = c.list("layers");
  if (layers.empty()) throw Error(at(c, "layers") + ": required (at least one layer)");
  torch::NoGradGuard no_grad;
  std::vector<int64_t> probe_shape{1};
  probe_shape.insert(probe_shape.end(), shape.begin(), shape.end());
  torch::Tensor probe = torch::zeros(probe_shape);
  for (size_t i = 0; i < layers.size(); ++i) {
    const Config& l = layers[i];
    Net::Layer layer;
    layer.type = l.string("type", "");
    const std::string name = layer.type + std::to_string(i);
    if (layer.type == "dense") {
      l.reject_unknown({"type", "units"});
      if (!l.has("units")) throw Error(at(l, "units") + ": required");
      layer.module = net_->register_module(
          name, torch::nn::Linear(probe.flatten(1).size(1), l.integer("units", 1, 1, 1 << 16)).ptr());
    } else if (layer.type == "conv2d" || layer.type == "conv_transpose") {
      l.reject_unknown({"type", "filters", "kernel", "stride", "padding", "output_padding"});
      if (probe.dim() != 4)
        throw Error(at(l, "type") + ": " + layer.type + " needs a [channels, height, width] input; it gets " +
                    std::to_string(probe.dim() - 1) + " dimensions here (add a reshape)");
      if (!l.has("filters") || !l.has("kernel")) throw Error(at(l, "filters") + ": filters and kernel are required");
      const int64_t in = probe.size(1), out = l.integer("filters", 1, 1, 4096), k = l.integer("kernel", 1, 1, 15);
      const int64_t stride = l.integer("stride", 1, 1, 8), pad = l.integer("padding", 0, 0, 8);
      if (layer.type == "conv2d")
        layer.module = net_->register_module(
            name, torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, k).stride(stride).padding(pad)).ptr());
      else
        layer.module = net_->register_module(
            name, torch::nn::ConvTranspose2d(torch::nn::ConvTranspose2dOptions(in, out, k)
                                                 .stride(stride)
                                                 .padding(pad)
                                                 .output_padding(l.integer("output_padding", 0, 0, 8)))
                      .ptr());
    } else if (layer.type == "batchnorm") {
      // Per feature (after dense) or per channel (after a convolution);
      // running statistics are buffers, saved with runs and checkpoints.
      l.reject_unknown({"type"});
      if (probe.dim() == 2)
        layer.module = net_->register_module(name, torch::nn::BatchNorm1d(probe.size(1)).ptr());
      else if (probe.dim() == 4)
        layer.module = net_->register_module(name, torch::nn::BatchNorm2d(probe.size(1)).ptr());
      else
        throw Error(at(l, "type") + ": batchnorm needs features [F] or channels [C, H, W]; it gets " +
                    std::to_string(probe.dim() - 1) + " dimensions here");
    } else if (layer.type == "relu") {
      l.reject_unknown({"type"});
    } else if (layer.type == "reshape") {
      l.reject_unknown({"type", "shape"});
      layer.shape = l.integers("shape", {}, 1, 1 << 20);
      int64_t n = 1;
      for (int64_t d : layer.shape) n *= d;
      if (layer.shape.empty() || n != probe[0].numel())
        throw Error(at(l, "shape") + ": " + std::to_string(n) + " values per event, the layer before gives " +
                    std::to_string(probe[0].numel()));
    } else {
      throw Error(at(l, "type") + ": unknown layer type '" + layer.type +
                  "' (expected \"dense\", \"conv2d\", \"conv_transpose\", \"batchnorm\", \"relu\" or \"reshape\")");
    }
    net_->layers.push_back(layer);
    try {
      // In evaluation mode: the probe must not move batch-norm statistics.
      net_->eval();
      probe = net_->forward(torch::zeros(probe_shape));
      net_->train();
    } catch (const c10::Error& e) {
      const std::string what = e.what_without_backtrace();
      throw Error(at(l, "type") + ": " + what.substr(0, what.find('\n')));
    }
  }
}

torch::nn::Module& FloatStackStage::module() const { return *net_; }

void FloatStackStage::forward(NamedTensors& flow) {
  const torch::Tensor x = flow.get(input_);
  std::vector<int64_t> shape{x.size(0)};
  shape.insert(shape.end(), input_shape_.begin(), input_shape_.end());
  torch::Tensor y = net_->forward(x.reshape(shape));
  y = layout_ ? layout_->to_cells(y) : y.reshape({x.size(0), -1});
  if (head_ == "softmax")
    y = torch::softmax(y, 1);
  else if (head_ == "sigmoid")
    y = torch::sigmoid(y);
  flow.set(output_, y.size(1) == 1 ? y.reshape({-1}) : y);
}

DDAQ_REGISTER_STAGE("float_stack", FloatStackStage);

}  // namespace ddaq
