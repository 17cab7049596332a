#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "ddaq/error.h"
#include "ddaq/surrogates/emd.h"
#include "row_minimum.h"

#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#endif

namespace ddaq {
namespace {

// Profile clock: the time-stamp counter where there is one (a few cycles to
// read, so it can time single pivots), else a nanosecond clock.
uint64_t ticks() {
#if defined(__x86_64__) || defined(__i386__)
  return __rdtsc();
#else
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
          .count());
#endif
}

}  // namespace

// The transportation problem: supplies s_i (rows) to demands t_j (columns),
// cost c_ij, solved by a network simplex on spanning-tree bases. Nodes
// 0..n-1 are rows, n..n+m-1 columns; arc k = i*m + j. Everything is sized
// for the metric once, so a solve allocates nothing.
struct ExactEmd::Impl {
  GroundMetric metric;
  int size;
  bool reduce;
  int last_pivots = 0;
  bool profiling = false;
  ExactEmd::Profile profile;
  // Profiling: the arcs of the greedy start (n x m), to count those the
  // pivots replace (each pivot brings in one arc).
  std::vector<char> start_arc;
  uint64_t marking_ticks = 0;  // spent filling and reading start_arc: left out of the profile
  // All cell pairs by increasing distance (ties by index): the greedy start
  // walks this list instead of sorting each problem's arcs.
  std::vector<std::pair<int16_t, int16_t>> pairs_by_distance;
  std::vector<int> pair_rank;         // (cell i, cell j) -> position in that list
  std::vector<uint32_t> arc_at_rank;  // this problem's arc (row << 16 | column) at a rank
  std::vector<uint64_t> rank_bitmap;  // this problem's arcs, by rank

  // Problem.
  int n = 0, m = 0;
  int cs = 0;  // cost row stride: m rounded up to 4, padded with huge costs
  double largest_cost = 0.0;
  std::vector<int> row_cell, col_cell;
  std::vector<double> supply, demand, cost;  // cost: n x m
  // Basis: n + m - 1 arcs (row, column), their cost and flow, by slot.
  std::vector<std::pair<int, int>> basis;
  std::vector<double> slot_cost, slot_flow;
  // Tree adjacency: for each node, the basis slots of its arcs.
  std::vector<int> degree, incident;  // incident: nodes x (2 * size)
  int stride = 0;
  // Rebuilt each pivot from the root: potentials, parent, slot to parent, depth.
  std::vector<double> potential;
  std::vector<int> parent, parent_slot, depth, queue;
  std::vector<int> path_c, path_r;  // cycle scratch (basis slots)
  int price_start = 0;
  // Small problems (n + m <= 64), the usual case with the difference
  // reduction: the tree is parent pointers with the flow of each node's arc
  // to its parent and a 64-bit mask of each node's subtree, so finding the
  // cycle, re-hanging a subtree and shifting its potentials are bit walks.
  std::vector<int> up;             // parent node, -1 at the root
  std::vector<double> up_flow;     // flow on the arc to the parent
  std::vector<uint64_t> below;     // subtree of each node (itself included)
  std::vector<double> start_flow;  // the greedy start's flows, n x cs

