// The Pareto table and plot of a sweep, from each point's RUN/eval.json
// (the exact, integer design's numbers, never relaxed ones).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "ddaq/core/plot.h"
#include "ddaq/core/sweep.h"
#include "ddaq/error.h"
#include "ddaq/files.h"

namespace ddaq {
namespace {

// After the budget_<name> columns (one per axis, after `point`).
const char* const kParetoColumns[] = {
    "status",   "met",   "elinks",   "latent_bits",          "payload_bits",       "lut", "ff",      "latency_cycles",
    "power_mw", "ebops", "emd_mean", "best_choice_emd_mean", "emd_vs_best_choice", "auc", "seconds", "run"};

std::string num(double v) {
  if (!std::isfinite(v)) return "";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

double get(const nlohmann::json& j, const char* key) {
  return j.contains(key) && j[key].is_number() ? j[key].get<double>() : NAN;
}

struct Row {
  std::string point, status;
  std::vector<std::string> budgets;
  std::map<std::string, std::string> cells;
  double elinks = NAN, lut = NAN, power = NAN, emd = NAN;
  nlohmann::json best_choice;  // [{elinks, emd_mean, ...}]
};

Row read_row(const SweepPoint& p, const PointOutcome& o, const std::string& shown_run) {
  Row r;
  r.point = p.name;
  r.status = o.status;
  for (const auto& kv : p.budgets) r.budgets.push_back(kv.second);
  r.cells["run"] = shown_run;
  r.cells["seconds"] = o.seconds > 0 ? num(o.seconds) : "";
  if (o.status != "ok") return r;
  const std::string path = p.run + "/eval.json";
  nlohmann::json e;
  try {
    std::ifstream in(path);
    e = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception&) {
    r.status = "failed";
    return r;
  }
  r.elinks = get(e, "elinks");
  r.emd = get(e, "emd_mean");
  r.power = get(e, "encoder_power_mw");
  const nlohmann::json fpga = e.value("encoder_fpga", nlohmann::json::object());
  r.lut = get(fpga, "lut");
  double bc = NAN;
  r.best_choice = e.value("best_choice", nlohmann::json::array());
  for (const auto& b : r.best_choice)
    if (get(b, "elinks") == r.elinks) bc = get(b, "emd_mean");
  std::string met;
  const nlohmann::json budgets = e.value("budgets", nlohmann::json::object());
  for (const auto& kv : budgets.items()) met = (met == "no" || !kv.value().value("met", false)) ? "no" : "yes";
  r.cells["met"] = met;
  r.cells["elinks"] = num(r.elinks);
  r.cells["events"] = num(get(e, "events"));
  r.cells["latent_bits"] = num(get(e, "latent_bits"));
  r.cells["payload_bits"] = num(get(e, "payload_bits"));
  r.cells["lut"] = num(r.lut);
  r.cells["ff"] = num(get(fpga, "ff"));
  r.cells["latency_cycles"] = num(get(fpga, "latency_cycles"));
  r.cells["power_mw"] = num(r.power);
  r.cells["ebops"] = num(get(e, "encoder_ebops"));
  r.cells["emd_mean"] = num(r.emd);
  r.cells["best_choice_emd_mean"] = num(bc);
  r.cells["emd_vs_best_choice"] = num(r.emd / bc);
  r.cells["auc"] = num(get(e, "auc"));
  return r;
}

}  // namespace

std::string write_pareto(const SweepPlan& plan, const std::vector<PointOutcome>& outcomes,
                         const std::string& shown_dir) {
  const std::vector<SweepPoint> pts = plan.points();
  if (outcomes.size() != pts.size()) throw Error(plan.dir + ": outcomes do not match the plan's points");
  std::vector<Row> rows;
  for (size_t i = 0; i < pts.size(); ++i)
    rows.push_back(read_row(pts[i], outcomes[i], shown_dir + "/runs/" + pts[i].name));
  std::ostringstream csv;
  csv << "point";
  for (const BudgetAxis& a : plan.axes) csv << ",budget_" << a.name;
  for (const char* c : kParetoColumns) csv << "," << c;
  csv << "\n";
  for (const Row& r : rows) {
    csv << r.point;
    for (const std::string& b : r.budgets) csv << "," << b;
    for (const char* c : kParetoColumns) {
      const std::string col = c;
      const auto it = r.cells.find(col);
      const std::string v = col == "status" ? r.status : it == r.cells.end() ? "" : it->second;
      // Paths may hold commas: quoted as RFC 4180 wants.
      if (v.find_first_of(",\"") != std::string::npos) {
        std::string q = "\"";
        for (char ch : v) q += ch == '"' ? std::string("\"\"") : std::string(1, ch);
        csv << "," << q << "\"";
      } else {
        csv << "," << v;
      }
    }
    csv << "\n";
  }

  // The plot: co-designed points, and Best Choice at 1..max e-links on the
  // same events (every point's eval uses the same test file and events).
  PlotSeries ours, bc;
  ours.label = "co-designed (ddaq)";
  ours.color = 0x1f77b4;
  bc.label = "Best Choice (same events)";
  bc.color = 0xd62728;
  bc.hollow = true;
  std::vector<const Row*> ok;
  for (const Row& r : rows)
    if (r.status == "ok" && std::isfinite(r.emd)) ok.push_back(&r);
  std::stable_sort(ok.begin(), ok.end(), [](const Row* a, const Row* b) { return a->elinks < b->elinks; });
  ours.line = plan.axes.size() == 1;  // one axis: a front in e-links or LUT order
  PlotSeries by_lut = ours, by_power = ours;
  for (const Row* r : ok) {
    ours.x.push_back(r->elinks);
    ours.y.push_back(r->emd);
    if (plan.axes.size() > 1) ours.point_labels.push_back(r->point);  // several points per e-link count
  }
  std::vector<const Row*> ok_lut = ok, ok_power = ok;
  std::stable_sort(ok_lut.begin(), ok_lut.end(), [](const Row* a, const Row* b) { return a->lut < b->lut; });
  std::stable_sort(ok_power.begin(), ok_power.end(), [](const Row* a, const Row* b) { return a->power < b->power; });
  for (const Row* r : ok_lut) {
    by_lut.x.push_back(r->lut);
    by_lut.y.push_back(r->emd);
    by_lut.point_labels.push_back(r->cells.at("elinks") + " e-links");
  }
  for (const Row* r : ok_power) {
    by_power.x.push_back(r->power);
    by_power.y.push_back(r->emd);
    by_power.point_labels.push_back(r->cells.at("elinks") + " e-links");
  }
  if (!ok.empty())
    for (const auto& b : ok.front()->best_choice) {
      bc.x.push_back(get(b, "elinks"));
      bc.y.push_back(get(b, "emd_mean"));
    }
  std::vector<PlotPanel> panels(3);
  panels[0] = {"exact EMD vs e-links", "e-links (32 bits/BX each)", "mean exact EMD (cell pitches)", {bc, ours}};
  panels[1] = {
      "exact EMD vs encoder LUT", "encoder LUT (model, reuse factor 1)", "mean exact EMD (cell pitches)", {by_lut}};
  panels[2] = {"exact EMD vs encoder power",
               "encoder power (mW, 45 nm Horowitz, 40 MHz)",
               "mean exact EMD (cell pitches)",
               {by_power}};
  const size_t slash = plan.config.find_last_of('/');
  const std::string title =
      "ddaq sweep of " + plan.config.substr(slash == std::string::npos ? 0 : slash + 1) + ": " +
      std::to_string(ok.size()) + " of " + std::to_string(rows.size()) + " points" +
      (ok.empty() ? "" : ", each evaluated on the same " + ok.front()->cells.at("events") + " events");
  // Both files or neither (a failure here leaves the previous pair).
  OutputTransaction transaction;
  write_file_atomic(plan.dir + "/pareto.csv", csv.str());
  write_png_chart(plan.dir + "/pareto.png", panels, title);
  transaction.commit();
  return csv.str();
}

}  // namespace ddaq
