// `ddaq detector plan`, `compare` and `overlay`, run as a user would:
// files, budgets kept, compare recomputing the plan's numbers from its files,
// the same seed giving the same allocation, one-line errors leaving nothing.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "ddaq/core/events.h"
#include "test_support.h"

namespace {

// A one-line error naming `fragment`; exit 1, or 2 for a command line the
// option parser refuses.
void expect_error(const ddaq_test::CommandResult& r, const std::string& fragment, int exit_code = 1) {
  DOCTEST_INFO("stderr: " << r.err);
  DOCTEST_CHECK(r.exit_code == exit_code);
  DOCTEST_CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
  DOCTEST_CHECK(r.err.find(fragment) != std::string::npos);
}

std::vector<std::vector<std::string>> csv_rows(const std::string& text) {
  std::vector<std::vector<std::string>> rows;
  std::istringstream in(text);
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    std::vector<std::string> row;
    std::istringstream l(line);
    for (std::string cell; std::getline(l, cell, ',');) row.push_back(cell);
    rows.push_back(row);
  }
  return rows;
}

// 24 modules (layers 1 and 3, 3 motherboards each), synthetic wafers, and
// d.json planning them in a few groups.
void write_small_detector(const ddaq_test::TempDir& dir) {
  std::ostringstream modules;
  modules
      << "layer,u,v,density,mod_type,motherboard,cassette,econt_elinks_pu,econt_elinks_signal,econd_elinks,eta,phi\n";
  for (int layer : {1, 3})
    for (int u = 0; u < 12; ++u)
      modules << layer << "," << u << ",0,LD,a," << u / 4 << ",1," << (u < 8 ? 2 : 4) << "," << (layer == 1 ? 3 : 2)
              << ",1," << 1.55 + 0.13 * u + (layer == 3 ? 0.05 : 0.0) << ",0.1\n";
  ddaq_test::write_text(dir.file("modules.csv"), modules.str());
  DOCTEST_REQUIRE(ddaq_test::run_ddaq("data synth --events 300 --seed 1 -o " + dir.file("s.h5")).exit_code == 0);
  DOCTEST_REQUIRE(ddaq_test::run_ddaq("data synth --events 300 --seed 2 -o " + dir.file("p.h5")).exit_code == 0);
  ddaq_test::write_text(dir.file("d.json"),
                        R"({"name": "t", "modules": "modules.csv", "signal": "s.h5", "pool": "p.h5",
      "occupancy": {"target_mean_occupancy": 20, "calibration_wafers": 200},
      "groups": {"eta_ring_width": 0.5}, "wafers_per_group": 40, "max_elinks": 6,
      "pareto_elinks": [30, 50, 70]})");
}

}  // namespace