  Impl(GroundMetric g, bool difference_only)
      : metric(std::move(g)), size(metric.size()), reduce(difference_only && metric.is_metric()) {
    const size_t s = static_cast<size_t>(size);
    for (int i = 0; i < size; ++i)
      for (int j = 0; j < size; ++j) pairs_by_distance.emplace_back(i, j);
    std::stable_sort(pairs_by_distance.begin(), pairs_by_distance.end(), [&](const auto& x, const auto& y) {
      return metric(x.first, x.second) < metric(y.first, y.second);
    });
    pair_rank.resize(s * s);
    for (size_t k = 0; k < pairs_by_distance.size(); ++k)
      pair_rank[pairs_by_distance[k].first * s + pairs_by_distance[k].second] = static_cast<int>(k);
    rank_bitmap.resize((s * s + 63) / 64);
    arc_at_rank.resize(s * s);
    row_cell.reserve(s);
    col_cell.reserve(s);
    supply.reserve(s);
    demand.reserve(s);
    cost.resize(s * (s + 3));
    for (double d : metric.matrix()) largest_cost = std::max(largest_cost, d);
    basis.reserve(2 * s);
    slot_cost.resize(2 * s);
    slot_flow.resize(2 * s);
    stride = static_cast<int>(2 * s);
    degree.resize(2 * s);
    incident.resize(2 * s * 2 * s);
    potential.resize(2 * s + 4);
    parent.resize(2 * s);
    parent_slot.resize(2 * s);
    depth.resize(2 * s);
    queue.resize(2 * s);
    path_c.reserve(2 * s);
    path_r.reserve(2 * s);
    up.resize(2 * s);
    up_flow.resize(2 * s);
    below.resize(2 * s);
    start_flow.resize(s * (s + 3));
  }

  template <class T>
  double profiled_solve(const T* a, const T* b) {
    if (!profiling) return solve(a, b);
    marking_ticks = 0;
    const uint64_t t0 = ticks();
    const double e = solve(a, b);
    ++profile.calls;
    profile.total_ticks += ticks() - t0 - marking_ticks;
    return e;
  }

  template <class T>
  double solve(const T* a, const T* b) {
    last_pivots = 0;
    double sa = 0.0, sb = 0.0;
    for (int c = 0; c < size; ++c) {
      const double x = static_cast<double>(a[c]), y = static_cast<double>(b[c]);
      if (!(x >= 0.0) || !(y >= 0.0) || !std::isfinite(x) || !std::isfinite(y))
        throw Error("emd: charges must be finite and >= 0 (cell " + std::to_string(c) + ": " + std::to_string(x) +
                    ", " + std::to_string(y) + ")");
      sa += x;
      sb += y;
    }
    if (sa <= 0.0 && sb <= 0.0) return 0.0;
    if (sa <= 0.0 || sb <= 0.0) return std::numeric_limits<double>::quiet_NaN();
    // Finite charges whose sum overflows (above ~1e306 each): normalize by
    // the largest charge first (EMD does not depend on a wafer's scale).
    const double pre_a = std::isfinite(sa) ? 1.0 : rescale(a, sa);
    const double pre_b = std::isfinite(sb) ? 1.0 : rescale(b, sb);
    row_cell.clear();
    col_cell.clear();
    supply.clear();
    demand.clear();
    for (int c = 0; c < size; ++c) {
      const double x = static_cast<double>(a[c]) * pre_a / sa, y = static_cast<double>(b[c]) * pre_b / sb;
      // Kantorovich-Rubinstein: for a metric only the difference moves.
      const double give = reduce ? x - y : x, take = reduce ? y - x : y;
      if (give > 0.0) {
        row_cell.push_back(c);
        supply.push_back(give);
      }
      if (take > 0.0) {
        col_cell.push_back(c);
        demand.push_back(take);
      }
    }
    n = static_cast<int>(row_cell.size());
    m = static_cast<int>(col_cell.size());
    if (n == 0 || m == 0) return 0.0;
    // One source or one sink: the plan is forced.
    if (n == 1 || m == 1) {
      double e = 0.0;
      for (int i = 0; i < n; ++i)
        for (int j = 0; j < m; ++j) e += (n == 1 ? demand[j] : supply[i]) * metric(row_cell[i], col_cell[j]);
      return e;
    }
    cs = (m + 3) & ~3;
    for (int i = 0; i < n; ++i) {
      const double* d = &metric.matrix()[static_cast<size_t>(row_cell[i]) * size];
      double* c = &cost[static_cast<size_t>(i) * cs];
      for (int j = 0; j < m; ++j) c[j] = d[col_cell[j]];
      for (int j = m; j < cs; ++j) c[j] = 1e300;
    }
    for (int j = n + m; j < n + cs; ++j) potential[j] = 0.0;
    if (n + m <= 64) return simplex_small();
    const uint64_t t_start = profiling ? ticks() : 0;
    initial_basis();
    if (profiling) {
      const uint64_t t_mark = ticks();
      start_arc.assign(static_cast<size_t>(n) * m, 0);
      for (const auto& [i, j] : basis) start_arc[i * m + j] = 1;
      marking_ticks = ticks() - t_mark;
    }
    simplex(t_start + marking_ticks);
    double e = 0.0;
    for (size_t k = 0; k < basis.size(); ++k) e += slot_flow[k] * slot_cost[k];
    return e;
  }

