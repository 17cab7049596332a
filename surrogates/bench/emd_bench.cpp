// emd_bench A.h5 B.h5 [repeats]: per-pair time of the exact EMD solver on
// the rows of two event files, single-threaded and with all threads, and
// where one thread's time goes (ExactEmd::Profile, from a separate pass);
// prints one JSON line. Used by scripts/bench_emd.py, which times POT and
// pyemd on the same pairs and prints the ratios.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "ddaq/core/events.h"
#include "ddaq/core/wafer_metric.h"
#include "ddaq/error.h"
#include "ddaq/surrogates/emd.h"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: emd_bench A.h5 B.h5 [repeats]\n");
    return 2;
  }
  try {
    const int repeats = argc > 3 ? std::stoi(argv[3]) : 3;
    const ddaq::EventTable a = ddaq::EventFileReader(argv[1]).read_all();
    const ddaq::EventTable b = ddaq::EventFileReader(argv[2]).read_all();
    if (a.size() != b.size()) throw ddaq::Error("A and B differ in size");
    const ddaq::GroundMetric metric = ddaq::trigger_cell_metric();
    const int64_t n = a.size();
    std::vector<double> out(static_cast<size_t>(n));
    auto best_of = [&](int threads) {
      double best = 1e300;
      for (int r = 0; r < repeats; ++r) {
        const auto t0 = std::chrono::steady_clock::now();
        ddaq::emd_exact_rows(metric, a.calq.data(), b.calq.data(), n, out.data(), threads);
        best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      }
      return best;
    };
    const double t1 = best_of(1);
    const int hw = static_cast<int>(std::thread::hardware_concurrency());
    const double tn = best_of(hw);
    ddaq::ExactEmd solver(metric);
    solver.set_profiling(true);
    for (int64_t i = 0; i < n; ++i) solver(a.calq.data() + i * 48, b.calq.data() + i * 48);
    const ddaq::ExactEmd::Profile& p = solver.profile();
    std::string profile;  // JSON string: escape the line breaks
    for (char c : p.to_text()) profile += c == '\n' ? std::string("\\n") : std::string(1, c);
    std::printf(
        "{\"pairs\": %lld, \"us_per_pair_1thread\": %.4f, \"threads\": %d, \"us_per_pair_all\": %.4f, "
        "\"mean_pivots\": %.2f, \"profile\": \"%s\"}\n",
        static_cast<long long>(n), 1e6 * t1 / n, hw, 1e6 * tn / n,
        static_cast<double>(p.pivots) / static_cast<double>(n), profile.c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "emd_bench: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
