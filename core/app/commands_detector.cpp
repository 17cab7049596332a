// `ddaq detector plan CONFIG -o PLAN [--budget elinks=N,uplinks=U,power=W]`: the detector-wide
// plan of issue 19 (docs/detector.md); `ddaq detector compare PLAN [--json]`:
// the plan against the two hand-made e-link tables, from PLAN's files alone.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "commands.h"
#include "ddaq/core/csv_import.h"
#include "ddaq/core/detector_plan.h"
#include "ddaq/core/evaluation.h"
#include "ddaq/core/events.h"
#include "ddaq/core/pipeline.h"
#include "ddaq/core/plot.h"
#include "ddaq/error.h"
#include "ddaq/files.h"
#include "ddaq/quant/hls.h"

namespace ddaq {
namespace cli {

EventTable read_wafers(const std::string& path) {
  const std::string ext = std::filesystem::path(path).extension().string();
  if (ext != ".csv") return EventFileReader(path).read_all();
  const std::string tmp =
      (std::filesystem::temp_directory_path() / ("ddaq-detector-" + std::to_string(::getpid()) + ".h5")).string();
  track_temporary(tmp);  // removed if a signal ends the command here
  try {
    import_calq_csv({path}, tmp);
    EventTable t = EventFileReader(tmp).read_all();
    remove_tree(tmp);
    untrack_temporary(tmp);
    return t;
  } catch (...) {
    remove_tree(tmp);
    untrack_temporary(tmp);
    throw;
  }
}

namespace {

constexpr const char* kPlanKind = "ddaq detector plan";

nlohmann::json layer_weights_json(const DetectorConfig& config) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [layer, w] : config.layer_weights) j[std::to_string(layer)] = w;
  return j;
}

// "elinks=N", "uplinks=U", "power=W" (watts), comma-separated; later ones win.
void parse_budget(const std::string& spec, PlanBudgets& b) {
  std::stringstream items(spec);
  std::string item;
  while (std::getline(items, item, ',')) {
    const size_t eq = item.find('=');
    const std::string key = item.substr(0, eq);
    if (eq == std::string::npos || (key != "elinks" && key != "uplinks" && key != "power"))
      throw Error("--budget '" + spec + "': expected elinks=N, uplinks=U and/or power=W");
    char* end = nullptr;
    if (key == "power") {
      const double w = std::strtod(item.c_str() + eq + 1, &end);
      if (eq + 1 == item.size() || *end != '\0' || !(w > 0) || !std::isfinite(w))
        throw Error("--budget '" + spec + "': power must be a number of watts above 0");
      b.power_w = w;
      continue;
    }
    const long long v = std::strtoll(item.c_str() + eq + 1, &end, 10);
    if (eq + 1 == item.size() || *end != '\0' || v <= 0)
      throw Error("--budget '" + spec + "': " + key + " must be a whole number above 0");
    (key == "elinks" ? b.elinks : b.uplinks) = v;
  }
}

// The least total at which the learned plan's mean EMD is at most `emd`
// (the optimum never rises with the budget); -1 when even `hi` does not.
int64_t elinks_to_match(const std::vector<GroupTable>& groups, int64_t lo, int64_t hi, double emd) {
  if (solve_allocation(allocation_problem(groups, hi)).emd_mean > emd + 1e-12) return -1;
  while (lo < hi) {
    const int64_t mid = lo + (hi - lo) / 2;
    if (solve_allocation(allocation_problem(groups, mid)).emd_mean <= emd + 1e-12)
      hi = mid;
    else
      lo = mid + 1;
  }
  return lo;
}

std::string fmt(double v, int digits = 4) {
  char b[64];
  std::snprintf(b, sizeof b, "%.*f", digits, v);
  return b;
}

std::string match_text(int64_t need, int64_t table) {
  if (need < 0) return "not reachable with these choices";
  const double fewer = 100.0 * (1.0 - double(need) / double(table));
  return std::to_string(need) + " (" + fmt(std::abs(fewer), 1) + (fewer >= 0 ? "% fewer)" : "% more)");
}

nlohmann::json layer_json(const TableScore& t) {
  nlohmann::json j = nlohmann::json::object();
  for (size_t l = 0; l < t.emd_by_layer.size(); ++l)
    if (std::isfinite(t.emd_by_layer[l])) j[std::to_string(l)] = t.emd_by_layer[l];
  return j;
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  if (!out) throw Error(path + ": cannot write");
}

uint32_t palette(size_t i) {
  static const uint32_t colors[] = {0x1f77b4, 0xff7f0e, 0x2ca02c, 0xd62728, 0x9467bd, 0x8c564b,
                                    0xe377c2, 0x7f7f7f, 0xbcbd22, 0x17becf, 0x000000, 0xaec7e8};
  return colors[i % (sizeof colors / sizeof colors[0])];
}

// The comparison printed by plan and compare.
// With `power` (the plan had a power table): each one's ECON-T power too.
std::string comparison_text(const TableScore& learned, const TableScore& pu, const TableScore& signal, bool power) {
  std::ostringstream s;
  s << "detector-wide mean exact EMD (sensor-cell pitches), e-links, lpGBT uplinks" << (power ? ", ECON-T power" : "")
    << ":\n";
  for (const TableScore* t : {&learned, &pu, &signal}) {
    s << "  " << t->name << std::string(22 - std::min<size_t>(21, t->name.size()), ' ') << fmt(t->emd_mean) << "  "
      << t->elinks << " e-links  " << t->uplinks << " uplinks";
    if (power) s << "  " << fmt(t->power_w, 3) << " W";
    s << "\n";
  }
  for (const TableScore* t : {&pu, &signal}) {
    const double lower = 100.0 * (1.0 - learned.emd_mean / t->emd_mean);
    s << "  learned vs " << t->name << " (at " << t->elinks << " e-links): EMD " << fmt(std::abs(lower), 1) << "% "
      << (lower >= 0 ? "lower" : "higher") << "\n";
  }
  return s.str();
}

nlohmann::json comparison_json(const TableScore& learned, const TableScore& pu, const TableScore& signal, bool power) {
  nlohmann::json j = {
      {"elinks_total", learned.elinks},
      {"learned_emd_mean", learned.emd_mean},
      {"pu_allocation_emd_mean", pu.emd_mean},
      {"signal_allocation_emd_mean", signal.emd_mean},
      {"pu_allocation_elinks", pu.elinks},
      {"signal_allocation_elinks", signal.elinks},
      {"uplinks", {{"learned", learned.uplinks}, {"pu_allocation", pu.uplinks}, {"signal_allocation", signal.uplinks}}},
      {"emd_by_layer",
       {{"learned", layer_json(learned)},
        {"pu_allocation", layer_json(pu)},
        {"signal_allocation", layer_json(signal)}}}};
  if (power)
    j["power_w"] = {{"learned", learned.power_w}, {"pu_allocation", pu.power_w}, {"signal_allocation", signal.power_w}};
  return j;
}

void plan(const std::string& config_path, const std::string& out_dir, const std::vector<std::string>& budgets,
          bool overwrite, bool json) {
  const DetectorConfig config = DetectorConfig::load(config_path);
  {  // Refused now rather than after the work (write_project_folder checks again).
    std::error_code ec;
    const bool occupied = std::filesystem::exists(out_dir, ec) &&
                          !(std::filesystem::is_directory(out_dir, ec) && std::filesystem::is_empty(out_dir, ec));
    if (occupied && !overwrite)
      throw Error("detector plan: " + out_dir + " exists and is not an empty folder (--overwrite replaces a plan)");
  }
  PlanBudgets limits{config.budget_elinks, config.budget_uplinks, config.budget_power_w};
  for (const auto& b : budgets) parse_budget(b, limits);
  if (limits.power_w > 0 && config.power.empty())
    throw Error("--budget power: " + config_path + " has no \"power\" table (mW per algorithm)");
  int64_t budget = limits.elinks;
  const ModuleTable modules = ModuleTable::load(config.modules_file);
  const EventTable signal = read_wafers(config.signal_file);
  const EventTable pool = read_wafers(config.pool_file);
  DetectorModel model = build_detector_model(config, modules, signal, pool);
  // Trained autoencoders, each a choice at its own e-links.
  std::vector<std::shared_ptr<EconTPipeline>> pipelines;
  std::vector<PlanAlgorithm> autoencoders;
  std::set<std::pair<std::string, int>> seen;
  nlohmann::json runs = nlohmann::json::array();  // name, e-links, run: what eval loads
  for (const auto& [name, run] : config.autoencoder_runs) {
    auto p = std::make_shared<EconTPipeline>(EconTPipeline::load(run));
    if (!p->hgcal() || p->cells() != kCellsPerWafer)
      throw Error(run + ": autoencoders: not an HGCAL wafer pipeline (48 trigger cells)");
    const int e = p->elinks();
    if (!seen.insert({name, e}).second)
      throw Error(config_path + ": autoencoders: two runs named '" + name + "' at " + std::to_string(e) + " e-links (" +
                  run + "): give them NAME=PATH names");
    autoencoders.push_back(
        {name, e, [p](const float* in, int64_t rows, float* out) { deployed_reconstruction(*p, in, rows, out); }});
    pipelines.push_back(p);
    runs.push_back(
        {{"name", name}, {"elinks", e}, {"run", std::filesystem::absolute(run).lexically_normal().string()}});
  }
  std::vector<GroupTable> groups = build_group_tables(config, model, signal, pool, autoencoders);
  if (!config.power.empty()) apply_power_table(config.power, groups, config_path);
  std::vector<int> pu, sig;
  for (const auto& s : model.sites) pu.push_back(s.elinks_pu), sig.push_back(s.elinks_signal);
  const auto& allowed = config.table_algorithms;
  for (const std::string& a : allowed) {
    bool known = false;
    for (const auto& g : groups)
      for (const auto& c : g.choices) known = known || c.algorithm == a;
    if (!known) throw Error(config_path + ": table_algorithms: '" + a + "' is none of the plan's algorithms");
  }
  const TableScore pu_score = score_table("PU allocation", model, groups, pu, config.lpgbt_user_bits, allowed);
  const TableScore sig_score = score_table("signal allocation", model, groups, sig, config.lpgbt_user_bits, allowed);
  if (budget == 0) budget = pu_score.elinks;
  limits.elinks = budget;
  int64_t least = 0, most = 0;  // the fewest and most e-links the choices allow
  for (const auto& g : groups) {
    int lo = config.max_elinks, hi = 0;
    for (const auto& c : g.choices) lo = std::min(lo, c.elinks), hi = std::max(hi, c.elinks);
    least += g.modules * lo, most += g.modules * hi;
  }
  const BudgetedPlan fit = plan_within(groups, model, limits, config.lpgbt_user_bits);
  const AllocationSummary& best = fit.group_plan;
  const std::vector<const AllocationChoice*>& chosen = fit.chosen;  // per module
  const TableScore learned = score_choices("learned plan", model, chosen, fit.elinks, config.lpgbt_user_bits);
  const int64_t match_pu = elinks_to_match(groups, least, most, pu_score.emd_mean);
  const int64_t match_sig = elinks_to_match(groups, least, most, sig_score.emd_mean);

  // Pareto: learned plans and the two tables scaled to the same totals.
  std::vector<std::vector<double>> pareto;  // total, learned, pu elinks, pu emd, signal elinks, signal emd
  for (int64_t total : config.pareto_elinks) {
    if (total < least) continue;
    const TableScore p = score_table("pu", model, groups, scale_table(pu, total), config.lpgbt_user_bits, allowed);
    const TableScore q = score_table("signal", model, groups, scale_table(sig, total), config.lpgbt_user_bits, allowed);
    pareto.push_back({static_cast<double>(total), solve_allocation(allocation_problem(groups, total)).emd_mean,
                      static_cast<double>(p.elinks), p.emd_mean, static_cast<double>(q.elinks), q.emd_mean});
  }

  nlohmann::json report = {{"kind", kPlanKind},
                           {"name", config.name},
                           {"config", config_path},
                           {"modules", static_cast<int64_t>(model.sites.size())},
                           {"groups", static_cast<int64_t>(groups.size())},
                           {"budget_elinks", budget},
                           {"budget_uplinks", limits.uplinks},
                           {"uplinks_fit",
                            {{"binding", fit.uplinks_binding},
                             {"group_plan_elinks", fit.group_plan_elinks},
                             {"elinks_filled", fit.elinks_filled}}},
                           {"occupancy_model",
                            {{"mu_per_flux", model.mu_per_flux},
                             {"mean_occupancy", model.mean_occupancy},
                             {"target_mean_occupancy", config.target_mean_occupancy},
                             {"mean_wafer_sum", model.mean_sum},
                             {"reference_mean_wafer_sum", config.reference_mean_sum},
                             {"pileup_scale", model.pileup_scale},
                             {"layer_weights", layer_weights_json(config)},
                             {"eta_estimated_modules", model.eta_estimated}}},
                           {"elinks_to_match_pu_allocation", match_pu},
                           {"elinks_to_match_signal_allocation", match_sig},
                           {"lpgbt_user_bits", config.lpgbt_user_bits},
                           {"autoencoders", runs},
                           {"table_algorithms", config.table_algorithms},
                           {"seed", config.seed}};
  const bool power = !config.power.empty();
  if (power) {
    nlohmann::json table = nlohmann::json::object();
    for (const auto& [a, e] : config.power) table[a] = {{"base_mw", e.base_mw}, {"per_elink_mw", e.per_elink_mw}};
    report["power_table"] = table;
    report["budget_power_w"] = limits.power_w;
    report["power_fit"] = {{"binding", fit.power_binding},
                           {"price_emd_per_mw", fit.power_price},
                           {"modules_filled", fit.modules_power_filled},
                           {"emd_lower_bound", fit.power_binding ? nlohmann::json(fit.emd_lower_bound) : nullptr}};
  }
  report.update(comparison_json(learned, pu_score, sig_score, power));
  std::ostringstream text;
  text << "detector plan '" << config.name << "': " << model.sites.size() << " trigger modules in " << groups.size()
       << " groups, budget " << budget << " e-links\n"
       << "occupancy model: mu = " << fmt(model.mu_per_flux, 4)
       << (config.layer_weights.empty() ? "" : " x layer weight") << " x tanh(eta) sinh^2(eta) / z^2; mean occupancy "
       << fmt(model.mean_occupancy, 2) << " cells (target " << fmt(config.target_mean_occupancy, 2)
       << "), mean wafer sum " << fmt(model.mean_sum, 1)
       << " CALQ (real 200-pileup sample: " << fmt(config.reference_mean_sum, 1)
       << (config.match_reference_sum ? "; matched: pileup charges x " + fmt(model.pileup_scale, 4) : std::string())
       << "); eta estimated for " << model.eta_estimated << " modules\n"
       << comparison_text(learned, pu_score, sig_score, power)
       << "  e-links the learned plan needs to match: PU allocation " << match_text(match_pu, pu_score.elinks)
       << ", signal allocation " << match_text(match_sig, sig_score.elinks) << "\n";
  if (limits.uplinks > 0) {
    text << "lpGBT budget " << limits.uplinks << " uplinks: ";
    if (fit.uplinks_binding)
      text << "the group plan at " << fit.group_plan_elinks << " e-links fits; " << fit.elinks_filled
           << " e-links then filled into free uplink slots (" << learned.uplinks << " uplinks, " << learned.elinks
           << " e-links)\n";
    else
      text << "not binding (" << learned.uplinks << " uplinks)\n";
  }
  if (limits.power_w > 0) {
    text << "power budget " << fmt(limits.power_w, 3) << " W: ";
    if (fit.power_binding)
      text << "algorithms priced at " << fit.power_price << " EMD per mW (" << fmt(learned.power_w, 3) << " W, "
           << fit.modules_power_filled << " modules then given the power left); no plan within the "
           << "budgets has a mean EMD below " << fmt(fit.emd_lower_bound) << "\n";
    else
      text << "not binding (" << fmt(learned.power_w, 3) << " W)\n";
  }
  if (fit.power_binding || fit.uplinks_binding)
    text << "(e-links to match and the Pareto are without the uplink and power budgets)\n";
  std::map<std::string, int64_t> by_algorithm;
  for (const AllocationChoice* c : chosen) by_algorithm[c->algorithm] += 1;
  text << "the hand-made tables' modules run the best of: ";
  if (allowed.empty()) text << "every algorithm the plan has";
  for (size_t i = 0; i < allowed.size(); ++i) text << (i ? ", " : "") << allowed[i];
  text << "\n";
  text << "modules by algorithm:";
  for (const auto& [a, n] : by_algorithm) text << " " << a << " " << n;
  text << "\n";
  if (!pareto.empty()) {
    text << "pareto (total e-links: learned EMD | PU table scaled: e-links EMD | signal table scaled: e-links EMD):\n";
    for (const auto& r : pareto)
      text << "  " << int64_t(r[0]) << ": " << fmt(r[1]) << " | " << int64_t(r[2]) << " " << fmt(r[3]) << " | "
           << int64_t(r[4]) << " " << fmt(r[5]) << "\n";
  }

  const auto ours = [](const std::string& dir) {
    std::ifstream in(dir + "/report.json");
    std::stringstream s;
    s << in.rdbuf();
    return s.str().find(kPlanKind) != std::string::npos;
  };
  write_project_folder(
      out_dir, overwrite, "detector plan", "a detector plan (report.json)", ours, [&](const std::string& tmp) {
        std::ostringstream a;
        a << kAllocationHeader << "\n";
        for (size_t i = 0; i < model.sites.size(); ++i) {
          const ModuleSite& s = model.sites[i];
          const AllocationChoice& c = *chosen[i];
          a << s.layer << ',' << s.u << ',' << s.v << ',' << s.motherboard << ',' << fmt(s.eta, 5) << ','
            << (s.eta_estimated ? 1 : 0) << ',' << fmt(s.mu, 4) << ',' << s.group << ',' << c.algorithm << ','
            << c.elinks << ',' << fmt(c.emd, 6) << ',' << s.elinks_pu << ',' << s.elinks_signal << "\n";
        }
        write_text(tmp + "/allocation.csv", a.str());
        std::ostringstream t, gcsv;
        t << "group,algorithm,elinks,emd\n";
        gcsv << "group,name,layer,eta_min,eta_max,modules,mu_mean,occupancy_mean,wafer_sum_mean,algorithm,elinks,emd\n";
        for (size_t g = 0; g < groups.size(); ++g) {
          const GroupTable& G = groups[g];
          for (const auto& c : G.choices)
            t << g << ',' << c.algorithm << ',' << c.elinks << ',' << fmt(c.emd, 8) << "\n";
          const auto& c = G.choices[static_cast<size_t>(best.choice[g])];
          gcsv << g << ',' << G.name << ',' << G.layer << ',' << fmt(G.eta_min, 2) << ',' << fmt(G.eta_max, 2) << ','
               << G.modules << ',' << fmt(G.mu_mean, 4) << ',' << fmt(G.occupancy_mean, 3) << ',' << fmt(G.sum_mean, 1)
               << ',' << c.algorithm << ',' << c.elinks << ',' << fmt(c.emd, 6) << "\n";
        }
        write_text(tmp + "/tables.csv", t.str());
        write_text(tmp + "/groups.csv", gcsv.str());
        std::ostringstream p;
        p << "elinks_total,learned_emd,pu_scaled_elinks,pu_scaled_emd,signal_scaled_elinks,signal_scaled_emd\n";
        for (const auto& r : pareto)
          p << int64_t(r[0]) << ',' << fmt(r[1], 6) << ',' << int64_t(r[2]) << ',' << fmt(r[3], 6) << ','
            << int64_t(r[4]) << ',' << fmt(r[5], 6) << "\n";
        write_text(tmp + "/pareto.csv", p.str());
        write_text(tmp + "/report.json", report.dump(2) + "\n");
        write_text(tmp + "/report.txt", text.str());
        // Maps: e-links and algorithm by layer and eta, EMD by layer.
        std::map<int, PlotSeries> by_elinks;
        std::map<std::string, PlotSeries> by_alg;
        for (size_t i = 0; i < model.sites.size(); ++i) {
          const ModuleSite& s = model.sites[i];
          const AllocationChoice& c = *chosen[i];
          PlotSeries& e = by_elinks[c.elinks];
          e.x.push_back(s.eta), e.y.push_back(s.layer);
          PlotSeries& al = by_alg[c.algorithm];
          al.x.push_back(s.eta), al.y.push_back(s.layer);
        }
        PlotPanel pe{"e-links per module", "eta", "layer", {}}, pa{"algorithm", "eta", "layer", {}},
            pl{"mean exact EMD by layer", "layer", "EMD (sensor-cell pitches)", {}};
        for (auto& [e, s] : by_elinks)
          s.label = std::to_string(e) + " e-links", s.line = false, s.color = palette(pe.series.size()),
          pe.series.push_back(s);
        for (auto& [a, s] : by_alg)
          s.label = a, s.line = false, s.color = palette(pa.series.size()), pa.series.push_back(s);
        for (const TableScore* sc : {&learned, &pu_score, &sig_score}) {
          PlotSeries s;
          s.label = sc->name;
          s.color = palette(pl.series.size());
          for (size_t l = 0; l < sc->emd_by_layer.size(); ++l)
            if (std::isfinite(sc->emd_by_layer[l])) s.x.push_back(double(l)), s.y.push_back(sc->emd_by_layer[l]);
          pl.series.push_back(s);
        }
        write_png_chart(tmp + "/maps.png", {pe, pa, pl}, "detector plan " + config.name);
        if (!pareto.empty()) {
          PlotPanel pp{"detector-wide mean EMD vs total e-links", "total e-links", "mean exact EMD", {}};
          PlotSeries l{"learned plan"}, a2{"PU table scaled"}, b2{"signal table scaled"};
          l.color = palette(0), a2.color = palette(1), b2.color = palette(2), a2.hollow = b2.hollow = true;
          for (const auto& r : pareto)
            l.x.push_back(r[0]), l.y.push_back(r[1]), a2.x.push_back(r[2]), a2.y.push_back(r[3]), b2.x.push_back(r[4]),
                b2.y.push_back(r[5]);
          pp.series = {l, a2, b2};
          write_png_chart(tmp + "/pareto.png", {pp}, "detector plan " + config.name);
        }
      });
  if (json) {
    std::printf("%s\n", report.dump().c_str());
    return;
  }
  std::printf("%s", text.str().c_str());
  std::printf("wrote %s (allocation.csv, groups.csv, tables.csv, pareto.csv, report.json, report.txt, maps.png%s)\n",
              out_dir.c_str(), pareto.empty() ? "" : ", pareto.png");
}

void compare(const std::string& dir, bool json) {
  // The model as the plan saved it: sites with their groups, groups' tables.
  DetectorModel model;
  std::vector<int> learned, pu, sig;
  std::vector<std::pair<std::string, int>> learned_choice;  // algorithm, e-links per module
  std::vector<GroupTable> groups;
  const std::string alloc = dir + "/allocation.csv", tables = dir + "/tables.csv";
  const PlanCsv a(alloc, kAllocationHeader);
  for (size_t i = 0; i < a.rows(); ++i) {
    ModuleSite s;
    s.layer = a.whole(i, 0), s.u = a.whole(i, 1), s.v = a.whole(i, 2), s.motherboard = a.whole(i, 3);
    s.group = a.whole(i, 7);
    learned.push_back(a.whole(i, 9)), pu.push_back(a.whole(i, 11)), sig.push_back(a.whole(i, 12));
    learned_choice.emplace_back(a.text(i, 8), learned.back());
    model.sites.push_back(s);
  }
  const PlanCsv t(tables, "group,algorithm,elinks,emd");
  for (size_t i = 0; i < t.rows(); ++i) {
    const int g = t.whole(i, 0);
    if (g < 0 || static_cast<size_t>(g) >= a.rows())  // a plan has fewer groups than modules
      throw Error(tables + ":" + std::to_string(i + 2) + ": group " + std::to_string(g) + " is out of range");
    if (groups.size() <= static_cast<size_t>(g)) groups.resize(static_cast<size_t>(g) + 1);
    groups[static_cast<size_t>(g)].choices.push_back({t.text(i, 1), t.whole(i, 2), t.number(i, 3)});
  }
  for (const auto& s : model.sites)
    if (s.group < 0 || static_cast<size_t>(s.group) >= groups.size())
      throw Error(alloc + ": group " + std::to_string(s.group) + " is not in " + tables);
  int user_bits = 230;
  std::vector<std::string> allowed;
  std::map<std::string, PowerEntry> power;
  nlohmann::json budgets = nlohmann::json::object();  // echoed by --json
  try {
    std::ifstream rj(dir + "/report.json");
    const nlohmann::json r = nlohmann::json::parse(rj);
    user_bits = r.at("lpgbt_user_bits").get<int>();
    for (const char* k : {"budget_elinks", "budget_uplinks", "budget_power_w"})
      if (r.contains(k)) budgets[k] = r.at(k);
    allowed = r.at("table_algorithms").get<std::vector<std::string>>();
    if (r.contains("power_table"))
      for (const auto& [a, e] : r.at("power_table").items())
        power[a] = {e.at("base_mw").get<double>(), e.at("per_elink_mw").get<double>()};
  } catch (const std::exception&) {
    throw Error(
        dir +
        "/report.json: missing, or without lpgbt_user_bits and table_algorithms (is this a detector plan folder?)");
  }
  if (!power.empty()) apply_power_table(power, groups, dir + "/report.json");
  // The learned plan as allocation.csv has it: each module's own algorithm
  // (under a power budget not always the least EMD within its e-links).
  std::vector<const AllocationChoice*> chosen;
  for (size_t i = 0; i < model.sites.size(); ++i) {
    const AllocationChoice* c = nullptr;
    for (const auto& x : groups[static_cast<size_t>(model.sites[i].group)].choices)
      if (x.algorithm == learned_choice[i].first && x.elinks == learned_choice[i].second) c = &x;
    if (!c)
      throw Error(alloc + ": row " + std::to_string(i + 2) + ": " + learned_choice[i].first + " at " +
                  std::to_string(learned_choice[i].second) + " e-links is not in group " +
                  std::to_string(model.sites[i].group) + "'s table (" + tables + ")");
    chosen.push_back(c);
  }
  const TableScore l = score_choices("learned plan", model, chosen, learned, user_bits);
  const TableScore p = score_table("PU allocation", model, groups, pu, user_bits, allowed);
  const TableScore q = score_table("signal allocation", model, groups, sig, user_bits, allowed);
  if (json) {
    nlohmann::json j = comparison_json(l, p, q, !power.empty());
    j.update(budgets);
    std::printf("%s\n", j.dump().c_str());
    return;
  }
  std::printf("%s", comparison_text(l, p, q, !power.empty()).c_str());
}

}  // namespace

