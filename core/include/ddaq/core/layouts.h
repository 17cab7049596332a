// ddaq/core/layouts.h: a detector's cells as images for convolutional
// encoders, and back, as differentiable tensor operations (gathers).
//
//   image8x8:    [N, 48] <-> [N, 1, 8, 8]; 16 positions repeat cells 32..47,
//                mask() is 1 on the 48 positions that carry a cell first.
//   blocks4x4x3: [N, 48] <-> [N, 3, 4, 4]; three 4x4 sub-blocks as channels.
//   from_positions ("geometry"): any detector whose cells sit on a square
//                grid (a geometry file, cell_geometry.h): [N, cells] <->
//                [N, 1, H, W], row = (y - min y) / pitch, column =
//                (x - min x) / pitch; positions without a cell read 0.
// to_cells() reads each cell from its first image position, so
// to_cells(to_image(x)) == x exactly, and gradients flow through both ways.
#pragma once
#include <array>
#include <string>
#include <vector>

#include "ddaq/core/geometry.h"

namespace at {
class Tensor;
}

namespace ddaq {

class CellLayout {
 public:
  static CellLayout image8x8(const WaferGeometry& geometry = WaferGeometry::hgcal());
  static CellLayout blocks4x4x3(const WaferGeometry& geometry = WaferGeometry::hgcal());
  // "8x8" or "4x4x3"; throws ddaq::Error for any other name.
  static CellLayout by_name(const std::string& name,
                            const WaferGeometry& geometry = WaferGeometry::hgcal());
  // The cells' positions on a square grid at their pitch (the smallest
  // distance between two cells), named "geometry". Throws ddaq::Error naming
  // the first cell off that grid, or when the grid would hold more than 16
  // positions per cell (a sparse detector: reshape or use a dense encoder).
  static CellLayout from_positions(const std::vector<std::array<double, 2>>& positions);

  const std::string& name() const { return name_; }
  // {channels, height, width}
  std::array<int64_t, 3> grid_shape() const { return shape_; }

  int64_t cells() const { return static_cast<int64_t>(cell_to_grid_.size()); }
  // [N, cells] -> [N, C, H, W]; any floating dtype and device.
  at::Tensor to_grid(const at::Tensor& cells) const;
  // [N, C, H, W] -> [N, cells]
  at::Tensor to_cells(const at::Tensor& grid) const;
  // [C, H, W] float: 1 where a position carries a cell first, 0 for repeats.
  at::Tensor mask() const;
  // Flat grid position -> cell (what to_grid gathers; -1: no cell, reads 0).
  const std::vector<int64_t>& grid_to_cell() const { return grid_to_cell_; }

 private:
  std::string name_;
  std::array<int64_t, 3> shape_{};
  std::vector<int64_t> grid_to_cell_;  // flat grid position -> cell (-1: none)
  std::vector<int64_t> cell_to_grid_;  // cell -> flat grid position
  bool has_empty_ = false;             // some position holds no cell
};

}  // namespace ddaq
