// ddaq/surrogates/emd.h: the exact earth mover's distance between wafers.
//
// EMD(a, b) = min over transport plans T >= 0 with row sums a/|a| and column
// sums b/|b| of sum_ij T_ij d_ij: both wafers are normalized to unit energy,
// d is a GroundMetric (sensor-cell pitch units for HGCAL). Same value as
// POT's ot.emd2(a/|a|, b/|b|, d) (checked to 1e-9 relative in tests).
//
// Empty wafers (sum <= 0): EMD(empty, empty) = 0 (nothing to move);
// EMD(empty, non-empty) = NaN (no plan exists). Callers report these; the
// `ddaq emd` command counts them. Negative or non-finite charges throw; any
// finite charges work (a wafer whose sum overflows is rescaled first).
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "ddaq/surrogates/ground_metric.h"

namespace ddaq {

// One solver and its workspace; not thread-safe (use one per thread).
// Method: network simplex on the transportation problem, restricted to
// cells with energy; for a metric ground cost only the difference a - b is
// transported (its positive part to its negative part), which shares no
// cells, so at most `size()` nodes. Start: least-cost greedy. Pivots: block
// pricing, Bland's rule after repeated degenerate pivots (no cycling).
// Problems of at most 64 nodes keep the tree as parent pointers and subtree
// bit masks (each pivot is a few bit walks).
class ExactEmd {
 public:
  // transport_difference_only: use the difference reduction when the metric
  // allows it (default); false always solves the full problem (for tests).
  explicit ExactEmd(GroundMetric metric, bool transport_difference_only = true);
  ~ExactEmd();
  ExactEmd(ExactEmd&&) noexcept;

  // a, b: size() charges each.
  double operator()(const double* a, const double* b);
  double operator()(const float* a, const float* b);
  const GroundMetric& metric() const;

  // Pivots of the last call (0 for the closed-form cases), for diagnostics.
  int last_pivots() const;

  // Where the solver's time goes, summed over the calls made while
  // profiling is on (off by default; then it costs a few predictable
  // branches a call and two a pivot). Ticks: the CPU's time-stamp counter on x86 (cycles at the
  // nominal clock), nanoseconds elsewhere. total = setup (checks,
  // normalizing, the reduction, cost gather, closed forms) + start (greedy
  // basis) + tree (first spanning tree, potentials) + pricing + update.
  struct Profile {
    int64_t calls = 0;
    int64_t simplex_calls = 0;  // calls that needed the simplex (more than one source and sink)
    int64_t nodes = 0;          // sources + sinks, summed over simplex calls
    int64_t pivots = 0;
    int64_t degenerate_pivots = 0;  // pivots that moved no flow
    // Arcs of the optimal tree that the greedy start lacked: each pivot
    // brings in one arc, so no pivot rule can do with fewer pivots.
    int64_t replaced_start_arcs = 0;
    uint64_t total_ticks = 0, start_ticks = 0, tree_ticks = 0, pricing_ticks = 0, update_ticks = 0;
    // Per call and per pivot, and each phase's share of the total.
    std::string to_text() const;
  };
  // Switching profiling on or off starts a new profile.
  void set_profiling(bool on);
  const Profile& profile() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// EMD of rows: out[i] = EMD(a[i], b[i]) for i < rows, a and b row-major
// rows x metric.size(). threads = 0: all hardware threads. Results do not
// depend on the thread count.
void emd_exact_rows(const GroundMetric& metric, const float* a, const float* b, int64_t rows, double* out,
                    int threads = 1);

}  // namespace ddaq
