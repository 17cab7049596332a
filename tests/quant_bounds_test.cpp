// Accumulator ranges (quant/bounds.h) against brute force: every input of a
// small layer enumerated, the accumulator computed in exact integers.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <functional>

#include "ddaq/quant/bounds.h"
#include "ddaq/quant/integer_reference.h"

namespace {

using ddaq::FixedPointType;
using ddaq::LayerDescription;
using ddaq::LayerKind;

// Calls f on every input vector of n values of type t (all raw values).
void for_all_inputs(const FixedPointType& t, int n, const std::function<void(const std::vector<double>&)>& f) {
  std::vector<int64_t> raw(n, t.min_raw());
  while (true) {
    std::vector<double> x(n);
    for (int i = 0; i < n; ++i) x[i] = t.from_raw(raw[i]);
    f(x);
    int i = 0;
    while (i < n && raw[i] == t.max_raw()) raw[i++] = t.min_raw();
    if (i == n) return;
    ++raw[i];
  }
}

LayerDescription small_dense(const FixedPointType& in) {
  LayerDescription d;
  d.kind = LayerKind::Dense;
  d.name = "dense";
  d.input_shape = {3};
  d.output_shape = {2};
  d.input_type = in;
  d.weight_type = FixedPointType(5, 1, true);  // 4 fractional bits
  d.weight_shape = {2, 3};
  d.weight_raw = {7, -5, 3, -16, 0, 15};
  d.bias_type = FixedPointType(6, 3, true);
  d.bias_raw = {5, -9};
  return d;
}

// Exact accumulator of unit u in units of 2^-(weight frac + input frac + bias alignment).
double accumulate(const LayerDescription& d, int u, const std::vector<double>& x) {
  double acc = d.bias_type.from_raw(d.bias_raw[u]);
  for (int i = 0; i < 3; ++i) acc += d.weight_type.from_raw(d.weight_raw[u * 3 + i]) * x[i];
  return acc;  // exact: few bits
}

}  // namespace

DOCTEST_TEST_CASE("accumulator ranges equal brute force over every input and the exact type is the narrowest") {
  for (const FixedPointType in : {FixedPointType(3, 2, false), FixedPointType(4, 2, true)}) {
    LayerDescription d = small_dense(in);
    std::vector<double> lo(2, 1e9), hi(2, -1e9);
    for_all_inputs(in, 3, [&](const std::vector<double>& x) {
      for (int u = 0; u < 2; ++u) {
        lo[u] = std::min(lo[u], accumulate(d, u, x));
        hi[u] = std::max(hi[u], accumulate(d, u, x));
      }
    });
    const auto r = ddaq::accumulator_ranges(d);
    for (int u = 0; u < 2; ++u) {
      DOCTEST_CHECK(r[u].lo == lo[u]);
      DOCTEST_CHECK(r[u].hi == hi[u]);
    }
    const FixedPointType acc = ddaq::exact_accumulator_type(d);
    const double top = *std::max_element(hi.begin(), hi.end()), bottom = *std::min_element(lo.begin(), lo.end());
    DOCTEST_CHECK(top <= acc.max_value());
    DOCTEST_CHECK(bottom >= acc.min_value());
    const FixedPointType narrower(acc.width - 1, acc.integer - 1, true);
    DOCTEST_CHECK((top > narrower.max_value() || bottom < narrower.min_value()));
  }
}

DOCTEST_TEST_CASE("accumulator bound inputs reach every unit's range in the integer reference") {
  // InputQuant -> the dense layer; the reference's accumulator is exact, so
  // its output (a wide type) shows the accumulator value.
  LayerDescription input;
  input.kind = LayerKind::InputQuant;
  input.input_shape = input.output_shape = {3};
  input.input_type = input.output_type = FixedPointType(3, 2, false, ddaq::Rounding::TRN, ddaq::Overflow::SAT);
  LayerDescription d = small_dense(input.output_type);
  d.accumulator_type = ddaq::exact_accumulator_type(d);
  d.output_type = FixedPointType(24, 12, true);
  const ddaq::IntegerReference ref({input, d});
  const auto inputs = ddaq::accumulator_bound_inputs({input, d});
  DOCTEST_CHECK(inputs.size() == 2 + 2 * 2);
  const auto r = ddaq::accumulator_ranges(d);
  for (int u = 0; u < 2; ++u) {
    bool reached_lo = false, reached_hi = false;
    for (const auto& x : inputs) {
      const double y = ref.run(x)[u];
      reached_lo |= y == r[u].lo;
      reached_hi |= y == r[u].hi;
    }
    DOCTEST_CHECK(reached_lo);
    DOCTEST_CHECK(reached_hi);
  }
}
