// ddaq/core/baselines.h: the classical ECON-T compressors, for comparison at
// equal bandwidth (link budgets in surrogates/link_budget.h).
#pragma once
#include <cstdint>
#include <vector>

#include "ddaq/core/geometry.h"

namespace ddaq {

// Best Choice: the `keep` largest cells of each wafer (rows x 48 in and out).
void best_choice(const float* calq, int64_t rows, int keep, float* out);

// Threshold format at a fixed bandwidth: every cell above `threshold` is
// sent, but only the `max_cells` largest fit; the rest are lost.
void threshold_truncated(const float* calq, int64_t rows, float threshold, int max_cells, float* out);

// Group index of every cell (48 entries, by tc): 2x2 squares (`group` 4, 12
// groups) or whole 4x4 blocks (`group` 16, 3 groups) of the 4x4x3 layout.
std::vector<int> super_cell_groups(int group, const WaferGeometry& geometry = WaferGeometry::hgcal());

// Super trigger cells: sums over groups of `group` cells (4: 2x2, 16: 4x4
// within the wafer's three 4x4 blocks), each placed at its largest cell.
void super_trigger_cells(const float* calq, int64_t rows, int group, float* out,
                         const WaferGeometry& geometry = WaferGeometry::hgcal());

}  // namespace ddaq
