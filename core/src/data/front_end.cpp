#include "ddaq/core/front_end.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace ddaq {

void EconTFrontEnd::apply(const float* calq, float* grid) const {
  std::vector<float> kept(static_cast<size_t>(cells));
  double sum = 0.0;
  for (int c = 0; c < cells; ++c) {
    kept[c] = calq[c] > threshold ? calq[c] : 0.0f;
    sum += kept[c];
  }
  if (normalization != "econt") {
    const double scale = normalization == "sum" ? std::max(sum, 1e-6) : 1.0;
    for (size_t k = 0; k < grid_to_cell.size(); ++k)
      grid[k] = grid_to_cell[k] < 0 ? 0.0f : static_cast<float>(kept[static_cast<size_t>(grid_to_cell[k])] / scale);
    return;
  }
  int exponent = 0;
  std::frexp(std::max(sum, 1.0), &exponent);  // sum = m * 2^exponent, m in [0.5, 1)
  const float scale = std::ldexp(1.0f, exponent - 1);
  for (size_t k = 0; k < grid_to_cell.size(); ++k) grid[k] = kept[grid_to_cell[k]] / scale;
}

}  // namespace ddaq
