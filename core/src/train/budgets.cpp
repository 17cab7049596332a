// Budgets of a run: RUN/budgets.json, and their check against the exact,
// integer design that evaluation measured (never against relaxed values).
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "ddaq/files.h"
#include "ddaq/core/trainer.h"
#include "ddaq/error.h"

namespace ddaq {

void EvaluationReport::check_budgets(const BudgetMap& limits) {
  budgets.clear();
  for (const auto& kv : limits) {
    Budget b;
    b.name = kv.first;
    b.limit = kv.second;
    if (kv.first == "elinks")
      b.achieved = elinks;
    else if (kv.first == "ebops")
      b.achieved = encoder_ebops;
    else if (kv.first == "power_mw")
      b.achieved = encoder_power_mw;
    else if (kv.first == "lut")
      b.achieved = encoder_lut;
    else if (kv.first == "ff")
      b.achieved = encoder_ff;
    else if (kv.first == "dsp")
      b.achieved = encoder_dsp;
    else if (kv.first == "latency_cycles")
      b.achieved = encoder_latency_cycles;
    else
      throw Error("budgets: unknown budget '" + kv.first + "' (known: elinks, ebops, power_mw, lut, ff, dsp, latency_cycles)");
    b.met = b.achieved <= b.limit;
    budgets.push_back(b);
  }
}

void save_budgets(const std::string& run_dir, const BudgetMap& limits) {
  const std::string path = run_dir + "/budgets.json";
  if (limits.empty()) {
    std::error_code ec;
    std::filesystem::remove(path, ec);  // a retrained run without budgets keeps no stale ones
    return;
  }
  write_file_atomic(path, nlohmann::json(limits).dump(2) + "\n");
}

BudgetMap load_budgets(const std::string& run_dir) {
  const std::string path = run_dir + "/budgets.json";
  if (!std::filesystem::exists(path)) return {};
  std::ifstream in(path);
  if (!in) throw Error(path + ": cannot read");
  std::stringstream text;
  text << in.rdbuf();
  try {
    return nlohmann::json::parse(text.str()).get<BudgetMap>();
  } catch (const nlohmann::json::exception& e) {
    throw Error(path + ": not a budgets file (" + std::string(e.what()) + ")");
  }
}

}  // namespace ddaq
