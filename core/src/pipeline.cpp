// The ECON-T pipeline: stages as LibTorch modules in one autograd graph.
#include "ddaq/core/pipeline.h"

#include <torch/torch.h>

#include <numeric>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "ddaq/files.h"
#include "ddaq/core/layouts.h"
#include "ddaq/error.h"
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

// Zero suppression with a learnable threshold (CALQ): a sigmoid gate of
// width kGate in training, the exact comparison in evaluation.
constexpr double kGate = 0.5;

struct DecoderImpl : torch::nn::Module {
  torch::nn::Linear dense{nullptr};
  torch::nn::ConvTranspose2d up{nullptr};
  torch::nn::Conv2d out{nullptr};
  std::vector<int64_t> hidden_shape;  // [F, h, w]
  DecoderImpl(int64_t latent, int64_t filters, std::array<int64_t, 3> grid) {
    const int64_t h = (grid[1] + 1) / 2, w = (grid[2] + 1) / 2;
    hidden_shape = {filters, h, w};
    dense = register_module("dense", torch::nn::Linear(latent, filters * h * w));
    up = register_module("up", torch::nn::ConvTranspose2d(
                                   torch::nn::ConvTranspose2dOptions(filters, filters, 3).stride(2).padding(1).output_padding(
                                       grid[1] % 2 == 0 ? 1 : 0)));
    // No bias: the softmax over the cells ignores a constant shift, so a bias
    // would get only rounding noise as gradient, which Adam turns into a
    // random walk (and data-parallel runs into spurious differences).
    out = register_module("out", torch::nn::Conv2d(torch::nn::Conv2dOptions(filters, grid[0], 3).padding(1).bias(false)));
  }
  torch::Tensor forward(const torch::Tensor& latent, const CellLayout& layout) {
    torch::Tensor h = torch::relu(dense->forward(latent)).view({-1, hidden_shape[0], hidden_shape[1], hidden_shape[2]});
    h = torch::relu(up->forward(h));
    return torch::softmax(layout.to_cells(out->forward(h)), 1);
  }
};
TORCH_MODULE(Decoder);

QuantizedStack make_encoder(const PipelineOptions& o, const CellLayout& layout) {
  const auto g = layout.grid_shape();
  QuantizedStack s(std::vector<int64_t>{g[0], g[1], g[2]});
  const QuantizerOptions weight =
      QuantizerOptions(FixedPointType(o.weight_bits(), 1, true, Rounding::RND_CONV, Overflow::SAT))
          .learnable(o.learn_weight_bits())
          .granularity(o.learn_weight_bits() ? Granularity::PerElement : Granularity::PerTensor);
  const FixedPointType wide(16, 6, true, Rounding::TRN, Overflow::SAT);
  s->input(QuantizerOptions(FixedPointType(o.input_bits(), 3, false, Rounding::TRN, Overflow::SAT))
               .learnable(o.learn_input_bits()));
  s->conv(QConvOptions(g[0], o.conv_filters(), 3)
              .stride(2)
              .padding(1)
              .weight(weight)
              .output(wide)
              .pruning(PruningOptions().gates(o.learn_conv_filters())));
  s->relu(FixedPointType(8, 3, false, Rounding::TRN, Overflow::SAT));
  s->dense(QLinearOptions(elements(s->output_shape()), o.latent())
               .weight(weight)
               .output(wide)
               .pruning(PruningOptions().gates(o.learn_latent_gates()).straight_through(o.learn_latent_gates())));
  QuantizerOptions latent_q(FixedPointType(o.latent_bits(), o.latent_integer_bits(), false, Rounding::TRN, Overflow::SAT));
  latent_q.learnable(o.learn_latent_bits());
  if (o.per_latent_bits())
    latent_q.granularity(Granularity::PerChannel).shared_integer_bits(true).min_fractional(-4).max_fractional(4);
  s->relu(latent_q);
  return s;
}