  // Adds one simplex run to the profile: the phases end at t_tree (start),
  // t_pivots (tree) and now (pivots); for_each_final_arc(f) calls f(i, j)
  // for each arc of the optimal tree.
  template <class ForEachArc>
  void record(uint64_t t_start, uint64_t t_tree, uint64_t t_pivots, uint64_t pricing_ticks, int degenerate,
              ForEachArc&& for_each_final_arc) {
    const uint64_t t_end = ticks();
    for_each_final_arc([&](int i, int j) { profile.replaced_start_arcs += !start_arc[i * m + j]; });
    marking_ticks += ticks() - t_end;
    ++profile.simplex_calls;
    profile.nodes += n + m;
    profile.pivots += last_pivots;
    profile.degenerate_pivots += degenerate;
    profile.start_ticks += t_tree - t_start;
    profile.tree_ticks += t_pivots - t_tree;
    profile.pricing_ticks += pricing_ticks;
    profile.update_ticks += t_end - t_pivots - pricing_ticks;
  }

  // 1 / (largest charge) of a wafer, and its sum in those units.
  template <class T>
  double rescale(const T* w, double& sum) const {
    double largest = 0.0;
    for (int c = 0; c < size; ++c) largest = std::max(largest, static_cast<double>(w[c]));
    sum = 0.0;
    for (int c = 0; c < size; ++c) sum += static_cast<double>(w[c]) / largest;
    return 1.0 / largest;
  }

  void add_to_tree(int slot) {
    const int r = basis[slot].first, c = n + basis[slot].second;
    incident[r * stride + degree[r]++] = slot;
    incident[c * stride + degree[c]++] = slot;
  }

  void remove_from_tree(int slot) {
    for (int node : {basis[slot].first, n + basis[slot].second}) {
      int* list = &incident[node * stride];
      int k = 0;
      while (list[k] != slot) ++k;
      list[k] = list[--degree[node]];
    }
  }

