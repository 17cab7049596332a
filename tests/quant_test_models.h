// Quantized stacks that the exporters must reproduce bit for bit: saturating
// activations with TRN / RND_CONV rounding (what QONNX can express), pruning,
// learned bits, BatchNorm folding, conv-transpose.
#pragma once
#include <vector>

#include "ddaq/quant/layers.h"

namespace ddaq_test {
std::vector<ddaq::QuantizedStack> export_test_models();
}
