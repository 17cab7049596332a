// ddaq/core/front_end.h: the ECON-T front end as the chip applies it (the
// pipeline's FrontEnd stage in evaluation), in plain C++: what exported
// testbenches and the emulator library (export.h) feed the encoder.
//
//   kept_c     = calq_c if calq_c > threshold, else 0
//   scale      = 2^floor(log2(max(sum_c kept_c, 1)))   (sum in float64)
//   grid_k     = kept_{grid_to_cell[k]} / scale          (float32, exact)
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace ddaq {

struct EconTFrontEnd {
  float threshold = 0.0f;             // CALQ
  std::vector<int64_t> grid_to_cell;  // encoder input position -> cell (0..cells-1; -1: none, reads 0)
  // A graph's front end on another detector: its cell count and the
  // front_end stage's normalization ("econt" as above, "sum": kept_c / sum
  // (float64), "none"). The emulator library is ECON-T's: 48 cells, "econt".
  int cells = 48;
  std::string normalization = "econt";

  // calq: the `cells` raw charges of one module; grid: grid_to_cell.size() values.
  void apply(const float* calq, float* grid) const;
};

}  // namespace ddaq