DOCTEST_TEST_SUITE("cli") {
  DOCTEST_TEST_CASE("detector plan and compare: budget kept, compare agrees, reproducible, clean errors") {
    ddaq_test::TempDir dir;
    write_small_detector(dir);
    const std::string plan = "detector plan " + dir.file("d.json");
    auto r = ddaq_test::run_ddaq(plan + " -o " + dir.file("P") + " --budget elinks=66 --json");
    DOCTEST_INFO(r.err);
    DOCTEST_REQUIRE(r.exit_code == 0);
    const auto report = nlohmann::json::parse(r.out);
    for (const char* f : {"allocation.csv", "groups.csv", "tables.csv", "pareto.csv", "report.json", "report.txt",
                          "maps.png", "pareto.png"})
      DOCTEST_CHECK(ddaq_test::exists(dir.file("P/") + f));
    // The budget holds module by module, and each module's expected EMD is
    // its group's table entry for what it runs.
    std::map<std::string, double> table;
    for (const auto& row : csv_rows(ddaq_test::read_text(dir.file("P/tables.csv"))))
      table[row[0] + "/" + row[1] + "/" + row[2]] = std::stod(row[3]);
    int64_t elinks = 0;
    double emd = 0;
    const auto allocation = csv_rows(ddaq_test::read_text(dir.file("P/allocation.csv")));
    DOCTEST_REQUIRE(allocation.size() == 24);
    for (const auto& row : allocation) {
      elinks += std::stoi(row[9]);
      emd += std::stod(row[10]);
      DOCTEST_CHECK(std::stod(row[10]) ==
                    doctest::Approx(table.at(row[7] + "/" + row[8] + "/" + row[9])).epsilon(1e-5));
    }
    DOCTEST_CHECK(elinks <= 66);
    DOCTEST_CHECK(report.at("elinks_total").get<int64_t>() == elinks);
    DOCTEST_CHECK(report.at("learned_emd_mean").get<double>() == doctest::Approx(emd / 24.0).epsilon(1e-5));
    DOCTEST_CHECK(report.at("pu_allocation_elinks").get<int64_t>() == 8 * 2 * 2 + 4 * 4 * 2);
    // 66 e-links give every group the most its modules have in the PU table,
    // so the optimum is at least as good as the PU table.
    DOCTEST_CHECK(report.at("learned_emd_mean").get<double>() <=
                  report.at("pu_allocation_emd_mean").get<double>() + 1e-12);
    // compare: the same numbers from the plan's files alone.
    r = ddaq_test::run_ddaq("detector compare " + dir.file("P") + " --json");
    DOCTEST_REQUIRE(r.exit_code == 0);
    const auto cmp = nlohmann::json::parse(r.out);
    for (const char* k : {"learned_emd_mean", "pu_allocation_emd_mean", "signal_allocation_emd_mean"})
      DOCTEST_CHECK(cmp.at(k).get<double>() == doctest::Approx(report.at(k).get<double>()).epsilon(1e-6));
    DOCTEST_CHECK(cmp.at("elinks_total") == report.at("elinks_total"));
    DOCTEST_CHECK(cmp.at("uplinks") == report.at("uplinks"));
    // Same config and seed: the same allocation, byte for byte.
    DOCTEST_REQUIRE(ddaq_test::run_ddaq(plan + " -o " + dir.file("P2") + " --budget elinks=66").exit_code == 0);
    DOCTEST_CHECK(ddaq_test::read_text(dir.file("P2/allocation.csv")) ==
                  ddaq_test::read_text(dir.file("P/allocation.csv")));
    // Errors: one line, nothing written or replaced.
    const std::string before = ddaq_test::read_text(dir.file("P/allocation.csv"));
    expect_error(ddaq_test::run_ddaq(plan + " -o " + dir.file("P") + " --budget elinks=40"), "exists");
    DOCTEST_CHECK(ddaq_test::read_text(dir.file("P/allocation.csv")) == before);
    expect_error(ddaq_test::run_ddaq(plan + " -o " + dir.file("Q") + " --budget elinks=5"), "budget");
    expect_error(ddaq_test::run_ddaq(plan + " -o " + dir.file("Q") + " --budget links=5"), "elinks=N");
    ddaq_test::write_text(dir.file("bad.json"),
                          R"({"modules": "modules.csv", "signal": "s.h5", "pool": "p.h5", "wafers": 3})");
    expect_error(ddaq_test::run_ddaq("detector plan " + dir.file("bad.json") + " -o " + dir.file("Q")), "wafers");
    ddaq_test::write_text(dir.file("bad2.json"), R"({"modules": "modules.csv", "signal": "none.h5", "pool": "p.h5"})");
    expect_error(ddaq_test::run_ddaq("detector plan " + dir.file("bad2.json") + " -o " + dir.file("Q")), "none.h5");
    DOCTEST_CHECK_FALSE(ddaq_test::exists(dir.file("Q")));
    expect_error(ddaq_test::run_ddaq("detector compare " + dir.file("s.h5")), "s.h5");
    // A damaged plan file: one line naming file, line and column.
    std::filesystem::copy(dir.file("P"), dir.file("C"), std::filesystem::copy_options::recursive);
    auto header_length = [&](const std::string& file) {
      return ddaq_test::read_text(dir.file("P/" + file)).find('\n') + 1;
    };
    auto damage = [&](const std::string& file, size_t at, size_t count, const std::string& with) {
      std::string text = ddaq_test::read_text(dir.file("P/" + file));
      ddaq_test::write_text(dir.file("C/" + file), text.replace(at, count, with));
      return text;
    };
    const std::string alloc = damage("allocation.csv", header_length("allocation.csv"), 1, "x");  // row 1's layer
    expect_error(ddaq_test::run_ddaq("detector compare " + dir.file("C")), "allocation.csv:2: layer 'x");
    damage("allocation.csv", alloc.find('\n', header_length("allocation.csv")), 0, ",7");
    expect_error(ddaq_test::run_ddaq("detector compare " + dir.file("C")), "allocation.csv:2: 14 fields, expected 13");
    expect_error(ddaq_test::run_ddaq("detector eval " + dir.file("C") + " --data " + dir.file("s.h5")),
                 "allocation.csv:2: 14 fields");
    damage("allocation.csv", 0, 0, "");
    const std::string tables = ddaq_test::read_text(dir.file("P/tables.csv"));
    damage("tables.csv", tables.find('\n', header_length("tables.csv")), 0, "e");  // row 1's emd
    expect_error(ddaq_test::run_ddaq("detector compare " + dir.file("C")), "tables.csv:2: emd '");
    damage("tables.csv", header_length("tables.csv"), 1, "2000000000");  // row 1's group
    expect_error(ddaq_test::run_ddaq("detector compare " + dir.file("C")), "group 2000000000 is out of range");
    // eval: wafers of unknown position, against Best Choice at the same e-links.
    r = ddaq_test::run_ddaq("detector eval " + dir.file("P") + " --data " + dir.file("s.h5") + " --json");
    DOCTEST_INFO(r.err);
    DOCTEST_REQUIRE(r.exit_code == 0);
    auto ev = nlohmann::json::parse(r.out);
    DOCTEST_CHECK(ev.at("events").get<int64_t>() == 300);
    int64_t binned = 0;
    for (const auto& b : ev.at("by_occupancy")) binned += b.at("events").get<int64_t>();
    DOCTEST_CHECK(binned == 300);
    // A plan of Best Choice alone at 2 e-links per module (a group per
    // layer, 12 modules each): eval is Best Choice.
    ddaq_test::write_text(dir.file("bc.json"), R"({"modules": "modules.csv", "signal": "s.h5", "pool": "p.h5",
        "occupancy": {"target_mean_occupancy": 20, "calibration_wafers": 200}, "wafers_per_group": 40,
        "groups": {"eta_ring_width": 5.0},
        "algorithms": ["best_choice"], "max_elinks": 2, "budget_elinks": 48})");
    DOCTEST_REQUIRE(ddaq_test::run_ddaq("detector plan " + dir.file("bc.json") + " -o " + dir.file("B")).exit_code ==
                    0);
    r = ddaq_test::run_ddaq("detector eval " + dir.file("B") + " --data " + dir.file("p.h5") + " --json");
    DOCTEST_REQUIRE(r.exit_code == 0);
    ev = nlohmann::json::parse(r.out);
    DOCTEST_CHECK(ev.at("elinks_mean").get<double>() == 2.0);
    DOCTEST_CHECK(ev.at("emd_mean").get<double>() == ev.at("best_choice_emd_mean").get<double>());
    DOCTEST_CHECK(ev.at("emd_mean").get<double>() > 0.0);
    // eval follows allocation.csv module by module: the same plan with the
    // modules of each group alternating 1 and 2 e-links (as after a fill)
    // runs its wafers at 1 and 2 in turn; with every module at 1, at 1.
    const std::string header =
        "layer,u,v,motherboard,eta,eta_estimated,mu,group,algorithm,elinks,expected_emd,"
        "elinks_pu,elinks_signal\n";
    auto with_elinks = [&](bool alternate) {
      std::map<std::string, int> seen;
      std::string out = header;
      for (auto row : csv_rows(ddaq_test::read_text(dir.file("B/allocation.csv")))) {
        row[9] = alternate && seen[row[7]]++ % 2 ? "2" : "1";
        for (size_t f = 0; f < row.size(); ++f) out += (f ? "," : "") + row[f];
        out += "\n";
      }
      ddaq_test::write_text(dir.file("B/allocation.csv"), out);
      r = ddaq_test::run_ddaq("detector eval " + dir.file("B") + " --data " + dir.file("p.h5") + " --json");
      DOCTEST_INFO(r.err);
      DOCTEST_REQUIRE(r.exit_code == 0);
      return nlohmann::json::parse(r.out);
    };
    const double bc2 = ev.at("best_choice_emd_mean").get<double>();
    ev = with_elinks(false);
    DOCTEST_CHECK(ev.at("elinks_mean").get<double>() == 1.0);
    DOCTEST_CHECK(ev.at("best_choice_emd_mean").get<double>() > bc2);  // 1 cell kept, not 4
    ev = with_elinks(true);
    DOCTEST_CHECK(ev.at("elinks_mean").get<double>() == doctest::Approx(1.5).epsilon(0.04));
    DOCTEST_CHECK(ev.at("emd_mean").get<double>() == ev.at("best_choice_emd_mean").get<double>());
    expect_error(ddaq_test::run_ddaq("detector eval " + dir.path() + " --data " + dir.file("s.h5")), "groups.csv");
    // A trained run as a choice ("NAME=PATH"): in every group's table at its
    // e-links, loaded again by eval; two runs of one name and e-links refused.
    ddaq_test::write_text(dir.file("tiny.json"),
                          std::string(R"({"data": {}, "pipeline": {"latent": 16, "latent_bits": 3},
        "training": {"epochs": 1, "batch_size": 64, "surrogate": ")") +
                              DDAQ_SOURCE_DIR + "/surrogates/models/emd_surrogate.pt\"}}");
    r = ddaq_test::run_ddaq("train " + dir.file("tiny.json") + " -o " + dir.file("ae") + " --data " + dir.file("p.h5") +
                            " --max-steps 2");
    DOCTEST_INFO(r.err);
    DOCTEST_REQUIRE(r.exit_code == 0);
    ddaq_test::write_text(dir.file("ae.json"), R"({"modules": "modules.csv", "signal": "s.h5", "pool": "p.h5",
        "occupancy": {"target_mean_occupancy": 20, "calibration_wafers": 200}, "wafers_per_group": 40,
        "max_elinks": 4, "autoencoders": ["ae2=ae"], "table_algorithms": ["best_choice", "ae2"]})");
    r = ddaq_test::run_ddaq("detector plan " + dir.file("ae.json") + " -o " + dir.file("A") + " --json");
    DOCTEST_INFO(r.err);
    DOCTEST_REQUIRE(r.exit_code == 0);
    int with_ae = 0;
    for (const auto& row : csv_rows(ddaq_test::read_text(dir.file("A/tables.csv"))))
      if (row[1] == "ae2" && row[2] == "2" && std::stod(row[3]) > 0.0) ++with_ae;
    DOCTEST_CHECK(with_ae == static_cast<int>(nlohmann::json::parse(r.out).at("groups").get<int64_t>()));
    DOCTEST_CHECK(ddaq_test::run_ddaq("detector eval " + dir.file("A") + " --data " + dir.file("s.h5")).exit_code == 0);
    ddaq_test::write_text(dir.file("ae2.json"), R"({"modules": "modules.csv", "signal": "s.h5", "pool": "p.h5",
        "autoencoders": ["ae", "ae"]})");
    expect_error(ddaq_test::run_ddaq("detector plan " + dir.file("ae2.json") + " -o " + dir.file("Q")),
                 "two runs named 'autoencoder'");
    ddaq_test::write_text(dir.file("ae3.json"), R"({"modules": "modules.csv", "signal": "s.h5", "pool": "p.h5",
        "table_algorithms": ["best_choice", "nope"]})");
    expect_error(ddaq_test::run_ddaq("detector plan " + dir.file("ae3.json") + " -o " + dir.file("Q")), "'nope'");
    // --overwrite replaces a plan with a new one at the new budget.
    r = ddaq_test::run_ddaq(plan + " -o " + dir.file("P") + " --budget elinks=40 --overwrite --json");
    DOCTEST_REQUIRE(r.exit_code == 0);
    DOCTEST_CHECK(nlohmann::json::parse(r.out).at("elinks_total").get<int64_t>() <= 40);
  }
  DOCTEST_TEST_CASE(
      "detector plan under an lpGBT uplink budget: both totals kept and each module the best within its e-links") {
    ddaq_test::TempDir dir;
    write_small_detector(dir);
    const std::string plan = "detector plan " + dir.file("d.json");
    auto r = ddaq_test::run_ddaq(plan + " -o " + dir.file("U0") + " --budget elinks=66 --json");
    DOCTEST_REQUIRE(r.exit_code == 0);
    const int64_t free_uplinks = nlohmann::json::parse(r.out).at("uplinks").at("learned").get<int64_t>();
    const int64_t limit = free_uplinks - 2;
    r = ddaq_test::run_ddaq(plan + " -o " + dir.file("U") + " --budget elinks=66,uplinks=" + std::to_string(limit) +
                            " --json");
    DOCTEST_INFO(r.err);
    DOCTEST_REQUIRE(r.exit_code == 0);
    const auto report = nlohmann::json::parse(r.out);
    DOCTEST_CHECK(report.at("uplinks_fit").at("binding").get<bool>());
    std::map<std::string, std::vector<std::pair<int, double>>> table;  // group -> (e-links, emd)
    for (const auto& row : csv_rows(ddaq_test::read_text(dir.file("U/tables.csv"))))
      table[row[0]].push_back({std::stoi(row[2]), std::stod(row[3])});
    std::map<std::string, int64_t> per_board;  // uplinks recomputed here: ceil(e-links / 7) per (layer, motherboard)
    int64_t elinks = 0;
    double emd = 0;
    for (const auto& row : csv_rows(ddaq_test::read_text(dir.file("U/allocation.csv")))) {
      const int e = std::stoi(row[9]);
      elinks += e;
      emd += std::stod(row[10]);
      per_board[row[0] + "/" + row[3]] += e;
      double least = INFINITY;
      for (const auto& [ce, cv] : table.at(row[7]))
        if (ce <= e) least = std::min(least, cv);
      DOCTEST_CHECK(std::stod(row[10]) == doctest::Approx(least).epsilon(1e-5));
    }
    int64_t uplinks = 0;
    for (const auto& [board, e] : per_board) uplinks += (e + 6) / 7;
    DOCTEST_CHECK(elinks <= 66);
    DOCTEST_CHECK(uplinks <= limit);
    DOCTEST_CHECK(report.at("uplinks").at("learned").get<int64_t>() == uplinks);
    DOCTEST_CHECK(report.at("learned_emd_mean").get<double>() == doctest::Approx(emd / 24.0).epsilon(1e-5));
    // compare recomputes the same from the module rows.
    r = ddaq_test::run_ddaq("detector compare " + dir.file("U") + " --json");
    DOCTEST_REQUIRE(r.exit_code == 0);
    DOCTEST_CHECK(nlohmann::json::parse(r.out).at("learned_emd_mean").get<double>() ==
                  doctest::Approx(emd / 24.0).epsilon(1e-6));
    // 6 boards need at least 6 uplinks; fewer is a one-line error, nothing written.
    expect_error(ddaq_test::run_ddaq(plan + " -o " + dir.file("Q") + " --budget uplinks=5"), "uplinks=5");
    DOCTEST_CHECK_FALSE(ddaq_test::exists(dir.file("Q")));
    expect_error(ddaq_test::run_ddaq(plan + " -o " + dir.file("Q") + " --budget uplinks=x"), "uplinks");
  }

  DOCTEST_TEST_CASE("detector overlay: each wafer gets a planned module's pileup, reproducible, clean errors") {
    ddaq_test::TempDir dir;
    write_small_detector(dir);
    auto r = ddaq_test::run_ddaq("detector plan " + dir.file("d.json") + " -o " + dir.file("P"));
    DOCTEST_REQUIRE(r.exit_code == 0);
    std::vector<double> module_mu;  // the plan's own model, module by module
    for (const auto& row : csv_rows(ddaq_test::read_text(dir.file("P/allocation.csv"))))
      module_mu.push_back(std::stod(row[6]));
    DOCTEST_REQUIRE(module_mu.size() == 24);
    const std::string overlay = "detector overlay " + dir.file("d.json") + " " + dir.file("s.h5");
    r = ddaq_test::run_ddaq(overlay + " -o " + dir.file("o.h5") + " --seed 3");
    DOCTEST_INFO(r.err);
    DOCTEST_REQUIRE(r.exit_code == 0);
    DOCTEST_CHECK(r.out.find("300 events") != std::string::npos);
    const ddaq::EventTable in = ddaq::EventFileReader(dir.file("s.h5")).read_all();
    const ddaq::EventTable out = ddaq::EventFileReader(dir.file("o.h5")).read_all();
    DOCTEST_REQUIRE(out.size() == in.size());
    DOCTEST_CHECK(out.label == in.label);
    const std::vector<double> mu = ddaq::read_results_dataset(dir.file("o.h5"), "mu");
    DOCTEST_REQUIRE(mu.size() == 300);
    bool planned = true, only_added = true;
    double mean = 0;
    for (double m : mu) {  // allocation.csv prints mu to 4 decimals
      planned = planned && std::any_of(module_mu.begin(), module_mu.end(),
                                       [m](double x) { return std::abs(x - m) <= 5e-5 + 1e-6 * x; });
      mean += m / 300.0;
    }
    for (size_t i = 0; i < in.calq.size(); ++i) only_added = only_added && out.calq[i] >= in.calq[i];
    DOCTEST_CHECK(planned);
    DOCTEST_CHECK(only_added);
    // Modules drawn uniformly: the wafers' mean mu is the modules' mean
    // within 4 standard errors.
    double m_mean = 0, m_var = 0;
    for (double x : module_mu) m_mean += x / 24.0;
    for (double x : module_mu) m_var += (x - m_mean) * (x - m_mean) / 24.0;
    DOCTEST_CHECK(std::abs(mean - m_mean) < 4 * std::sqrt(m_var / 300.0));
    // --mu-quantiles: only the modules of that band of mu (12 of 24 each),
    // every one of them drawn (about 25 wafers each).
    std::vector<double> sorted_mu = module_mu;
    std::sort(sorted_mu.begin(), sorted_mu.end());
    for (const auto& [band, first] : std::vector<std::pair<std::string, size_t>>{{"0:0.5", 0}, {"0.5:1", 12}}) {
      const std::string file = dir.file("q" + std::to_string(first) + ".h5");
      r = ddaq_test::run_ddaq(overlay + " -o " + file + " --seed 3 --mu-quantiles " + band);
      DOCTEST_INFO(band, r.err);
      DOCTEST_REQUIRE(r.exit_code == 0);
      DOCTEST_CHECK(r.out.find("12 trigger modules of the 24 between mu quantiles") != std::string::npos);
      const std::vector<double> band_mu = ddaq::read_results_dataset(file, "mu");
      std::set<long> seen, expected;  // mu to 4 decimals, as allocation.csv prints it
      for (size_t k = first; k < first + 12; ++k) expected.insert(std::lround(sorted_mu[k] * 1e4));
      for (double m : band_mu) seen.insert(std::lround(m * 1e4));
      DOCTEST_CHECK(seen == expected);
    }
    // The same seed gives the same wafers; another seed other wafers.
    DOCTEST_REQUIRE(ddaq_test::run_ddaq(overlay + " -o " + dir.file("o2.h5") + " --seed 3").exit_code == 0);
    DOCTEST_REQUIRE(ddaq_test::run_ddaq(overlay + " -o " + dir.file("o3.h5") + " --seed 4").exit_code == 0);
    DOCTEST_CHECK(ddaq::EventFileReader(dir.file("o2.h5")).read_all().calq == out.calq);
    DOCTEST_CHECK(ddaq::EventFileReader(dir.file("o3.h5")).read_all().calq != out.calq);
    // Errors: one line, nothing written or clobbered.
    const std::string before = ddaq_test::read_text(dir.file("s.h5"));
    expect_error(ddaq_test::run_ddaq(overlay + " -o " + dir.file("s.h5")), "s.h5");
    DOCTEST_CHECK(ddaq_test::read_text(dir.file("s.h5")) == before);
    expect_error(ddaq_test::run_ddaq("detector overlay " + dir.file("d.json") + " " + dir.file("none.h5") + " -o " +
                                     dir.file("n.h5")),
                 "none.h5");
    DOCTEST_CHECK(!ddaq_test::exists(dir.file("n.h5")));
    for (const auto& [band, code] : std::vector<std::pair<std::string, int>>{
             {"0.5:0.2", 2}, {"x", 2}, {"0:1.5", 2}, {"0:nan", 2}, {"0.99:1", 1}}) {
      const std::string fragment = code == 2 ? "--mu-quantiles: '" + band + "' is not LO:HI"
                                             : "mu quantiles 0.99:1: no trigger module in the range (24 in the model)";
      expect_error(ddaq_test::run_ddaq(overlay + " -o " + dir.file("n.h5") + " --mu-quantiles " + band), fragment,
                   code);
      DOCTEST_CHECK(!ddaq_test::exists(dir.file("n.h5")));
    }
    // Layer weights: checked keys and values, one line naming them.
    for (const auto& [weights, fragment] : std::vector<std::pair<std::string, std::string>>{
             {R"({"x": 2})", "layer_weights: 'x' is not a layer number"},
             {R"({"3": 0})", "layer_weights"},
             {R"({"2": 2})", "layer_weights: layer 2 has no trigger module"},
             {R"({"3": 2, "03": 1})", "layer_weights: layer 3 is listed twice"}}) {
      ddaq_test::write_text(dir.file("w.json"), R"({"modules": "modules.csv", "signal": "s.h5", "pool": "p.h5",
          "occupancy": {"target_mean_occupancy": 20, "calibration_wafers": 200, "layer_weights": )" +
                                                    weights + "}}");
      expect_error(ddaq_test::run_ddaq("detector overlay " + dir.file("w.json") + " " + dir.file("s.h5") + " -o " +
                                       dir.file("w.h5")),
                   fragment);
      DOCTEST_CHECK(!ddaq_test::exists(dir.file("w.h5")));
    }
  }

  DOCTEST_TEST_CASE("detector plan under a power budget: kept module by module, compare agrees, clean errors") {
    ddaq_test::TempDir dir;
    write_small_detector(dir);
    std::string config = ddaq_test::read_text(dir.file("d.json"));
    const std::map<std::string, std::pair<double, double>> power = {
        {"best_choice", {40, 5}}, {"threshold", {30, 5}}, {"stc4", {20, 5}}, {"stc16", {15, 5}}};
    config.insert(config.rfind('}'), R"(, "power": {"best_choice": {"base_mw": 40, "per_elink_mw": 5},
      "threshold": {"base_mw": 30, "per_elink_mw": 5}, "stc4": {"base_mw": 20, "per_elink_mw": 5},
      "stc16": {"base_mw": 15, "per_elink_mw": 5}})");
    ddaq_test::write_text(dir.file("dp.json"), config);
    const std::string plan = "detector plan " + dir.file("dp.json");
    // Each module's power from its row and the table, summed here (W).
    auto recomputed = [&](const std::string& folder, double* emd_mean) {
      std::map<std::string, double> table;  // group/algorithm/e-links -> emd
      for (const auto& row : csv_rows(ddaq_test::read_text(folder + "/tables.csv")))
        table[row[0] + "/" + row[1] + "/" + row[2]] = std::stod(row[3]);
      double w = 0, emd = 0;
      int64_t elinks = 0, n = 0;
      for (const auto& row : csv_rows(ddaq_test::read_text(folder + "/allocation.csv"))) {
        const int e = std::stoi(row[9]);
        const auto& [base, per] = power.at(row[8]);
        w += (base + per * e) / 1000.0, emd += std::stod(row[10]), elinks += e, ++n;
        // The expected EMD is the table's entry for the row's own algorithm.
        DOCTEST_CHECK(std::stod(row[10]) ==
                      doctest::Approx(table.at(row[7] + "/" + row[8] + "/" + row[9])).epsilon(1e-5));
      }
      DOCTEST_CHECK(elinks <= 66);
      *emd_mean = emd / static_cast<double>(n);
      return w;
    };
    auto r = ddaq_test::run_ddaq(plan + " -o " + dir.file("P0") + " --budget elinks=66 --json");
    DOCTEST_REQUIRE(r.exit_code == 0);
    double emd0 = 0;
    const double free_w = recomputed(dir.file("P0"), &emd0);
    DOCTEST_CHECK(nlohmann::json::parse(r.out).at("power_w").at("learned").get<double>() == doctest::Approx(free_w));
    const double limit = 0.9 * free_w;
    char spec[64];
    std::snprintf(spec, sizeof spec, "elinks=66,power=%.6f", limit);
    r = ddaq_test::run_ddaq(plan + " -o " + dir.file("P") + " --budget " + spec + " --json");
    DOCTEST_INFO(r.err);
    DOCTEST_REQUIRE(r.exit_code == 0);
    const auto report = nlohmann::json::parse(r.out);
    double emd = 0;
    const double w = recomputed(dir.file("P"), &emd);
    DOCTEST_CHECK(w <= limit + 1e-9);
    DOCTEST_CHECK(report.at("power_fit").at("binding").get<bool>());
    DOCTEST_CHECK(report.at("power_w").at("learned").get<double>() == doctest::Approx(w));
    DOCTEST_CHECK(report.at("learned_emd_mean").get<double>() == doctest::Approx(emd).epsilon(1e-5));
    DOCTEST_CHECK(emd >= emd0 - 1e-9);  // less power costs EMD
    DOCTEST_CHECK(report.at("power_fit").at("emd_lower_bound").get<double>() <= emd + 1e-9);
    r = ddaq_test::run_ddaq("detector compare " + dir.file("P") + " --json");
    DOCTEST_REQUIRE(r.exit_code == 0);
    const auto compared = nlohmann::json::parse(r.out);
    DOCTEST_CHECK(compared.at("learned_emd_mean").get<double>() == doctest::Approx(emd).epsilon(1e-6));
    DOCTEST_CHECK(compared.at("power_w").at("learned").get<double>() == doctest::Approx(w));
    DOCTEST_CHECK(compared.at("budget_power_w").get<double>() == doctest::Approx(limit));  // the budgets echoed
    DOCTEST_CHECK(compared.at("budget_elinks").get<int64_t>() == 66);
    // Errors: one line, nothing written.
    expect_error(ddaq_test::run_ddaq(plan + " -o " + dir.file("Q") + " --budget power=0.001"),
                 "--budget power=0.001 W: the least power found");
    expect_error(ddaq_test::run_ddaq(plan + " -o " + dir.file("Q") + " --budget power=-1"), "power must be");
    expect_error(
        ddaq_test::run_ddaq("detector plan " + dir.file("d.json") + " -o " + dir.file("Q") + " --budget power=5"),
        "has no \"power\" table");
    std::string unknown = config;  // the table names stc_16, the plan has stc16
    unknown.replace(unknown.find("\"stc16\": {"), 7, "\"stc_16\"");
    ddaq_test::write_text(dir.file("dq.json"), unknown);
    expect_error(ddaq_test::run_ddaq("detector plan " + dir.file("dq.json") + " -o " + dir.file("Q")),
                 "power: no entry for 'stc16'");
    DOCTEST_CHECK_FALSE(ddaq_test::exists(dir.file("Q")));
  }
}