QuantizedStack make_classifier(const PipelineOptions& o) {
  QuantizedStack s(std::vector<int64_t>{o.latent()});
  // The latent arrives already quantized: the classifier's input type is the
  // transmitted latent type (learned bits: ufixed<15,5>, which holds any
  // latent of up to 5 integer and 10 fractional bits). Both fit hls4ml's
  // default input precision fixed<16,6>, so the documented QONNX flow needs
  // no configuration edit.
  s->input(o.learn_latent_bits() ? FixedPointType(15, 5, false, Rounding::TRN, Overflow::SAT)
                                 : FixedPointType(o.latent_bits(), o.latent_integer_bits(), false, Rounding::TRN,
                                                  Overflow::SAT));
  const QuantizerOptions weight(FixedPointType(o.weight_bits(), 1, true, Rounding::RND_CONV, Overflow::SAT));
  s->dense(QLinearOptions(o.latent(), o.classifier_hidden()).weight(weight).output(FixedPointType(16, 6, true, Rounding::TRN, Overflow::SAT)));
  s->relu(FixedPointType(8, 3, false, Rounding::TRN, Overflow::SAT));
  s->dense(QLinearOptions(o.classifier_hidden(), 1).weight(weight).output(FixedPointType(16, 6, true, Rounding::TRN, Overflow::SAT)));
  return s;
}

}  // namespace

// ---------------------------------------------------------------- stages

namespace {

// A stage whose state is one torch::nn::Module.
class ModuleStage : public Stage {
 public:
  explicit ModuleStage(std::string name) : name_(std::move(name)) {}
  const std::string& name() const override { return name_; }
  std::vector<std::pair<std::string, at::Tensor>> named_parameters() const override {
    std::vector<std::pair<std::string, at::Tensor>> out;
    for (const auto& p : module().named_parameters()) out.emplace_back(p.key(), p.value());
    return out;
  }
  std::vector<std::pair<std::string, at::Tensor>> named_buffers() const override {
    std::vector<std::pair<std::string, at::Tensor>> out;
    for (const auto& b : module().named_buffers()) out.emplace_back(b.key(), b.value());
    return out;
  }
  void train(bool on) override {
    training_ = on;
    module().train(on);
  }
  void to(const std::string& device) override { module().to(torch::Device(device)); }
  bool training() const { return training_; }

 protected:
  virtual torch::nn::Module& module() const = 0;
  bool training_ = true;

 private:
  std::string name_;
};

// 2^floor(log2(max(sum, 1))) per wafer, exactly: the sum in float64 (exact
// for integer CALQ, whatever the summation order) and floor(log2) from the
// binary exponent (frexp), not from a rounded log2. The emulator library
// (export.h) computes the same in C.
torch::Tensor econt_normalization_scale(const torch::Tensor& kept) {
  const torch::Tensor sum = kept.to(torch::kDouble).sum(1, true).clamp_min(1.0);
  const torch::Tensor exponent = std::get<1>(torch::frexp(sum));  // sum = m * 2^e, m in [0.5, 1)
  return torch::ldexp(torch::ones_like(sum), exponent - 1).to(kept.scalar_type());
}

// Zero suppression (learnable threshold), ECON-T normalization.
// calq -> target (unit-sum wafer), normalized (input to the encoder).
class FrontEndStage : public ModuleStage {
 public:
  explicit FrontEndStage(const PipelineOptions& o) : ModuleStage("frontend"), holder_(std::make_shared<torch::nn::Module>()) {
    const torch::Tensor t = torch::full({}, o.threshold());
    threshold = o.learn_threshold() ? holder_->register_parameter("threshold", t) : holder_->register_buffer("threshold", t);
  }
  void forward(NamedTensors& flow) override {
    const torch::Tensor calq = flow.get("calq");
    const torch::Tensor gate =
        training_ ? torch::sigmoid((calq - threshold) / kGate) : (calq > threshold).to(torch::kFloat);
    const torch::Tensor kept = calq * gate;
    const torch::Tensor sum = kept.sum(1, true);
    flow.set("target", kept / sum.clamp_min(1e-6));
    flow.set("normalized", kept / econt_normalization_scale(kept.detach()));
  }
  torch::Tensor threshold;  // CALQ (a parameter when learned)

 protected:
  torch::nn::Module& module() const override { return *holder_; }

