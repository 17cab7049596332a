// ddaq/surrogates/emd_pairs.h: (wafer, plausible reconstruction) pairs for
// training and judging EMD surrogates, labelled by the exact solver.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "ddaq/options.h"
#include "ddaq/surrogates/ground_metric.h"

namespace ddaq {

// How a reconstruction y is made from a wafer x (cells = metric size):
//   BestChoice  the k largest cells of x, k drawn from {1, 4, 6, 9, 14}
//   Smear       every hit cell times a log-normal factor (sigma drawn in
//               0.05..0.5), plus small deposits on ~10% of the empty cells
//   Leak        a fraction (0.05..0.5) of every cell's energy moved to a
//               random cell
//   Blur        energy spread to all cells with weights exp(-d/r), r drawn
//               in 0.5..4 sensor-cell pitches (a smooth, decoder-like output)
//   Other       an unrelated wafer of the same set
//   SuperCells  the energy of each group of cells (e.g. ECON-T super trigger
//               cells, 2x2 or 4x4) summed into the group's largest cell; one
//               of EmdPairOptions::super_cell_groups per wafer (skipped when
//               none are given)
//   Shift       a fraction (0.2..1) of every cell's energy moved one cell
//               pitch in a random direction (to the cell nearest that
//               point; kept where no cell is within half a pitch: the
//               wafer's edge); needs a metric with points (euclidean())
// Given marks pairs whose reconstruction came from elsewhere (e.g.
// autoencoder outputs, make_given_emd_pairs); it is never drawn.
enum class ReconstructionKind : int {
  BestChoice = 0,
  Smear,
  Leak,
  Blur,
  Other,
  SuperCells,
  Shift,
  kCount,
  Given = kCount
};
const char* to_string(ReconstructionKind kind);

struct EmdPairOptions {
  DDAQ_OPTION(uint64_t, seed) = 1;
  // Relative frequency of each kind (BestChoice, Smear, Leak, Blur, Other,
  // SuperCells, Shift); kinds that cannot be made count as 0.
  DDAQ_OPTION(std::vector<double>, kind_weights) = std::vector<double>{1, 1, 1, 1, 1, 1, 1};
  // Cell -> group maps (each metric.size() long, groups numbered from 0) for
  // SuperCells; empty: that kind is never drawn.
  DDAQ_OPTION(std::vector<std::vector<int>>, super_cell_groups) = {};
  DDAQ_OPTION(int, threads) = 0;  // for the exact labels; 0 = all cores
};

struct EmdPairs {
  int cells = 0;
  std::vector<float> a, b;  // rows x cells each
  std::vector<double> emd;  // exact labels (sensor-cell pitch units for HGCAL)
  std::vector<int8_t> kind;
  int64_t size() const { return static_cast<int64_t>(emd.size()); }
  // Pairs whose label is finite and > 0 (empty or identical pairs dropped).
  EmdPairs usable() const;
};

// One reconstruction per wafer (rows x metric.size()), labelled exactly.
// Row i depends only on (seed, i), the options and the wafers.
EmdPairs make_emd_pairs(const GroundMetric& metric, const float* wafers, int64_t rows, const EmdPairOptions& options);

// Given (wafer, reconstruction) rows, labelled exactly; kind Given.
EmdPairs make_given_emd_pairs(const GroundMetric& metric, const float* wafers, const float* reconstructions,
                              int64_t rows, int threads = 0);

}  // namespace ddaq
