#include "ddaq/core/layouts.h"

#include <ATen/ATen.h>

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

CellLayout CellLayout::by_name(const std::string& name, const WaferGeometry& g) {
  if (name == "8x8") return image8x8(g);
  if (name == "4x4x3") return blocks4x4x3(g);
  throw Error("unknown cell layout '" + name + "' (expected '8x8' or '4x4x3')");
}

at::Tensor CellLayout::to_grid(const at::Tensor& cells) const {
  if (cells.dim() != 2 || cells.size(1) != kCellsPerWafer)
    throw Error("layout " + name_ + ": expected cells of shape [N, 48], got " + std::to_string(cells.dim()) +
                "-D tensor");
  const at::Tensor grid = cells.index_select(1, index_tensor(grid_to_cell_, cells.device()));
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
