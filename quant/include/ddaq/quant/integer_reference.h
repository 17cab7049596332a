// ddaq/quant/integer_reference.h: the ground truth of quantized inference.
//
// Runs a ModelDescription with integer arithmetic only (int64 accumulators,
// exact; rounding and overflow by FixedPointType::raw_from_raw). The QONNX
// and HLS exports are tested against it, and it reproduces the fake-
// quantized LibTorch forward (evaluated in float64) bit for bit.
#pragma once
#include <cstdint>
#include <vector>

#include "ddaq/quant/description.h"

namespace ddaq {

class IntegerReference {
 public:
  // Throws ddaq::Error if shapes or types do not chain.
  explicit IntegerReference(ModelDescription model);

  // One input (elements(input_shape) reals) -> raw integers of the last
  // layer's output type.
  std::vector<int64_t> run_raw(const std::vector<double>& input) const;
  // The same, as real values.
  std::vector<double> run(const std::vector<double>& input) const;

  const ModelDescription& model() const { return model_; }

 private:
  ModelDescription model_;
};

}  // namespace ddaq
