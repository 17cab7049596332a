// ddaq/surrogates/ground_metric.h: the cost of moving unit energy between
// two cells, for optimal-transport distances.
//
// Plain numbers in, no detector code: core/ turns a WaferGeometry into cell
// centres and calls euclidean(centres, unit).
#pragma once
#include <array>
#include <cstddef>
#include <vector>

namespace ddaq {

class GroundMetric {
 public:
  // distance(i, j) = |p_i - p_j| / unit. For HGCAL trigger cells: centres in
  // cm and unit = 1.20840075 cm (half the trigger-cell pitch = one sensor-cell
  // pitch), so EMD comes out in sensor-cell pitch units.
  static GroundMetric euclidean(const std::vector<std::array<double, 2>>& points, double unit);
  // Any square, non-negative matrix with a zero diagonal (row-major n x n).
  // Throws ddaq::Error otherwise.
  static GroundMetric from_matrix(std::vector<double> matrix, int n);

  int size() const { return n_; }
  double operator()(int i, int j) const { return d_[static_cast<std::size_t>(i) * n_ + j]; }
  const std::vector<double>& matrix() const { return d_; }
  // Symmetric and satisfies the triangle inequality (to 1e-12 relative).
  // Then EMD(a, b) depends only on a - b and the exact solver moves only the
  // difference: a much smaller transport problem.
  bool is_metric() const { return metric_; }
  // Cell positions in distance units (from euclidean(); empty for
  // from_matrix()). Used to make spatially shifted reconstructions.
  const std::vector<std::array<double, 2>>& points() const { return points_; }

 private:
  int n_ = 0;
  std::vector<double> d_;
  std::vector<std::array<double, 2>> points_;
  bool metric_ = false;
};

}  // namespace ddaq
