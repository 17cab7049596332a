// Objectives that name tensors (graph.h ObjectiveSpec) and the stage types
// around the learned ones: classical compressors, module sum, concat
// (stages.h), each checked against a computation written here.
#include <doctest/doctest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <string>
#include <utility>
#include <vector>

#include "ddaq/core/config.h"
#include "ddaq/core/evaluation.h"
#include "ddaq/core/geometry.h"
#include "ddaq/core/graph.h"
#include "ddaq/core/pipeline.h"
#include "ddaq/core/stages.h"
#include "ddaq/core/synth.h"
#include "ddaq/core/trainer.h"
#include "ddaq/error.h"
#include "test_support.h"

namespace {

// An encoder path with a head on what the frame sends (latents + module
// sum) and a head on Best Choice cells; three objectives, head "b" at weight 0.
const std::string kStages = R"({"input": {"name": "calq", "shape": [48]}, "stages": [
 {"type": "front_end", "name": "frontend", "reads": {"charges": "calq"},
  "writes": {"target": "target", "normalized": "normalized"}},
 {"type": "quantized_stack", "name": "encoder", "reads": {"input": "normalized"}, "writes": {"output": "latent"},
  "layout": "4x4x3", "input": {"bits": 10, "integer_bits": 3},
  "layers": [{"type": "dense", "units": 12}, {"type": "relu", "output": {"bits": 8, "integer_bits": 3}},
             {"type": "dense", "units": 8}, {"type": "relu", "output": {"bits": 3, "integer_bits": 2}}]},
 {"type": "econt_link_budget", "name": "link_budget"},
 {"type": "econt_decoder", "name": "decoder", "reads": {"latent": "latent"},
  "writes": {"reconstruction": "reconstruction"}, "layout": "4x4x3", "filters": 4},
 {"type": "module_sum", "name": "frame_sum", "reads": {"charges": "calq"}, "writes": {"sum": "sum"}},
 {"type": "concat", "name": "frame", "reads": {"first": "latent", "second": "sum"}, "writes": {"output": "frame"}},
 {"type": "float_stack", "name": "head_a", "reads": {"input": "frame"}, "writes": {"output": "logits_a"},
  "layers": [{"type": "dense", "units": 8}, {"type": "relu"}, {"type": "dense", "units": 1}]},
 {"type": "best_choice", "name": "bc", "reads": {"charges": "calq"}, "writes": {"cells": "bc_cells"}, "elinks": 2},
 {"type": "front_end", "name": "bc_front_end", "reads": {"charges": "bc_cells"},
  "writes": {"target": "bc_target", "normalized": "bc_normalized"}, "learn_threshold": false},
 {"type": "float_stack", "name": "head_b", "reads": {"input": "bc_normalized"}, "writes": {"output": "logits_b"},
  "layers": [{"type": "dense", "units": 8}, {"type": "relu"}, {"type": "dense", "units": 1}]}])";
const std::string kObjectives = R"(, "objectives": [
 {"name": "a", "type": "classification", "logits": "logits_a", "weight": 1.0},
 {"name": "emd", "type": "reconstruction", "target": "target", "reconstruction": "reconstruction", "weight": 1.0},
 {"name": "b", "type": "classification", "logits": "logits_b", "weight": 0.0}]})";

ddaq::Config graph_section(const std::string& graph) {
  return ddaq::Config::parse("{\"graph\": " + graph + "}", "g.json").section("graph");
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const ddaq::Error& e) {
    return e.what();
  }
  return "";
}

std::map<std::string, torch::Tensor> stage_parameters(const ddaq::EconTPipeline& p, const std::string& stage) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& kv : p.named_parameters())
    if (kv.first.rfind(stage + ".", 0) == 0) out[kv.first] = kv.second.detach().clone();
  return out;
}

bool all_equal(const std::map<std::string, torch::Tensor>& a, const std::map<std::string, torch::Tensor>& b) {
  bool same = a.size() == b.size();
  for (const auto& kv : a) same = same && torch::equal(kv.second, b.at(kv.first));
  return same;
}

