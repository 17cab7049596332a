// ddaq/core/layouts.h: the 48 trigger cells as images for convolutional
// encoders, and back, as differentiable tensor operations (gathers).
//
//   image8x8:    [N, 48] <-> [N, 1, 8, 8]; 16 positions repeat cells 32..47,
//                mask() is 1 on the 48 positions that carry a cell first.
//   blocks4x4x3: [N, 48] <-> [N, 3, 4, 4]; three 4x4 sub-blocks as channels.
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

  const std::string& name() const { return name_; }
  // {channels, height, width}
  std::array<int64_t, 3> grid_shape() const { return shape_; }

  // [N, 48] -> [N, C, H, W]; any floating dtype and device.
  at::Tensor to_grid(const at::Tensor& cells) const;
  // [N, C, H, W] -> [N, 48]
  at::Tensor to_cells(const at::Tensor& grid) const;
  // [C, H, W] float: 1 where a position carries a cell first, 0 for repeats.
  at::Tensor mask() const;
  // Flat grid position -> trigger cell (what to_grid gathers).
  const std::vector<int64_t>& grid_to_cell() const { return grid_to_cell_; }

 private:
  std::string name_;
  std::array<int64_t, 3> shape_{};
  std::vector<int64_t> grid_to_cell_;  // flat grid position -> tc
  std::vector<int64_t> cell_to_grid_;  // tc -> flat grid position
};

}  // namespace ddaq
