#include "ddaq/quant/qonnx.h"

#include <onnx/checker.h>
#include <onnx/onnx_pb.h>
#include <unistd.h>

#include <cmath>
#include <sstream>
#include <cstdio>
#include <fstream>

#include "ddaq/error.h"
#include "ddaq/files.h"

namespace ddaq {
namespace {

constexpr const char* kQonnxDomain = "qonnx.custom_op.general";

struct GraphBuilder {
  onnx::GraphProto* graph;
  int counter = 0;

  // A 0-d tensor, or shape (1,) when `vector`.
  std::string scalar(const std::string& name, float value, bool vector = false) {
    onnx::TensorProto* t = graph->add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::FLOAT);
    if (vector) t->add_dims(1);
    t->add_float_data(value);
    return name;
  }
  std::string tensor(const std::string& name, const std::vector<int64_t>& dims, const std::vector<float>& values) {
    onnx::TensorProto* t = graph->add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::FLOAT);
    for (int64_t d : dims) t->add_dims(d);
    for (float v : values) t->add_float_data(v);
    return name;
  }
  onnx::NodeProto* node(const std::string& op, const std::string& name, std::vector<std::string> inputs,
                        const std::string& output, const std::string& domain = "") {
    onnx::NodeProto* n = graph->add_node();
    n->set_op_type(op);
    n->set_name(name);
    if (!domain.empty()) n->set_domain(domain);
    for (const auto& i : inputs) n->add_input(i);
    n->add_output(output);
    return n;
  }
  static void attr(onnx::NodeProto* n, const std::string& name, int64_t v) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(v);
  }
  static void attr(onnx::NodeProto* n, const std::string& name, const std::string& v) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::STRING);
    a->set_s(v);
  }
  static void attr(onnx::NodeProto* n, const std::string& name, const std::vector<int64_t>& v) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INTS);
    for (int64_t x : v) a->add_ints(x);
  }

  // Quant node for `type`; returns its output name. Parameters (weights,
  // biases) are already on their grid and in range, so any rounding and
  // overflow mode is exact for them; activations need matching modes.
  std::string quant(const std::string& input, const FixedPointType& type, const std::string& name,
                    const std::string& where, bool parameter = false) {
    if (!parameter && type.overflow == Overflow::WRAP)
      throw Error("qonnx export: " + where + ": " + type.hls_type() +
                  " wraps on overflow; QONNX Quant saturates (use SAT or SAT_SYM)");
    if (!parameter && type.rounding == Rounding::RND)
      throw Error("qonnx export: " + where + ": " + type.hls_type() +
                  " rounds half towards +inf, which no QONNX rounding mode does (use TRN or RND_CONV)");
    const std::string out = name;
    // Scales of parameter Quants have shape (1,): newer qonnx's bias
    // extraction from Conv fails on 0-d ones. Activation scales stay 0-d:
    // qonnx's channels-last conversion broadcasts a 0-d scale as is, but
    // inserts Unsqueeze nodes (folded by onnxruntime) for a (1,) one.
    onnx::NodeProto* n =
        node("Quant", name + "_node",
             {input, scalar(name + "_scale", std::ldexp(1.0f, -type.fractional()), parameter),
              scalar(name + "_zeropt", 0.0f), scalar(name + "_bitwidth", static_cast<float>(type.width))},
             out, kQonnxDomain);
    attr(n, "signed", static_cast<int64_t>(type.is_signed ? 1 : 0));
    attr(n, "narrow", static_cast<int64_t>(type.is_signed && type.overflow == Overflow::SAT_SYM ? 1 : 0));
    attr(n, "rounding_mode", std::string(!parameter && type.rounding == Rounding::TRN ? "FLOOR" : "ROUND"));
    return out;
  }

  // Per-element truncation after a Quant of the layer's output type: a
  // second Quant with one power-of-two scale 2^-f per element (shape [C]:
  // hls4ml reads a 1-D scale per channel) and the type's bitwidth. Its
  // input already saturated at the shared integer bits, so floor to f
  // fractional bits never clips: the result is channel_type(l, k) exactly.
  std::string channel_truncation(const std::string& input, const LayerDescription& l, const std::string& name) {
    std::vector<float> scales;
    for (int f : l.channel_fractional) scales.push_back(std::ldexp(1.0f, -f));
    onnx::NodeProto* n = node("Quant", name + "_node",
                              {input, tensor(name + "_scale", {static_cast<int64_t>(scales.size())}, scales),
                               scalar(name + "_zeropt", 0.0f),
                               scalar(name + "_bitwidth", static_cast<float>(l.output_type.width))},
                              name, kQonnxDomain);
    attr(n, "signed", int64_t(0));
    attr(n, "narrow", int64_t(0));
    attr(n, "rounding_mode", std::string("FLOOR"));
    return name;
  }
};

