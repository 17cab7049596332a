// The ECON-T pipeline: stages as LibTorch modules in one autograd graph.
#include "ddaq/core/pipeline.h"

#include <torch/torch.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "ddaq/core/files.h"
#include "ddaq/core/layouts.h"
#include "ddaq/error.h"
#include "ddaq/quant/layers.h"
#include "ddaq/surrogates/link_budget.h"

namespace ddaq {

PipelineOptions PipelineOptions::from_config(const Config& c) {
  c.reject_unknown({"layout", "conv_filters", "latent", "latent_bits", "latent_integer_bits", "learn_latent_bits",
                    "weight_bits", "learn_weight_bits", "input_bits", "threshold", "learn_threshold",
                    "classifier_hidden"});
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
      .threshold(c.number("threshold", o.threshold(), 0.0, 1e6))
      .learn_threshold(c.boolean("learn_threshold", o.learn_threshold()))
      .classifier_hidden(c.integer("classifier_hidden", o.classifier_hidden(), 1, 256));
  if (o.layout() != "8x8" && o.layout() != "4x4x3")
    throw Error(c.source() + ": " + c.where() + ".layout: '" + o.layout() + "' (expected \"8x8\" or \"4x4x3\")");
  return o;
}

std::string PipelineOptions::to_json() const {
  return nlohmann::json({{"layout", layout_},
                         {"conv_filters", conv_filters_},
                         {"latent", latent_},
                         {"latent_bits", latent_bits_},
                         {"latent_integer_bits", latent_integer_bits_},
                         {"learn_latent_bits", learn_latent_bits_},
                         {"weight_bits", weight_bits_},
                         {"learn_weight_bits", learn_weight_bits_},
                         {"input_bits", input_bits_},
                         {"threshold", threshold_},
                         {"learn_threshold", learn_threshold_},
                         {"classifier_hidden", classifier_hidden_}})
      .dump(2);
}

const at::Tensor& PipelineResult::get(const std::string& name) const {
  for (const auto& kv : named)
    if (kv.first == name) return kv.second;
  throw Error("pipeline: no output named '" + name + "'");
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
  s->input(FixedPointType(o.input_bits(), 3, false, Rounding::TRN, Overflow::SAT));
  s->conv(QConvOptions(g[0], o.conv_filters(), 3).stride(2).padding(1).weight(weight).output(wide));
  s->relu(FixedPointType(8, 3, false, Rounding::TRN, Overflow::SAT));
  s->dense(QLinearOptions(elements(s->output_shape()), o.latent()).weight(weight).output(wide));
  s->relu(QuantizerOptions(FixedPointType(o.latent_bits(), o.latent_integer_bits(), false, Rounding::TRN, Overflow::SAT))
              .learnable(o.learn_latent_bits()));
  return s;
}

QuantizedStack make_classifier(const PipelineOptions& o) {
  QuantizedStack s(std::vector<int64_t>{o.latent()});
  // The latent arrives already quantized; a wide input type keeps it exact.
  s->input(FixedPointType(16, 8, false, Rounding::TRN, Overflow::SAT));
  const QuantizerOptions weight(FixedPointType(o.weight_bits(), 1, true, Rounding::RND_CONV, Overflow::SAT));
  s->dense(QLinearOptions(o.latent(), o.classifier_hidden()).weight(weight).output(FixedPointType(16, 6, true, Rounding::TRN, Overflow::SAT)));
  s->relu(FixedPointType(8, 3, false, Rounding::TRN, Overflow::SAT));
  s->dense(QLinearOptions(o.classifier_hidden(), 1).weight(weight).output(FixedPointType(16, 6, true, Rounding::TRN, Overflow::SAT)));
  return s;
}

}  // namespace

struct EconTPipeline::Impl {
  PipelineOptions options;
  CellLayout layout;
  torch::Tensor threshold;  // CALQ (parameter when learned)
  QuantizedStack encoder{nullptr}, classifier{nullptr};
  Decoder decoder{nullptr};
  torch::nn::Module holder;  // owns the threshold parameter
  bool training = true;

  Impl(const PipelineOptions& o, uint64_t seed) : options(o), layout(CellLayout::by_name(o.layout())) {
    torch::manual_seed(seed);
    encoder = make_encoder(o, layout);
    decoder = Decoder(o.latent(), o.conv_filters(), layout.grid_shape());
    classifier = make_classifier(o);
    const torch::Tensor t = torch::full({}, o.threshold());
    threshold = o.learn_threshold() ? holder.register_parameter("threshold", t) : holder.register_buffer("threshold", t);
  }
};

EconTPipeline::EconTPipeline(const PipelineOptions& options, uint64_t seed) : impl_(new Impl(options, seed)) {}
EconTPipeline::~EconTPipeline() = default;
EconTPipeline::EconTPipeline(EconTPipeline&&) noexcept = default;

const PipelineOptions& EconTPipeline::options() const { return impl_->options; }

PipelineResult EconTPipeline::forward(const at::Tensor& calq_in) { return forward(calq_in, true); }

PipelineResult EconTPipeline::costs() const {
  const Impl& s = *impl_;
  const auto latent_q = s.encoder->layers().back()->output_quantizer();
  const torch::Tensor payload = latent_q->bits().mean() * static_cast<double>(s.options.latent());
  PipelineResult r;
  r.named = {{"payload_bits", payload},
             {"elinks", relaxed_elinks(payload, AutoencoderFrame(), 2.0)},
             {"ebops", s.encoder->ebops() + s.classifier->ebops()}};
  return r;
}

