// ddaq/quant/qonnx.h: QONNX export of a quantized model description, the
// exchange format of hls4ml and FINN.
//
// Layout (Brevitas/QONNX conventions): every fixed-point tensor goes through
// a Quant node of domain qonnx.custom_op.general with a power-of-two scale
// 2^-F, zero point 0, bit width W, signed and narrow (SAT_SYM) attributes;
// weights and biases are float initializers on their grid feeding Quant;
// dense = Flatten (when needed) + MatMul + Add, convolutions = Conv /
// ConvTranspose, ReLU = Relu; activation Quant after every layer. Pruned
// units are already gone from the description.
//
// Quant clips, then rounds: for saturating types with integer bounds that is
// the ap_fixed order (round, then saturate). So only SAT / SAT_SYM overflow
// and TRN (-> FLOOR) / RND_CONV (-> ROUND, half to even) rounding export
// exactly; WRAP and RND (half towards +inf, no QONNX mode) are refused with
// an error naming the layer.
#pragma once
#include <map>
#include <string>

#include "ddaq/options.h"
#include "ddaq/quant/description.h"

namespace ddaq {

struct QonnxOptions {
  using Metadata = std::map<std::string, std::string>;
  DDAQ_OPTION(int, opset) = 11;
  DDAQ_OPTION(std::string, graph_name) = "ddaq";
  // Written as model metadata (with the ddaq version): config, layout, ...
  DDAQ_OPTION(Metadata, metadata);
};

// Writes `path` atomically; runs onnx::checker::check_model first and throws
// ddaq::Error (naming the layer or the checker's message) on failure.
void write_qonnx(const ModelDescription& model, const std::string& path, const QonnxOptions& options = QonnxOptions());

}  // namespace ddaq
