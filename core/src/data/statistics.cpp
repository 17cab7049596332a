#include "ddaq/core/statistics.h"

#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <numeric>
#include <sstream>
#include <vector>

#include "ddaq/core/events.h"
#include "ddaq/core/random.h"

namespace ddaq {
namespace {

// Values of one quantity: the mean exactly, quantiles from all values up to
// kCapacity of them, beyond that from a uniform reservoir sample (fixed
// seed): memory stays bounded for any file (a 50M-row file used 1.2 GB).
class Sample {
 public:
  static constexpr size_t kCapacity = size_t(1) << 22;
  explicit Sample(uint64_t stream) : rng_(0x5eed, stream) {}
  void add(double v) {
    sum_ += v;
    ++n_;
    if (values_.size() < kCapacity) {
      values_.push_back(v);
    } else {
      const uint64_t j = rng_.below(n_);
      if (j < kCapacity) values_[j] = v;
    }
  }
  Distribution describe();
  bool sampled() const { return n_ > kCapacity; }

 private:
  Rng rng_;
  std::vector<double> values_;
  double sum_ = 0.0;
  uint64_t n_ = 0;
};

Distribution Sample::describe() {
  Distribution d;
  if (values_.empty()) return d;
  std::vector<double>& v = values_;
  d.mean = sum_ / static_cast<double>(n_);
  std::sort(v.begin(), v.end());
  for (size_t q = 0; q < Distribution::kLevels.size(); ++q)
    d.quantiles[q] = v[static_cast<size_t>(Distribution::kLevels[q] * static_cast<double>(v.size() - 1))];
  return d;
}

nlohmann::json to_json(const Distribution& d) {
  nlohmann::json q = nlohmann::json::object();
  for (size_t i = 0; i < d.quantiles.size(); ++i)
    q["p" + std::to_string(static_cast<int>(Distribution::kLevels[i] * 100 + 0.5))] = d.quantiles[i];
  return {{"mean", d.mean}, {"quantiles", q}};
}

std::string line(const char* name, const Distribution& d) {
  char buf[256];
  std::snprintf(buf, sizeof buf, "%-13s mean %9.3f | p10 %g p25 %g p50 %g p75 %g p90 %g p99 %g\n", name, d.mean,
                d.quantiles[0], d.quantiles[1], d.quantiles[2], d.quantiles[3], d.quantiles[4], d.quantiles[5]);
  return buf;
}

}  // namespace

EventStatistics compute_statistics(const std::string& path) {
  const EventFileReader reader(path, EventFileReader::kAnyCells);
  const int cells = reader.cells();
  EventStatistics s;
  s.events = reader.size();
  Sample occupancy(1), sums(2), max_fraction(3);
  constexpr int64_t kBlock = 16384;
  std::vector<float> calq(static_cast<size_t>(kBlock * cells));
  std::vector<int32_t> labels(kBlock);
  for (int64_t first = 0; first < s.events; first += kBlock) {
    const int64_t n = std::min(kBlock, s.events - first);
    reader.read(first, n, calq.data(), labels.data());
    for (int64_t r = 0; r < n; ++r) {
      const float* w = calq.data() + r * cells;
      double sum = 0.0, mx = 0.0;
      int occ = 0;
      for (int c = 0; c < cells; ++c) {
        sum += w[c];
        mx = std::max(mx, static_cast<double>(w[c]));
        occ += w[c] > 0.0f;
      }
      occupancy.add(occ);
      sums.add(sum);
      if (sum > 0.0)
        max_fraction.add(mx / sum);
      else
        ++s.empty_wafers;
      if (reader.has_labels()) ++s.labels[labels[r]];
    }
  }
  s.occupancy = occupancy.describe();
  s.wafer_sum = sums.describe();
  s.max_fraction = max_fraction.describe();
  s.quantiles_sampled = sums.sampled();
  return s;
}

std::string EventStatistics::to_text() const {
  std::ostringstream o;
  o << "events        " << events << " (" << empty_wafers << " empty)\n";
  o << line("occupancy", occupancy) << line("wafer sum", wafer_sum) << line("max fraction", max_fraction);
  if (quantiles_sampled) o << "(quantiles from a uniform sample of 4194304 wafers; means from all)\n";
  if (!labels.empty()) {
    o << "labels       ";
    for (const auto& kv : labels) o << " " << kv.first << ": " << kv.second;
    o << "\n";
  }
  return o.str();
}

std::string EventStatistics::to_json() const {
  nlohmann::json l = nlohmann::json::object();
  for (const auto& kv : labels) l[std::to_string(kv.first)] = kv.second;
  return nlohmann::json({{"events", events},
                         {"empty_wafers", empty_wafers},
                         {"occupancy", ddaq::to_json(occupancy)},
                         {"wafer_sum", ddaq::to_json(wafer_sum)},
                         {"max_fraction", ddaq::to_json(max_fraction)},
                         {"labels", l},
                         {"quantiles_sampled", quantiles_sampled}})
      .dump(2);
}

}  // namespace ddaq