std::vector<float> real_values(const std::vector<int64_t>& raw, const FixedPointType& type) {
  std::vector<float> v(raw.size());
  for (size_t k = 0; k < raw.size(); ++k) {
    const double x = type.from_raw(raw[k]);
    v[k] = static_cast<float>(x);
    if (static_cast<double>(v[k]) != x)
      throw Error("qonnx export: value " + std::to_string(x) + " of " + type.hls_type() + " is not exact in float32");
  }
  return v;
}

// Batch dimension 1, as hls4ml and FINN expect (qonnx's channels-last shape
// inference fails on a symbolic one); qonnx's ChangeBatchSize sets another.
void value_info(onnx::ValueInfoProto* v, const std::string& name, const std::vector<int64_t>& shape) {
  v->set_name(name);
  auto* t = v->mutable_type()->mutable_tensor_type();
  t->set_elem_type(onnx::TensorProto::FLOAT);
  t->mutable_shape()->add_dim()->set_dim_value(1);
  for (int64_t d : shape) t->mutable_shape()->add_dim()->set_dim_value(d);
}

}  // namespace

void write_qonnx(const ModelDescription& model, const std::string& path, const QonnxOptions& options) {
  if (model.empty() || model.front().kind != LayerKind::InputQuant)
    throw Error("qonnx export: the model must start with an input quantizer");
  onnx::ModelProto m;
  m.set_ir_version(7);  // ONNX 1.8+: readable by every tool that reads opset 11
  m.set_producer_name("ddaq");
  m.set_producer_version(options.metadata().count("ddaq_version") ? options.metadata().at("ddaq_version") : "");
  auto* opset = m.add_opset_import();
  opset->set_domain("");
  opset->set_version(options.opset());
  auto* qopset = m.add_opset_import();
  qopset->set_domain(kQonnxDomain);
  qopset->set_version(1);
  for (const auto& kv : options.metadata()) {
    auto* p = m.add_metadata_props();
    p->set_key(kv.first);
    p->set_value(kv.second);
  }
  GraphBuilder g{m.mutable_graph()};
  g.graph->set_name(options.graph_name());
  value_info(g.graph->add_input(), "input", model.front().input_shape);

  std::string x = g.quant("input", model.front().output_type, "input_quant", "input");
  for (size_t k = 1; k < model.size(); ++k) {
    const LayerDescription& l = model[k];
    const std::string p = l.name.empty() ? "layer" + std::to_string(k) : l.name;
    const std::string where = "layer '" + p + "'";
    switch (l.kind) {
      case LayerKind::Relu:
        g.node("Relu", p + "_relu", {x}, p + "_relu_out");
        x = g.quant(p + "_relu_out", l.output_type, p + "_out_quant", where);
        if (!l.channel_fractional.empty()) x = g.channel_truncation(x, l, p + "_channel_quant");
        break;
      case LayerKind::Dense: {
        if (l.input_shape.size() != 1 || model[k - 1].output_shape.size() != 1) {
          GraphBuilder::attr(g.node("Flatten", p + "_flatten", {x}, p + "_flat"), "axis", int64_t(1));
          x = p + "_flat";
        }
        const int64_t out = l.weight_shape[0], in = l.weight_shape[1];
        // MatMul wants [in, out]: transpose the LibTorch [out, in] weights.
        const auto w = real_values(l.weight_raw, l.weight_type);
        std::vector<float> wt(w.size());
        for (int64_t o = 0; o < out; ++o)
          for (int64_t i = 0; i < in; ++i) wt[i * out + o] = w[o * in + i];
        const std::string wq =
            g.quant(g.tensor(p + "_weight", {in, out}, wt), l.weight_type, p + "_weight_quant", where, true);
        g.node("MatMul", p + "_matmul", {x, wq}, p + "_matmul_out");
        x = p + "_matmul_out";
        if (!l.bias_raw.empty()) {
          const std::string bq = g.quant(g.tensor(p + "_bias", {out}, real_values(l.bias_raw, l.bias_type)),
                                         l.bias_type, p + "_bias_quant", where, true);
          g.node("Add", p + "_add", {x, bq}, p + "_add_out");
          x = p + "_add_out";
        }
        x = g.quant(x, l.output_type, p + "_out_quant", where);
        break;
      }
      case LayerKind::Conv2d:
      case LayerKind::ConvTranspose2d: {
        const bool transposed = l.kind == LayerKind::ConvTranspose2d;
        const std::string wq =
            g.quant(g.tensor(p + "_weight", l.weight_shape, real_values(l.weight_raw, l.weight_type)), l.weight_type,
                    p + "_weight_quant", where, true);
        std::vector<std::string> inputs{x, wq};
        if (!l.bias_raw.empty())
          inputs.push_back(g.quant(
              g.tensor(p + "_bias", {static_cast<int64_t>(l.bias_raw.size())}, real_values(l.bias_raw, l.bias_type)),
              l.bias_type, p + "_bias_quant", where, true));
        onnx::NodeProto* n = g.node(transposed ? "ConvTranspose" : "Conv", p + "_conv", inputs, p + "_conv_out");
        GraphBuilder::attr(n, "kernel_shape", std::vector<int64_t>{l.weight_shape[2], l.weight_shape[3]});
        GraphBuilder::attr(n, "strides", std::vector<int64_t>{l.stride, l.stride});
        GraphBuilder::attr(n, "pads", std::vector<int64_t>{l.padding, l.padding, l.padding, l.padding});
        // Optional in ONNX, but qonnx's channels-last conversion requires
        // dilations and hls4ml's Conv parser reads group.
        GraphBuilder::attr(n, "dilations", std::vector<int64_t>{1, 1});
        GraphBuilder::attr(n, "group", int64_t(1));
        if (transposed && l.output_padding > 0)
          GraphBuilder::attr(n, "output_padding", std::vector<int64_t>{l.output_padding, l.output_padding});
        x = g.quant(p + "_conv_out", l.output_type, p + "_out_quant", where);
        break;
      }
      case LayerKind::InputQuant:
        throw Error("qonnx export: a second input quantizer at " + where);
    }
  }
  // The last node writes "output" itself: hls4ml skips Identity nodes and
  // then finds no output layer (its top function gets no output argument).
  for (auto& n : *g.graph->mutable_node())
    for (auto& out : *n.mutable_output())
      if (out == x) out = "output";
  value_info(g.graph->add_output(), "output", model.back().output_shape);
  try {
    onnx::checker::check_model(m);
  } catch (const std::exception& e) {
    throw Error("qonnx export: the ONNX checker rejects the model: " + std::string(e.what()));
  }
  std::string bytes;
  if (!m.SerializeToString(&bytes)) throw Error(path + ": cannot serialize the QONNX model");
  write_file_atomic(path, bytes);
}

}  // namespace ddaq
