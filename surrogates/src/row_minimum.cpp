#include "row_minimum.h"

#include <immintrin.h>

#include <algorithm>

namespace ddaq::detail {

double row_minimum_portable(const double* c, double u, const double* v, int padded) {
  // Four independent chains: the compiler keeps them in two SSE2 registers.
  double r0 = c[0] - u - v[0], r1 = c[1] - u - v[1], r2 = c[2] - u - v[2], r3 = c[3] - u - v[3];
  for (int j = 4; j < padded; j += 4) {
    r0 = std::min(r0, c[j] - u - v[j]);
    r1 = std::min(r1, c[j + 1] - u - v[j + 1]);
    r2 = std::min(r2, c[j + 2] - u - v[j + 2]);
    r3 = std::min(r3, c[j + 3] - u - v[j + 3]);
  }
  return std::min(std::min(r0, r1), std::min(r2, r3));
}

__attribute__((target("avx2"))) double row_minimum_avx2(const double* c, double u, const double* v, int padded) {
  const __m256d uu = _mm256_set1_pd(u);
  __m256d r = _mm256_sub_pd(_mm256_sub_pd(_mm256_loadu_pd(c), uu), _mm256_loadu_pd(v));
  for (int j = 4; j < padded; j += 4)
    r = _mm256_min_pd(r, _mm256_sub_pd(_mm256_sub_pd(_mm256_loadu_pd(c + j), uu), _mm256_loadu_pd(v + j)));
  const __m128d h = _mm_min_pd(_mm256_castpd256_pd128(r), _mm256_extractf128_pd(r, 1));
  return _mm_cvtsd_f64(_mm_min_sd(h, _mm_unpackhi_pd(h, h)));
}

bool cpu_has_avx2() { return __builtin_cpu_supports("avx2"); }

}  // namespace ddaq::detail