  // Least-cost greedy start ("matrix minimum"): arcs by increasing cost, ship
  // as much as possible, close one line per arc (the last open row or column
  // is never closed early), so exactly n + m - 1 arcs form a spanning tree.
  template <class AddArc>
  void greedy_start(AddArc&& add_arc) {
    std::vector<double>& s = potential;  // scratch: remaining supply, then demand
    for (int i = 0; i < n; ++i) s[i] = supply[i];
    for (int j = 0; j < m; ++j) s[n + j] = demand[j];
    std::vector<int>& closed = depth;  // scratch
    std::fill(closed.begin(), closed.begin() + n + m, 0);
    int open_rows = n, open_cols = m;
    // This problem's arcs in global distance order: mark their ranks in a
    // bitmap (remembering which arc each rank is), then visit the set bits
    // (no per-problem sort).
    std::fill(rank_bitmap.begin(), rank_bitmap.end(), 0);
    for (int i = 0; i < n; ++i) {
      const int* rank = &pair_rank[static_cast<size_t>(row_cell[i]) * size];
      for (int j = 0; j < m; ++j) {
        const int k = rank[col_cell[j]];
        rank_bitmap[k >> 6] |= uint64_t(1) << (k & 63);
        arc_at_rank[k] = static_cast<uint32_t>(i) << 16 | static_cast<uint32_t>(j);
      }
    }
    auto add = [&](int i, int j, double x) {
      x = std::max(0.0, x);
      s[i] -= x;
      s[n + j] -= x;
      add_arc(i, j, x);
    };
    // Cheapest open arcs until one side has a single open line left.
    for (size_t word = 0; word < rank_bitmap.size() && open_rows > 1 && open_cols > 1; ++word)
      for (uint64_t bits = rank_bitmap[word]; bits != 0; bits &= bits - 1) {
        const uint32_t arc = arc_at_rank[word * 64 + static_cast<size_t>(__builtin_ctzll(bits))];
        const int i = static_cast<int>(arc >> 16), j = static_cast<int>(arc & 0xffff);
        if (closed[i] | closed[n + j]) continue;
        const bool close_row = s[i] <= s[n + j];
        add(i, j, close_row ? s[i] : s[n + j]);
        if (close_row) {
          closed[i] = 1;
          --open_rows;
        } else {
          closed[n + j] = 1;
          --open_cols;
        }
        if (open_rows == 1 || open_cols == 1) break;
      }
    // The plan of the last open line is forced: it ships to (or takes from)
    // every open line of the other side; its last arc closes both.
    if (open_rows == 1) {
      int i = 0;
      while (closed[i]) ++i;
      for (int j = 0; j < m; ++j)
        if (!closed[n + j]) add(i, j, s[n + j]);
    } else {
      int j = 0;
      while (closed[n + j]) ++j;
      for (int i = 0; i < n; ++i)
        if (!closed[i]) add(i, j, s[i]);
    }
  }

  // The greedy start as a basis (slots and incidence lists), for simplex().
  void initial_basis() {
    basis.clear();
    std::fill(degree.begin(), degree.begin() + n + m, 0);
    greedy_start([&](int i, int j, double x) {
      const int slot = static_cast<int>(basis.size());
      slot_flow[slot] = x;
      slot_cost[slot] = cost[i * cs + j];
      basis.emplace_back(i, j);
      add_to_tree(slot);
    });
    if (static_cast<int>(basis.size()) != n + m - 1) throw Error("emd: internal error: bad initial basis");
  }

  // Potentials (u_row + v_col = cost on basic arcs), parents and depths of
  // the tree rooted at node 0.
  void build_tree() {
    parent[0] = -1;
    parent_slot[0] = -1;
    depth[0] = 0;
    potential[0] = 0.0;
    if (relabel(0) != n + m) throw Error("emd: internal error: basis is not a spanning tree");
  }

  // Breadth-first from `start` (whose parent, slot, depth and potential are
  // set), never crossing back to its parent: recomputes the subtree below.
  // Returns the number of nodes visited.
  int relabel(int start) {
    int head = 0, tail = 0;
    queue[tail++] = start;
    while (head < tail) {
      const int v = queue[head++];
      const int* list = &incident[v * stride];
      const int from = parent_slot[v];
      for (int e = 0; e < degree[v]; ++e) {
        const int slot = list[e];
        if (slot == from) continue;
        const int w = v < n ? n + basis[slot].second : basis[slot].first;
        parent[w] = v;
        parent_slot[w] = slot;
        depth[w] = depth[v] + 1;
        potential[w] = slot_cost[slot] - potential[v];
        queue[tail++] = w;
      }
    }
    return tail;
  }

