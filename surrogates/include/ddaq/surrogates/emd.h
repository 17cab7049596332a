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