namespace {
std::vector<std::string> csv_fields(const std::string& line) {
  std::vector<std::string> f;
  std::stringstream s(line);
  for (std::string cell; std::getline(s, cell, ',');) f.push_back(cell);
  if (!line.empty() && line.back() == ',') f.emplace_back();  // getline drops a trailing empty field
  return f;
}
}  // namespace

PlanCsv::PlanCsv(const std::string& path, const std::string& header) : path_(path) {
  std::ifstream in(path);
  if (!in) throw Error(path + ": cannot open (is this a detector plan folder?)");
  std::string line;
  std::getline(in, line);
  if (line != header) throw Error(path + ":1: expected the header '" + header + "'");
  columns_ = csv_fields(header);
  for (int n = 2; std::getline(in, line); ++n) {
    rows_.push_back(csv_fields(line));
    if (rows_.back().size() != columns_.size())
      throw Error(path + ":" + std::to_string(n) + ": " + std::to_string(rows_.back().size()) + " fields, expected " +
                  std::to_string(columns_.size()));
  }
}

void PlanCsv::bad(size_t row, size_t column, const char* what) const {
  throw Error(path_ + ":" + std::to_string(row + 2) + ": " + columns_[column] + " '" + rows_[row][column] +
              "' is not " + what);
}

int PlanCsv::whole(size_t row, size_t column) const {
  const std::string& t = rows_[row][column];
  char* end = nullptr;
  errno = 0;
  const long v = std::strtol(t.c_str(), &end, 10);
  if (t.empty() || *end != '\0' || errno || v < INT_MIN || v > INT_MAX) bad(row, column, "a whole number");
  return static_cast<int>(v);
}