// AUC by counting pairs (ties count one half): independent of evaluation's rank formula.
double pair_auc(const std::vector<double>& score, const std::vector<int32_t>& label) {
  double wins = 0, pairs = 0;
  for (size_t i = 0; i < score.size(); ++i)
    for (size_t j = 0; j < score.size(); ++j)
      if (label[i] == 1 && label[j] == 0) {
        pairs += 1;
        wins += score[i] > score[j] ? 1.0 : score[i] == score[j] ? 0.5 : 0.0;
      }
  return wins / pairs;
}

// The `keep` largest cells of a row (ties: the lower cell index first), above `above`.
std::vector<float> largest_cells(const float* x, int keep, float above) {
  std::vector<int> idx(48);
  std::iota(idx.begin(), idx.end(), 0);
  std::sort(idx.begin(), idx.end(), [&](int a, int b) { return x[a] != x[b] ? x[a] > x[b] : a < b; });
  std::vector<float> y(48, 0.0f);
  for (int k = 0; k < keep; ++k)
    if (x[idx[k]] > above) y[idx[k]] = x[idx[k]];
  return y;
}

}  // namespace

DOCTEST_TEST_SUITE("graph") {
  DOCTEST_TEST_CASE("objectives name the tensors the trainer weighs and evaluation scores") {
    ddaq_test::TempDir dir;
    ddaq::synthesize_to_file(ddaq::SynthOptions().events(512).seed(3).pileup_mu(5), dir.file("train.h5"));
    ddaq::synthesize_to_file(ddaq::SynthOptions().events(300).seed(9).pileup_mu(5), dir.file("test.h5"));
    ddaq::EconTPipeline p = ddaq::EconTPipeline::from_graph(graph_section(kStages + kObjectives), 1);
    DOCTEST_REQUIRE(p.objectives().size() == 3);
    const auto a0 = stage_parameters(p, "head_a"), b0 = stage_parameters(p, "head_b");
    DOCTEST_REQUIRE(!a0.empty());
    DOCTEST_REQUIRE(!b0.empty());
    const ddaq::TrainSummary s =
        ddaq::train_pipeline(p, dir.file("train.h5"),
                             ddaq::TrainerOptions().loss("weighted_mse").epochs(2).batch_size(64).seed(4).threads(1));
    // Each objective is a term under its own name; the default ones are gone.
    for (const char* name : {"a", "b", "emd"}) DOCTEST_CHECK(s.last_epoch.count(name) == 1);
    DOCTEST_CHECK(s.last_epoch.count("bce") == 0);
    DOCTEST_CHECK(!all_equal(a0, stage_parameters(p, "head_a")));  // weight 1: trained
    DOCTEST_CHECK(all_equal(b0, stage_parameters(p, "head_b")));   // weight 0: no gradient, no step

    // "logits" is the first classification's tensor; each AUC as counted here.
    const ddaq::EvaluationReport rep = ddaq::evaluate_pipeline(p, dir.file("test.h5"));
    const ddaq::EventTable t = ddaq::synthesize(ddaq::SynthOptions().events(300).seed(9).pileup_mu(5));
    p.train(false);
    torch::NoGradGuard no_grad;
    const ddaq::PipelineResult r =
        p.forward(torch::from_blob(const_cast<float*>(t.calq.data()), {300, 48}, torch::kFloat).clone());
    DOCTEST_CHECK(torch::equal(r.get("logits"), r.get("objective.a.logits")));
    DOCTEST_REQUIRE(rep.aucs.size() == 2);
    for (size_t k = 0; k < 2; ++k) {
      const std::string name = k == 0 ? "a" : "b";
      DOCTEST_CHECK(rep.aucs[k].first == name);
      const torch::Tensor l = r.get("objective." + name + ".logits").to(torch::kDouble).contiguous();
      const double expected = pair_auc(std::vector<double>(l.data_ptr<double>(), l.data_ptr<double>() + 300), t.label);
      DOCTEST_CHECK(rep.aucs[k].second == doctest::Approx(expected).epsilon(1e-12));
    }
    DOCTEST_CHECK(rep.auc == rep.aucs[0].second);
    DOCTEST_CHECK(rep.to_json().find("\"aucs\"") != std::string::npos);
  }

  DOCTEST_TEST_CASE("objective errors are one line naming the key") {
    const std::string graph = kStages + kObjectives;
    auto objective_error = [&](const std::string& from, const std::string& to) {
      std::string g = graph;
      const auto pos = g.find(from);
      DOCTEST_REQUIRE(pos != std::string::npos);
      g.replace(pos, from.size(), to);
      return error_of([&] { ddaq::EconTPipeline::from_graph(graph_section(g), 1); });
    };
    const std::vector<std::pair<std::string, std::string>> cases = {
        {objective_error("\"type\": \"classification\", \"logits\": \"logits_a\"",
                         "\"type\": \"ranking\", \"logits\": \"logits_a\""),
         "g.json: graph.objectives[0].type: unknown objective 'ranking'"},
        {objective_error("\"logits\": \"logits_b\"", "\"logits\": \"nope\""),
         "g.json: graph.objectives[2].logits: no stage writes 'nope'"},
        {objective_error("{\"name\": \"b\"", "{\"name\": \"a\""), "g.json: graph.objectives[2].name: 'a' is used"},
        {objective_error("{\"name\": \"b\"", "{\"name\": \"elinks\""),
         "g.json: graph.objectives[2].name: 'elinks' is the name of one of the trainer's own terms"},
        {objective_error("\"weight\": 0.0}", "\"weight\": 0.0, \"loss\": \"mse\"}"),
         "g.json: graph.objectives[2].loss: unknown key"},
        {objective_error("\"weight\": 0.0}", "\"weight\": -1}"), "g.json: graph.objectives[2].weight"},
    };
    for (const auto& c : cases) {
      DOCTEST_INFO("error: " << c.first);
      DOCTEST_CHECK(c.first.rfind(c.second, 0) == 0);
      DOCTEST_CHECK(c.first.find('\n') == std::string::npos);
    }
    // A training weight the objectives replace is refused, not ignored.
    const std::string e = error_of([&] {
      ddaq::EconTPipeline::from_config(
          ddaq::Config::parse("{\"graph\": " + graph + ", \"training\": {\"classification_weight\": 0.5}}", "c.json"),
          1);
    });
    DOCTEST_CHECK(e.rfind("c.json: training.classification_weight: the graph declares objectives", 0) == 0);
    // Without objectives, two stacks that could be the classifier are refused.
    const std::string two = R"({"input": {"name": "calq", "shape": [48]}, "stages": [
 {"type": "front_end", "name": "frontend", "reads": {"charges": "calq"},
  "writes": {"target": "target", "normalized": "normalized"}},
 {"type": "quantized_stack", "name": "encoder", "reads": {"input": "normalized"}, "writes": {"output": "latent"},
  "layout": "4x4x3", "input": {"bits": 10, "integer_bits": 3},
  "layers": [{"type": "dense", "units": 8}, {"type": "relu", "output": {"bits": 3, "integer_bits": 2}}]},
 {"type": "econt_link_budget", "name": "link_budget"},
 {"type": "econt_decoder", "name": "decoder", "reads": {"latent": "latent"},
  "writes": {"reconstruction": "reconstruction"}, "layout": "4x4x3", "filters": 4},
 {"type": "quantized_stack", "name": "c1", "reads": {"input": "latent"}, "writes": {"output": "l1"},
  "input": {"bits": 3, "integer_bits": 2}, "layers": [{"type": "dense", "units": 1}]},
 {"type": "quantized_stack", "name": "c2", "reads": {"input": "latent"}, "writes": {"output": "l2"},
  "input": {"bits": 3, "integer_bits": 2}, "layers": [{"type": "dense", "units": 1}]}]})";
    DOCTEST_CHECK(error_of([&] {
                    ddaq::EconTPipeline::from_graph(graph_section(two), 1);
                  }).rfind("g.json: graph: stages 'c1' and 'c2' both read the encoder's output", 0) == 0);
  }

  DOCTEST_TEST_CASE("a graph without a classification trains and evaluates without an AUC") {
    ddaq_test::TempDir dir;
    ddaq::synthesize_to_file(ddaq::SynthOptions().events(256).seed(3).pileup_mu(5), dir.file("train.h5"));
    const std::string only_emd =
        kStages +
        R"(, "objectives": [{"name": "emd", "type": "reconstruction", "target": "target", "reconstruction": "reconstruction"}]})";
    ddaq::EconTPipeline p = ddaq::EconTPipeline::from_graph(graph_section(only_emd), 1);
    const ddaq::TrainSummary s =
        ddaq::train_pipeline(p, dir.file("train.h5"),
                             ddaq::TrainerOptions().loss("weighted_mse").epochs(1).batch_size(64).seed(4).threads(1));
    DOCTEST_CHECK(s.last_epoch.count("emd") == 1);
    DOCTEST_CHECK(!p.forward(torch::rand({4, 48}) * 10).has("logits"));
    const ddaq::EvaluationReport rep = ddaq::evaluate_pipeline(p, dir.file("train.h5"), 100);
    DOCTEST_CHECK(std::isnan(rep.auc));
    DOCTEST_CHECK(rep.aucs.empty());
    DOCTEST_CHECK(std::isfinite(rep.emd_mean));
  }

  DOCTEST_TEST_CASE("classical compressor stages and module sum and concat equal computations written here") {
    const std::string stages = R"({"input": {"name": "calq", "shape": [48]}, "stages": [
 {"type": "best_choice", "name": "bc", "reads": {"charges": "calq"}, "writes": {"cells": "bc"}, "elinks": 2},
 {"type": "threshold_cells", "name": "th", "reads": {"charges": "calq"}, "writes": {"cells": "th"},
  "elinks": 3, "threshold": 2.5},
 {"type": "super_trigger_cells", "name": "stc", "reads": {"charges": "calq"}, "writes": {"cells": "stc"}, "group": 16},
 {"type": "module_sum", "name": "sum", "reads": {"charges": "calq"}, "writes": {"sum": "sum"}},
 {"type": "concat", "name": "cat", "reads": {"first": "bc", "second": "sum"}, "writes": {"output": "cat"}}]})";
    const ddaq::Graph g(ddaq::GraphSpec::parse(graph_section(stages)), 1);
    DOCTEST_CHECK(g.find_as<ddaq::BestChoiceStage>("bc")->cells_sent() == 4);      // ECON-T table at 2 e-links
    DOCTEST_CHECK(g.find_as<ddaq::ThresholdCellsStage>("th")->cells_sent() == 6);  // (96 - 5 - 48) / 7
    const int64_t n = 64;
    torch::manual_seed(7);
    torch::Tensor calq = torch::randint(0, 7, {n, 48}).to(torch::kFloat);  // many ties
    calq[n - 1].fill_(2000.0f);                                            // sum 96,000: saturates the module sum
    calq.requires_grad_(true);
    ddaq::NamedTensors flow;
    flow.set("calq", calq);
    g.forward(flow);
    const torch::Tensor x = calq.detach().contiguous();
    const torch::Tensor bc = flow.get("bc").detach().contiguous(), th = flow.get("th").detach().contiguous(),
                        stc = flow.get("stc").detach().contiguous(), sum = flow.get("sum").detach().contiguous();
    const auto& cells = ddaq::WaferGeometry::hgcal().cells();
    for (int64_t i = 0; i < n; ++i) {
      const float* xi = x.data_ptr<float>() + i * 48;
      const std::vector<float> want_bc = largest_cells(xi, 4, 0.0f), want_th = largest_cells(xi, 6, 2.5f);
      DOCTEST_CHECK(std::equal(want_bc.begin(), want_bc.end(), bc.data_ptr<float>() + i * 48));
      DOCTEST_CHECK(std::equal(want_th.begin(), want_th.end(), th.data_ptr<float>() + i * 48));
      // Super trigger cells of 16: each 4x4 block's sum at one of its largest cells.
      std::vector<double> block_sum(3, 0.0), block_max(3, 0.0);
      for (const auto& c : cells) {
        block_sum[c.block4x4 / 16] += xi[c.tc];
        block_max[c.block4x4 / 16] = std::max<double>(block_max[c.block4x4 / 16], xi[c.tc]);
      }
      std::vector<int> placed(3, 0);
      for (const auto& c : cells) {
        const float v = stc.data_ptr<float>()[i * 48 + c.tc];
        if (v == 0.0f) continue;
        placed[c.block4x4 / 16] += 1;
        DOCTEST_CHECK(v == doctest::Approx(block_sum[c.block4x4 / 16]));
        DOCTEST_CHECK(xi[c.tc] == block_max[c.block4x4 / 16]);
      }
      for (int b = 0; b < 3; ++b) DOCTEST_CHECK(placed[b] == (block_sum[b] > 0 ? 1 : 0));
      // Module sum: log2(1 + sum) floored to 1/32 (ufixed<9, 4>), at most 16 - 1/32.
      const double total = std::accumulate(xi, xi + 48, 0.0);
      const double want_sum = std::min(std::floor(std::log2(1.0 + total) * 32.0) / 32.0, 16.0 - 1.0 / 32.0);
      DOCTEST_CHECK(sum.data_ptr<float>()[i] == doctest::Approx(want_sum).epsilon(1e-6));
    }
    DOCTEST_CHECK(sum.data_ptr<float>()[n - 1] == doctest::Approx(16.0 - 1.0 / 32.0));
    const torch::Tensor cat = flow.get("cat").detach();
    DOCTEST_CHECK(cat.sizes().vec() == std::vector<int64_t>{n, 49});
    DOCTEST_CHECK(torch::equal(cat.slice(1, 0, 48), bc));
    DOCTEST_CHECK(torch::equal(cat.slice(1, 48, 49), sum));
    // Best Choice passes the gradient to the cells it sends, and only to them.
    flow.get("bc").sum().backward();
    DOCTEST_CHECK(torch::equal(calq.grad(), (bc != 0).to(torch::kFloat)));
    // Exactly one of elinks and cells; elinks inside the table.
    auto stage_error = [](const std::string& options) {
      return error_of([&] {
        ddaq::GraphSpec spec = ddaq::GraphSpec::parse(graph_section(
            R"({"input": {"name": "calq", "shape": [48]}, "stages": [{"type": "best_choice", "name": "bc", )"
            R"("reads": {"charges": "calq"}, "writes": {"cells": "c"})" +
            options + "}]}"));
        ddaq::Graph built(spec, 1);
      });
    };
    DOCTEST_CHECK(stage_error(", \"elinks\": 2, \"cells\": 4").find("stages[0].elinks: give elinks or cells") !=
                  std::string::npos);
    DOCTEST_CHECK(stage_error(", \"elinks\": 14").find("stages[0].elinks") != std::string::npos);
    DOCTEST_CHECK(stage_error(", \"cells\": 5").empty());
  }
}

