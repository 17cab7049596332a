// `ddaq emd A.h5 B.h5 -o OUT.h5`: exact EMD row by row.
#include <CLI/CLI.hpp>
#include <cmath>
#include <cstdio>
#include <memory>
#include <thread>

#include "commands.h"
#include "ddaq/core/events.h"
#include "ddaq/core/progress.h"
#include "ddaq/core/wafer_metric.h"
#include "ddaq/error.h"
#include "ddaq/files.h"
#include "ddaq/surrogates/emd.h"

namespace ddaq {
namespace cli {
void add_emd_command(CLI::App& app) {
  auto a_path = std::make_shared<std::string>();
  auto b_path = std::make_shared<std::string>();
  auto out_path = std::make_shared<std::string>();
  auto threads = std::make_shared<int>(0);
  auto undefined = std::make_shared<std::string>("error");
  CLI::App* c = app.add_subcommand("emd", "Exact earth mover's distance between A[i] and B[i] (sensor-cell pitch units)");
  c->add_option("a", *a_path, "event file A (calq N x 48)")->required();
  c->add_option("b", *b_path, "event file B (calq N x 48)")->required();
  c->add_option("-o,--output", *out_path, "output HDF5 file: dataset 'emd' (N, float64)")->required();
  c->add_option("--threads", *threads, "worker threads (0: all cores)")->capture_default_str()->check(whole_number_in(0, 1024));
  c->add_option("--undefined", *undefined,
                "pairs with exactly one empty wafer (EMD undefined): error (nothing written) or nan (written as NaN)")
      ->capture_default_str()
      ->check(CLI::IsMember({"error", "nan"}));
  c->footer(
      "Both wafers are normalized to unit sum. EMD(empty, empty) = 0; EMD(empty, non-empty) is undefined:\n"
      "an error naming the first such row, or NaN with --undefined nan; both are counted on stderr and\n"
      "in the output's attributes.");
  c->callback([=] {
    check_outputs({*a_path, *b_path}, {*out_path});
    const EventFileReader a(*a_path), b(*b_path);
    if (a.size() != b.size())
      throw Error(*b_path + ": has " + std::to_string(b.size()) + " events, " + *a_path + " has " +
                  std::to_string(a.size()));
    const GroundMetric metric = trigger_cell_metric();
    const int64_t n = a.size();
    std::vector<double> emd(static_cast<size_t>(n));
    constexpr int64_t kBlock = 65536;
    std::vector<float> xa(kBlock * kCellsPerWafer), xb(kBlock * kCellsPerWafer);
    int64_t both_empty = 0, one_empty = 0;
    {
      Progress progress("emd", n);
      for (int64_t first = 0; first < n; first += kBlock) {
        const int64_t rows = std::min(kBlock, n - first);
        a.read(first, rows, xa.data(), nullptr);
        b.read(first, rows, xb.data(), nullptr);
        emd_exact_rows(metric, xa.data(), xb.data(), rows, emd.data() + first, *threads);
        for (int64_t r = 0; r < rows; ++r) {
          double sa = 0, sb = 0;
          for (int k = 0; k < kCellsPerWafer; ++k) {
            sa += xa[r * kCellsPerWafer + k];
            sb += xb[r * kCellsPerWafer + k];
          }
          both_empty += sa <= 0 && sb <= 0;
          one_empty += (sa <= 0) != (sb <= 0);
        }
        progress.advance(rows);
      }
      progress.finish();
    }
    if (one_empty > 0 && *undefined == "error") {
      int64_t first = 0;
      while (std::isfinite(emd[static_cast<size_t>(first)])) ++first;
      throw Error(*a_path + ", " + *b_path + ": " + std::to_string(one_empty) +
                  " pair(s) with exactly one empty wafer (first: row " + std::to_string(first) +
                  "): their EMD is undefined (--undefined nan writes NaN for them)");
    }
    write_results_file(*out_path, {{"emd", emd}},
                       {{"creator", "ddaq emd"},
                        {"a", *a_path},
                        {"b", *b_path},
                        {"unit", "sensor-cell pitch (1.20840075 cm)"},
                        {"empty_both", std::to_string(both_empty)},
                        {"empty_one", std::to_string(one_empty)}});
    if (both_empty + one_empty > 0)
      std::fprintf(stderr, "ddaq emd: %lld pair(s) with both wafers empty (emd 0), %lld with one empty (emd NaN)\n",
                   static_cast<long long>(both_empty), static_cast<long long>(one_empty));
    double sum = 0;
    int64_t finite = 0;
    for (double e : emd)
      if (std::isfinite(e)) {
        sum += e;
        ++finite;
      }
    std::printf("wrote %s: %lld pairs, mean emd %.6g\n", out_path->c_str(), static_cast<long long>(n),
                finite ? sum / static_cast<double>(finite) : 0.0);
  });
}

}  // namespace cli
}  // namespace ddaq
