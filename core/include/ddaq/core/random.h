// ddaq/core/random.h: a small, portable, seedable random number generator.
//
// Why not <random>: the standard distributions are implementation-defined, so
// the same seed gives different events with another standard library. These
// are fully specified here, so a seed fixes every generated event bit for bit
// on any platform. Streams make generation order-independent: event i of a
// seed always uses Rng(seed, i), whatever the batch or thread that makes it.
#pragma once
#include <cstdint>

namespace ddaq {

class Rng {
 public:
  // Independent stream `stream` of generator `seed` (xoshiro256** seeded
  // through splitmix64 from both numbers).
  explicit Rng(uint64_t seed, uint64_t stream = 0);

  uint64_t next_u64();
  // Uniform in [0, 1) with 53 random bits.
  double uniform();
  // Uniform integer in [0, n), n > 0, without modulo bias.
  uint64_t below(uint64_t n);
  // Standard normal (Marsaglia polar method).
  double normal();
  // Poisson(mean), mean >= 0 (multiplication method below 10, Hoermann's PTRS above).
  int64_t poisson(double mean);
  // Exponential with unit mean.
  double exponential();

 private:
  uint64_t s_[4];
  bool has_spare_normal_ = false;
  double spare_normal_ = 0.0;
};

}  // namespace ddaq
