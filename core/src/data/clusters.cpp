// Synthetic clusters on any cell geometry (clusters.h).
#include "ddaq/core/clusters.h"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "ddaq/core/random.h"
#include "ddaq/error.h"

namespace ddaq {

void ClusterOptions::validate() const {
  auto need = [](bool ok, const std::string& what) {
    if (!ok) throw Error("clusters: " + what);
  };
  need(events() >= 1, "events must be at least 1");
  need(two_cluster_fraction() >= 0 && three_cluster_fraction() >= 0 &&
           two_cluster_fraction() + three_cluster_fraction() <= 1,
       "two_cluster_fraction and three_cluster_fraction must be >= 0 with a sum <= 1");
  need(sigma_min() > 0 && sigma_max() >= sigma_min() && std::isfinite(sigma_max()),
       "sigma_min and sigma_max must satisfy 0 < sigma_min <= sigma_max");
  need(energy_min() > 0 && energy_max() >= energy_min() && std::isfinite(energy_max()),
       "energy_min and energy_max must satisfy 0 < energy_min <= energy_max");
  need(zero_suppression() >= 0 && zero_suppression() < energy_min(), "zero_suppression must be in [0, energy_min)");
}

std::string ClusterOptions::to_json() const {
  return nlohmann::json{{"generator", "ddaq clusters"},
                        {"events", events()},
                        {"seed", seed()},
                        {"two_cluster_fraction", two_cluster_fraction()},
                        {"three_cluster_fraction", three_cluster_fraction()},
                        {"sigma_min", sigma_min()},
                        {"sigma_max", sigma_max()},
                        {"energy_min", energy_min()},
                        {"energy_max", energy_max()},
                        {"zero_suppression", zero_suppression()}}
      .dump();
}

EventTable synthesize_clusters(const ClusterOptions& o, const CellGeometry& cells) {
  o.validate();
  const auto& pos = cells.positions();
  const int n_cells = cells.size();
  const double pitch = cells.pitch();
  double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
  for (const auto& p : pos)
    x0 = std::min(x0, p[0]), x1 = std::max(x1, p[0]), y0 = std::min(y0, p[1]), y1 = std::max(y1, p[1]);
  EventTable t;
  t.cells = n_cells;
  t.calq.assign(static_cast<size_t>(o.events() * n_cells), 0.0f);
  t.label.resize(static_cast<size_t>(o.events()));
  std::vector<double> charge(static_cast<size_t>(n_cells)), w(static_cast<size_t>(n_cells));
  for (int64_t i = 0; i < o.events(); ++i) {
    Rng rng(o.seed(), static_cast<uint64_t>(i));
    for (int attempt = 0;; ++attempt) {
      if (attempt == 1000) throw Error("clusters: no cell above zero_suppression after 1000 draws (lower it)");
      std::fill(charge.begin(), charge.end(), 0.0);
      const double u = rng.uniform();
      const int k = u < o.two_cluster_fraction()                                ? 2
                    : u < o.two_cluster_fraction() + o.three_cluster_fraction() ? 3
                                                                                : 1;
      for (int c = 0; c < k; ++c) {
        const double cx = x0 + (x1 - x0) * rng.uniform(), cy = y0 + (y1 - y0) * rng.uniform();
        const double sigma = pitch * (o.sigma_min() + (o.sigma_max() - o.sigma_min()) * rng.uniform());
        const double energy = o.energy_min() + (o.energy_max() - o.energy_min()) * rng.uniform();
        double sum = 0.0;
        for (int j = 0; j < n_cells; ++j) {
          const double dx = pos[j][0] - cx, dy = pos[j][1] - cy;
          w[j] = std::exp(-(dx * dx + dy * dy) / (2.0 * sigma * sigma));
          sum += w[j];
        }
        if (sum > 0)
          for (int j = 0; j < n_cells; ++j) charge[j] += energy * w[j] / sum;
      }
      bool any = false;
      float* row = t.calq.data() + i * n_cells;
      for (int j = 0; j < n_cells; ++j) {
        const double q = std::round(charge[j]);
        row[j] = q >= o.zero_suppression() && q > 0 ? static_cast<float>(q) : 0.0f;
        any = any || row[j] > 0;
      }
      t.label[static_cast<size_t>(i)] = k - 1;
      if (any) break;
    }
  }
  return t;
}

}  // namespace ddaq