DOCTEST_TEST_SUITE("graph") {
  DOCTEST_TEST_CASE("experiments/graphs/trigger_first.json trains a few steps and reports its three AUCs") {
    ddaq_test::TempDir dir;
    ddaq::synthesize_to_file(ddaq::SynthOptions().events(512).seed(3).pileup_mu(5), dir.file("train.h5"));
    ddaq::synthesize_to_file(ddaq::SynthOptions().events(200).seed(9).pileup_mu(5), dir.file("test.h5"));
    const ddaq::Config c = ddaq::Config::load(std::string(DDAQ_SOURCE_DIR) + "/experiments/graphs/trigger_first.json");
    ddaq::EconTPipeline p = ddaq::EconTPipeline::from_config(c, 1);
    // Its own data (real wafers, pileup pool) is made by a script; synthetic here.
    const ddaq::TrainSummary s = ddaq::train_pipeline(
        p, dir.file("train.h5"),
        ddaq::TrainerOptions().loss("weighted_mse").epochs(1).max_steps(6).batch_size(64).seed(4).threads(1));
    DOCTEST_CHECK(s.steps == 6);
    const ddaq::EvaluationReport rep = ddaq::evaluate_pipeline(p, dir.file("test.h5"));
    std::vector<std::string> names;
    for (const auto& kv : rep.aucs) {
      names.push_back(kv.first);
      DOCTEST_CHECK(kv.second >= 0.0);
      DOCTEST_CHECK(kv.second <= 1.0);
    }
    DOCTEST_CHECK(names == std::vector<std::string>{"trigger", "trigger_full", "trigger_best_choice"});
    DOCTEST_CHECK(rep.elinks == 2);  // the bandwidth the references are held to
  }
}

