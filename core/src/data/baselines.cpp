#include "ddaq/core/baselines.h"

#include <algorithm>
#include <numeric>
#include <vector>

#include "ddaq/error.h"

namespace ddaq {

void best_choice(const float* calq, int64_t rows, int keep, float* out) {
  threshold_truncated(calq, rows, 0.0f, keep, out);
}

void threshold_truncated(const float* calq, int64_t rows, float threshold, int max_cells, float* out) {
  if (max_cells < 0 || max_cells > kCellsPerWafer) throw Error("baselines: cells to keep must be in 0..48");
  std::vector<int> order(kCellsPerWafer);
  for (int64_t i = 0; i < rows; ++i) {
    const float* x = calq + i * kCellsPerWafer;
    float* y = out + i * kCellsPerWafer;
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return x[a] > x[b]; });
    std::fill(y, y + kCellsPerWafer, 0.0f);
    for (int k = 0; k < max_cells; ++k)
      if (x[order[k]] > threshold) y[order[k]] = x[order[k]];
  }
}

std::vector<int> super_cell_groups(int group, const WaferGeometry& g) {
  if (group != 4 && group != 16) throw Error("baselines: super trigger cells group 4 or 16 cells, not " + std::to_string(group));
  // Group of each cell from its 4x4x3 position: 2x2 squares or whole 4x4 blocks.
  std::vector<int> group_of(kCellsPerWafer);
  for (const TriggerCell& c : g.cells()) {
    const int block = c.block4x4 / 16, row = (c.block4x4 % 16) / 4, col = c.block4x4 % 4;
    group_of[c.tc] = group == 16 ? block : block * 4 + (row / 2) * 2 + col / 2;
  }
  return group_of;
}

void super_trigger_cells(const float* calq, int64_t rows, int group, float* out, const WaferGeometry& g) {
  const std::vector<int> group_of = super_cell_groups(group, g);
  const int groups = kCellsPerWafer / group;
  std::vector<float> sum(static_cast<size_t>(groups));
  std::vector<int> argmax(static_cast<size_t>(groups));
  for (int64_t i = 0; i < rows; ++i) {
    const float* x = calq + i * kCellsPerWafer;
    float* y = out + i * kCellsPerWafer;
    std::fill(sum.begin(), sum.end(), 0.0f);
    std::fill(argmax.begin(), argmax.end(), -1);
    for (int c = 0; c < kCellsPerWafer; ++c) {
      const int k = group_of[c];
      sum[k] += x[c];
      if (argmax[k] < 0 || x[c] > x[argmax[k]]) argmax[k] = c;
    }
    std::fill(y, y + kCellsPerWafer, 0.0f);
    for (int k = 0; k < groups; ++k)
      if (sum[k] > 0) y[argmax[k]] = sum[k];
  }
}

}  // namespace ddaq
