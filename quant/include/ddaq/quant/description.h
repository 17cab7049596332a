// ddaq/quant/description.h: the seam between training and hardware.
//
// One plain description of a quantized layer, reported by every quantized
// layer and read by every exporter and cost model: what it computes, its
// shapes, its fixed-point types and its integer weights. Pruned units are
// already removed here (physically), so consumers never see masks.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "ddaq/quant/fixed_point.h"

namespace ddaq {

enum class LayerKind { InputQuant, Dense, Conv2d, ConvTranspose2d, Relu };
const char* to_string(LayerKind kind);

struct LayerDescription {
  LayerKind kind = LayerKind::Dense;
  std::string name;
  // Shapes without the batch: {features} or {channels, height, width}.
  std::vector<int64_t> input_shape, output_shape;
  FixedPointType input_type, output_type;
  // ReLU layers of 1-D shape and unsigned TRN output only: per output element, the
  // fractional bits it keeps, truncated (floor) from output_type's; empty:
  // output_type's for all. The element's type is channel_type(): the same
  // integer bits and saturation, fewer fractional bits, so per-element
  // widths (e.g. per-latent bits) differ and the tensor keeps one type.
  std::vector<int> channel_fractional;
  // Dense: weight [out, in]; Conv2d: [out, in, kh, kw]; ConvTranspose2d:
  // [in, out, kh, kw] (LibTorch layouts). Raw integers of weight_type/bias_type.
  FixedPointType weight_type, bias_type, accumulator_type;
  std::vector<int64_t> weight_shape;
  std::vector<int64_t> weight_raw, bias_raw;
  // Convolutions.
  int64_t stride = 1, padding = 0, output_padding = 0;
  // Multiplies of the layer (non-zero weights x output positions), and the
  // effective bit operations sum(b_in * b_w) over them (HGQ's EBOPs).
  int64_t multiplies = 0;
  double ebops = 0.0;
  int reuse_factor = 1;
};

using ModelDescription = std::vector<LayerDescription>;

// The type of output element `k`: output_type, or with channel_fractional,
// output_type with channel_fractional[k] fractional bits (width <= 0: the
// element is always 0 and carries nothing; width() of the result is then 0).
FixedPointType channel_type(const LayerDescription& layer, int64_t k);
// Bits of output element `k` (0 for an element that is always 0).
int channel_width(const LayerDescription& layer, int64_t k);

// Number of elements of a shape.
int64_t elements(const std::vector<int64_t>& shape);

}  // namespace ddaq
