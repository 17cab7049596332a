#include "ddaq/core/layouts.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>

#include "ddaq/error.h"

namespace ddaq {
namespace {

at::Tensor index_tensor(const std::vector<int64_t>& v, const at::Device& device) {
  return at::tensor(at::ArrayRef<int64_t>(v), at::TensorOptions().dtype(at::kLong)).to(device);
}

}  // namespace

CellLayout CellLayout::image8x8(const WaferGeometry& g) {
  CellLayout l;
  l.name_ = "8x8";
  l.shape_ = {1, 8, 8};
  l.grid_to_cell_.assign(g.layout8x8().begin(), g.layout8x8().end());
  l.cell_to_grid_.assign(g.image8x8_position().begin(), g.image8x8_position().end());
  return l;
}

CellLayout CellLayout::blocks4x4x3(const WaferGeometry& g) {
  CellLayout l;
  l.name_ = "4x4x3";
  l.shape_ = {3, 4, 4};
  l.grid_to_cell_.assign(kCellsPerWafer, 0);
  l.cell_to_grid_.assign(kCellsPerWafer, 0);
  // block4x4 = channel * 16 + row * 4 + column: already the flat grid position.
  for (const TriggerCell& c : g.cells()) {
    l.grid_to_cell_[c.block4x4] = c.tc;
    l.cell_to_grid_[c.tc] = c.block4x4;
  }
  return l;
}

CellLayout CellLayout::from_positions(const std::vector<std::array<double, 2>>& positions) {
  if (positions.size() < 2) throw Error("layout geometry: needs at least 2 cells");
  double pitch = INFINITY, x0 = INFINITY, y0 = INFINITY;
  for (size_t i = 0; i < positions.size(); ++i) {
    x0 = std::min(x0, positions[i][0]);
    y0 = std::min(y0, positions[i][1]);
    for (size_t j = i + 1; j < positions.size(); ++j)
      pitch = std::min(pitch, std::hypot(positions[i][0] - positions[j][0], positions[i][1] - positions[j][1]));
  }
  std::vector<std::array<int64_t, 2>> at(positions.size());
  int64_t rows = 0, cols = 0;
  for (size_t i = 0; i < positions.size(); ++i) {
    const double u = (positions[i][0] - x0) / pitch, v = (positions[i][1] - y0) / pitch;
    const double cu = std::round(u), cv = std::round(v);
    // A hexagonal or irregular detector has cells between grid points.
    if (std::abs(u - cu) > 1e-3 || std::abs(v - cv) > 1e-3)
      throw Error("layout geometry: cell " + std::to_string(i) + " is not on a square grid at the cells' pitch " +
                  std::to_string(pitch) + " (use input_shape or a dense encoder)");
    at[i] = {static_cast<int64_t>(cv), static_cast<int64_t>(cu)};
    rows = std::max(rows, at[i][0] + 1);
    cols = std::max(cols, at[i][1] + 1);
  }
  const int64_t n = static_cast<int64_t>(positions.size());
  if (rows * cols > 16 * n)
    throw Error("layout geometry: a " + std::to_string(rows) + " x " + std::to_string(cols) + " grid for " +
                std::to_string(n) + " cells (over 16 positions per cell)");
  CellLayout l;
  l.name_ = "geometry";
  l.shape_ = {1, rows, cols};
  l.grid_to_cell_.assign(static_cast<size_t>(rows * cols), -1);
  l.cell_to_grid_.resize(positions.size());
  for (size_t i = 0; i < positions.size(); ++i) {
    const int64_t p = at[i][0] * cols + at[i][1];
    l.grid_to_cell_[static_cast<size_t>(p)] = static_cast<int64_t>(i);
    l.cell_to_grid_[i] = p;
  }
  l.has_empty_ = static_cast<int64_t>(positions.size()) < rows * cols;
  return l;
}

CellLayout CellLayout::by_name(const std::string& name, const WaferGeometry& g) {
  if (name == "8x8") return image8x8(g);
  if (name == "4x4x3") return blocks4x4x3(g);
  throw Error("unknown cell layout '" + name + "' (expected '8x8' or '4x4x3')");
}

at::Tensor CellLayout::to_grid(const at::Tensor& cells) const {
  if (cells.dim() != 2 || cells.size(1) != this->cells())
    throw Error("layout " + name_ + ": expected cells of shape [N, " + std::to_string(this->cells()) + "]");
  at::Tensor grid;
  if (has_empty_) {
    // Positions without a cell gather from an appended zero column.
    std::vector<int64_t> index(grid_to_cell_);
    for (int64_t& i : index)
      if (i < 0) i = this->cells();
    grid = at::cat({cells, at::zeros({cells.size(0), 1}, cells.options())}, 1)
               .index_select(1, index_tensor(index, cells.device()));
  } else {
    grid = cells.index_select(1, index_tensor(grid_to_cell_, cells.device()));
  }
  return grid.reshape({cells.size(0), shape_[0], shape_[1], shape_[2]});
}

at::Tensor CellLayout::to_cells(const at::Tensor& grid) const {
  if (grid.dim() != 4 || grid.size(1) != shape_[0] || grid.size(2) != shape_[1] || grid.size(3) != shape_[2])
    throw Error("layout " + name_ + ": expected a grid of shape [N, " + std::to_string(shape_[0]) + ", " +
                std::to_string(shape_[1]) + ", " + std::to_string(shape_[2]) + "]");
  const at::Tensor flat = grid.reshape({grid.size(0), shape_[0] * shape_[1] * shape_[2]});
  return flat.index_select(1, index_tensor(cell_to_grid_, grid.device()));
}

at::Tensor CellLayout::mask() const {
  std::vector<float> m(grid_to_cell_.size(), 0.0f);
  for (int64_t p : cell_to_grid_) m[static_cast<size_t>(p)] = 1.0f;
  return at::tensor(at::ArrayRef<float>(m)).reshape({shape_[0], shape_[1], shape_[2]});
}

}  // namespace ddaq