 private:
  std::shared_ptr<torch::nn::Module> holder_;
};

// A QuantizedStack stage (firmware): the encoder or the classifier.
class QuantizedStage : public ModuleStage {
 public:
  QuantizedStage(std::string name, QuantizedStack stack, std::string input, std::string output,
                 const CellLayout* layout)
      : ModuleStage(std::move(name)), stack(std::move(stack)), input_(std::move(input)), output_(std::move(output)),
        layout_(layout) {}
  void forward(NamedTensors& flow) override {
    const torch::Tensor x = flow.get(input_);
    const torch::Tensor in = layout_ ? layout_->to_grid(x) : x;
    const torch::Tensor y = stack->forward(in);
    flow.set(output_, layout_ ? y.reshape({x.size(0), -1}) : y.reshape({-1}));
  }
  NamedTensors costs() const override {
    NamedTensors c{{{"ebops", stack->ebops()}}};
    // Dense-equivalent layers at reuse factor 1 through the shipped model.
    std::vector<torch::Tensor> held;  // LayerTensors point into it
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
  ModelDescription describe() const override { return stack.ptr()->describe(); }
  QuantizedStack stack;

 protected:
  torch::nn::Module& module() const override { return *stack.ptr(); }

 private:
  std::string input_, output_;
  const CellLayout* layout_;  // the encoder maps cells to its grid; the classifier reads the latent as is
};

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
// The encoder's last weighted layer: its units are the latents.
std::shared_ptr<QLayerImpl> latent_layer(const QuantizedStack& encoder) {
  std::shared_ptr<QLayerImpl> last;
  for (const auto& l : encoder->layers())
    if (l->unit_mask().defined()) last = l;  // weighted layers only
  return last;
}
// Per latent, how much of it is sent (undefined without latent gates: all).
torch::Tensor latent_unit_mask(const QuantizedStack& encoder) {
  const auto l = latent_layer(encoder);
  return l ? l->unit_mask() : torch::Tensor();
}

// Latent bits -> payload bits -> e-links (ECON-T frame); relaxed in the graph.
class LinkBudgetStage : public ModuleStage {
 public:
  explicit LinkBudgetStage(const QuantizedStage* encoder)
      : ModuleStage("link_budget"), encoder_(encoder), none_(std::make_shared<torch::nn::Module>()) {}
  void forward(NamedTensors&) override {}  // costs only: they depend on the latent type, not the batch
  NamedTensors costs() const override {
    const auto latent_q = encoder_->stack->layers().back()->output_quantizer();
    // Width x the latents sent (the latent layer's unit mask: all ones
    // without latent gates, 0/1 straight-through gates with them).
    const torch::Tensor sent = latent_unit_mask(encoder_->stack);
    // One width per latent: the sum of the sent latents' widths.
    const torch::Tensor payload = latent_q->options().granularity() == Granularity::PerTensor
                                      ? latent_q->bits().mean() * sent.sum()
                                      : (latent_q->bits().flatten() * sent).sum();
    return NamedTensors{{{"payload_bits", payload}, {"elinks", fractional_elinks(payload)}}};
  }

 protected:
  torch::nn::Module& module() const override { return *none_; }

 private:
  const QuantizedStage* encoder_;
  std::shared_ptr<torch::nn::Module> none_;
};

// Off-detector reconstruction (float): latent -> reconstruction (unit sum).
class DecoderStage : public ModuleStage {
 public:
  DecoderStage(const PipelineOptions& o, const CellLayout* layout)
      : ModuleStage("decoder"), decoder(o.latent(), o.conv_filters(), layout->grid_shape()), layout_(layout) {}
  void forward(NamedTensors& flow) override { flow.set("reconstruction", decoder->forward(flow.get("latent"), *layout_)); }
  Decoder decoder;

 protected:
  torch::nn::Module& module() const override { return *decoder.ptr(); }

 private:
  const CellLayout* layout_;
};

}  // namespace

struct EconTPipeline::Impl {
  PipelineOptions options;
  std::unique_ptr<CellLayout> layout;  // stable address: stages point to it
  std::vector<std::unique_ptr<Stage>> stages;
  FrontEndStage* frontend = nullptr;
  QuantizedStage *encoder = nullptr, *classifier = nullptr;
  DecoderStage* decoder = nullptr;
  torch::Tensor pinned_latent_fractional;  // set by fit_latent_payload
  std::vector<std::pair<FixedPointQuantizer, torch::Tensor>> pinned_encoder_bits;  // set by fit_encoder_energy

