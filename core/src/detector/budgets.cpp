// A detector plan under its budgets: e-links (exact), lpGBT uplinks and ECON-T
// power (detector_plan.h), and the judging of a plan as it stands.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <queue>
#include <string>
#include <utility>
#include <vector>

#include "ddaq/core/detector_plan.h"
#include "ddaq/error.h"

namespace ddaq {

void apply_power_table(const std::map<std::string, PowerEntry>& table, std::vector<GroupTable>& groups,
                       const std::string& source) {
  for (auto& g : groups)
    for (auto& c : g.choices) {
      const auto it = table.find(c.algorithm);
      if (it == table.end())
        throw Error(source + ": power: no entry for '" + c.algorithm + "' (every algorithm the plan has needs one)");
      c.power_mw = it->second.base_mw + it->second.per_elink_mw * c.elinks;
    }
}

AllocationProblem allocation_problem(const std::vector<GroupTable>& groups, int64_t budget_elinks) {
  AllocationProblem p;
  p.budget_elinks = budget_elinks;
  for (const auto& g : groups) p.groups.push_back({g.name, g.modules, g.choices});
  return p;
}

namespace {

std::string watts(double w) {
  char b[64];
  std::snprintf(b, sizeof b, "%.3f", w);
  return b;
}

// The plan under e-links and uplinks on the tables as given (priced or not).
BudgetedPlan fit_uplinks(const std::vector<GroupTable>& groups, const DetectorModel& model, int64_t elinks,
                         int64_t uplinks, int user_bits) {
  int64_t least = 0;  // the fewest e-links the choices allow
  for (const auto& g : groups) {
    int lo = -1;
    for (const auto& c : g.choices) lo = lo < 0 ? c.elinks : std::min(lo, c.elinks);
    least += g.modules * std::max(lo, 0);
  }
  auto at = [&](int64_t total) {
    BudgetedPlan f;
    f.group_plan = solve_allocation(allocation_problem(groups, total));
    f.group_plan_elinks = total;
    for (const auto& s : model.sites)
      f.elinks.push_back(groups[static_cast<size_t>(s.group)]
                             .choices[static_cast<size_t>(f.group_plan.choice[static_cast<size_t>(s.group)])]
                             .elinks);
    return f;
  };
  BudgetedPlan f = at(elinks);
  if (uplinks <= 0 || count_uplinks(model, f.elinks, user_bits) <= uplinks) return f;
  BudgetedPlan low = at(least);
  const int64_t need = count_uplinks(model, low.elinks, user_bits);
  if (need > uplinks)
    throw Error("--budget uplinks=" + std::to_string(uplinks) + ": even the fewest e-links (" +
                std::to_string(low.group_plan.elinks) + ") need " + std::to_string(need) + " lpGBT uplinks");
  int64_t lo = least, hi = elinks;  // lo fits, hi does not (uplinks grow with the total, though not strictly)
  while (hi - lo > 1) {
    const int64_t mid = lo + (hi - lo) / 2;
    BudgetedPlan m = at(mid);
    if (count_uplinks(model, m.elinks, user_bits) <= uplinks)
      lo = mid, low = std::move(m);
    else
      hi = mid;
  }
  low.uplinks_binding = true;
  low.elinks_filled = fill_uplinks(model, groups, low.elinks, elinks, user_bits);
  return low;
}

std::vector<GroupTable> priced(const std::vector<GroupTable>& groups, double lambda) {
  std::vector<GroupTable> out = groups;
  for (auto& g : out)
    for (auto& c : g.choices) c.emd += lambda * c.power_mw;
  return out;
}

// The plan at a price: each module's choice (the group plan's, or after a
// fill the least priced within its e-links) mapped back to `groups`.
BudgetedPlan plan_at_price(const std::vector<GroupTable>& groups, const DetectorModel& model,
                           const PlanBudgets& budgets, int user_bits, double lambda) {
  const std::vector<GroupTable> p = lambda > 0 ? priced(groups, lambda) : groups;
  BudgetedPlan f = fit_uplinks(p, model, budgets.elinks, budgets.uplinks, user_bits);
  f.power_price = lambda;
  for (size_t i = 0; i < model.sites.size(); ++i) {
    const size_t g = static_cast<size_t>(model.sites[i].group);
    const AllocationChoice& planned = p[g].choices[static_cast<size_t>(f.group_plan.choice[g])];
    const AllocationChoice* c = planned.elinks == f.elinks[i] ? &planned : best_choice_within(p[g], f.elinks[i]);
    if (!c) throw Error("plan_within: no choice within " + std::to_string(f.elinks[i]) + " e-links");
    const AllocationChoice& chosen = groups[g].choices[static_cast<size_t>(c - p[g].choices.data())];
    f.chosen.push_back(&chosen);
    f.power_w += chosen.power_mw / 1000.0;
  }
  return f;
}

// Weak duality, module by module (the fill makes modules of one group
// differ): for any plan within E e-links and P mW, and any mu >= 0,
//   sum EMD >= sum over modules of min over choices (emd + lambda power +
//   mu elinks) - lambda P - mu E,
// a concave function of mu, maximized by golden-section search.
double lagrangian_bound(const std::vector<GroupTable>& groups, double lambda, int64_t budget_elinks, double budget_mw) {
  int64_t modules = 0;
  double spread = 0.0;  // beyond this mu every module takes its fewest e-links
  for (const auto& g : groups) {
    modules += g.modules;
    double lo = INFINITY, hi = -INFINITY;
    for (const auto& c : g.choices)
      lo = std::min(lo, c.emd + lambda * c.power_mw), hi = std::max(hi, c.emd + lambda * c.power_mw);
    if (!g.choices.empty()) spread = std::max(spread, hi - lo);
  }
  auto dual = [&](double mu) {
    double sum = -lambda * budget_mw - mu * static_cast<double>(budget_elinks);
    for (const auto& g : groups) {
      double best = INFINITY;
      for (const auto& c : g.choices) best = std::min(best, c.emd + lambda * c.power_mw + mu * c.elinks);
      sum += static_cast<double>(g.modules) * best;
    }
    return sum / static_cast<double>(modules);
  };
  const double phi = 0.5 * (std::sqrt(5.0) - 1.0);
  double a = 0.0, b = spread + 1.0, c = b - phi * (b - a), d = a + phi * (b - a);
  double fc = dual(c), fd = dual(d);
  for (int i = 0; i < 100; ++i) {
    if (fc < fd)
      a = c, c = d, fc = fd, d = a + phi * (b - a), fd = dual(d);
    else
      b = d, d = c, fd = fc, c = b - phi * (b - a), fc = dual(c);
  }
  return std::max({dual(0.0), dual(a), dual(b), fc, fd});
}

}  // namespace

int64_t fill_power(const std::vector<GroupTable>& groups, const DetectorModel& model, const std::vector<int>& elinks,
                   std::vector<const AllocationChoice*>& chosen, double budget_mw) {
  if (chosen.size() != model.sites.size() || elinks.size() != model.sites.size())
    throw Error("fill_power: one choice and one e-link count per module are needed");
  double room = budget_mw;
  for (const AllocationChoice* c : chosen) room -= c->power_mw;
  room -= 1e-9 * std::abs(budget_mw);  // the sum, added again later, stays within the budget
  // A module's best swap at its e-links (allocation.csv then still gives
  // the e-links it holds) within the power left: the largest EMD gain per
  // added mW (no added power: first of all).
  struct Swap {
    double rate = 0.0;
    size_t site = 0;
    const AllocationChoice* to = nullptr;
  };
  auto best_swap = [&](size_t i) {
    Swap s;
    s.site = i;
    const AllocationChoice& now = *chosen[i];
    for (const auto& c : groups[static_cast<size_t>(model.sites[i].group)].choices) {
      const double gain = now.emd - c.emd, extra = c.power_mw - now.power_mw;
      if (c.elinks != elinks[i] || !(gain > 0) || extra > room) continue;
      const double rate = extra > 0 ? gain / extra : INFINITY;
      if (!s.to || rate > s.rate) s = {rate, i, &c};
    }
    return s;
  };
  auto worse = [](const Swap& a, const Swap& b) { return a.rate != b.rate ? a.rate < b.rate : a.site > b.site; };
  std::priority_queue<Swap, std::vector<Swap>, decltype(worse)> heap(worse);
  for (size_t i = 0; i < chosen.size(); ++i)
    if (const Swap s = best_swap(i); s.to) heap.push(s);
  std::vector<char> changed(chosen.size(), 0);
  while (!heap.empty()) {
    const Swap s = heap.top();
    heap.pop();
    if (s.to->power_mw - chosen[s.site]->power_mw <= room) {
      room -= s.to->power_mw - chosen[s.site]->power_mw;
      chosen[s.site] = s.to;
      changed[s.site] = 1;
    }
    // Room only shrinks: the module's next swap, if any, is found again.
    if (const Swap next = best_swap(s.site); next.to) heap.push(next);
  }
  return std::count(changed.begin(), changed.end(), 1);
}

BudgetedPlan plan_within(const std::vector<GroupTable>& groups, const DetectorModel& model, const PlanBudgets& budgets,
                         int lpgbt_user_bits) {
  for (const auto& s : model.sites)
    if (s.group < 0 || static_cast<size_t>(s.group) >= groups.size())
      throw Error("plan_within: a module's group is not among the tables");
  BudgetedPlan free = plan_at_price(groups, model, budgets, lpgbt_user_bits, 0.0);
  if (budgets.power_w <= 0 || free.power_w <= budgets.power_w) return free;
  // Power binds: the smallest price (EMD per mW) whose plan fits. The
  // plan's power falls as the price rises (not strictly), so a bisection
  // on the price between one that does not fit and one that does.
  double lo = 0.0, hi = 1e-4;
  BudgetedPlan fit = plan_at_price(groups, model, budgets, lpgbt_user_bits, hi);
  while (fit.power_w > budgets.power_w) {
    if (hi > 1e6)
      throw Error("--budget power=" + watts(budgets.power_w) + " W: the least power found within the other budgets is " +
                  watts(fit.power_w) + " W");
    lo = hi, hi *= 4.0;
    fit = plan_at_price(groups, model, budgets, lpgbt_user_bits, hi);
  }
  for (int step = 0; step < 40 && hi - lo > 1e-9 * hi; ++step) {
    const double mid = 0.5 * (lo + hi);
    BudgetedPlan m = plan_at_price(groups, model, budgets, lpgbt_user_bits, mid);
    if (m.power_w <= budgets.power_w)
      hi = mid, fit = std::move(m);
    else
      lo = mid;
  }
  fit.power_binding = true;
  // The price leaves some power unspent (group choices are all or nothing):
  // spent module by module on the swaps that lower the EMD most per mW.
  fit.modules_power_filled = fill_power(groups, model, fit.elinks, fit.chosen, budgets.power_w * 1000.0);
  fit.power_w = 0.0;
  for (const AllocationChoice* c : fit.chosen) fit.power_w += c->power_mw / 1000.0;
  fit.emd_lower_bound = lagrangian_bound(groups, fit.power_price, budgets.elinks, budgets.power_w * 1000.0);
  return fit;
}

TableScore score_choices(const std::string& name, const DetectorModel& model,
                         const std::vector<const AllocationChoice*>& chosen, const std::vector<int>& elinks,
                         int lpgbt_user_bits) {
  if (chosen.size() != model.sites.size() || elinks.size() != model.sites.size())
    throw Error("score_choices: one choice and one e-link count per module are needed");
  TableScore t;
  t.name = name;
  int max_layer = 0;
  for (const auto& s : model.sites) max_layer = std::max(max_layer, s.layer);
  std::vector<double> layer_sum(static_cast<size_t>(max_layer) + 1, 0.0);
  std::vector<int64_t> layer_n(layer_sum.size(), 0);
  double total = 0, power_mw = 0;
  for (size_t i = 0; i < chosen.size(); ++i) {
    const AllocationChoice& c = *chosen[i];
    const size_t layer = static_cast<size_t>(model.sites[i].layer);
    total += c.emd;
    power_mw += c.power_mw;
    layer_sum[layer] += c.emd;
    ++layer_n[layer];
    t.elinks += elinks[i];
  }
  t.uplinks = count_uplinks(model, elinks, lpgbt_user_bits);
  t.emd_mean = chosen.empty() ? 0.0 : total / static_cast<double>(chosen.size());
  t.power_w = power_mw / 1000.0;
  for (size_t l = 0; l < layer_sum.size(); ++l)
    t.emd_by_layer.push_back(layer_n[l] ? layer_sum[l] / static_cast<double>(layer_n[l]) : NAN);
  return t;
}

}  // namespace ddaq
