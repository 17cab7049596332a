#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "ddaq/error.h"
#include "ddaq/surrogates/emd.h"

namespace ddaq {

// The transportation problem: supplies s_i (rows) to demands t_j (columns),
// cost c_ij, solved by a network simplex on spanning-tree bases. Nodes
// 0..n-1 are rows, n..n+m-1 columns; arc k = i*m + j. Everything is sized
// for the metric once, so a solve allocates nothing.
struct ExactEmd::Impl {
  GroundMetric metric;
  int size;
  bool reduce;
  int last_pivots = 0;
  // All cell pairs by increasing distance (ties by index): the greedy start
  // walks this list instead of sorting each problem's arcs.
  std::vector<std::pair<int16_t, int16_t>> pairs_by_distance;
  std::vector<int> pair_rank;         // (cell i, cell j) -> position in that list
  std::vector<uint64_t> rank_bitmap;  // this problem's arcs, by rank

  // Problem.
  int n = 0, m = 0;
  std::vector<int> row_cell, col_cell, row_of_cell, col_of_cell;
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
    row_cell.reserve(s);
    col_cell.reserve(s);
    row_of_cell.resize(s);
    col_of_cell.resize(s);
    supply.reserve(s);
    demand.reserve(s);
    cost.resize(s * s);
    basis.reserve(2 * s);
    slot_cost.resize(2 * s);
    slot_flow.resize(2 * s);
    stride = static_cast<int>(2 * s);
    degree.resize(2 * s);
    incident.resize(2 * s * 2 * s);
    potential.resize(2 * s);
    parent.resize(2 * s);
    parent_slot.resize(2 * s);
    depth.resize(2 * s);
    queue.resize(2 * s);
    path_c.reserve(2 * s);
    path_r.reserve(2 * s);
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
    row_cell.clear();
    col_cell.clear();
    supply.clear();
    demand.clear();
    std::fill(row_of_cell.begin(), row_of_cell.end(), -1);
    std::fill(col_of_cell.begin(), col_of_cell.end(), -1);
    for (int c = 0; c < size; ++c) {
      const double x = static_cast<double>(a[c]) / sa, y = static_cast<double>(b[c]) / sb;
      // Kantorovich-Rubinstein: for a metric only the difference moves.
      const double give = reduce ? x - y : x, take = reduce ? y - x : y;
      if (give > 0.0) {
        row_of_cell[c] = static_cast<int>(row_cell.size());
        row_cell.push_back(c);
        supply.push_back(give);
      }
      if (take > 0.0) {
        col_of_cell[c] = static_cast<int>(col_cell.size());
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
    for (int i = 0; i < n; ++i)
      for (int j = 0; j < m; ++j) cost[i * m + j] = metric(row_cell[i], col_cell[j]);
    initial_basis();
    simplex();
    double e = 0.0;
    for (size_t k = 0; k < basis.size(); ++k) e += slot_flow[k] * slot_cost[k];
    return e;
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
  void initial_basis() {
    basis.clear();
    std::fill(degree.begin(), degree.begin() + n + m, 0);
    std::vector<double>& s = potential;  // scratch: remaining supply, then demand
    for (int i = 0; i < n; ++i) s[i] = supply[i];
    for (int j = 0; j < m; ++j) s[n + j] = demand[j];
    std::vector<int>& closed = depth;  // scratch
    std::fill(closed.begin(), closed.begin() + n + m, 0);
    int open_rows = n, open_cols = m;
    // This problem's arcs in global distance order: mark their ranks in a
    // bitmap, then visit the set bits (no per-problem sort).
    std::fill(rank_bitmap.begin(), rank_bitmap.end(), 0);
    for (int i = 0; i < n; ++i)
      for (int j = 0; j < m; ++j) {
        const int k = pair_rank[row_cell[i] * size + col_cell[j]];
        rank_bitmap[k >> 6] |= uint64_t(1) << (k & 63);
      }
    for (size_t word = 0; word < rank_bitmap.size() && open_rows + open_cols > 0; ++word)
      for (uint64_t bits = rank_bitmap[word]; bits != 0 && open_rows + open_cols > 0; bits &= bits - 1) {
        const auto& pair = pairs_by_distance[word * 64 + static_cast<size_t>(__builtin_ctzll(bits))];
        const int i = row_of_cell[pair.first], j = col_of_cell[pair.second];
        if (closed[i] || closed[n + j]) continue;
        bool close_row;
        double x;
        if (open_rows == 1 && open_cols == 1) {  // the last arc closes both
          close_row = true;
          x = std::min(s[i], s[n + j]);
          closed[n + j] = 1;
          --open_cols;
        } else if (open_rows == 1) {
          close_row = false;
          x = s[n + j];
        } else if (open_cols == 1) {
          close_row = true;
          x = s[i];
        } else {
          close_row = s[i] <= s[n + j];
          x = close_row ? s[i] : s[n + j];
        }
        const int slot = static_cast<int>(basis.size());
        slot_flow[slot] = std::max(0.0, x);
        slot_cost[slot] = cost[i * m + j];
        s[i] -= slot_flow[slot];
        s[n + j] -= slot_flow[slot];
        basis.emplace_back(i, j);
        add_to_tree(static_cast<int>(basis.size()) - 1);
        if (close_row) {
          closed[i] = 1;
          --open_rows;
        } else {
          closed[n + j] = 1;
          --open_cols;
        }
      }
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
          if (cost[i * m + j] - potential[i] - v[j] < best) {
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
      const double* c = &cost[i * m];
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

  void simplex() {
    double scale = 0.0;
    for (int k = 0; k < n * m; ++k) scale = std::max(scale, cost[k]);
    const double tol = 1e-12 * std::max(scale, 1.0);
    int degenerate_run = 0;
    bool bland = false;
    price_start = 0;
    const int max_pivots = 100000;
    build_tree();
    for (int pivot = 0;; ++pivot) {
      if (pivot >= max_pivots) throw Error("emd: network simplex did not converge");
      int ei, ej;
      if (!price(tol, bland, ei, ej)) {
        last_pivots = pivot;
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
      slot_cost[slot] = cost[ei * m + ej];
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
double ExactEmd::operator()(const double* a, const double* b) { return impl_->solve(a, b); }
double ExactEmd::operator()(const float* a, const float* b) { return impl_->solve(a, b); }
const GroundMetric& ExactEmd::metric() const { return impl_->metric; }
int ExactEmd::last_pivots() const { return impl_->last_pivots; }

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
