// ddaq/core/front_end.h: the ECON-T front end as the chip applies it (the
// pipeline's FrontEnd stage in evaluation), in plain C++: what exported
// testbenches and the emulator library (export.h) feed the encoder.
//
//   kept_c     = calq_c if calq_c > threshold, else 0
//   scale      = 2^floor(log2(max(sum_c kept_c, 1)))   (sum in float64)
//   grid_k     = kept_{grid_to_cell[k]} / scale          (float32, exact)
#pragma once
#include <cstdint>
#include <vector>

namespace ddaq {

struct EconTFrontEnd {
  float threshold = 0.0f;             // CALQ
  std::vector<int64_t> grid_to_cell;  // encoder input position -> trigger cell (0..47)

  // calq: the 48 raw charges of one module; grid: grid_to_cell.size() values.
  void apply(const float* calq, float* grid) const;
};

}  // namespace ddaq
