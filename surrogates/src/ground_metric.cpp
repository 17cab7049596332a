#include "ddaq/surrogates/ground_metric.h"

#include <cmath>
#include <string>

#include "ddaq/error.h"

namespace ddaq {
namespace {

bool check_metric(const std::vector<double>& d, int n) {
  double scale = 0.0;
  for (double v : d) scale = std::max(scale, v);
  const double tol = 1e-12 * std::max(scale, 1.0);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) {
      if (std::fabs(d[i * n + j] - d[j * n + i]) > tol) return false;
      for (int k = 0; k < n; ++k)
        if (d[i * n + j] > d[i * n + k] + d[k * n + j] + tol) return false;
    }
  return true;
}

}  // namespace

GroundMetric GroundMetric::euclidean(const std::vector<std::array<double, 2>>& points, double unit) {
  if (!(unit > 0.0) || !std::isfinite(unit)) throw Error("ground metric: unit must be positive and finite");
  GroundMetric g;
  g.n_ = static_cast<int>(points.size());
  g.d_.resize(points.size() * points.size());
  for (int i = 0; i < g.n_; ++i)
    for (int j = 0; j < g.n_; ++j)
      g.d_[static_cast<size_t>(i) * g.n_ + j] =
          std::hypot(points[i][0] - points[j][0], points[i][1] - points[j][1]) / unit;
  g.metric_ = check_metric(g.d_, g.n_);
  for (const auto& p : points) g.points_.push_back({p[0] / unit, p[1] / unit});
  return g;
}

GroundMetric GroundMetric::from_matrix(std::vector<double> matrix, int n) {
  if (n <= 0 || matrix.size() != static_cast<size_t>(n) * n)
    throw Error("ground metric: expected a " + std::to_string(n) + " x " + std::to_string(n) + " matrix, got " +
                std::to_string(matrix.size()) + " values");
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) {
      const double v = matrix[static_cast<size_t>(i) * n + j];
      if (!std::isfinite(v) || v < 0.0 || (i == j && v != 0.0))
        throw Error("ground metric: entry (" + std::to_string(i) + ", " + std::to_string(j) + ") = " +
                    std::to_string(v) + " (need finite, >= 0, zero diagonal)");
    }
  GroundMetric g;
  g.n_ = n;
  g.d_ = std::move(matrix);
  g.metric_ = check_metric(g.d_, n);
  return g;
}

}  // namespace ddaq
