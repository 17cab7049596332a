// `ddaq detector eval PLAN --data X.h5 [--json]`: a plan on wafers of unknown
// position. Each wafer goes to the group whose mean occupancy (groups.csv) is
// nearest its own (ties: the first group), is compressed with the algorithm
// and e-links of one of that group's modules (allocation.csv: the group's
// k-th wafer takes its (k mod modules)-th module, so a group whose modules
// differ after a fill is evaluated in their proportions), and is compared
// with Best Choice at the same e-links, overall and by occupancy
// (docs/detector.md).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "commands.h"
#include "ddaq/core/detector_plan.h"
#include "ddaq/core/evaluation.h"
#include "ddaq/core/events.h"
#include "ddaq/core/pipeline.h"
#include "ddaq/core/wafer_metric.h"
#include "ddaq/error.h"
#include "ddaq/surrogates/emd.h"

namespace ddaq {
namespace cli {

namespace {

struct GroupRow {
  double occupancy = 0;  // the mean of its drawn wafers
};

std::vector<GroupRow> read_groups(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error(path + ": cannot open (is this a detector plan folder?)");
  std::string line;
  std::getline(in, line);
  if (line.rfind("group,name,layer,eta_min,eta_max,modules,mu_mean,occupancy_mean,wafer_sum_mean,algorithm,elinks,emd",
                 0))
    throw Error(path + ":1: not the header ddaq detector plan writes");
  std::vector<GroupRow> out;
  for (int n = 2; std::getline(in, line); ++n) {
    std::vector<std::string> f;
    std::stringstream s(line);
    for (std::string cell; std::getline(s, cell, ',');) f.push_back(cell);
    if (f.size() != 12) throw Error(path + ":" + std::to_string(n) + ": expected 12 fields");
    try {
      out.push_back({std::stod(f[7])});
    } catch (const std::exception&) {
      throw Error(path + ":" + std::to_string(n) + ": bad number");
    }
  }
  if (out.empty()) throw Error(path + ": no groups");
  return out;
}

// Each group's modules as allocation.csv has them: (algorithm, e-links).
std::vector<std::vector<std::pair<std::string, int>>> read_module_choices(const std::string& path, size_t groups) {
  std::vector<std::vector<std::pair<std::string, int>>> out(groups);
  const PlanCsv a(path, kAllocationHeader);
  for (size_t i = 0; i < a.rows(); ++i) {
    const int g = a.whole(i, 7), e = a.whole(i, 9);
    if (g < 0 || static_cast<size_t>(g) >= groups)
      throw Error(path + ":" + std::to_string(i + 2) + ": group " + std::to_string(g) + " is not in groups.csv");
    out[static_cast<size_t>(g)].emplace_back(a.text(i, 8), e);
  }
  for (size_t g = 0; g < groups; ++g)
    if (out[g].empty()) throw Error(path + ": group " + std::to_string(g) + " has no module");
  return out;
}

}  // namespace

void detector_eval(const std::string& dir, const std::string& data, int64_t max_events, bool json) {
  const std::vector<GroupRow> groups = read_groups(dir + "/groups.csv");
  const auto modules = read_module_choices(dir + "/allocation.csv", groups.size());
  nlohmann::json runs = nlohmann::json::array();
  try {
    std::ifstream rj(dir + "/report.json");
    runs = nlohmann::json::parse(rj).at("autoencoders");
  } catch (const std::exception&) {
    throw Error(dir + "/report.json: missing, or without autoencoders (is this a detector plan folder?)");
  }
  const EventFileReader reader(data);
  const int64_t n = std::min(max_events, reader.size());
  if (n <= 0) throw Error(data + ": no events to evaluate");
  EventTable t;
  t.calq.resize(static_cast<size_t>(n) * kCellsPerWafer);
  reader.read(0, n, t.calq.data(), nullptr);

  // Each wafer's group: the nearest mean occupancy.
  std::map<std::pair<std::string, int>, std::vector<int64_t>> by_choice;  // (algorithm, e-links) -> rows
  std::vector<int> occupancy(static_cast<size_t>(n)), elinks(static_cast<size_t>(n));
  std::vector<size_t> taken(groups.size(), 0);  // wafers each group has had
  for (int64_t i = 0; i < n; ++i) {
    int o = 0;
    for (int c = 0; c < kCellsPerWafer; ++c) o += t.calq[static_cast<size_t>(i * kCellsPerWafer + c)] > 0;
    size_t best = 0;
    for (size_t g = 1; g < groups.size(); ++g)
      if (std::abs(groups[g].occupancy - o) < std::abs(groups[best].occupancy - o)) best = g;
    occupancy[static_cast<size_t>(i)] = o;
    const auto& choice = modules[best][taken[best]++ % modules[best].size()];
    elinks[static_cast<size_t>(i)] = choice.second;
    by_choice[choice].push_back(i);
  }
  // Compress each set of rows with its algorithm and with Best Choice.
  std::vector<double> emd(static_cast<size_t>(n)), bc(static_cast<size_t>(n));
  const GroundMetric metric = trigger_cell_metric();
  for (const auto& [choice, rows] : by_choice) {
    PlanAlgorithm a;
    std::shared_ptr<EconTPipeline> pipeline;
    std::string run;
    for (const auto& r : runs)
      if (r.at("name") == choice.first && r.at("elinks") == choice.second) run = r.at("run").get<std::string>();
    if (!run.empty()) {
      pipeline = std::make_shared<EconTPipeline>(EconTPipeline::load(run));
      a = {choice.first, choice.second,
           [pipeline](const float* in, int64_t k, float* out) { deployed_reconstruction(*pipeline, in, k, out); }};
    } else {
      a = classical_algorithm(choice.first, choice.second);
    }
    const PlanAlgorithm reference = classical_algorithm("best_choice", choice.second);
    const int64_t k = static_cast<int64_t>(rows.size());
    std::vector<float> in(static_cast<size_t>(k) * kCellsPerWafer), out(in.size()), ref(in.size());
    for (int64_t r = 0; r < k; ++r)
      std::copy_n(t.calq.data() + rows[static_cast<size_t>(r)] * kCellsPerWafer, kCellsPerWafer,
                  in.data() + r * kCellsPerWafer);
    a.compress(in.data(), k, out.data());
    reference.compress(in.data(), k, ref.data());
    std::vector<double> e(static_cast<size_t>(k)), b(static_cast<size_t>(k));
    emd_exact_rows(metric, in.data(), out.data(), k, e.data(), 0);
    emd_exact_rows(metric, in.data(), ref.data(), k, b.data(), 0);
    for (int64_t r = 0; r < k; ++r) {
      emd[static_cast<size_t>(rows[static_cast<size_t>(r)])] = e[static_cast<size_t>(r)];
      bc[static_cast<size_t>(rows[static_cast<size_t>(r)])] = b[static_cast<size_t>(r)];
    }
  }
  // Means over wafers with a defined EMD, overall and by occupancy.
  struct Bin {
    int lo, hi;
    int64_t events = 0;
    double emd = 0, bc = 0, elinks = 0;
  };
  std::vector<Bin> bins{{1, 48}, {1, 9}, {10, 19}, {20, 29}, {30, 48}};
  for (int64_t i = 0; i < n; ++i) {
    const size_t k = static_cast<size_t>(i);
    if (!std::isfinite(emd[k]) || !std::isfinite(bc[k])) continue;
    for (Bin& b : bins)
      if (occupancy[k] >= b.lo && occupancy[k] <= b.hi)
        ++b.events, b.emd += emd[k], b.bc += bc[k], b.elinks += elinks[k];
  }
  auto mean = [](double s, int64_t k) { return k ? s / static_cast<double>(k) : NAN; };
  if (json) {
    nlohmann::json bins_json = nlohmann::json::array();
    for (size_t i = 1; i < bins.size(); ++i)
      bins_json.push_back({{"min_cells", bins[i].lo},
                           {"max_cells", bins[i].hi},
                           {"events", bins[i].events},
                           {"emd_mean", mean(bins[i].emd, bins[i].events)},
                           {"best_choice_emd_mean", mean(bins[i].bc, bins[i].events)},
                           {"elinks_mean", mean(bins[i].elinks, bins[i].events)}});
    const nlohmann::json j = {{"events", bins[0].events},
                              {"emd_mean", mean(bins[0].emd, bins[0].events)},
                              {"best_choice_emd_mean", mean(bins[0].bc, bins[0].events)},
                              {"elinks_mean", mean(bins[0].elinks, bins[0].events)},
                              {"by_occupancy", bins_json}};
    std::printf("%s\n", j.dump().c_str());
    return;
  }
  std::printf("events %lld: plan EMD %.4f, Best Choice at the same e-links %.4f, mean e-links %.3f\n",
              static_cast<long long>(bins[0].events), mean(bins[0].emd, bins[0].events),
              mean(bins[0].bc, bins[0].events), mean(bins[0].elinks, bins[0].events));
  std::printf("by occupancy (non-zero cells): events, plan EMD, Best Choice EMD, mean e-links\n");
  for (size_t i = 1; i < bins.size(); ++i) {
    if (bins[i].events == 0) {  // no means to print (JSON: null)
      std::printf("  %2d-%2d cells: %6d events\n", bins[i].lo, bins[i].hi, 0);
      continue;
    }
    std::printf("  %2d-%2d cells: %6lld events, %.4f vs %.4f, %.3f e-links\n", bins[i].lo, bins[i].hi,
                static_cast<long long>(bins[i].events), mean(bins[i].emd, bins[i].events),
                mean(bins[i].bc, bins[i].events), mean(bins[i].elinks, bins[i].events));
  }
}

}  // namespace cli
}  // namespace ddaq
