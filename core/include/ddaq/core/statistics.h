// ddaq/core/statistics.h: occupancy and charge summaries of an event file,
// for comparing generated with real wafers.
#pragma once
#include <array>
#include <cstdint>
#include <map>
#include <string>

namespace ddaq {

struct Distribution {
  double mean = 0.0;
  // quantiles at 10, 25, 50, 75, 90 and 99 %
  std::array<double, 6> quantiles{};
  static constexpr std::array<double, 6> kLevels{0.10, 0.25, 0.50, 0.75, 0.90, 0.99};
};

struct EventStatistics {
  int64_t events = 0;
  Distribution occupancy;   // cells with charge > 0
  Distribution wafer_sum;   // CALQ
  Distribution max_fraction;  // largest cell / wafer sum (non-empty wafers)
  int64_t empty_wafers = 0;
  std::map<int32_t, int64_t> labels;  // label -> count (empty without labels)
  bool quantiles_sampled = false;      // over 4,194,304 wafers: quantiles from a uniform sample

  std::string to_text() const;
  std::string to_json() const;
};

// Streams the whole file once. Means are exact; quantiles are exact up to
// 4,194,304 wafers and from a uniform sample of that many beyond (memory
// bounded at ~100 MB whatever the file's size).
EventStatistics compute_statistics(const std::string& path);

}  // namespace ddaq