PipelineResult EconTPipeline::forward(const at::Tensor& calq_in, bool with_costs) {
  Impl& s = *impl_;
  if (calq_in.dim() != 2 || calq_in.size(1) != 48) throw Error("pipeline: expected charges of shape [N, 48]");
  const torch::Tensor calq = calq_in.to(torch::kFloat);
  // FrontEnd: zero suppression, normalization.
  const torch::Tensor gate = s.training ? torch::sigmoid((calq - s.threshold) / kGate)
                                        : (calq > s.threshold).to(torch::kFloat);
  const torch::Tensor kept = calq * gate;
  const torch::Tensor sum = kept.sum(1, true);
  const torch::Tensor target = kept / sum.clamp_min(1e-6);
  const torch::Tensor scale = torch::exp2(torch::floor(torch::log2(sum.detach().clamp_min(1.0))));
  const torch::Tensor normalized = kept / scale;
  // Encoder -> latent (what the links carry).
  const torch::Tensor latent = s.encoder->forward(s.layout.to_grid(normalized)).reshape({calq.size(0), -1});
  // Off detector.
  const torch::Tensor reconstruction = s.decoder->forward(latent, s.layout);
  const torch::Tensor logits = s.classifier->forward(latent).reshape({-1});
  PipelineResult r;
  r.named = {{"target", target}, {"reconstruction", reconstruction}, {"latent", latent}, {"logits", logits}};
  if (with_costs) {  // LinkBudget (latent bits -> e-links) and EBOPs
    const PipelineResult c = costs();
    r.named.insert(r.named.end(), c.named.begin(), c.named.end());
  }
  return r;
}

void EconTPipeline::train(bool on) {
  impl_->training = on;
  impl_->encoder->train(on);
  impl_->decoder->train(on);
  impl_->classifier->train(on);
}

void EconTPipeline::set_quantization(bool on) {
  impl_->encoder->set_quantization(on);
  impl_->classifier->set_quantization(on);
}

void EconTPipeline::prune_encoder(double sparsity) { impl_->encoder->prune_to(sparsity); }

std::vector<std::pair<std::string, at::Tensor>> EconTPipeline::named_parameters() const {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const auto& p : impl_->holder.named_parameters()) out.emplace_back("frontend." + p.key(), p.value());
  for (const auto& p : impl_->encoder->named_parameters()) out.emplace_back("encoder." + p.key(), p.value());
  for (const auto& p : impl_->decoder->named_parameters()) out.emplace_back("decoder." + p.key(), p.value());
  for (const auto& p : impl_->classifier->named_parameters()) out.emplace_back("classifier." + p.key(), p.value());
  return out;
}

std::vector<std::pair<std::string, at::Tensor>> EconTPipeline::named_state() const {
  std::vector<std::pair<std::string, at::Tensor>> out = named_parameters();
  auto add = [&](const std::string& stage, const torch::nn::Module& m) {
    for (const auto& b : m.named_buffers()) out.emplace_back(stage + "." + b.key(), b.value());
  };
  add("frontend", impl_->holder);
  add("encoder", *impl_->encoder);
  add("decoder", *impl_->decoder);
  add("classifier", *impl_->classifier);
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
  impl_->holder.to(d);
  impl_->encoder->to(d);
  impl_->decoder->to(d);
  impl_->classifier->to(d);
}

std::vector<at::Tensor> EconTPipeline::parameters() const {
  std::vector<at::Tensor> out;
  for (const auto& p : named_parameters()) out.push_back(p.second);
  return out;
}

std::vector<LayerDescription> EconTPipeline::encoder_description() const { return impl_->encoder->describe(); }

int EconTPipeline::latent_bits() const {
  return impl_->encoder->layers().back()->output_quantizer()->export_type().width;
}

int EconTPipeline::elinks() const {
  return AutoencoderFrame().elinks_for_latent(impl_->options.latent(), latent_bits());
}

void EconTPipeline::save(const std::string& run_dir) const {
  make_directories(run_dir);
  write_file_atomic(run_dir + "/pipeline.json", impl_->options.to_json() + "\n");
  save_quantized_stack(impl_->encoder, run_dir + "/encoder.qstack");
  save_quantized_stack(impl_->classifier, run_dir + "/classifier.qstack");
  const std::string path = run_dir + "/decoder.pt", tmp = path + ".tmp-" + std::to_string(::getpid());
  try {
    torch::serialize::OutputArchive archive;
    for (const auto& p : impl_->decoder->named_parameters()) archive.write(p.key(), p.value().detach());
    archive.write("frontend.threshold", impl_->threshold.detach());
    archive.save_to(tmp);
  } catch (const c10::Error& e) {
    std::remove(tmp.c_str());
    throw Error(path + ": cannot write (" + e.what_without_backtrace() + ")");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) throw Error(path + ": cannot rename into place");
}

EconTPipeline EconTPipeline::load(const std::string& run_dir) {
  const Config c = Config::load(run_dir + "/pipeline.json");
  EconTPipeline p(PipelineOptions::from_config(c), 1);
  p.impl_->encoder = load_quantized_stack(run_dir + "/encoder.qstack");
  p.impl_->classifier = load_quantized_stack(run_dir + "/classifier.qstack");
  torch::serialize::InputArchive archive;
  const std::string path = run_dir + "/decoder.pt";
  if (::access(path.c_str(), R_OK) != 0) throw Error(path + ": cannot open (missing or unreadable)");
  torch::NoGradGuard no_grad;
  try {
    archive.load_from(path);
    for (auto& q : p.impl_->decoder->named_parameters()) {
      torch::Tensor v;
      archive.read(q.key(), v);
      q.value().copy_(v);
    }
    torch::Tensor t;
    archive.read("frontend.threshold", t);
    p.impl_->threshold.copy_(t);
  } catch (const c10::Error&) {
    throw Error(path + ": not a ddaq decoder file");
  }
  p.train(false);
  return p;
}

}  // namespace ddaq