  // Block pricing (as in LEMON's network simplex): scan rows from where the
  // last search stopped and take the most negative reduced cost among the
  // rows scanned once a block of about sqrt(n m) arcs holds a candidate.
  // Bland phase: the first negative arc in index order.
  bool price(double tol, bool bland, int& enter_i, int& enter_j) {
    double best = -tol;
    enter_i = -1;
    const double* v = &potential[n];
    if (bland) {
      for (int i = 0; i < n; ++i)
        for (int j = 0; j < m; ++j)
          if (cost[i * cs + j] - potential[i] - v[j] < best) {
            enter_i = i;
            enter_j = j;
            return true;
          }
      return false;
    }
    const int block = std::max(1, static_cast<int>(std::sqrt(static_cast<double>(n) * m)) / m);
    for (int scanned = 0; scanned < n; ++scanned) {
      const int i = (price_start + scanned) % n;
      const double u = potential[i];
      const double* c = &cost[i * cs];
      for (int j = 0; j < m; ++j) {
        const double rc = c[j] - u - v[j];
        if (rc < best) {
          best = rc;
          enter_i = i;
          enter_j = j;
        }
      }
      if (enter_i >= 0 && (scanned + 1) % block == 0) {
        price_start = (i + 1) % n;
        return true;
      }
    }
    return enter_i >= 0;
  }

  double arc_cost(int child, int parent_node) const {
    return child < n ? cost[child * cs + (parent_node - n)] : cost[parent_node * cs + (child - n)];
  }