DOCTEST_TEST_SUITE("graph") {
  DOCTEST_TEST_CASE("dead_cells: listed cells and a seeded fraction read 0 and the rest pass unchanged") {
    auto build = [](const std::string& options) {
      return ddaq::Graph(
          ddaq::GraphSpec::parse(graph_section(
              R"({"input": {"name": "calq", "shape": [48]}, "stages": [{"type": "dead_cells", "name": "dead", )"
              R"("reads": {"charges": "calq"}, "writes": {"charges": "alive"}, )" +
              options + "}]}")),
          1);
    };
    const ddaq::Graph listed = build(R"("cells": [0, 5, 47])");
    torch::manual_seed(2);
    const torch::Tensor x = torch::rand({8, 48}) * 100 + 1;
    ddaq::NamedTensors flow;
    flow.set("calq", x);
    listed.forward(flow);
    torch::Tensor want = x.clone();
    for (int64_t c : {0, 5, 47}) want.select(1, c).zero_();
    DOCTEST_CHECK(torch::equal(flow.get("alive"), want));
    // A fraction: round(0.25 x 48) = 12 cells beside the listed one, fixed by the seed.
    const auto dead_of = [&](const std::string& options) {
      return build(options).find_as<ddaq::DeadCellsStage>("dead")->dead();
    };
    const std::vector<int64_t> a = dead_of(R"("fraction": 0.25, "seed": 3)");
    DOCTEST_CHECK(a.size() == 12);
    DOCTEST_CHECK(dead_of(R"("fraction": 0.25, "seed": 3)") == a);
    DOCTEST_CHECK(dead_of(R"("fraction": 0.25, "seed": 4)") != a);
    DOCTEST_CHECK(error_of([&] { build(R"("seed": 3)"); }).find("stages[0].cells: give cells and/or fraction") !=
                  std::string::npos);
    DOCTEST_CHECK(error_of([&] { build(R"("cells": [48])"); }).find("stages[0].cells") != std::string::npos);
  }
}

