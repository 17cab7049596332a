// The ddaq executable as a user meets it: exit codes, one-line errors on
// stderr, and no output file left behind by a failure.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <sstream>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "ddaq/core/events.h"
#include "ddaq/files.h"
#include "test_support.h"

using ddaq_test::run_ddaq;

namespace {
int lines(const std::string& s) { return static_cast<int>(std::count(s.begin(), s.end(), '\n')); }

void expect_error(const ddaq_test::CommandResult& r, const std::string& fragment) {
  DOCTEST_INFO("stderr: " << r.err);
  DOCTEST_CHECK(r.exit_code != 0);
  DOCTEST_CHECK(lines(r.err) == 1);
  DOCTEST_CHECK(r.err.rfind("ddaq: error: ", 0) == 0);
  DOCTEST_CHECK(r.err.find(fragment) != std::string::npos);
}
}  // namespace

DOCTEST_TEST_SUITE("cli") {
  DOCTEST_TEST_CASE("--help and --version everywhere") {
    auto r = run_ddaq("--version");
    DOCTEST_CHECK(r.exit_code == 0);
    DOCTEST_CHECK(r.out.find("ddaq 0.") == 0);
    for (const char* sub : {"", "data", "data import", "data synth", "data overlay", "data slice", "data stats", "emd",
                            "export", "train", "eval", "predict", "run", "surrogate", "surrogate emd", "surrogate emd train", "surrogate emd eval",
                            "surrogate resources", "surrogate resources fit", "surrogate resources predict"}) {
      r = run_ddaq(std::string(sub) + " --help");
      DOCTEST_INFO("ddaq " << sub << " --help");
      DOCTEST_CHECK(r.exit_code == 0);
      DOCTEST_CHECK(r.out.find("Usage") != std::string::npos);
    }
    expect_error(run_ddaq(""), "a command is required");
    expect_error(run_ddaq("data frobnicate"), "frobnicate");
    expect_error(run_ddaq("data synth --events 10"), "--output");
  }

  DOCTEST_TEST_CASE("synth / overlay / stats / import round trip") {
    ddaq_test::TempDir dir;
    auto r = run_ddaq("data synth -o " + dir.file("s.h5") + " --events 500 --seed 4");
    DOCTEST_REQUIRE(r.exit_code == 0);
    r = run_ddaq("data synth -o " + dir.file("s2.h5") + " --events 500 --seed 4");
    DOCTEST_CHECK(ddaq::EventFileReader(dir.file("s.h5")).read_all().calq ==
                  ddaq::EventFileReader(dir.file("s2.h5")).read_all().calq);
    r = run_ddaq("data overlay " + dir.file("s.h5") + " --pool " + dir.file("s2.h5") + " --mu 5 --seed 2 -o " +
                 dir.file("o.h5"));
    DOCTEST_REQUIRE(r.exit_code == 0);
    r = run_ddaq("data stats --json " + dir.file("o.h5"));
    DOCTEST_CHECK(r.exit_code == 0);
    DOCTEST_CHECK(r.out.find("\"events\": 500") != std::string::npos);
    ddaq_test::write_text(dir.file("a.csv"), ddaq_test::calq_csv({std::vector<double>(48, 2.0)}));
    r = run_ddaq("data import " + dir.file("a.csv") + " -o " + dir.file("a.h5") + " --label 1");
    DOCTEST_CHECK(r.exit_code == 0);
    DOCTEST_CHECK(ddaq::EventFileReader(dir.file("a.h5")).read_all().label == std::vector<int32_t>{1});
  }

  DOCTEST_TEST_CASE("error paths: one line / non-zero exit / nothing written") {
    ddaq_test::TempDir dir;
    ddaq_test::write_text(dir.file("bad.csv"), ddaq_test::calq_csv({}) + "1,2,3\n");
    expect_error(run_ddaq("data import " + dir.file("bad.csv") + " -o " + dir.file("o.h5")),
                 dir.file("bad.csv") + ":2: has 3 columns, expected 48");
    expect_error(run_ddaq("data import " + dir.file("none.csv") + " -o " + dir.file("o.h5")), "cannot open");
    expect_error(run_ddaq("data overlay " + dir.file("none.h5") + " --pool x --mu 1 -o " + dir.file("o.h5")),
                 "none.h5: cannot open");
    expect_error(run_ddaq("data synth -o " + dir.file("o.h5") + " --events 5 --pileup -1"), "pileup");
    expect_error(run_ddaq("data synth -o " + dir.file("nofolder/o.h5") + " --events 5"), "cannot create");
    expect_error(run_ddaq("data stats " + dir.file("bad.csv")), "not an HDF5 file");
    ddaq_test::write_text(dir.file("c.json"), R"({"data": {"train_evnts": 5}})");
    expect_error(run_ddaq("run " + dir.file("c.json") + " -o " + dir.file("run")), "data.train_evnts: unknown key");
    DOCTEST_CHECK(dir.entries().size() == 2);  // bad.csv, c.json
  }

  DOCTEST_TEST_CASE("run: the main job on a tiny configuration") {
    ddaq_test::TempDir dir;
    ddaq_test::write_text(dir.file("tiny.json"),
                          R"({"name": "tiny", "data": {"train_events": 300, "test_events": 100,
                              "pool_events": 200, "pileup_mu": 5, "seed": 2}})");
    const auto r = run_ddaq("run " + dir.file("tiny.json") + " -o " + dir.file("run"));
    DOCTEST_INFO(r.err);
    DOCTEST_REQUIRE(r.exit_code == 0);
    for (const char* f : {"train.h5", "test.h5", "pool.h5", "report.json", "report.txt"})
      DOCTEST_CHECK(ddaq_test::exists(dir.file("run/") + f));
    DOCTEST_CHECK(ddaq::EventFileReader(dir.file("run/train.h5")).size() == 300);
    DOCTEST_CHECK(ddaq_test::read_text(dir.file("run/report.json")).find("\"occupancy\"") != std::string::npos);
  }

  DOCTEST_TEST_CASE("predict on a pixel graph with 48-bit links: bits_per_bx is its links x 48") {
    // experiments/graphs/pixel16.json on 48-bit links, one short epoch: 16
    // latents x 4 bits + an 8-bit header = 72 bits, 2 links of 48.
    ddaq_test::TempDir dir;
    const std::string graphs = std::string(DDAQ_SOURCE_DIR) + "/experiments/graphs/";
    std::string text = ddaq_test::read_text(graphs + "pixel16.json");
    for (const auto& [from, to] : std::vector<std::pair<std::string, std::string>>{
             {"\"link_bits\": 32", "\"link_bits\": 48"},
             {"\"train_events\": 4000, \"test_events\": 1000", "\"train_events\": 256, \"test_events\": 64"},
             {"\"epochs\": 20", "\"epochs\": 1"}}) {
      const size_t at = text.find(from);
      DOCTEST_REQUIRE(at != std::string::npos);
      text.replace(at, from.size(), to);
    }
    ddaq_test::write_text(dir.file("pixel48.json"), text);
    ddaq_test::write_text(dir.file("pixel16_cells.csv"), ddaq_test::read_text(graphs + "pixel16_cells.csv"));
    auto r = run_ddaq("run " + dir.file("pixel48.json") + " -o " + dir.file("run"));
    DOCTEST_INFO(r.err);
    DOCTEST_REQUIRE(r.exit_code == 0);
    r = run_ddaq("predict " + dir.file("run") + " --data " + dir.file("run/test.h5") + " -o " + dir.file("p.h5"));
    DOCTEST_REQUIRE(r.exit_code == 0);
    const auto attrs = ddaq::EventFileReader(dir.file("p.h5"), 256).attributes();
    DOCTEST_CHECK(attrs.at("elinks") == "2");
    DOCTEST_CHECK(attrs.at("bits_per_bx") == "96");
  }

  DOCTEST_TEST_CASE("emd: values / empty wafers counted / bad input is one error with no output") {
    ddaq_test::TempDir dir;
    auto write = [&](const std::string& name, std::vector<std::vector<float>> rows) {
      ddaq::EventFileWriter w(dir.file(name), false);
      for (const auto& r : rows) w.append(r.data(), nullptr, 1);
      w.commit();
    };
    std::vector<float> c0(48, 0.0f), c1(48, 0.0f), zero(48, 0.0f), neg(48, 0.0f);
    c0[0] = 5.0f;
    c1[1] = 3.0f;
    neg[4] = -1.0f;
    write("a.h5", {c0, c0, zero, zero});
    write("b.h5", {c1, c0, zero, c1});
    // Undefined pairs (one wafer empty): an error by default, nothing written.
    expect_error(run_ddaq("emd " + dir.file("a.h5") + " " + dir.file("b.h5") + " -o " + dir.file("e.h5")),
                 "1 pair(s) with exactly one empty wafer (first: row 3)");
    DOCTEST_CHECK_FALSE(ddaq_test::exists(dir.file("e.h5")));
    auto r = run_ddaq("emd " + dir.file("a.h5") + " " + dir.file("b.h5") + " -o " + dir.file("e.h5") + " --undefined nan");
    DOCTEST_REQUIRE(r.exit_code == 0);
    DOCTEST_CHECK(r.err.find("1 pair(s) with both wafers empty (emd 0), 1 with one empty (emd NaN)") !=
                  std::string::npos);
    const auto emd = ddaq::read_results_dataset(dir.file("e.h5"), "emd");
    DOCTEST_REQUIRE(emd.size() == 4);
    DOCTEST_CHECK(emd[0] == doctest::Approx(2.0));  // neighbouring cells: 2 sensor-cell pitches
    DOCTEST_CHECK(emd[1] == 0.0);
    DOCTEST_CHECK(emd[2] == 0.0);
    DOCTEST_CHECK(std::isnan(emd[3]));
    write("short.h5", {c0});
    write("neg.h5", {c0, neg, c0, c0});
    expect_error(run_ddaq("emd " + dir.file("a.h5") + " " + dir.file("short.h5") + " -o " + dir.file("x.h5")),
                 "short.h5: has 1 events");
    expect_error(run_ddaq("emd " + dir.file("a.h5") + " " + dir.file("neg.h5") + " -o " + dir.file("x.h5")),
                 "neg.h5: row 1, cell 4: charge -1.000000 is negative");
    DOCTEST_CHECK_FALSE(ddaq_test::exists(dir.file("x.h5")));
  }

  DOCTEST_TEST_CASE("surrogate emd train and eval on a tiny set / data slice") {
    ddaq_test::TempDir dir;
    DOCTEST_REQUIRE(run_ddaq("data synth -o " + dir.file("s.h5") + " --events 600 --pileup 5").exit_code == 0);
    auto r = run_ddaq("data slice " + dir.file("s.h5") + " --start 400 -o " + dir.file("test.h5"));
    DOCTEST_REQUIRE(r.exit_code == 0);
    DOCTEST_CHECK(ddaq::EventFileReader(dir.file("test.h5")).size() == 200);
    r = run_ddaq("surrogate emd train --data " + dir.file("s.h5") +
                 " --rows :400 --epochs 2 --hidden 16 --directions 4 -o " + dir.file("m.pt"));
    DOCTEST_INFO(r.err);
    DOCTEST_REQUIRE(r.exit_code == 0);
    // Given pairs (e.g. autoencoder outputs): two row-aligned event files.
    DOCTEST_REQUIRE(run_ddaq("data synth -o " + dir.file("r.h5") + " --events 200 --pileup 5 --seed 9").exit_code == 0);
    r = run_ddaq("surrogate emd eval " + dir.file("m.pt") + " --data " + dir.file("test.h5") + " --pairs " +
                 dir.file("test.h5") + ":" + dir.file("r.h5") + " -o " + dir.file("report.json"));
    DOCTEST_INFO(r.err);
    DOCTEST_REQUIRE(r.exit_code == 0);
    DOCTEST_CHECK(r.out.find("relative error") != std::string::npos);
    DOCTEST_CHECK(r.out.find("given") != std::string::npos);
    DOCTEST_CHECK(r.out.find("super_cells") != std::string::npos);
    DOCTEST_CHECK(r.out.find("surrogate on cpu") != std::string::npos);
    expect_error(run_ddaq("surrogate emd eval " + dir.file("m.pt") + " --pairs " + dir.file("s.h5") + ":" +
                          dir.file("r.h5")),
                 "hold different numbers of rows");
    expect_error(run_ddaq("surrogate emd eval " + dir.file("m.pt") + " --pairs " + dir.file("s.h5")),
                 "expected WAFERS.h5:RECONSTRUCTIONS.h5");
    expect_error(run_ddaq("surrogate emd eval " + dir.file("m.pt")), "give --data and/or --pairs");
    {
      ddaq::EventTable bad = ddaq::EventFileReader(dir.file("r.h5")).read_all();
      bad.calq[3 * 48 + 5] = -2.0f;
      ddaq::EventFileWriter w(dir.file("neg_r.h5"), false);
      w.append(bad.calq.data(), nullptr, bad.size());
      w.commit();
    }
    expect_error(run_ddaq("surrogate emd eval " + dir.file("m.pt") + " --pairs " + dir.file("test.h5") + ":" +
                          dir.file("neg_r.h5")),
                 "neg_r.h5: row 3, cell 5: charge -2.000000 is negative");
    expect_error(run_ddaq("surrogate emd eval " + dir.file("m.pt") + " --data " + dir.file("test.h5") + " --device gpu7"),
                 "device 'gpu7' (expected cpu, cuda or cuda:N)");
    DOCTEST_CHECK(ddaq_test::read_text(dir.file("report.json")).find("\"by_kind\"") != std::string::npos);
    expect_error(run_ddaq("surrogate emd eval " + dir.file("s.h5") + " --data " + dir.file("test.h5")),
                 "not an EMD surrogate");
    expect_error(run_ddaq("surrogate emd train --data " + dir.file("s.h5") + " --rows 5:x -o " + dir.file("n.pt")),
                 "--rows '5:x'");
    expect_error(run_ddaq("data slice " + dir.file("s.h5") + " --start 700 -o " + dir.file("e.h5")), "empty slice");
    // --label keeps one class (a pileup pool of jets from a training split).
    r = run_ddaq("data slice " + dir.file("s.h5") + " --start 100 --label 0 -o " + dir.file("jets.h5"));
    DOCTEST_REQUIRE(r.exit_code == 0);
    {
      const ddaq::EventTable all = ddaq::EventFileReader(dir.file("s.h5")).read_all();
      const ddaq::EventTable jets = ddaq::EventFileReader(dir.file("jets.h5")).read_all();
      int64_t expected = 0;
      for (int64_t i = 100; i < all.size(); ++i) expected += all.label[i] == 0;
      DOCTEST_CHECK(expected > 0);
      DOCTEST_CHECK(jets.size() == expected);
      for (int32_t l : jets.label) DOCTEST_CHECK(l == 0);
      ddaq::EventFileWriter w(dir.file("unlabelled.h5"), false);
      w.append(all.calq.data(), nullptr, 5);
      w.commit();
    }
    expect_error(run_ddaq("data slice " + dir.file("unlabelled.h5") + " --label 0 -o " + dir.file("e.h5")),
                 "--label needs a file with labels");
    expect_error(run_ddaq("data slice " + dir.file("jets.h5") + " --label 1 -o " + dir.file("e.h5")),
                 "no rows with label 1");
  }

  DOCTEST_TEST_CASE("surrogate resources fit and predict / bad CSV row reported by line") {
    ddaq_test::TempDir dir;
    std::string csv = "model_id,layer_dims,weight_bits,act_bits,reuse_factor,strategy,LUT,FF,DSP,BRAM18K,latency_cycles_best\n";
    for (int i = 0; i < 24; ++i) {
      const int in = 16 + 8 * (i % 6), b = 4 + (i % 5) * 3, rf = 1 << (i % 4);
      csv += "m" + std::to_string(i) + "," + std::to_string(in) + "-16-8," + std::to_string(b) + ",," +
             std::to_string(rf) + ",resource," + std::to_string(2000 + 30 * in * b / rf) + "," +
             std::to_string(1500 + 10 * in) + ",0,1," + std::to_string(20 + 3 * rf) + "\n";
    }
    ddaq_test::write_text(dir.file("d.csv"), csv);
    auto r = run_ddaq("surrogate resources fit --data " + dir.file("d.csv") + " --folds 3 -o " + dir.file("m.txt"));
    DOCTEST_INFO(r.err);
    DOCTEST_REQUIRE(r.exit_code == 0);
    DOCTEST_CHECK(r.out.find("sMAPE") != std::string::npos);
    r = run_ddaq("surrogate resources predict " + dir.file("m.txt") + " --data " + dir.file("d.csv") + " -o " +
                 dir.file("p.csv"));
    DOCTEST_REQUIRE(r.exit_code == 0);
    const std::string p = ddaq_test::read_text(dir.file("p.csv"));
    DOCTEST_CHECK(p.find("pred_LUT,pred_FF,pred_DSP,pred_BRAM18K,pred_latency_cycles") != std::string::npos);
    DOCTEST_CHECK(std::count(p.begin(), p.end(), '\n') == 25);
    ddaq_test::write_text(dir.file("bad.csv"), csv + "x,8-4,3,,0,resource,1,1,0,1,1\n");
    expect_error(run_ddaq("surrogate resources fit --data " + dir.file("bad.csv") + " -o " + dir.file("n.txt")),
                 "bad.csv:26: reuse_factor: out of range: '0'");
    DOCTEST_CHECK_FALSE(ddaq_test::exists(dir.file("n.txt")));
  }

  DOCTEST_TEST_CASE("train / eval / run with a pipeline: tiny end to end with the shipped surrogate") {
    ddaq_test::TempDir dir;
    ddaq_test::write_text(dir.file("tiny.json"), std::string(R"({"name": "tiny",
        "data": {"train_events": 400, "test_events": 200, "pool_events": 200, "pileup_mu": 5, "seed": 2},
        "pipeline": {"latent": 16, "latent_bits": 3},
        "training": {"epochs": 1, "batch_size": 64, "max_steps": 4, "surrogate": ")") +
                                                 DDAQ_SOURCE_DIR + "/surrogates/models/emd_surrogate.pt\"}}");
    auto r = run_ddaq("run " + dir.file("tiny.json") + " -o " + dir.file("run"));
    DOCTEST_INFO(r.err);
    DOCTEST_REQUIRE(r.exit_code == 0);
    for (const char* f : {"encoder.qstack", "classifier.qstack", "decoder.pt", "pipeline.json", "metrics.jsonl",
                          "eval.json", "encoder.onnx", "hls_encoder/firmware/encoder.cpp", "report.txt"})
      DOCTEST_CHECK(ddaq_test::exists(dir.file("run/") + f));
    DOCTEST_CHECK(r.out.find("autoencoder / Best Choice at 2 e-links") != std::string::npos);
    // Again into its own folder: refused (docs/reliability.md, run folders),
    // unless --overwrite (its export is replaced).
    expect_error(run_ddaq("run " + dir.file("tiny.json") + " -o " + dir.file("run")), "holds a run already");
    r = run_ddaq("run " + dir.file("tiny.json") + " -o " + dir.file("run") + " --overwrite");
    DOCTEST_INFO(r.err);
    DOCTEST_CHECK(r.exit_code == 0);
    DOCTEST_CHECK(ddaq_test::exists(dir.file("run/hls_encoder/firmware/encoder.cpp")));
    for (const std::string& e : dir.entries()) DOCTEST_CHECK(e.find(".old-") == std::string::npos);
    r = run_ddaq("eval " + dir.file("run") + " --data " + dir.file("run/test.h5") + " --events 100");
    DOCTEST_CHECK(r.exit_code == 0);
    DOCTEST_CHECK(r.out.find("events 100") != std::string::npos);
    r = run_ddaq("predict " + dir.file("run") + " --data " + dir.file("run/test.h5") + " -o " + dir.file("pred.h5"));
    DOCTEST_CHECK(r.exit_code == 0);
    DOCTEST_CHECK(ddaq::EventFileReader(dir.file("pred.h5")).size() == 200);
    DOCTEST_CHECK(ddaq::EventFileReader(dir.file("pred.h5")).attributes().at("elinks") == "2");
    r = run_ddaq("train " + dir.file("tiny.json") + " -o " + dir.file("run2") + " --data " + dir.file("run/train.h5") +
                 " --max-steps 2");
    DOCTEST_CHECK(r.exit_code == 0);
    DOCTEST_CHECK(r.out.find("2 steps") != std::string::npos);
    ddaq_test::write_text(dir.file("bad.json"), R"({"data": {}, "pipeline": {"layout": "9x9"}})");
    expect_error(run_ddaq("train " + dir.file("bad.json") + " -o " + dir.file("run3") + " --data " + dir.file("run/train.h5")),
                 "pipeline.layout: '9x9'");
    ddaq_test::write_text(dir.file("bad2.json"), R"({"data": {}, "pipeline": {}, "training": {"loss": "surrogate"}})");
    expect_error(run_ddaq("train " + dir.file("bad2.json") + " -o " + dir.file("run4") + " --data " + dir.file("run/train.h5")),
                 "training.surrogate: needed");
    // Devices, launchers, resume: clear one-line errors.
    const std::string train2 = "train " + dir.file("tiny.json") + " -o " + dir.file("run6") + " --data " + dir.file("run/train.h5");
    expect_error(run_ddaq(train2 + " --device tpu"), "device 'tpu'");
    // Into its own folder: with CUDA LibTorch and a GPU this trains and leaves a run.
    r = run_ddaq("train " + dir.file("tiny.json") + " -o " + dir.file("run7") + " --data " + dir.file("run/train.h5") +
                 " --device cuda --max-steps 1");
    if (r.exit_code != 0) expect_error(r, "sees no CUDA device");  // CPU LibTorch (Debian): refused by name
    expect_error(run_ddaq(train2 + " --launcher slurm"), "slurm launch needs environment variable SLURM_NTASKS");
    expect_error(run_ddaq("train " + dir.file("tiny.json") + " -o " + dir.file("run5") + " --data " + dir.file("run/train.h5") +
                          " --resume"),
                 "checkpoint.pt: no checkpoint to resume");
    DOCTEST_CHECK(!ddaq_test::exists(dir.file("run6")));  // failed before a checkpoint: nothing left
    DOCTEST_CHECK(!ddaq_test::exists(dir.file("run5")));
  }

  DOCTEST_TEST_CASE("sweep: a budget grid in parallel, pareto.csv/png, resume, a failed point, SLURM") {
    ddaq_test::TempDir dir;
    ddaq_test::write_text(dir.file("tiny.json"), std::string(R"({"name": "tiny",
        "data": {"train_events": 1000, "test_events": 300, "pool_events": 300, "pileup_mu": 5, "seed": 2},
        "pipeline": {"latent": 16, "latent_bits": 9, "latent_integer_bits": 1, "learn_latent_bits": true},
        "training": {"epochs": 1, "batch_size": 128, "surrogate": ")") +
                                                 DDAQ_SOURCE_DIR + "/surrogates/models/emd_surrogate.pt\"}}");
    const std::string sweep = "sweep " + dir.file("tiny.json") + " --budget elinks=2,3 -o " + dir.file("s");
    auto r = run_ddaq(sweep + " --jobs 2 --events 300");
    DOCTEST_INFO(r.err);
    DOCTEST_REQUIRE(r.exit_code == 0);
    // The table: the issue's columns, one row per point, each within its budget.
    auto table = [&] {
      std::vector<std::map<std::string, std::string>> rows;
      std::istringstream in(ddaq_test::read_text(dir.file("s/pareto.csv")));
      std::string line, cell;
      std::getline(in, line);
      std::vector<std::string> header;
      for (std::istringstream h(line); std::getline(h, cell, ',');) header.push_back(cell);
      while (std::getline(in, line)) {
        std::map<std::string, std::string> row;
        std::istringstream l(line);
        for (const std::string& name : header) std::getline(l, row[name], ',');
        rows.push_back(row);
      }
      return std::make_pair(header, rows);
    };
    auto [header, rows] = table();
    for (const char* col : {"budget_elinks", "elinks", "lut", "power_mw", "emd_mean", "best_choice_emd_mean", "auc", "run"})
      DOCTEST_CHECK(std::find(header.begin(), header.end(), col) != header.end());
    DOCTEST_REQUIRE(rows.size() == 2);
    for (auto& row : rows) {
      DOCTEST_INFO(row["point"]);
      DOCTEST_CHECK(row["status"] == "ok");
      DOCTEST_CHECK(std::stoi(row["elinks"]) <= std::stoi(row["budget_elinks"]));
      DOCTEST_CHECK(row["met"] == "yes");
      // A separate evaluation of the run the row names: the same EMD, and
      // Best Choice at the same bandwidth as the row's.
      const auto e = run_ddaq("eval " + row["run"] + " --data " + dir.file("s/data/test.h5") + " --events 300");
      DOCTEST_REQUIRE(e.exit_code == 0);
      const auto at = e.out.find("exact EMD mean ");
      DOCTEST_REQUIRE(at != std::string::npos);
      DOCTEST_CHECK(std::fabs(std::stod(e.out.substr(at + 15)) - std::stod(row["emd_mean"])) < 6e-5);
      const auto mark = e.out.find("<- same bandwidth");
      DOCTEST_REQUIRE(mark != std::string::npos);
      const auto bc = e.out.rfind("EMD mean ", mark);
      DOCTEST_CHECK(std::fabs(std::stod(e.out.substr(bc + 9)) - std::stod(row["best_choice_emd_mean"])) < 6e-5);
      // Exportable as it is.
      DOCTEST_CHECK(run_ddaq("export " + row["run"] + " --qonnx " + dir.file(row["point"] + ".onnx")).exit_code == 0);
    }
    const std::string png = ddaq_test::read_text(dir.file("s/pareto.png"));
    DOCTEST_CHECK(png.compare(0, 8, "\x89PNG\r\n\x1a\n") == 0);
    // The folder rules: refused again, resumed only with the same plan.
    expect_error(run_ddaq(sweep + " --events 300"), "holds a sweep already");
    expect_error(run_ddaq("sweep " + dir.file("tiny.json") + " --budget elinks=2,4 -o " + dir.file("s") +
                          " --events 300 --resume"),
                 "planned with another budgets");
    // Resume: only what is missing runs (elinks3's evaluation, not its training).
    std::remove(dir.file("s/runs/elinks3/eval.json").c_str());
    r = run_ddaq(sweep + " --events 300 --resume");
    DOCTEST_CHECK(r.exit_code == 0);
    DOCTEST_CHECK(r.out.find("1 done before, 1 to run") != std::string::npos);
    const std::string log = ddaq_test::read_text(dir.file("s/logs/elinks3.log"));
    auto count = [&](const std::string& what) {
      int n = 0;
      for (auto p = log.find(what); p != std::string::npos; p = log.find(what, p + 1)) ++n;
      return n;
    };
    DOCTEST_CHECK(count("'train'") == 1);
    DOCTEST_CHECK(count("'eval'") == 2);
    // A point that fails: the others still reported, one line, exit 1.
    ddaq::remove_tree(dir.file("s/runs/elinks3"));
    ddaq_test::write_text(dir.file("s/runs/elinks3"), "in the way");
    r = run_ddaq(sweep + " --events 300 --resume");
    expect_error(r, "1 of 2 points did not finish (elinks3: ");
    DOCTEST_CHECK(r.err.find("exists and is not a folder") != std::string::npos);
    std::tie(header, rows) = table();
    DOCTEST_REQUIRE(rows.size() == 2);
    DOCTEST_CHECK(rows[0]["status"] == "ok");
    DOCTEST_CHECK(rows[1]["status"] == "failed");
    DOCTEST_CHECK(rows[1]["emd_mean"].empty());
    // Bad budgets: one line, nothing written.
    expect_error(run_ddaq("sweep " + dir.file("tiny.json") + " --budget lutt=1000 -o " + dir.file("t")),
                 "training.budgets.lutt: unknown key");
    expect_error(run_ddaq("sweep " + dir.file("tiny.json") + " --budget elinks=14 -o " + dir.file("t")),
                 "with --budget elinks=14: training.budgets.elinks: 14 is outside [1, 13]");
    DOCTEST_CHECK_FALSE(ddaq_test::exists(dir.file("t")));
    // SLURM: the script only; its task 0, run here, trains and evaluates the
    // point; the sweep with --resume then runs only the other one.
    r = run_ddaq("sweep " + dir.file("tiny.json") + " --budget elinks=2,3 -o " + dir.file("u") + " --events 300 --slurm");
    DOCTEST_REQUIRE(r.exit_code == 0);
    DOCTEST_CHECK_FALSE(ddaq_test::exists(dir.file("u/runs/elinks2")));
    DOCTEST_REQUIRE(std::system(("SLURM_ARRAY_TASK_ID=0 DDAQ_PROGRESS=off bash " + dir.file("u/sweep.slurm")).c_str()) == 0);
    DOCTEST_CHECK(ddaq_test::exists(dir.file("u/runs/elinks2/eval.json")));
    DOCTEST_CHECK_FALSE(ddaq_test::exists(dir.file("u/runs/elinks3")));
    r = run_ddaq("sweep " + dir.file("tiny.json") + " --budget elinks=2,3 -o " + dir.file("u") + " --events 300 --resume");
    DOCTEST_CHECK(r.exit_code == 0);
    DOCTEST_CHECK(r.out.find("1 done before, 1 to run") != std::string::npos);
    DOCTEST_CHECK(ddaq_test::exists(dir.file("u/pareto.csv")));
  }
}
