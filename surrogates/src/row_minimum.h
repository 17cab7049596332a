// Internal to the exact EMD solver (and its test): the pricing kernel.
//
// The network simplex spends about a third of a dense pair computing
// reduced costs c_ij - u_i - v_j row by row. The AVX2 version does four
// arcs per instruction and is chosen at run time on CPUs that have it, so
// the baseline build stays x86-64 (SSE2). Both compute the same doubles in
// the same way (no fused multiply-add) and min is exact, so the result and
// every pivot are identical on every CPU.
#pragma once

namespace ddaq::detail {

// min over j < padded of (cost[j] - u - v[j]); `padded` is a positive
// multiple of 4 (the solver pads rows with huge costs).
double row_minimum_portable(const double* cost, double u, const double* v, int padded);
double row_minimum_avx2(const double* cost, double u, const double* v, int padded);  // AVX2 CPUs only
bool cpu_has_avx2();

// The kernel this CPU runs.
inline double row_minimum(const double* cost, double u, const double* v, int padded) {
  static const bool avx2 = cpu_has_avx2();
  return avx2 ? row_minimum_avx2(cost, u, v, padded) : row_minimum_portable(cost, u, v, padded);
}

}  // namespace ddaq::detail
