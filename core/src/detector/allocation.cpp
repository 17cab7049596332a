// The exact allocation of e-links and algorithms to module groups (detector.h).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#include "ddaq/core/detector.h"
#include "ddaq/error.h"

namespace ddaq {

namespace {
// What the first groups achieve with at most b e-links: the module-weighted
// EMD sum, and the e-links it uses (fewer wins a tie).
struct Best {
  double cost = 0.0;
  int64_t elinks = 0;
};
bool better(const Best& a, const Best& b) { return a.cost < b.cost || (a.cost == b.cost && a.elinks < b.elinks); }
}  // namespace

AllocationSummary solve_allocation(const AllocationProblem& p) {
  const int64_t budget = p.budget_elinks;
  if (budget < 0) throw Error("allocation: budget " + std::to_string(budget) + " e-links is negative");
  int64_t need = 0;
  for (const AllocationGroup& g : p.groups) {
    const std::string at = "allocation: group '" + g.name + "': ";
    if (g.modules < 1) throw Error(at + "needs at least one module");
    if (g.choices.empty()) throw Error(at + "has no choice");
    if (g.choices.size() > 32767) throw Error(at + "has more than 32767 choices");
    int64_t least = std::numeric_limits<int64_t>::max();
    for (const AllocationChoice& c : g.choices) {
      if (c.elinks < 0) throw Error(at + c.algorithm + " at " + std::to_string(c.elinks) + " e-links (negative)");
      if (!std::isfinite(c.emd) || c.emd < 0)
        throw Error(at + c.algorithm + " at " + std::to_string(c.elinks) + " e-links: EMD " + std::to_string(c.emd) +
                    " (expected a finite value >= 0)");
      least = std::min(least, g.modules * c.elinks);
    }
    need += least;
  }
  if (need > budget)
    throw Error("allocation: budget " + std::to_string(budget) + " e-links is below the " + std::to_string(need) +
                " that the fewest e-links of every group need");
  const size_t width = static_cast<size_t>(budget) + 1;
  if (static_cast<double>(p.groups.size()) * static_cast<double>(width) > 4e8)
    throw Error("allocation: " + std::to_string(p.groups.size()) + " groups x a budget of " + std::to_string(budget) +
                " e-links is too large a table (use fewer groups)");
  // best[b]: the optimum of the groups so far with at most b e-links; pick
  // keeps each group's choice per b for the walk back.
  std::vector<Best> best(width), next(width);
  std::vector<std::vector<int16_t>> pick(p.groups.size(), std::vector<int16_t>(width, -1));
  const Best none{std::numeric_limits<double>::infinity(), 0};
  for (size_t g = 0; g < p.groups.size(); ++g) {
    const AllocationGroup& group = p.groups[g];
    for (size_t b = 0; b < width; ++b) {
      Best top = none;
      for (size_t c = 0; c < group.choices.size(); ++c) {
        const int64_t w = group.modules * group.choices[c].elinks;
        if (w > static_cast<int64_t>(b) || !std::isfinite(best[b - static_cast<size_t>(w)].cost)) continue;
        const Best& before = best[b - static_cast<size_t>(w)];
        const Best candidate{before.cost + static_cast<double>(group.modules) * group.choices[c].emd,
                             before.elinks + w};
        if (better(candidate, top)) {
          top = candidate;
          pick[g][b] = static_cast<int16_t>(c);
        }
      }
      next[b] = top;
    }
    best.swap(next);
  }
  AllocationSummary s;
  s.choice.assign(p.groups.size(), -1);
  size_t b = static_cast<size_t>(budget);
  double cost = 0.0;
  for (size_t g = p.groups.size(); g-- > 0;) {
    const int c = pick[g][b];
    s.choice[g] = c;
    const AllocationGroup& group = p.groups[g];
    const int64_t w = group.modules * group.choices[static_cast<size_t>(c)].elinks;
    s.elinks += w;
    s.modules += group.modules;
    cost += static_cast<double>(group.modules) * group.choices[static_cast<size_t>(c)].emd;
    b -= static_cast<size_t>(w);
  }
  s.emd_mean = s.modules > 0 ? cost / static_cast<double>(s.modules) : 0.0;
  return s;
}

std::string AllocationSummary::to_text(const AllocationProblem& problem) const {
  char buf[256];
  std::snprintf(buf, sizeof buf, "%zu groups, %lld modules, %lld of %lld e-links, mean EMD %.4f\n", choice.size(),
                static_cast<long long>(modules), static_cast<long long>(elinks),
                static_cast<long long>(problem.budget_elinks), emd_mean);
  std::string s = buf;
  for (size_t g = 0; g < choice.size() && g < problem.groups.size(); ++g) {
    const AllocationChoice& c = problem.groups[g].choices[static_cast<size_t>(choice[g])];
    std::snprintf(buf, sizeof buf, "  %-24s %6lld modules: %-12s %2d e-links, EMD %.4f\n",
                  problem.groups[g].name.c_str(), static_cast<long long>(problem.groups[g].modules),
                  c.algorithm.c_str(), c.elinks, c.emd);
    s += buf;
  }
  return s;
}

}  // namespace ddaq
