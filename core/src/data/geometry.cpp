#include "ddaq/core/geometry.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>

#include "ddaq/error.h"
#include "text.h"

namespace ddaq {
namespace embedded {
extern const char* const hgcal_geometry_csv;
extern const char* const hgcal_layout8x8_csv;
}  // namespace embedded

namespace {

[[noreturn]] void fail(const std::string& source, int line, const std::string& what) {
  throw Error(source + ":" + std::to_string(line) + ": " + what);
}

}  // namespace

const WaferGeometry& WaferGeometry::hgcal() {
  static const WaferGeometry geometry =
      parse(embedded::hgcal_geometry_csv, embedded::hgcal_layout8x8_csv, "embedded hgcal geometry");
  return geometry;
}

WaferGeometry WaferGeometry::parse(const std::string& geometry_csv, const std::string& layout_csv,
                                   const std::string& source) {
  WaferGeometry g;
  std::array<bool, kCellsPerWafer> seen{};
  std::array<bool, kCellsPerWafer> seen_block{};
  {
    std::istringstream in(geometry_csv);
    std::string line;
    int line_no = 0;
    bool header = false;
    while (std::getline(in, line)) {
      ++line_no;
      if (text::trim(line).empty() || text::trim(line)[0] == '#') continue;
      const auto f = text::split(line, ',');
      if (!header) {
        if (f.size() != 6 || text::trim(f[0]) != "tc" || text::trim(f[3]) != "x_cm" ||
            text::trim(f[5]) != "block4x4")
          fail(source, line_no, "expected header tc,u,v,x_cm,y_cm,block4x4");
        header = true;
        continue;
      }
      if (f.size() != 6) fail(source, line_no, "expected 6 fields, found " + std::to_string(f.size()));
      long long tc, u, v, block;
      double x, y;
      if (!text::parse_int(f[0], tc) || !text::parse_int(f[1], u) || !text::parse_int(f[2], v) ||
          !text::parse_double(f[3], x) || !text::parse_double(f[4], y) ||
          !text::parse_int(f[5], block) || !std::isfinite(x) || !std::isfinite(y))
        fail(source, line_no, "non-numeric field");
      if (tc < 0 || tc >= kCellsPerWafer || seen[tc])
        fail(source, line_no, "tc " + std::to_string(tc) + " out of range 0..47 or repeated");
      if (block < 0 || block >= kCellsPerWafer || seen_block[block])
        fail(source, line_no, "block4x4 " + std::to_string(block) + " out of range or repeated");
      seen[tc] = seen_block[block] = true;
      g.cells_[tc] = TriggerCell{static_cast<int>(tc), static_cast<int>(u), static_cast<int>(v), x, y,
                                 static_cast<int>(block)};
    }
    for (int tc = 0; tc < kCellsPerWafer; ++tc)
      if (!seen[tc]) fail(source, line_no, "trigger cell " + std::to_string(tc) + " missing");
  }
  {
    std::istringstream in(layout_csv);
    std::string line;
    int line_no = 0, row = 0;
    while (std::getline(in, line)) {
      ++line_no;
      if (text::trim(line).empty() || text::trim(line)[0] == '#') continue;
      const auto f = text::split(line, ',');
      if (row >= 8) fail(source, line_no, "layout has more than 8 rows");
      if (f.size() != 8) fail(source, line_no, "layout row needs 8 fields");
      for (int col = 0; col < 8; ++col) {
        long long tc;
        if (!text::parse_int(f[col], tc) || tc < 0 || tc >= kCellsPerWafer)
          fail(source, line_no, "layout entry " + text::quote(f[col]) + " is not a tc 0..47");
        g.layout8x8_[row * 8 + col] = static_cast<int>(tc);
      }
      ++row;
    }
    if (row != 8) fail(source, line_no, "layout needs 8 rows, found " + std::to_string(row));
    // The first occurrence in column-major order carries a cell: for HGCAL
    // that keeps the lower-left block (cells 32..47) and masks the lower-
    // right block, which repeats them.
    std::array<bool, kCellsPerWafer> placed{};
    for (int k = 0; k < 64; ++k) {
      const int p = (k % 8) * 8 + k / 8;
      const int tc = g.layout8x8_[p];
      g.mask8x8_[p] = !placed[tc];
      if (!placed[tc]) g.image_position_[tc] = p;
      placed[tc] = true;
    }
    for (int tc = 0; tc < kCellsPerWafer; ++tc)
      if (!placed[tc]) fail(source, line_no, "layout misses trigger cell " + std::to_string(tc));
  }
  // Pitch: the largest nearest-neighbour distance. Not the minimum nor the
  // median: cells on the seams between the wafer's three rhombic sub-blocks
  // sit closer (2.178 cm for HGCAL), and they are almost half of the cells.
  std::array<double, kCellsPerWafer> nearest{};
  for (int i = 0; i < kCellsPerWafer; ++i) {
    nearest[i] = std::numeric_limits<double>::infinity();
    for (int j = 0; j < kCellsPerWafer; ++j)
      if (j != i)
        nearest[i] = std::min(nearest[i], std::hypot(g.cells_[i].x_cm - g.cells_[j].x_cm,
                                                     g.cells_[i].y_cm - g.cells_[j].y_cm));
  }
  const double pitch = *std::max_element(nearest.begin(), nearest.end());
  g.pitch_cm_ = pitch;
  return g;
}

}  // namespace ddaq
