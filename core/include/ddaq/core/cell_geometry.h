// ddaq/core/cell_geometry.h: any detector's cells as data: a position per
// cell, from a CSV file, giving the EMD ground metric of that detector.
//
// Format: a header line "cell,x,y" then one row per cell, cells numbered
// 0..n-1 in order (the column of the event data); '#' starts a comment.
// Positions in any length unit; metric(unit) divides by `unit` (e.g. the
// pixel pitch, so EMD comes out in pitches). HGCAL's 48 trigger cells
// (geometry.h) are the embedded default elsewhere in ddaq.
#pragma once
#include <array>
#include <string>
#include <vector>

#include "ddaq/surrogates/ground_metric.h"

namespace ddaq {

class CellGeometry {
 public:
  // Throws ddaq::Error naming the file and line on a missing file, a bad
  // header, a non-number, a cell out of order or two cells at one place.
  static CellGeometry load(const std::string& path);
  static CellGeometry parse(const std::string& csv, const std::string& source);
  // From positions held elsewhere (a run's saved graph); the same checks.
  static CellGeometry from_positions(const std::vector<std::array<double, 2>>& positions, const std::string& source);

  int size() const { return static_cast<int>(positions_.size()); }
  const std::vector<std::array<double, 2>>& positions() const { return positions_; }
  // Euclidean distances between positions, in units of `unit`.
  GroundMetric metric(double unit) const;
  // The smallest distance between two cells: the unit in which ddaq reports
  // this detector's EMD ("cell pitches"; HGCAL's built-in metric is in
  // sensor-cell pitches, half its trigger-cell pitch).
  double pitch() const;

 private:
  std::vector<std::array<double, 2>> positions_;
};

}  // namespace ddaq
