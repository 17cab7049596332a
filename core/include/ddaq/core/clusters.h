// ddaq/core/clusters.h: synthetic events for any detector given as a cell
// geometry (cell_geometry.h), so a non-HGCAL graph trains and is judged with
// no external data (`ddaq data clusters`).
//
// The model: each event holds one Gaussian cluster, two with probability
// `two_cluster_fraction`, three with probability `three_cluster_fraction`;
// its label is the number of clusters less one (0, 1, 2: a classification
// task for trigger heads, binary without three-cluster events); each cluster's centre is uniform in the bounding
// box of the cells, its width uniform in [sigma_min, sigma_max] cell pitches,
// its energy uniform in [energy_min, energy_max]; each cell receives the
// cluster's energy in proportion to the Gaussian at its centre, rounded to
// whole counts; cells below `zero_suppression` read 0. Events with no cell
// left are redrawn. Event i depends only on (seed, i).
#pragma once
#include <cstdint>
#include <string>

#include "ddaq/core/cell_geometry.h"
#include "ddaq/core/events.h"
#include "ddaq/options.h"

namespace ddaq {

struct ClusterOptions {
  DDAQ_OPTION(int64_t, events) = 10000;
  DDAQ_OPTION(uint64_t, seed) = 1;
  DDAQ_OPTION(double, two_cluster_fraction) = 0.5;
  DDAQ_OPTION(double, three_cluster_fraction) = 0.0;
  DDAQ_OPTION(double, sigma_min) = 0.6;  // cell pitches
  DDAQ_OPTION(double, sigma_max) = 1.5;
  DDAQ_OPTION(double, energy_min) = 50.0;  // counts
  DDAQ_OPTION(double, energy_max) = 500.0;
  DDAQ_OPTION(double, zero_suppression) = 1.0;

 public:
  // Throws ddaq::Error naming the option when a value is out of range.
  void validate() const;
  std::string to_json() const;
};

// Events [0, options.events()) on `cells` (label: clusters - 1).
EventTable synthesize_clusters(const ClusterOptions& options, const CellGeometry& cells);

}  // namespace ddaq
