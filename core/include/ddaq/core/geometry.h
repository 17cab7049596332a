// ddaq/core/geometry.h: the 48 trigger cells of an HGCAL silicon wafer.
//
// Detector knowledge enters the rest of ddaq as plain data from here: cell
// centres (for ground distances), and the two image layouts the encoders use.
#pragma once
#include <array>
#include <string>

namespace ddaq {

constexpr int kCellsPerWafer = 48;

struct TriggerCell {
  int tc = 0;         // index 0..47 = column CALQ_<tc> of the data
  int u = 0, v = 0;   // hexagonal-grid indices
  double x_cm = 0.0;  // cell centre
  double y_cm = 0.0;
  int block4x4 = 0;   // position 0..47 in the 3 x (4x4) "4x4x3" arrangement
};

class WaferGeometry {
 public:
  // The CMS HGCAL 8-inch wafer table carried inside ddaq (core/data/).
  static const WaferGeometry& hgcal();

  // Parse a geometry table (header tc,u,v,x_cm,y_cm,block4x4; 48 rows) and an
  // 8x8 layout (8 rows of 8 comma-separated tc indices; '#' comments). Throws
  // ddaq::Error naming `source` and the line on malformed text.
  static WaferGeometry parse(const std::string& geometry_csv, const std::string& layout_csv,
                             const std::string& source = "geometry");

  const std::array<TriggerCell, kCellsPerWafer>& cells() const { return cells_; }
  const TriggerCell& cell(int tc) const { return cells_.at(tc); }

  // Row-major 8x8 image position -> tc. Positions that repeat an earlier cell
  // (the lower-right 4x4 block of the HGCAL layout) are not in mask8x8().
  const std::array<int, 64>& layout8x8() const { return layout8x8_; }
  // true where a position holds the first occurrence of its cell in
  // column-major order: exactly 48 positions.
  const std::array<bool, 64>& mask8x8() const { return mask8x8_; }
  // tc -> the image position that carries it (inverse on the mask).
  const std::array<int, kCellsPerWafer>& image8x8_position() const { return image_position_; }

  // Distance between neighbouring trigger-cell centres (2.4168015 cm for HGCAL).
  double trigger_cell_pitch_cm() const { return pitch_cm_; }

 private:
  std::array<TriggerCell, kCellsPerWafer> cells_{};
  std::array<int, 64> layout8x8_{};
  std::array<bool, 64> mask8x8_{};
  std::array<int, kCellsPerWafer> image_position_{};
  double pitch_cm_ = 0.0;
};

}  // namespace ddaq
