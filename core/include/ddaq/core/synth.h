// ddaq/core/synth.h: a built-in HGCAL wafer generator, so demos and tests
// need no external data.
//
// The model (charges in CALQ units, positions from WaferGeometry):
//  * each wafer is hit by one particle at a uniform position on the wafer;
//    most deposits are soft (the Pareto part of the energy spectrum: the
//    shower tails and MIPs that dominate real 0PU wafers), a few are showers
//    (log-uniform energy);
//  * electron-like (label 1): one compact EM deposit, a Gaussian core of
//    radius `em_radius_cm` plus an 8% halo of radius 2.2 cm;
//  * jet-like (label 0): soft deposits are single compact hits; showers split
//    into 1 + Poisson(2) broader sub-clusters (radius `jet_radius_cm`) spread
//    over `jet_spread_cm`, energies shared by exponential weights;
//  * wafers with no cell above threshold are redrawn (real samples hold hit
//    wafers only);
//  * each cell's charge fluctuates (Gaussian, variance = charge), gets
//    electronic noise, is rounded to an integer and zero-suppressed below
//    `zero_suppression`;
//  * pileup: k ~ Poisson(pileup_mu) independently generated jet-like wafers
//    are added (the same operation as `ddaq data overlay`).
// Event i depends only on (seed, i): any slice can be made alone, in any order.
#pragma once
#include <cstdint>
#include <string>

#include "ddaq/core/events.h"
#include "ddaq/options.h"

namespace ddaq {

class Progress;

struct SynthOptions {
  DDAQ_OPTION(int64_t, events) = 10000;
  DDAQ_OPTION(uint64_t, seed) = 1;
  DDAQ_OPTION(double, pileup_mu) = 0.0;
  DDAQ_OPTION(double, electron_fraction) = 0.5;
  DDAQ_OPTION(double, zero_suppression) = 2.0;  // CALQ; real data's smallest charge is 2
  DDAQ_OPTION(double, noise_sigma) = 0.5;       // CALQ
  DDAQ_OPTION(double, em_radius_cm) = 0.9;
  DDAQ_OPTION(double, jet_radius_cm) = 1.2;
  DDAQ_OPTION(double, jet_spread_cm) = 2.0;
  // Probability that a wafer holds a shower core rather than a soft deposit.
  DDAQ_OPTION(double, electron_shower_fraction) = 0.03;
  DDAQ_OPTION(double, jet_shower_fraction) = 0.08;
 public:
  // Throws ddaq::Error naming the option when a value is out of range.
  void validate() const;
  // The options as JSON text (recorded as the file's provenance).
  std::string to_json() const;
};

// Generates events [first, first + count) into calq (count x 48) and labels (count).
void synthesize(const SynthOptions& options, const WaferGeometry& geometry, int64_t first,
                int64_t count, float* calq, int32_t* labels);

EventTable synthesize(const SynthOptions& options,
                      const WaferGeometry& geometry = WaferGeometry::hgcal());

// Generates options.events() events into an event file, in blocks.
void synthesize_to_file(const SynthOptions& options, const std::string& output,
                        Progress* progress = nullptr);

}  // namespace ddaq