  // Network simplex for n + m <= 64 from the greedy start; returns the cost.
  double simplex_small() {
    const int nodes = n + m;
    // The greedy start's arcs: flows in an n x cs matrix (only basic arcs
    // are ever read) and each node's neighbours as a bit mask.
    std::fill(below.begin(), below.begin() + nodes, 0);  // adjacency for now
    int arcs = 0;
    uint64_t t_start = profiling ? ticks() : 0;
    greedy_start([&](int i, int j, double x) {
      start_flow[i * cs + j] = x;
      below[i] |= uint64_t(1) << (n + j);
      below[n + j] |= uint64_t(1) << i;
      ++arcs;
    });
    if (arcs != nodes - 1) throw Error("emd: internal error: bad initial basis");
    uint64_t t_tree = 0;
    if (profiling) {
      t_tree = ticks();
      start_arc.assign(static_cast<size_t>(n) * m, 0);
      for (int i = 0; i < n; ++i)
        for (uint64_t b = below[i]; b; b &= b - 1) start_arc[i * m + __builtin_ctzll(b) - n] = 1;
      const uint64_t now = ticks();
      marking_ticks = now - t_tree;
      t_start += marking_ticks;  // the start phase ends at t_tree, after the marking
      t_tree = now;
    }
    // Tree: breadth-first from node 0 (potential 0).
    int tail = 1;
    queue[0] = 0;
    up[0] = -1;
    up_flow[0] = 0.0;
    potential[0] = 0.0;
    uint64_t seen = 1;
    for (int head = 0; head < tail; ++head) {
      const int x = queue[head];
      const uint64_t fresh = below[x] & ~seen;  // each node is queued once
      seen |= fresh;
      for (uint64_t b = fresh; b; b &= b - 1) {
        const int w = __builtin_ctzll(b);
        const int i = x < n ? x : w, j = (x < n ? w : x) - n;
        up[w] = x;
        up_flow[w] = start_flow[i * cs + j];
        potential[w] = cost[i * cs + j] - potential[x];
        queue[tail++] = w;
      }
    }
    if (tail != nodes) throw Error("emd: internal error: basis is not a spanning tree");
    for (int x = 0; x < nodes; ++x) below[x] = uint64_t(1) << x;
    for (int k = nodes - 1; k > 0; --k) below[up[queue[k]]] |= below[queue[k]];
    const uint64_t t_pivots = profiling ? ticks() : 0;
    uint64_t pricing_ticks = 0;
    int degenerate = 0;
    const double tol = 1e-12 * std::max(largest_cost, 1.0);
    const uint64_t all = nodes == 64 ? ~uint64_t(0) : (uint64_t(1) << nodes) - 1;
    const uint64_t rows_mask = (uint64_t(1) << n) - 1, cols_mask = all & ~rows_mask;
    const double* v = &potential[n];
    int degenerate_run = 0;
    bool bland = false;
    price_start = 0;
    const int block = std::max(1, static_cast<int>(std::sqrt(static_cast<double>(n) * m)) / m);
    for (int pivot = 0;; ++pivot) {
      if (pivot >= 100000) throw Error("emd: network simplex did not converge");
      // Entering arc (i, j) with negative reduced cost.
      const uint64_t t_price = profiling ? ticks() : 0;
      int ei = -1, ej = -1;
      double best = -tol;
      if (bland) {
        for (int i = 0; i < n && ei < 0; ++i)
          for (int j = 0; j < m; ++j)
            if (cost[i * cs + j] - potential[i] - v[j] < best) {
              ei = i;
              ej = j;
              break;
            }
      } else {
        int i = price_start;
        for (int scanned = 1; scanned <= n; ++scanned) {
          const double u = potential[i];
          const double* c = &cost[i * cs];
          const double row_best = detail::row_minimum(c, u, v, cs);
          if (row_best < best) {
            best = row_best;
            ei = i;
            for (ej = 0; c[ej] - u - v[ej] != row_best; ++ej) {
            }
          }
          if (++i == n) i = 0;
          if (ei >= 0 && scanned % block == 0) break;
        }
        price_start = i;
      }
      if (profiling) pricing_ticks += ticks() - t_price;
      if (ei < 0) {
        last_pivots = pivot;
        break;
      }
      const int col = n + ej;
      const double reduced = cost[ei * cs + ej] - potential[ei] - v[ej];
      // Apex: the lowest common ancestor of the row and the column.
      int apex = col;
      while (!(below[apex] >> ei & 1))
        if ((apex = up[apex]) < 0) throw Error("emd: internal error: broken basis tree");
      // Arcs whose flow drops: columns on the column's side, rows on the
      // row's side. Leaving arc: the least flow, the last one met going
      // round the cycle from the apex (column side first), or the smallest
      // arc index among ties in the Bland phase.
      double theta = std::numeric_limits<double>::infinity();
      int leave = -1;
      bool leave_col_side = false;
      auto arc_index = [&](int x) { return x < n ? x * m + (up[x] - n) : up[x] * m + (x - n); };
      auto consider = [&](int x, bool col_side) {
        const double f = up_flow[x];
        if (f < theta || (f == theta && (bland ? arc_index(x) < arc_index(leave) : col_side))) {
          theta = f;
          leave = x;
          leave_col_side = col_side;
        }
      };
      for (int x = col; x != apex; x = up[x])
        if (x >= n) consider(x, true);
      for (int x = ei; x != apex; x = up[x])
        if (x < n) consider(x, false);
      if (theta > 0.0) {
        for (int x = col; x != apex; x = up[x]) up_flow[x] += x >= n ? -theta : theta;
        for (int x = ei; x != apex; x = up[x]) up_flow[x] += x < n ? -theta : theta;
        degenerate_run = 0;
      } else {
        ++degenerate;
        if (++degenerate_run > 2 * nodes) bland = true;
      }
      // Cut the leaving arc; its subtree hangs from the entering arc now.
      const uint64_t moved = below[leave];
      const int inside = leave_col_side ? col : ei, outside = leave_col_side ? ei : col;
      // Above the apex the subtree stays inside: only the two sides change.
      for (int x = up[leave]; x != apex; x = up[x]) below[x] &= ~moved;
      // Reverse the stem from `inside` up to `leave`: each arc on it now
      // belongs to its upper node.
      int x = inside, new_parent = outside;
      double carried = theta;
      uint64_t previous_below = 0;
      while (true) {
        const int old_parent = up[x];
        const double old_flow = up_flow[x];
        const uint64_t old_below = below[x];
        up[x] = new_parent;
        up_flow[x] = carried;
        // Below stem node t now: all that moved except what hung below t - 1.
        below[x] = moved & ~previous_below;
        if (x == leave) break;
        previous_below = old_below;
        new_parent = x;
        carried = old_flow;
        x = old_parent;
      }
      for (int y = outside; y != apex; y = up[y]) below[y] |= moved;
      // Potentials: shift the moved subtree so the entering arc is tight.
      const double shift = leave_col_side ? reduced : -reduced;  // added to columns, subtracted from rows
      for (uint64_t b = moved & cols_mask; b; b &= b - 1) potential[__builtin_ctzll(b)] += shift;
      for (uint64_t b = moved & rows_mask; b; b &= b - 1) potential[__builtin_ctzll(b)] -= shift;
    }
    if (profiling)
      record(t_start, t_tree, t_pivots, pricing_ticks, degenerate, [&](auto&& f) {
        for (int x = 1; x < nodes; ++x) x < n ? f(x, up[x] - n) : f(up[x], x - n);
      });
    double e = 0.0;
    for (int x = 1; x < nodes; ++x) e += up_flow[x] * arc_cost(x, up[x]);
    return e;
  }

