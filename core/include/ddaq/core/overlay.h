// ddaq/core/overlay.h: pileup by overlay (domain-facts.md, "Pileup").
//
// Each signal wafer i gets the sum of k ~ Poisson(mu) wafers drawn uniformly,
// with replacement, from a pool; labels are kept. Wafer i depends only on
// (seed, i), so results do not depend on block sizes or threads.
#pragma once
#include <cstdint>
#include <string>

#include "ddaq/core/events.h"
#include "ddaq/options.h"

namespace ddaq {

class Progress;

struct OverlayOptions {
  DDAQ_OPTION(double, mu) = 40.0;
  DDAQ_OPTION(uint64_t, seed) = 1;
 public:
  void validate() const;  // mu finite and >= 0
};

// Overlays `rows` wafers in place; `first_index` is the global index of the
// first row (selects its random stream). The pool must not be empty.
void overlay_pileup(const OverlayOptions& options, const EventTable& pool, int64_t first_index,
                    int64_t rows, float* calq);

// File to file: the input is streamed in blocks; the pool is read whole
// (it must fit in memory: 48 floats per wafer).
void overlay_file(const OverlayOptions& options, const std::string& input,
                  const std::string& pool, const std::string& output,
                  Progress* progress = nullptr);

}  // namespace ddaq
