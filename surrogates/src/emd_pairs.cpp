#include "ddaq/surrogates/emd_pairs.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "ddaq/error.h"
#include "ddaq/surrogates/emd.h"

namespace ddaq {
namespace {

// splitmix64-based stream (independent of <random>'s distributions, so the
// pairs are the same with any standard library).
struct Stream {
  uint64_t s;
  Stream(uint64_t seed, uint64_t i) : s(seed * 0x9e3779b97f4a7c15ULL ^ (i + 0x632be59bd9b4e019ULL)) { next(); }
  uint64_t next() {
    uint64_t z = (s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  int below(int n) { return static_cast<int>(uniform() * n); }
  double normal() {
    const double u1 = 1.0 - uniform(), u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
  }
};

}  // namespace

const char* to_string(ReconstructionKind kind) {
  switch (kind) {
    case ReconstructionKind::BestChoice: return "best_choice";
    case ReconstructionKind::Smear: return "smear";
    case ReconstructionKind::Leak: return "leak";
    case ReconstructionKind::Blur: return "blur";
    case ReconstructionKind::Other: return "other";
    case ReconstructionKind::SuperCells: return "super_cells";
    case ReconstructionKind::Shift: return "shift";
    case ReconstructionKind::Given: return "given";
    default: return "?";
  }
}

EmdPairs EmdPairs::usable() const {
  EmdPairs out;
  out.cells = cells;
  for (int64_t i = 0; i < size(); ++i) {
    if (!(std::isfinite(emd[i]) && emd[i] > 0.0)) continue;
    out.a.insert(out.a.end(), a.begin() + i * cells, a.begin() + (i + 1) * cells);
    out.b.insert(out.b.end(), b.begin() + i * cells, b.begin() + (i + 1) * cells);
    out.emd.push_back(emd[i]);
    out.kind.push_back(kind[i]);
  }
  return out;
}

EmdPairs make_emd_pairs(const GroundMetric& metric, const float* wafers, int64_t rows, const EmdPairOptions& o) {
  const int cells = metric.size();
  const auto& w = o.kind_weights();
  if (w.size() != static_cast<size_t>(ReconstructionKind::kCount))
    throw Error("emd pairs: kind_weights needs " + std::to_string(static_cast<int>(ReconstructionKind::kCount)) +
                " values");
  if (std::any_of(w.begin(), w.end(), [](double v) { return !(v >= 0.0); }))
    throw Error("emd pairs: kind_weights must be >= 0");
  const auto& groups = o.super_cell_groups();
  for (const auto& g : groups)
    if (g.size() != static_cast<size_t>(cells) || std::any_of(g.begin(), g.end(), [&](int v) { return v < 0 || v >= cells; }))
      throw Error("emd pairs: a super-cell group map needs " + std::to_string(cells) + " group numbers in 0.." +
                  std::to_string(cells - 1));
  std::vector<double> weights = w;
  if (groups.empty()) weights[static_cast<int>(ReconstructionKind::SuperCells)] = 0.0;
  const auto& points = metric.points();
  if (points.empty()) weights[static_cast<int>(ReconstructionKind::Shift)] = 0.0;
  // One cell pitch: the smallest distance between two cells.
  double pitch = 0.0;
  for (int i = 0; i < cells; ++i)
    for (int j = 0; j < cells; ++j)
      if (i != j && metric(i, j) > 0.0 && (pitch == 0.0 || metric(i, j) < pitch)) pitch = metric(i, j);
  const double total = std::accumulate(weights.begin(), weights.end(), 0.0);
  if (!(total > 0.0)) throw Error("emd pairs: kind_weights must have a positive sum (over the kinds available)");
  if (rows < 2) throw Error("emd pairs: need at least 2 wafers");
  EmdPairs p;
  p.cells = cells;
  p.a.assign(wafers, wafers + rows * cells);
  p.b.assign(static_cast<size_t>(rows * cells), 0.0f);
  p.kind.resize(static_cast<size_t>(rows));
  std::vector<int> order(static_cast<size_t>(cells));
  for (int64_t i = 0; i < rows; ++i) {
    Stream rng(o.seed(), static_cast<uint64_t>(i));
    const float* x = wafers + i * cells;
    float* y = p.b.data() + i * cells;
    double pick = rng.uniform() * total;
    int k = 0;
    while (k + 1 < static_cast<int>(weights.size()) && (pick >= weights[k] || weights[k] == 0.0)) pick -= weights[k++];
    while (weights[k] == 0.0) --k;  // rounding ran past the last kind with weight
    const auto kind = static_cast<ReconstructionKind>(k);
    p.kind[i] = static_cast<int8_t>(k);
    switch (kind) {
      case ReconstructionKind::BestChoice: {
        static const int kKeep[] = {1, 4, 6, 9, 14};
        const int keep = kKeep[rng.below(5)];
        std::iota(order.begin(), order.end(), 0);
        std::stable_sort(order.begin(), order.end(), [&](int l, int r) { return x[l] > x[r]; });
        for (int c = 0; c < std::min(keep, cells); ++c) y[order[c]] = x[order[c]];
        break;
      }
      case ReconstructionKind::Smear: {
        const double sigma = rng.uniform(0.05, 0.5);
        double mean = 0;
        for (int c = 0; c < cells; ++c) mean += x[c];
        mean /= cells;
        for (int c = 0; c < cells; ++c) {
          if (x[c] > 0)
            y[c] = static_cast<float>(x[c] * std::exp(sigma * rng.normal()));
          else if (rng.uniform() < 0.1)
            y[c] = static_cast<float>(0.3 * mean * rng.uniform());
        }
        break;
      }
      case ReconstructionKind::Leak: {
        const double f = rng.uniform(0.05, 0.5);
        for (int c = 0; c < cells; ++c) {
          y[c] += static_cast<float>(x[c] * (1 - f));
          y[rng.below(cells)] += static_cast<float>(x[c] * f);
        }
        break;
      }
      case ReconstructionKind::Blur: {
        const double r = rng.uniform(0.5, 4.0);
        for (int c = 0; c < cells; ++c) {
          if (x[c] <= 0) continue;
          double z = 0;
          for (int t = 0; t < cells; ++t) z += std::exp(-metric(c, t) / r);
          for (int t = 0; t < cells; ++t) y[t] += static_cast<float>(x[c] * std::exp(-metric(c, t) / r) / z);
        }
        break;
      }
      case ReconstructionKind::SuperCells: {
        const std::vector<int>& group = groups[static_cast<size_t>(rng.below(static_cast<int>(groups.size())))];
        std::vector<int>& top = order;  // largest cell of each group so far (-1: none)
        std::fill(top.begin(), top.end(), -1);
        std::vector<float> sum(static_cast<size_t>(cells), 0.0f);
        for (int c = 0; c < cells; ++c) {
          const int g = group[c];
          sum[g] += x[c];
          if (top[g] < 0 || x[c] > x[top[g]]) top[g] = c;
        }
        for (int g = 0; g < cells; ++g)
          if (top[g] >= 0) y[top[g]] = sum[g];
        break;
      }
      case ReconstructionKind::Shift: {
        const double angle = rng.uniform(0.0, 2.0 * M_PI), f = rng.uniform(0.2, 1.0);
        const double dx = pitch * std::cos(angle), dy = pitch * std::sin(angle);
        for (int c = 0; c < cells; ++c) {
          if (x[c] <= 0) continue;
          const double tx = points[c][0] + dx, ty = points[c][1] + dy;
          int target = c;
          double best = 0.25 * pitch * pitch;  // within half a pitch of the shifted point
          for (int t = 0; t < cells; ++t) {
            const double r2 = (points[t][0] - tx) * (points[t][0] - tx) + (points[t][1] - ty) * (points[t][1] - ty);
            if (r2 < best) {
              best = r2;
              target = t;
            }
          }
          y[c] += static_cast<float>(x[c] * (1 - f));
          y[target] += static_cast<float>(x[c] * f);
        }
        break;
      }
      default: {
        int64_t j = static_cast<int64_t>(rng.uniform() * static_cast<double>(rows - 1));
        if (j >= i) ++j;
        std::copy(wafers + j * cells, wafers + (j + 1) * cells, y);
        break;
      }
    }
  }
  p.emd.resize(static_cast<size_t>(rows));
  emd_exact_rows(metric, p.a.data(), p.b.data(), rows, p.emd.data(), o.threads());
  return p;
}

EmdPairs make_given_emd_pairs(const GroundMetric& metric, const float* wafers, const float* reconstructions,
                              int64_t rows, int threads) {
  const int64_t cells = metric.size();
  EmdPairs p;
  p.cells = metric.size();
  p.a.assign(wafers, wafers + rows * cells);
  p.b.assign(reconstructions, reconstructions + rows * cells);
  p.kind.assign(static_cast<size_t>(rows), static_cast<int8_t>(ReconstructionKind::Given));
  p.emd.resize(static_cast<size_t>(rows));
  emd_exact_rows(metric, p.a.data(), p.b.data(), rows, p.emd.data(), threads);
  return p;
}

}  // namespace ddaq