  void simplex(uint64_t t_start) {
    const double tol = 1e-12 * std::max(largest_cost, 1.0);
    int degenerate_run = 0, degenerate = 0;
    bool bland = false;
    price_start = 0;
    const int max_pivots = 100000;
    const uint64_t t_tree = profiling ? ticks() : 0;
    build_tree();
    const uint64_t t_pivots = profiling ? ticks() : 0;
    uint64_t pricing_ticks = 0;
    for (int pivot = 0;; ++pivot) {
      if (pivot >= max_pivots) throw Error("emd: network simplex did not converge");
      int ei, ej;
      const uint64_t t_price = profiling ? ticks() : 0;
      const bool entering = price(tol, bland, ei, ej);
      if (profiling) pricing_ticks += ticks() - t_price;
      if (!entering) {
        last_pivots = pivot;
        if (profiling)
          record(t_start, t_tree, t_pivots, pricing_ticks, degenerate, [&](auto&& f) {
            for (const auto& [i, j] : basis) f(i, j);
          });
        return;
      }
      // Cycle: entering arc (+), then the tree path from its column up to the
      // common ancestor and down to its row; signs alternate (-, +, ...).
      int r = ei, c = n + ej;
      path_c.clear();
      path_r.clear();
      while (depth[c] > depth[r]) {
        path_c.push_back(parent_slot[c]);
        c = parent[c];
      }
      while (depth[r] > depth[c]) {
        path_r.push_back(parent_slot[r]);
        r = parent[r];
      }
      while (r != c) {
        path_c.push_back(parent_slot[c]);
        c = parent[c];
        path_r.push_back(parent_slot[r]);
        r = parent[r];
      }
      const size_t column_side = path_c.size();
      path_c.insert(path_c.end(), path_r.rbegin(), path_r.rend());
      // Leaving arc: the '-' arc (even positions here) with the least flow;
      // ties by position (Dantzig phase) or by arc index (Bland phase).
      auto arc_index = [&](int slot) { return basis[slot].first * m + basis[slot].second; };
      int leave_pos = -1;
      double theta = std::numeric_limits<double>::infinity();
      for (size_t p = 0; p < path_c.size(); p += 2) {
        const double f = slot_flow[path_c[p]];
        if (f < theta || (bland && f == theta && arc_index(path_c[p]) < arc_index(path_c[leave_pos]))) {
          theta = f;
          leave_pos = static_cast<int>(p);
        }
      }
      for (size_t p = 0; p < path_c.size(); ++p) slot_flow[path_c[p]] += (p % 2 == 0) ? -theta : theta;
      const int slot = path_c[leave_pos];
      slot_flow[slot] = theta;
      slot_cost[slot] = cost[ei * cs + ej];
      remove_from_tree(slot);
      basis[slot] = {ei, ej};
      add_to_tree(slot);
      // The side of the leaving arc away from the root hangs from the
      // entering arc now: re-root it at the entering arc's endpoint there.
      const int inside = static_cast<size_t>(leave_pos) < column_side ? n + ej : ei;
      const int outside = inside == ei ? n + ej : ei;
      parent[inside] = outside;
      parent_slot[inside] = slot;
      depth[inside] = depth[outside] + 1;
      potential[inside] = slot_cost[slot] - potential[outside];
      relabel(inside);
      if (theta <= 0.0) {
        ++degenerate;
        if (++degenerate_run > 2 * (n + m)) bland = true;
      } else {
        degenerate_run = 0;
      }
    }
  }
};

