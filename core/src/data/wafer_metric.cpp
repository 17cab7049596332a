#include "ddaq/core/wafer_metric.h"

namespace ddaq {

GroundMetric trigger_cell_metric(const WaferGeometry& geometry, double unit_cm) {
  std::vector<std::array<double, 2>> centres;
  for (const TriggerCell& c : geometry.cells()) centres.push_back({c.x_cm, c.y_cm});
  return GroundMetric::euclidean(centres, unit_cm);
}

}  // namespace ddaq