  Impl(const PipelineOptions& o, uint64_t seed)
      : options(o), layout(new CellLayout(CellLayout::by_name(o.layout()))) {
    torch::manual_seed(seed);
    // Construction order fixes the random initialization (as before stages existed).
    auto enc = std::make_unique<QuantizedStage>("encoder", make_encoder(o, *layout), "normalized", "latent", layout.get());
    auto dec = std::make_unique<DecoderStage>(o, layout.get());
    auto cls = std::make_unique<QuantizedStage>("classifier", make_classifier(o), "latent", "logits", nullptr);
    auto front = std::make_unique<FrontEndStage>(o);
    auto link = std::make_unique<LinkBudgetStage>(enc.get());
    frontend = front.get();
    encoder = enc.get();
    decoder = dec.get();
    classifier = cls.get();
    stages.push_back(std::move(front));
    stages.push_back(std::move(enc));
    stages.push_back(std::move(link));
    stages.push_back(std::move(dec));
    stages.push_back(std::move(cls));
  }
};

EconTPipeline::EconTPipeline(const PipelineOptions& options, uint64_t seed) : impl_(new Impl(options, seed)) {}
EconTPipeline::~EconTPipeline() = default;
EconTPipeline::EconTPipeline(EconTPipeline&&) noexcept = default;

const PipelineOptions& EconTPipeline::options() const { return impl_->options; }

std::vector<Stage*> EconTPipeline::stages() const {
  std::vector<Stage*> out;
  for (const auto& s : impl_->stages) out.push_back(s.get());
  return out;
}

PipelineResult EconTPipeline::forward(const at::Tensor& calq_in) { return forward(calq_in, true); }

PipelineResult EconTPipeline::costs() const {
  // Every stage's terms; EBOPs add up over the firmware stages.
  PipelineResult r;
  torch::Tensor ebops;
  for (const auto& s : impl_->stages)
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

PipelineResult EconTPipeline::forward(const at::Tensor& calq_in, bool with_costs) {
  if (calq_in.dim() != 2 || calq_in.size(1) != 48) throw Error("pipeline: expected charges of shape [N, 48]");
  NamedTensors flow;
  flow.set("calq", calq_in.to(torch::kFloat));
  for (const auto& s : impl_->stages) s->forward(flow);
  PipelineResult r;
  for (const char* name : {"target", "reconstruction", "latent", "logits"}) r.set(name, flow.get(name));
  if (with_costs)
    for (const auto& kv : costs().named) r.set(kv.first, kv.second);
  return r;
}

void EconTPipeline::train(bool on) {
  for (const auto& s : impl_->stages) s->train(on);
}

void EconTPipeline::set_quantization(bool on) {
  impl_->encoder->stack->set_quantization(on);
  impl_->classifier->stack->set_quantization(on);
}

void EconTPipeline::prune_encoder(double sparsity) { impl_->encoder->stack->prune_to(sparsity); }

std::vector<std::pair<std::string, at::Tensor>> EconTPipeline::named_parameters() const {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const auto& s : impl_->stages)
    for (const auto& p : s->named_parameters()) out.emplace_back(s->name() + "." + p.first, p.second);
  return out;
}

std::vector<std::pair<std::string, at::Tensor>> EconTPipeline::named_state() const {
  std::vector<std::pair<std::string, at::Tensor>> out = named_parameters();
  for (const auto& s : impl_->stages)
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
  for (const auto& s : impl_->stages) s->to(device);
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
  f.grid_to_cell = impl_->layout->grid_to_cell();
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
  if (impl_->options.learn_latent_gates()) kept = latent_layer(impl_->encoder->stack)->kept_unit_indices();
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
  if (gates) latent_layer(impl_->encoder->stack)->set_min_kept_units(1);  // the projection decides now
  if (gates) {
    // The latents the gates keep; then the weakest go while even the
    // narrowest width (1 bit learned, else the fixed width) does not fit.
    // How many latents: with a fixed width, as many as fit (more latents
    // inside the budget cost nothing); with learned bits, those the gates
    // keep open, within [budget / 16, budget] (widths 1..16). The strongest
    // gates (largest logits) are the ones kept.
    const auto layer = latent_layer(impl_->encoder->stack);
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
  const auto layer = latent_layer(impl_->encoder->stack);
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
  if (calq.dim() != 2 || calq.size(1) != 48) throw Error("pipeline: expected charges of shape [N, 48]");
  torch::NoGradGuard no_grad;
  const bool was = impl_->frontend->training();
  impl_->frontend->train(false);  // hard zero suppression, as exported
  NamedTensors flow;
  flow.set("calq", calq.to(torch::kFloat));
  impl_->frontend->forward(flow);
  impl_->frontend->train(was);
  const torch::Tensor grid = impl_->layout->to_grid(flow.get("normalized"));
  int64_t raised = is_frozen("encoder") ? 0 : impl_->encoder->stack->raise_silent_units(grid);
  const bool enc_was = impl_->encoder->stack->is_training();
  impl_->encoder->stack->eval();
  const torch::Tensor latent = impl_->encoder->stack->forward(grid).reshape({calq.size(0), -1});
  impl_->encoder->stack->train(enc_was);
  if (!is_frozen("classifier")) raised += impl_->classifier->stack->raise_silent_units(latent);
  return raised;
}

void EconTPipeline::keep_latents_that_fit(int64_t max_payload_bits) {
  if (!impl_->options.learn_latent_gates()) return;
  const auto q = impl_->encoder->stack->layers().back()->output_quantizer();
  const auto layer = latent_layer(impl_->encoder->stack);
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
  for (const QuantizedStage* s : {impl_->encoder, impl_->classifier})
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

std::string EconTPipeline::run_id() const {
  std::vector<torch::Tensor> tensors;
  for (QuantizedStack* stack : {&impl_->encoder->stack, &impl_->classifier->stack}) {
    for (const auto& p : (*stack)->named_parameters()) tensors.push_back(p.value());
    for (const auto& b : (*stack)->named_buffers()) tensors.push_back(b.value());
  }
  for (const auto& p : impl_->decoder->named_parameters()) tensors.push_back(p.second);
  tensors.push_back(impl_->frontend->threshold);
  return content_id(impl_->options.to_json(), tensors);
}

void EconTPipeline::save(const std::string& run_dir) const {
  // Never a run with NaN weights (predict would write NaN with exit 0).
  for (const auto& kv : named_state())
    if (!torch::isfinite(kv.second).all().item<bool>())
      throw Error(run_dir + ": not saved: '" + kv.first + "' has non-finite values");
  make_directories(run_dir);
  const std::string id = run_id();
  nlohmann::json options = nlohmann::json::parse(impl_->options.to_json());
  options["kind"] = "ddaq-pipeline-1";
  options["run_id"] = id;
  write_file_atomic(run_dir + "/pipeline.json", options.dump(2) + "\n");
  save_quantized_stack(impl_->encoder->stack, run_dir + "/encoder.qstack", {{"run_id", id}, {"part", "encoder"}});
  save_quantized_stack(impl_->classifier->stack, run_dir + "/classifier.qstack", {{"run_id", id}, {"part", "classifier"}});
  const std::string path = run_dir + "/decoder.pt";
  std::ostringstream bytes;
  try {
    torch::serialize::OutputArchive archive;
    archive.write("kind", c10::IValue(std::string("ddaq-decoder-1")));
    archive.write("run_id", c10::IValue(id));
    for (const auto& p : impl_->decoder->named_parameters()) archive.write(p.first, p.second.detach());
    archive.write("frontend.threshold", impl_->frontend->threshold.detach());
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
  EconTPipeline p(PipelineOptions::from_config(c), 1);
  auto check_id = [&](const std::string& file, const std::string& id) {
    if (!expected_id.empty() && id != expected_id)
      throw Error(file + ": belongs to another run (run id " + (id.empty() ? std::string("none") : id) + ", " +
                  json_path + " says " + expected_id + ")");
  };
  std::map<std::string, std::string> labels;
  p.impl_->encoder->stack = load_quantized_stack(run_dir + "/encoder.qstack", &labels);
  check_id(run_dir + "/encoder.qstack", labels["run_id"]);
  if (labels.count("part") && labels["part"] != "encoder")
    throw Error(run_dir + "/encoder.qstack: is the " + labels["part"] + " of a run, not its encoder");
  p.impl_->classifier->stack = load_quantized_stack(run_dir + "/classifier.qstack", &labels);
  check_id(run_dir + "/classifier.qstack", labels["run_id"]);
  if (labels.count("part") && labels["part"] != "classifier")
    throw Error(run_dir + "/classifier.qstack: is the " + labels["part"] + " of a run, not its classifier");
  torch::serialize::InputArchive archive;
  const std::string path = run_dir + "/decoder.pt";
  if (::access(path.c_str(), R_OK) != 0) throw Error(path + ": cannot open (missing or unreadable)");
  torch::NoGradGuard no_grad;
  std::string decoder_id;
  try {
    archive.load_from(path);
    c10::IValue id;
    if (archive.try_read("run_id", id) && id.isString()) decoder_id = id.toStringRef();
    for (auto& q : p.impl_->decoder->named_parameters()) {
      torch::Tensor v;
      archive.read(q.first, v);
      if (!v.sizes().equals(q.second.sizes())) throw Error(path + ": '" + q.first + "' has another shape than " + json_path + " gives");
      q.second.copy_(v);
    }
    torch::Tensor t;
    archive.read("frontend.threshold", t);
    p.impl_->frontend->threshold.copy_(t);
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