ExactEmd::ExactEmd(GroundMetric metric, bool transport_difference_only)
    : impl_(new Impl(std::move(metric), transport_difference_only)) {}
ExactEmd::~ExactEmd() = default;
ExactEmd::ExactEmd(ExactEmd&&) noexcept = default;
double ExactEmd::operator()(const double* a, const double* b) { return impl_->profiled_solve(a, b); }
double ExactEmd::operator()(const float* a, const float* b) { return impl_->profiled_solve(a, b); }
const GroundMetric& ExactEmd::metric() const { return impl_->metric; }
int ExactEmd::last_pivots() const { return impl_->last_pivots; }

void ExactEmd::set_profiling(bool on) {
  impl_->profiling = on;
  impl_->profile = Profile();
}

const ExactEmd::Profile& ExactEmd::profile() const { return impl_->profile; }

std::string ExactEmd::Profile::to_text() const {
  auto per = [](double x, int64_t count) { return x / static_cast<double>(std::max<int64_t>(count, 1)); };
  const uint64_t setup = total_ticks - start_ticks - tree_ticks - pricing_ticks - update_ticks;
  std::string text;
  char buf[256];
  std::snprintf(buf, sizeof buf,
                "calls %lld, %lld with the simplex (each: %.1f nodes, %.1f pivots, %.1f degenerate, %.1f arcs of "
                "the start replaced)\n",
                static_cast<long long>(calls), static_cast<long long>(simplex_calls), per(nodes, simplex_calls),
                per(pivots, simplex_calls), per(degenerate_pivots, simplex_calls),
                per(replaced_start_arcs, simplex_calls));
  text += buf;
  std::snprintf(buf, sizeof buf, "ticks per call %.0f:", per(total_ticks, calls));
  text += buf;
  const std::pair<const char*, uint64_t> phases[] = {{"setup", setup},
                                                     {"start", start_ticks},
                                                     {"tree", tree_ticks},
                                                     {"pricing", pricing_ticks},
                                                     {"update", update_ticks}};
  for (const auto& [name, value] : phases) {
    std::snprintf(buf, sizeof buf, "%s %s %.0f (%.0f%%)", name == phases[0].first ? "" : ",", name, per(value, calls),
                  100.0 * static_cast<double>(value) / static_cast<double>(std::max<uint64_t>(total_ticks, 1)));
    text += buf;
  }
  std::snprintf(buf, sizeof buf, "\nticks per pivot: pricing %.0f, update %.0f\n", per(pricing_ticks, pivots),
                per(update_ticks, pivots));
  return text + buf;
}

void emd_exact_rows(const GroundMetric& metric, const float* a, const float* b, int64_t rows, double* out,
                    int threads) {
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  threads = static_cast<int>(std::min<int64_t>(threads, std::max<int64_t>(1, rows / 64)));
  const int64_t cells = metric.size();
  auto work = [&](int64_t first, int64_t last, std::exception_ptr* error) {
    try {
      ExactEmd solver(metric);
      for (int64_t i = first; i < last; ++i) out[i] = solver(a + i * cells, b + i * cells);
    } catch (...) {
      *error = std::current_exception();
    }
  };
  std::vector<std::exception_ptr> errors(static_cast<size_t>(threads));
  std::vector<std::thread> pool;
  const int64_t chunk = (rows + threads - 1) / threads;
  for (int t = 1; t < threads; ++t)
    pool.emplace_back(work, std::min(rows, t * chunk), std::min(rows, (t + 1) * chunk), &errors[t]);
  work(0, std::min(rows, chunk), &errors[0]);
  for (auto& th : pool) th.join();
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
}

}  // namespace ddaq