DOCTEST_TEST_SUITE("graph") {
  DOCTEST_TEST_CASE("a regression objective trains a head on a graph tensor and reports its RMSE") {
    ddaq_test::TempDir dir;
    ddaq::synthesize_to_file(ddaq::SynthOptions().events(512).seed(3).pileup_mu(5), dir.file("train.h5"));
    // A head estimating the module sum (log2 of 1 + CALQ) from what the frame sends.
    const std::string stages =
        kStages.substr(0, kStages.size() - 1) +
        R"(, {"type": "float_stack", "name": "energy", "reads": {"input": "frame"}, "writes": {"output": "energy"},
  "layers": [{"type": "dense", "units": 8}, {"type": "relu"}, {"type": "dense", "units": 1}]}])";
    const std::string objectives = R"(, "objectives": [
 {"name": "emd", "type": "reconstruction", "target": "target", "reconstruction": "reconstruction"},
 {"name": "energy", "type": "regression", "prediction": "energy", "target": "sum"}]})";
    ddaq::EconTPipeline p = ddaq::EconTPipeline::from_graph(graph_section(stages + objectives), 1);
    const ddaq::EvaluationReport before = ddaq::evaluate_pipeline(p, dir.file("train.h5"), 300);
    ddaq::train_pipeline(
        p, dir.file("train.h5"),
        ddaq::TrainerOptions().loss("weighted_mse").epochs(6).batch_size(32).learning_rate(0.01).seed(4).threads(1));
    const ddaq::EvaluationReport after = ddaq::evaluate_pipeline(p, dir.file("train.h5"), 300);
    DOCTEST_REQUIRE(after.rmse.size() == 1);
    DOCTEST_CHECK(after.rmse[0].first == "energy");
    DOCTEST_CHECK(after.rmse[0].second < 0.5 * before.rmse[0].second);  // the head learned the sum
    // The RMSE as computed here from the two tensors.
    const ddaq::EventTable t = ddaq::synthesize(ddaq::SynthOptions().events(512).seed(3).pileup_mu(5));
    p.train(false);
    torch::NoGradGuard no_grad;
    const auto r = p.forward(torch::from_blob(const_cast<float*>(t.calq.data()), {300, 48}, torch::kFloat).clone());
    const torch::Tensor d = r.get("objective.energy.prediction").to(torch::kDouble) -
                            r.get("objective.energy.target").to(torch::kDouble).reshape({-1});
    DOCTEST_CHECK(after.rmse[0].second == doctest::Approx(d.pow(2).mean().sqrt().item<double>()).epsilon(1e-5));
    DOCTEST_CHECK(after.to_text().find("RMSE by regression objective: energy") != std::string::npos);
    // Sizes that differ are an error, not a broadcast.
    std::string wrong = stages + objectives;
    wrong.replace(wrong.find("\"target\": \"sum\""), 15, "\"target\": \"latent\"");
    ddaq::EconTPipeline q = ddaq::EconTPipeline::from_graph(graph_section(wrong), 1);
    DOCTEST_CHECK(error_of([&] {
                    ddaq::evaluate_pipeline(q, dir.file("train.h5"), 50);
                  }).find("objective 'energy': prediction 'energy' holds 50 values, target 'latent' 400") !=
                  std::string::npos);
  }
}

