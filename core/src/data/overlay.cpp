#include "ddaq/core/overlay.h"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "ddaq/error.h"
#include "ddaq/files.h"
#include "ddaq/core/progress.h"
#include "ddaq/core/random.h"

namespace ddaq {

void OverlayOptions::validate() const {
  if (!std::isfinite(mu_) || mu_ < 0.0 || mu_ > 10000.0)
    throw Error("overlay: mu = " + std::to_string(mu_) + " must be finite, >= 0 and <= 10000");
}

void overlay_pileup(const OverlayOptions& options, const EventTable& pool, int64_t first_index, int64_t rows,
                    float* calq) {
  options.validate();
  const int64_t pool_size = pool.size();
  if (pool_size == 0) throw Error("overlay: the pileup pool has no events");
  for (int64_t r = 0; r < rows; ++r) {
    Rng rng(options.seed(), static_cast<uint64_t>(first_index + r));
    const int64_t k = rng.poisson(options.mu());
    float* out = calq + r * kCellsPerWafer;
    for (int64_t j = 0; j < k; ++j) {
      const float* add = pool.calq.data() + rng.below(static_cast<uint64_t>(pool_size)) * kCellsPerWafer;
      for (int c = 0; c < kCellsPerWafer; ++c) out[c] += add[c];
    }
  }
}

void overlay_file(const OverlayOptions& options, const std::string& input, const std::string& pool_path,
                  const std::string& output, Progress* progress) {
  options.validate();
  check_outputs({input, pool_path}, {output});
  const EventFileReader in(input);
  const EventTable pool = EventFileReader(pool_path).read_all();
  if (pool.size() == 0) throw Error(pool_path + ": the pileup pool has no events");
  EventFileWriter writer(output, in.has_labels());
  constexpr int64_t kBlock = 8192;
  std::vector<float> calq(kBlock * kCellsPerWafer);
  std::vector<int32_t> labels(kBlock);
  for (int64_t first = 0; first < in.size(); first += kBlock) {
    const int64_t n = std::min(kBlock, in.size() - first);
    in.read(first, n, calq.data(), labels.data());
    overlay_pileup(options, pool, first, n, calq.data());
    writer.append(calq.data(), labels.data(), n);
    if (progress) progress->advance(n);
  }
  const auto in_attrs = in.attributes();
  const auto pool_attrs = EventFileReader(pool_path).attributes();
  auto provenance_of = [](const std::map<std::string, std::string>& a) {
    const auto it = a.find("provenance");
    if (it == a.end()) return nlohmann::json(nullptr);
    return nlohmann::json::parse(it->second, nullptr, /*allow_exceptions=*/false);
  };
  writer.set_attribute("creator", std::string("ddaq data overlay"));
  writer.set_attribute("seed", static_cast<int64_t>(options.seed()));
  writer.set_attribute("pileup_mu", options.mu());
  writer.set_attribute("provenance", nlohmann::json({{"creator", "ddaq data overlay"},
                                                     {"input", input},
                                                     {"pool", pool_path},
                                                     {"mu", options.mu()},
                                                     {"seed", options.seed()},
                                                     {"input_provenance", provenance_of(in_attrs)},
                                                     {"pool_provenance", provenance_of(pool_attrs)}})
                                         .dump());
  writer.commit();
}

}  // namespace ddaq
