// Groups, their EMD tables and the judging of e-link tables (detector_plan.h).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <queue>
#include <tuple>

#include "ddaq/core/baselines.h"
#include "ddaq/core/detector_plan.h"
#include "ddaq/core/random.h"
#include "ddaq/core/wafer_metric.h"
#include "ddaq/error.h"
#include "ddaq/surrogates/emd.h"
#include "ddaq/surrogates/link_budget.h"

namespace ddaq {

namespace {

struct Algorithm {
  std::string name;
  int elinks, cells;  // cells: Best Choice / threshold cells, or STC group size
};

std::vector<Algorithm> algorithms_of(const DetectorConfig& config) {
  const ClassicalFormats f;
  std::vector<Algorithm> out;
  for (const std::string& a : config.algorithms) {
    if (a == "best_choice")
      for (int e = 1; e <= config.max_elinks; ++e) out.push_back({a, e, f.best_choice_cells_for(e)});
    if (a == "threshold")  // header + 48-bit map + 7 bits per kept cell (link_budget.h)
      for (int e = 1; e <= config.max_elinks; ++e) {
        const int cells = std::min(48, (f.elink_bits * e - f.header_bits - f.map_bits) / f.threshold_cell_bits);
        if (cells > 0) out.push_back({a, e, cells});
      }
    if (a == "stc4" || a == "stc16") {
      const int group = a == "stc4" ? 4 : 16;
      if (f.stc_elinks(group) <= config.max_elinks) out.push_back({a, f.stc_elinks(group), group});
    }
  }
  return out;
}

void compress(const Algorithm& a, const float* in, int64_t rows, float* out) {
  if (a.name == "best_choice") best_choice(in, rows, a.cells, out);
  if (a.name == "threshold") threshold_truncated(in, rows, 0.0f, a.cells, out);
  if (a.name == "stc4" || a.name == "stc16") super_trigger_cells(in, rows, a.cells, out);
}

}  // namespace

PlanAlgorithm classical_algorithm(const std::string& name, int elinks) {
  DetectorConfig one;
  one.algorithms = {name};
  one.max_elinks = 13;
  for (const Algorithm& a : algorithms_of(one))
    if (a.elinks == elinks)
      return {a.name, a.elinks, [a](const float* in, int64_t rows, float* out) { compress(a, in, rows, out); }};
  throw Error("algorithm '" + name + "' at " + std::to_string(elinks) + " e-links is not one the ECON-T offers here");
}

std::vector<GroupTable> build_group_tables(const DetectorConfig& config, DetectorModel& model, const EventTable& signal,
                                           const EventTable& pool, const std::vector<PlanAlgorithm>& more) {
  // Groups: layer x eta ring, in that order.
  std::map<std::pair<int, int>, int> index;
  for (const auto& s : model.sites) index[{s.layer, static_cast<int>(std::floor(s.eta / config.eta_ring_width))}] = 0;
  std::vector<GroupTable> groups;
  for (auto& [key, g] : index) {
    g = static_cast<int>(groups.size());
    GroupTable t;
    t.layer = key.first;
    t.eta_min = key.second * config.eta_ring_width;
    t.eta_max = t.eta_min + config.eta_ring_width;
    char name[64];
    std::snprintf(name, sizeof name, "L%02d eta %.2f-%.2f", t.layer, t.eta_min, t.eta_max);
    t.name = name;
    groups.push_back(t);
  }
  std::vector<std::vector<const ModuleSite*>> members(groups.size());
  for (auto& s : model.sites) {
    s.group = index.at({s.layer, static_cast<int>(std::floor(s.eta / config.eta_ring_width))});
    members[static_cast<size_t>(s.group)].push_back(&s);
    ++groups[static_cast<size_t>(s.group)].modules;
  }
  std::vector<PlanAlgorithm> algorithms;
  for (const Algorithm& a : algorithms_of(config))
    algorithms.push_back(
        {a.name, a.elinks, [a](const float* in, int64_t rows, float* out) { compress(a, in, rows, out); }});
  for (const PlanAlgorithm& a : more)
    if (a.elinks >= 1 && a.elinks <= config.max_elinks) algorithms.push_back(a);
  const GroundMetric metric = trigger_cell_metric();
  const int64_t n = config.wafers_per_group;
  std::vector<float> wafers(static_cast<size_t>(n) * kCellsPerWafer), out(wafers.size());
  std::vector<double> emd(static_cast<size_t>(n));
  for (size_t g = 0; g < groups.size(); ++g) {
    GroupTable& t = groups[g];
    double mu = 0, occ = 0, sum = 0;
    for (int64_t j = 0; j < n; ++j) {
      Rng rng(config.seed + 1, (static_cast<uint64_t>(g) << 32) + static_cast<uint64_t>(j));
      const ModuleSite& s = *members[g][rng.below(members[g].size())];
      float* w = wafers.data() + j * kCellsPerWafer;
      draw_module_wafer(rng, s.mu, signal, pool, w, model.pileup_scale);
      mu += s.mu;
      for (int c = 0; c < kCellsPerWafer; ++c) occ += w[c] > 0, sum += w[c];
    }
    t.mu_mean = mu / static_cast<double>(n);
    t.occupancy_mean = occ / static_cast<double>(n);
    t.sum_mean = sum / static_cast<double>(n);
    for (const PlanAlgorithm& a : algorithms) {
      a.compress(wafers.data(), n, out.data());
      emd_exact_rows(metric, wafers.data(), out.data(), n, emd.data(), config.threads);
      double total = 0;
      int64_t finite = 0;
      for (double e : emd)
        if (std::isfinite(e)) total += e, ++finite;
      const AllocationChoice c{a.name, a.elinks, finite ? total / static_cast<double>(finite) : NAN};
      // Threshold keeping as many cells as Best Choice sends the same cells:
      // one choice, named by the first algorithm listed.
      bool same = false;
      for (const auto& d : t.choices) same = same || (d.elinks == c.elinks && d.emd == c.emd);
      if (!same) t.choices.push_back(c);
    }
  }
  return groups;
}

const AllocationChoice* best_choice_within(const GroupTable& group, int elinks,
                                           const std::vector<std::string>& allowed) {
  const AllocationChoice* best = nullptr;
  for (const auto& c : group.choices)
    if (c.elinks <= elinks && std::isfinite(c.emd) && (!best || c.emd < best->emd) &&
        (allowed.empty() || std::find(allowed.begin(), allowed.end(), c.algorithm) != allowed.end()))
      best = &c;
  return best;
}

namespace {
// 32-bit e-links an lpGBT uplink carries in `user_bits` per bunch crossing.
int64_t elinks_per_uplink(int user_bits) {
  if (user_bits < 32) throw Error("lpgbt_user_bits: " + std::to_string(user_bits) + " carry no 32-bit e-link");
  return user_bits / 32;
}
}  // namespace

int64_t count_uplinks(const DetectorModel& model, const std::vector<int>& elinks, int lpgbt_user_bits) {
  if (elinks.size() != model.sites.size()) throw Error("count_uplinks: one e-link count per module is needed");
  const int64_t per_uplink = elinks_per_uplink(lpgbt_user_bits);
  std::map<std::pair<int, int>, int64_t> per_motherboard;
  for (size_t i = 0; i < elinks.size(); ++i)
    per_motherboard[{model.sites[i].layer, model.sites[i].motherboard}] += elinks[i];
  int64_t uplinks = 0;
  for (const auto& [key, e] : per_motherboard) uplinks += (e + per_uplink - 1) / per_uplink;
  return uplinks;
}

int64_t fill_uplinks(const DetectorModel& model, const std::vector<GroupTable>& groups, std::vector<int>& elinks,
                     int64_t budget_elinks, int lpgbt_user_bits) {
  if (elinks.size() != model.sites.size()) throw Error("fill_uplinks: one e-link count per module is needed");
  const int64_t per_uplink = elinks_per_uplink(lpgbt_user_bits);
  std::map<std::pair<int, int>, std::vector<size_t>> boards;
  int64_t total = 0;
  for (size_t i = 0; i < elinks.size(); ++i) {
    boards[{model.sites[i].layer, model.sites[i].motherboard}].push_back(i);
    total += elinks[i];
  }
  auto emd_at = [&](size_t i, int e) {
    const AllocationChoice* c = best_choice_within(groups.at(static_cast<size_t>(model.sites[i].group)), e);
    return c ? c->emd : NAN;
  };
  struct Board {
    std::vector<size_t> sites;
    int64_t slack = 0;  // e-link slots left on its last uplink
  };
  std::vector<Board> list;
  for (auto& [key, sites] : boards) {
    int64_t e = 0;
    for (size_t i : sites) e += elinks[i];
    list.push_back({sites, (per_uplink - e % per_uplink) % per_uplink});
  }
  // A board's best upgrade within its slack and the e-links left: the module
  // and extra e-links with the largest EMD gain per e-link (ties: the first).
  struct Upgrade {
    double rate = 0.0;
    size_t board = 0, site = 0;
    int extra = 0;
  };
  auto best_upgrade = [&](size_t b, int64_t room) {
    Upgrade u;
    u.board = b;
    const int64_t most = std::min(list[b].slack, room);
    for (size_t i : list[b].sites)
      for (int d = 1; d <= most; ++d) {
        const double gain = emd_at(i, elinks[i]) - emd_at(i, elinks[i] + d);
        if (gain > 0 && gain / d > u.rate) u = {gain / d, b, i, d};
      }
    return u;
  };
  // Largest rate first; each board has one entry, computed with the room
  // then left (room only shrinks: an entry that still fits stays the best).
  auto worse = [](const Upgrade& a, const Upgrade& b) {
    return a.rate != b.rate ? a.rate < b.rate : a.board > b.board;
  };
  std::priority_queue<Upgrade, std::vector<Upgrade>, decltype(worse)> heap(worse);
  int64_t room = budget_elinks - total;
  for (size_t b = 0; b < list.size(); ++b) {
    const Upgrade u = best_upgrade(b, room);
    if (u.extra > 0) heap.push(u);
  }
  int64_t added = 0;
  while (!heap.empty() && room > 0) {
    const Upgrade u = heap.top();
    heap.pop();
    if (u.extra <= room) {
      elinks[u.site] += u.extra;
      list[u.board].slack -= u.extra;
      room -= u.extra;
      added += u.extra;
    }
    const Upgrade next = best_upgrade(u.board, room);
    if (next.extra > 0) heap.push(next);
  }
  return added;
}

TableScore score_table(const std::string& name, const DetectorModel& model, const std::vector<GroupTable>& groups,
                       const std::vector<int>& elinks, int lpgbt_user_bits, const std::vector<std::string>& allowed) {
  if (elinks.size() != model.sites.size()) throw Error("score_table: one e-link count per module is needed");
  std::vector<const AllocationChoice*> chosen;
  for (size_t i = 0; i < elinks.size(); ++i) {
    const ModuleSite& s = model.sites[i];
    const AllocationChoice* c = best_choice_within(groups.at(static_cast<size_t>(s.group)), elinks[i], allowed);
    if (!c)
      throw Error(name + ": module layer " + std::to_string(s.layer) + " (" + std::to_string(s.u) + "," +
                  std::to_string(s.v) + ") has " + std::to_string(elinks[i]) + " e-links: no algorithm fits");
    chosen.push_back(c);
  }
  return score_choices(name, model, chosen, elinks, lpgbt_user_bits);
}

std::vector<int> scale_table(const std::vector<int>& elinks, int64_t total) {
  int64_t sum = 0;
  for (int e : elinks) sum += e;
  const int64_t n = static_cast<int64_t>(elinks.size());
  if (sum <= 0 || total < n)
    throw Error("scale_table: " + std::to_string(total) + " e-links cannot give each of " + std::to_string(n) +
                " modules one");
  // Largest remainders: floor of the scaled count (at least 1), then the
  // e-links left over to the largest fractions (ties: the earlier module).
  const double f = static_cast<double>(total) / static_cast<double>(sum);
  std::vector<int> out(elinks.size());
  std::vector<double> rest(elinks.size());
  int64_t given = 0;
  for (size_t i = 0; i < elinks.size(); ++i) {
    const double x = elinks[i] * f;
    out[i] = std::max(1, static_cast<int>(std::floor(x)));
    rest[i] = x - out[i];
    given += out[i];
  }
  std::vector<size_t> order(elinks.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return rest[a] > rest[b]; });
  for (size_t k = 0; given < total; k = (k + 1) % order.size()) ++out[order[k]], ++given;
  for (size_t k = order.size(); given > total;) {  // the floor of 1 gave too many: take from the smallest fractions
    k = (k == 0 ? order.size() : k) - 1;
    if (out[order[k]] > 1) --out[order[k]], --given;
  }
  return out;
}

}  // namespace ddaq