DOCTEST_TEST_SUITE("graph") {
  DOCTEST_TEST_CASE("float_stack batchnorm normalizes per feature and per channel and keeps its statistics") {
    const ddaq::Graph g(ddaq::GraphSpec::parse(graph_section(R"({"input": {"name": "x", "shape": [48]}, "stages": [
 {"type": "float_stack", "name": "dense_bn", "reads": {"input": "x"}, "writes": {"output": "d"},
  "layers": [{"type": "dense", "units": 6}, {"type": "batchnorm"}]},
 {"type": "float_stack", "name": "conv_bn", "reads": {"input": "x"}, "writes": {"output": "c"},
  "layers": [{"type": "reshape", "shape": [3, 4, 4]}, {"type": "conv2d", "filters": 5, "kernel": 3, "padding": 1},
             {"type": "batchnorm"}]}]})")),
                        1);
    auto buffers = [&](const std::string& stage) {
      std::map<std::string, torch::Tensor> out;
      for (const auto& kv : g.find(stage)->named_buffers()) out[kv.first] = kv.second.clone();
      return out;
    };
    const auto before = buffers("dense_bn");
    DOCTEST_REQUIRE(before.count("batchnorm1.running_mean") == 1);
    DOCTEST_CHECK(torch::equal(before.at("batchnorm1.running_mean"), torch::zeros({6})));  // the probes moved nothing
    torch::manual_seed(3);
    const torch::Tensor x = torch::rand({64, 48}) * 5 + 2;
    for (ddaq::Stage* s : g.stages()) s->train(true);
    ddaq::NamedTensors flow;
    flow.set("x", x);
    g.forward(flow);
    // Training mode: each feature (channel) of the batch has mean 0 and variance 1.
    const torch::Tensor d = flow.get("d").to(torch::kDouble);
    DOCTEST_CHECK(d.mean(0).abs().max().item<double>() < 1e-5);
    DOCTEST_CHECK((d.var(0, false) - 1.0).abs().max().item<double>() < 1e-3);
    const torch::Tensor c = flow.get("c").to(torch::kDouble).reshape({64, 5, 16});
    DOCTEST_CHECK(c.transpose(0, 1).reshape({5, -1}).mean(1).abs().max().item<double>() < 1e-5);
    DOCTEST_CHECK((c.transpose(0, 1).reshape({5, -1}).var(1, false) - 1.0).abs().max().item<double>() < 1e-3);
    // The running statistics moved and are state (saved with runs).
    DOCTEST_CHECK(!torch::equal(buffers("dense_bn").at("batchnorm1.running_mean"), torch::zeros({6})));
    DOCTEST_CHECK(buffers("conv_bn").count("batchnorm2.running_var") == 1);
    // Not after a reshape to [4, 12]: one error line naming the layer.
    const std::string e = error_of([&] {
      ddaq::Graph(ddaq::GraphSpec::parse(graph_section(R"({"input": {"name": "x", "shape": [48]}, "stages": [
 {"type": "float_stack", "name": "bad", "reads": {"input": "x"}, "writes": {"output": "d"},
  "layers": [{"type": "reshape", "shape": [4, 12]}, {"type": "batchnorm"}]}]})")),
                  1);
    });
    DOCTEST_CHECK(e.find("layers[1].type: batchnorm needs features [F] or channels [C, H, W]") != std::string::npos);
  }
}
