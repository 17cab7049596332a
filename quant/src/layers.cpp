// Quantization-aware layers and the stack that composes them (layers.h); the
// layer classes are in layer_impls.h, the quantizer in quantizer.cpp.
#include "ddaq/quant/layers.h"

#include <torch/torch.h>
#include <unistd.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <sstream>

#include "ddaq/error.h"
#include "ddaq/files.h"
#include "ddaq/quant/bounds.h"
#include "layer_impls.h"

namespace ddaq {

using namespace detail;  // NOLINT: the layer classes of this library

// ---------------------------------------------------------------- layers

torch::Tensor QLayerImpl::group_lasso() const { return torch::zeros({}); }
torch::Tensor QLayerImpl::gate_penalty() const { return torch::zeros({}); }
QLayerImpl::ResourceShape QLayerImpl::resource_shape(const torch::Tensor&, const torch::Tensor& kept_share) const {
  ResourceShape r;
  r.kept_share = kept_share;
  return r;
}

// ---------------------------------------------------------------- stack

QuantizedStackImpl::QuantizedStackImpl(std::vector<int64_t> input_shape) : input_shape_(std::move(input_shape)) {}

std::vector<int64_t> QuantizedStackImpl::output_shape() const {
  return layers_.empty() ? input_shape_ : layers_.back()->output_shape();
}

namespace {

using nlohmann::json;

json to_json(const FixedPointType& t) {
  return {{"width", t.width}, {"integer", t.integer}, {"signed", t.is_signed}, {"rounding", to_string(t.rounding)},
          {"overflow", to_string(t.overflow)}};
}
FixedPointType type_from(const json& j) {
  return FixedPointType(j.at("width").get<int>(), j.at("integer").get<int>(), j.at("signed").get<bool>(),
                        rounding_from_string(j.at("rounding").get<std::string>()),
                        overflow_from_string(j.at("overflow").get<std::string>()));
}
const char* granularity_name(Granularity g) {
  return g == Granularity::PerTensor ? "tensor" : (g == Granularity::PerChannel ? "channel" : "element");
}
json to_json(const QuantizerOptions& q) {
  json j{{"type", to_json(q.type())}, {"granularity", granularity_name(q.granularity())}, {"learnable", q.learnable()}};
  // Written only when set, so the specs (and run ids) of earlier stacks stay.
  const QuantizerOptions d;
  if (q.shared_integer_bits()) j["shared_integer_bits"] = true;
  if (q.min_fractional() != d.min_fractional()) j["min_fractional"] = q.min_fractional();
  if (q.max_fractional() != d.max_fractional()) j["max_fractional"] = q.max_fractional();
  return j;
}
QuantizerOptions quantizer_from(const json& j) {
  const std::string g = j.at("granularity").get<std::string>();
  if (g != "tensor" && g != "channel" && g != "element") throw Error("quantized stack spec: granularity '" + g + "'");
  return QuantizerOptions(type_from(j.at("type")))
      .granularity(g == "tensor" ? Granularity::PerTensor : (g == "channel" ? Granularity::PerChannel : Granularity::PerElement))
      .learnable(j.at("learnable").get<bool>())
      .shared_integer_bits(j.value("shared_integer_bits", false))
      .min_fractional(j.value("min_fractional", QuantizerOptions().min_fractional()))
      .max_fractional(j.value("max_fractional", QuantizerOptions().max_fractional()));
}

}  // namespace

QuantizedStackImpl& QuantizedStackImpl::input(QuantizerOptions output) {
  if (!layers_.empty()) throw Error("quantized stack: input() must come first");
  layer_specs_.push_back(json({{"kind", "input"}, {"output", to_json(output)}}).dump());
  layers_.push_back(
      register_module("input", std::make_shared<ActivationImpl>(LayerKind::InputQuant, output, input_shape_, "input")));
  return *this;
}

QuantizedStackImpl& QuantizedStackImpl::dense(QLinearOptions options) {
  const auto shape = output_shape();
  if (elements(shape) != options.in())
    throw Error("quantized stack: dense layer expects " + std::to_string(options.in()) + " inputs, the stack gives " +
                std::to_string(elements(shape)));
  const std::string name = "dense" + std::to_string(layers_.size());
  auto layer = std::make_shared<DenseImpl>(options, name);
  json spec({{"kind", "dense"},
                               {"in", options.in()},
                               {"out", options.out()},
                               {"bias", options.bias()},
                               {"weight", to_json(options.weight())},
                               {"bias_quant", to_json(options.bias_quant())},
                               {"output", to_json(options.output())},
                               {"gates", options.pruning().gates()}});
  // Only when on: specs (and run ids) of stacks saved before it stay the same.
  if (options.pruning().straight_through()) spec["straight_through"] = true;
  layer_specs_.push_back(spec.dump());
  layer->upstream_shape_ = shape;
  layers_.push_back(register_module(name, layer));
  return *this;
}

QuantizedStackImpl& QuantizedStackImpl::conv(QConvOptions options) {
  const std::string name = (options.transposed() ? "convtranspose" : "conv") + std::to_string(layers_.size());
  auto layer = std::make_shared<ConvImpl>(options, output_shape(), name);
  layer_specs_.push_back(json({{"kind", "conv"},
                               {"in", options.in()},
                               {"out", options.out()},
                               {"kernel", options.kernel()},
                               {"stride", options.stride()},
                               {"padding", options.padding()},
                               {"output_padding", options.output_padding()},
                               {"bias", options.bias()},
                               {"transposed", options.transposed()},
                               {"batchnorm", options.batchnorm()},
                               {"weight", to_json(options.weight())},
                               {"bias_quant", to_json(options.bias_quant())},
                               {"output", to_json(options.output())},
                               {"gates", options.pruning().gates()}})
                             .dump());
  layers_.push_back(register_module(name, layer));
  return *this;
}

QuantizedStackImpl& QuantizedStackImpl::relu(QuantizerOptions output) {
  const std::string name = "relu" + std::to_string(layers_.size());
  layer_specs_.push_back(json({{"kind", "relu"}, {"output", to_json(output)}}).dump());
  layers_.push_back(register_module(name, std::make_shared<ActivationImpl>(LayerKind::Relu, output, output_shape(), name)));
  return *this;
}

torch::Tensor QuantizedStackImpl::forward(const torch::Tensor& x) {
  torch::Tensor y = x;
  for (const auto& l : layers_) y = l->forward(y);
  return y;
}

int64_t QuantizedStackImpl::raise_silent_units(const torch::Tensor& x) {
  torch::NoGradGuard no_grad;
  const bool was = is_training();
  eval();
  int64_t raised = 0;
  torch::Tensor h = x;
  for (size_t i = 0; i < layers_.size(); ++i) {
    torch::Tensor y = layers_[i]->forward(h);
    const torch::Tensor kept = layers_[i]->unit_mask();  // hard gates in evaluation mode
    if (kept.defined() && i + 1 < layers_.size() && layers_[i + 1]->rectifies()) {
      const int64_t units = y.size(1);  // dense [N, U], conv [N, C, H, W]
      // The ReLU's step as its forward uses it now: learned fractional bits
      // (clamped, rounded) where learnable, per unit where it has one per
      // unit. After a projection that narrowed a latent, the configured step
      // would be far below the one that silences it.
      const auto f = layers_[i + 1]->output_quantizer()->group_fractional_bits();
      torch::Tensor step = torch::exp2(-torch::tensor(std::vector<double>(f.begin(), f.end()), torch::kDouble));
      step = (static_cast<int64_t>(f.size()) == units ? step : step.min().expand({units})).to(y.device());
      const torch::Tensor sent = kept.to(torch::kDouble) > 0;
      torch::Tensor moved = torch::zeros_like(sent);
      // A few passes: the bias is quantized, so one raise can round to just
      // below the step.
      for (int pass = 0; pass < 4; ++pass) {
        const torch::Tensor median = std::get<0>(y.transpose(0, 1).reshape({units, -1}).median(1)).to(torch::kDouble);
        const torch::Tensor silent = sent & (median < step);
        if (!silent.any().item<bool>()) break;
        // A sixteenth of a step above the first: many wafers can share the
        // median value (e.g. the bias alone, for wafers that leave the
        // layer's inputs at zero), and on the rounding edge a change of
        // 1e-9 silenced them again. (Higher starts, half a step above or
        // where the layer's firing units typically sit, made budgeted runs
        // with learned latent widths worse on synthetic data:
        // scripts/codesign_grid.py.)
        const torch::Tensor delta = (step * (1.0 + 1.0 / 16) - median) * silent.to(torch::kDouble);
        if (!layers_[i]->add_to_bias(delta)) break;
        moved = moved | silent;
        y = layers_[i]->forward(h);
      }
      raised += moved.sum().item<int64_t>();
    }
    h = y;
  }
  train(was);
  return raised;
}

ModelDescription QuantizedStackImpl::describe(const std::vector<int64_t>& kept_inputs,
                                              std::vector<int64_t>* kept_outputs) {
  const auto first = layers_.empty() ? nullptr : std::dynamic_pointer_cast<ActivationImpl>(layers_.front());
  if (!first || first->kind() != LayerKind::InputQuant)
    throw Error("quantized stack: describe() needs an input quantizer first");
  for (int64_t c : kept_inputs)
    if (c < 0 || c >= input_shape_[0])
      throw Error("quantized stack: kept input channel " + std::to_string(c) + " outside 0.." +
                  std::to_string(input_shape_[0] - 1));
  ModelDescription model;
  FixedPointType type = layers_.front()->output_quantizer()->export_type();
  std::vector<int64_t> shape = input_shape_, kept;
  if (!kept_inputs.empty() && static_cast<int64_t>(kept_inputs.size()) != input_shape_[0]) {
    kept = kept_inputs;
    shape[0] = static_cast<int64_t>(kept.size());
  }
  std::vector<int64_t> kept_out;
  for (const auto& l : layers_) {
    kept_out.clear();
    LayerDescription d = l->describe(type, shape, kept, kept_out);
    type = d.output_type;
    shape = d.output_shape;
    // Channels (or units) of the unpruned output that survive; empty = all.
    kept = static_cast<int64_t>(kept_out.size()) == l->output_shape()[0] ? std::vector<int64_t>{} : kept_out;
    model.push_back(std::move(d));
  }
  if (kept_outputs) {
    *kept_outputs = kept;
    if (kept_outputs->empty())
      for (int64_t k = 0; k < layers_.back()->output_shape()[0]; ++k) kept_outputs->push_back(k);
  }
  // The input quantizer's own input: real numbers, described by its output type.
  model.front().input_type = model.front().output_type;
  return model;
}

torch::Tensor QuantizedStackImpl::ebops() const {
  torch::Tensor total = torch::zeros({});
  torch::Tensor bits;
  for (const auto& l : layers_) {
    if (bits.defined()) total = total + l->ebops(bits);
    bits = l->output_quantizer()->bits();
  }
  return total;
}

std::vector<QLayerImpl::ResourceShape> QuantizedStackImpl::resource_shapes() const {
  std::vector<QLayerImpl::ResourceShape> out;
  torch::Tensor bits, share = torch::ones({});
  for (const auto& l : layers_) {
    if (bits.defined()) {
      QLayerImpl::ResourceShape r = l->resource_shape(bits, share);
      share = r.kept_share;
      if (r.in.defined()) out.push_back(r);
    }
    bits = l->output_quantizer()->bits();
  }
  return out;
}

torch::Tensor QuantizedStackImpl::group_lasso() const {
  torch::Tensor total = torch::zeros({});
  for (const auto& l : layers_) total = total + l->group_lasso();
  return total;
}

torch::Tensor QuantizedStackImpl::gate_penalty() const {
  torch::Tensor total = torch::zeros({});
  for (const auto& l : layers_) total = total + l->gate_penalty();
  return total;
}

void QuantizedStackImpl::prune_to(double sparsity) {
  // The last layer with weights is left whole: its outputs are the stack's
  // interface (a transmitted latent, a classifier score).
  int64_t last = -1;
  for (size_t k = 0; k < layers_.size(); ++k)
    if (!std::dynamic_pointer_cast<ActivationImpl>(layers_[k])) last = static_cast<int64_t>(k);
  for (int64_t k = 0; k < last; ++k) layers_[k]->prune_to(sparsity);
}

void QuantizedStackImpl::set_quantization(bool on) {
  for (const auto& m : modules())
    if (auto q = std::dynamic_pointer_cast<FixedPointQuantizerImpl>(m)) q->set_enabled(on);
}

std::string QuantizedStackImpl::spec() const {
  json layers = json::array();
  for (const auto& l : layer_specs_) layers.push_back(json::parse(l));
  return json({{"format", "ddaq-quantized-stack-1"}, {"input_shape", input_shape_}, {"layers", layers}}).dump();
}

QuantizedStack quantized_stack_from_spec(const std::string& text) {
  try {
    const json j = json::parse(text);
    if (j.at("format").get<std::string>() != "ddaq-quantized-stack-1") throw Error("quantized stack spec: unknown format");
    QuantizedStack s(j.at("input_shape").get<std::vector<int64_t>>());
    for (const json& l : j.at("layers")) {
      const std::string kind = l.at("kind").get<std::string>();
      if (kind == "input") {
        s->input(quantizer_from(l.at("output")));
      } else if (kind == "relu") {
        s->relu(quantizer_from(l.at("output")));
      } else if (kind == "dense") {
        s->dense(QLinearOptions(l.at("in").get<int64_t>(), l.at("out").get<int64_t>())
                     .bias(l.at("bias").get<bool>())
                     .weight(quantizer_from(l.at("weight")))
                     .bias_quant(quantizer_from(l.at("bias_quant")))
                     .output(quantizer_from(l.at("output")))
                     .pruning(PruningOptions()
                                  .gates(l.at("gates").get<bool>())
                                  .straight_through(l.value("straight_through", false))));
      } else if (kind == "conv") {
        s->conv(QConvOptions(l.at("in").get<int64_t>(), l.at("out").get<int64_t>(), l.at("kernel").get<int64_t>())
                    .stride(l.at("stride").get<int64_t>())
                    .padding(l.at("padding").get<int64_t>())
                    .output_padding(l.at("output_padding").get<int64_t>())
                    .bias(l.at("bias").get<bool>())
                    .transposed(l.at("transposed").get<bool>())
                    .batchnorm(l.at("batchnorm").get<bool>())
                    .weight(quantizer_from(l.at("weight")))
                    .bias_quant(quantizer_from(l.at("bias_quant")))
                    .output(quantizer_from(l.at("output")))
                    .pruning(PruningOptions().gates(l.at("gates").get<bool>())));
      } else {
        throw Error("quantized stack spec: unknown layer kind '" + kind + "'");
      }
    }
    return s;
  } catch (const json::exception& e) {
    throw Error(std::string("quantized stack spec: ") + e.what());
  }
}

void save_quantized_stack(QuantizedStack& stack, const std::string& path,
                          const std::map<std::string, std::string>& labels) {
  std::ostringstream bytes;
  try {
    torch::serialize::OutputArchive archive;
    archive.write("kind", c10::IValue(std::string("ddaq-quantized-stack-1")));
    for (const auto& kv : labels) archive.write("label." + kv.first, c10::IValue(kv.second));
    archive.write("spec", c10::IValue(stack->spec()));
    for (const auto& p : stack->named_parameters()) archive.write("p." + p.key(), p.value().detach());
    for (const auto& b : stack->named_buffers()) archive.write("b." + b.key(), b.value());
    archive.save_to(bytes);
  } catch (const c10::Error& e) {
    throw Error(path + ": cannot write the quantized stack (" + e.what_without_backtrace() + ")");
  }
  write_file_atomic(path, bytes.str());
}

std::string ddaq_archive_kind(const std::string& path) {
  torch::serialize::InputArchive archive;
  try {
    archive.load_from(path);
  } catch (const std::exception&) {
    return "not a ddaq LibTorch archive";
  }
  c10::IValue v;
  for (const char* key : {"kind", "format"})
    if (archive.try_read(key, v) && v.isString()) {
      const std::string k = v.toStringRef();
      if (k.rfind("ddaq-quantized-stack", 0) == 0) return "a ddaq quantized stack";
      if (k.rfind("ddaq-decoder", 0) == 0) return "a ddaq decoder (decoder.pt of a run)";
      if (k.rfind("ddaq-emd-surrogate", 0) == 0) return "a ddaq EMD surrogate";
      if (k.rfind("ddaq-resource-net", 0) == 0) return "a ddaq learned resource model";
      return "a ddaq file of kind '" + k + "'";
    }
  if (archive.try_read("meta", v)) return "a ddaq training checkpoint";
  if (archive.try_read("spec", v)) return "a ddaq quantized stack";
  if (archive.try_read("frontend.threshold", v)) return "a ddaq decoder (decoder.pt of a run)";
  return "not a ddaq LibTorch archive";
}

std::string wrong_kind_message(const std::string& path, const std::string& wanted) {
  const std::string kind = ddaq_archive_kind(path);
  return kind.rfind("a ", 0) == 0 ? path + ": is " + kind + ", not " + wanted
                                  : path + ": not " + wanted + " (" + kind + ")";
}

QuantizedStack load_quantized_stack(const std::string& path, std::map<std::string, std::string>* labels) {
  if (::access(path.c_str(), R_OK) != 0) throw Error(path + ": cannot open (missing or unreadable)");
  torch::serialize::InputArchive archive;
  c10::IValue spec;
  try {
    archive.load_from(path);
  } catch (const std::exception&) {
    throw Error(wrong_kind_message(path, "a quantized stack"));
  }
  if (!archive.try_read("spec", spec) || !spec.isString())
    throw Error(wrong_kind_message(path, "a quantized stack"));
  if (labels) {
    labels->clear();
    for (const std::string key : {"run_id", "part"}) {
      c10::IValue v;
      if (archive.try_read("label." + key, v) && v.isString()) (*labels)[key] = v.toStringRef();
    }
  }
  QuantizedStack s = quantized_stack_from_spec(spec.toStringRef());
  torch::NoGradGuard no_grad;
  auto restore = [&](const std::string& key, torch::Tensor& target) {
    torch::Tensor v;
    try {
      archive.read(key, v);
    } catch (const c10::Error&) {
      throw Error(path + ": missing '" + key + "'");
    }
    if (v.sizes() != target.sizes()) throw Error(path + ": '" + key + "' has the wrong shape");
    target.copy_(v);
  };
  for (auto& p : s->named_parameters()) restore("p." + p.key(), p.value());
  for (auto& b : s->named_buffers()) restore("b." + b.key(), b.value());
  s->eval();
  return s;
}

double PolynomialSchedule::at(int64_t step) const {
  if (step <= begin_step) return initial;
  if (step >= end_step) return final;
  const double p = static_cast<double>(step - begin_step) / static_cast<double>(end_step - begin_step);
  return final + (initial - final) * std::pow(1.0 - p, power);
}

}  // namespace ddaq