double PlanCsv::number(size_t row, size_t column) const {
  const std::string& t = rows_[row][column];
  char* end = nullptr;
  const double v = std::strtod(t.c_str(), &end);
  if (t.empty() || *end != '\0' || !std::isfinite(v)) bad(row, column, "a finite number");
  return v;
}

void add_detector_commands(CLI::App& app) {
  CLI::App* d = app.add_subcommand("detector", "Detector-wide plans: e-links and algorithms for every module");
  d->require_subcommand(1);
  {
    struct Args {
      std::string config, out;
      std::vector<std::string> budgets;
      bool overwrite = false, json = false;
    };
    auto a = std::make_shared<Args>();
    CLI::App* c = d->add_subcommand("plan", "Plan a detector: groups, algorithms and e-links under a total budget");
    c->add_option("config", a->config, "detector configuration (JSON)")->required();
    c->add_option("-o,--output", a->out, "plan folder to write")->required();
    c->add_option(
        "--budget", a->budgets,
        "elinks=N: total e-links (default: the config's, else the PU table's); uplinks=U: lpGBT uplinks at most; "
        "power=W: ECON-T power at most, watts (needs the config's power table)");
    c->add_flag("--overwrite", a->overwrite, "replace an earlier plan in the folder");
    c->add_flag("--json", a->json, "print report.json's content as one JSON object on stdout");
    c->callback([a] { plan(a->config, a->out, a->budgets, a->overwrite, a->json); });
  }
  {
    auto dir = std::make_shared<std::string>();
    auto json = std::make_shared<bool>(false);
    CLI::App* c = d->add_subcommand("compare", "A plan against the PU and signal allocations under its model");
    c->add_option("plan", *dir, "plan folder (ddaq detector plan)")->required();
    c->add_flag("--json", *json, "one JSON object on stdout");
    c->callback([dir, json] { compare(*dir, *json); });
  }
  {
    auto dir = std::make_shared<std::string>(), data = std::make_shared<std::string>();
    auto events = std::make_shared<int64_t>(20000);
    auto json = std::make_shared<bool>(false);
    CLI::App* c = d->add_subcommand("eval", "A plan on wafers of unknown position, against Best Choice");
    c->add_option("plan", *dir, "plan folder (ddaq detector plan)")->required();
    c->add_option("--data", *data, "event file (.h5) of 48-cell wafers")->required();
    c->add_option("--events", *events, "at most this many wafers")->check(whole_number_in(1, int64_t(1) << 40));
    c->add_flag("--json", *json, "one JSON object on stdout");
    c->callback([=] { detector_eval(*dir, *data, *events, *json); });
  }
  add_detector_overlay_command(*d);
}

}  // namespace cli
}  // namespace ddaq
