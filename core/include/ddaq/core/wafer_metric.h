// ddaq/core/wafer_metric.h: the EMD ground metric of a wafer's trigger cells.
#pragma once
#include "ddaq/core/geometry.h"
#include "ddaq/surrogates/ground_metric.h"

namespace ddaq {

// Half the HGCAL trigger-cell pitch (2.4168015 cm / 2): one sensor-cell
// pitch, the unit in which the ECON-T studies quote EMD.
constexpr double kSensorCellPitchCm = 1.20840075;

// Euclidean distances between cell centres, in units of `unit_cm`.
GroundMetric trigger_cell_metric(const WaferGeometry& geometry = WaferGeometry::hgcal(),
                                 double unit_cm = kSensorCellPitchCm);

}  // namespace ddaq
