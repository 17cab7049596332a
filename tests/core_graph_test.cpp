// The DAQ graph as data (graph.h): checks before building, the ECON-T
// graph, a new stage type joining by registration alone, graph runs saved
// and loaded.
#include <doctest/doctest.h>
#include <torch/torch.h>

#include <string>
#include <utility>
#include <vector>

#include "ddaq/core/config.h"
#include "ddaq/core/graph.h"
#include "ddaq/core/pipeline.h"
#include "ddaq/core/synth.h"
#include "ddaq/core/trainer.h"
#include "ddaq/error.h"
#include "test_support.h"

namespace {

// A small graph with every role the trainer needs: a dense encoder on the
// 4x4x3 layout, the ECON-T link budget, decoder and classifier.
const std::string kGraph = R"({"input": {"name": "calq", "shape": [48]}, "stages": [
 {"type": "front_end", "name": "frontend", "reads": {"charges": "calq"},
  "writes": {"target": "target", "normalized": "normalized"}},
 {"type": "quantized_stack", "name": "encoder", "reads": {"input": "normalized"}, "writes": {"output": "latent"},
  "layout": "4x4x3", "input": {"bits": 10, "integer_bits": 3},
  "layers": [{"type": "dense", "units": 12}, {"type": "relu", "output": {"bits": 8, "integer_bits": 3}},
             {"type": "dense", "units": 8}, {"type": "relu", "output": {"bits": 3, "integer_bits": 2}}]},
 {"type": "econt_link_budget", "name": "link_budget"},
 {"type": "econt_decoder", "name": "decoder", "reads": {"latent": "latent"},
  "writes": {"reconstruction": "reconstruction"}, "layout": "4x4x3", "filters": 4},
 {"type": "quantized_stack", "name": "classifier", "reads": {"input": "latent"}, "writes": {"output": "logits"},
  "input": {"bits": 3, "integer_bits": 2},
  "layers": [{"type": "dense", "units": 4}, {"type": "relu"}, {"type": "dense", "units": 1}]}]})";

std::string replaced(std::string text, const std::string& from, const std::string& to) {
  const auto pos = text.find(from);
  if (pos == std::string::npos) throw std::runtime_error("test setup: '" + from + "' not in the graph");
  return text.replace(pos, from.size(), to);
}

ddaq::Config graph_section(const std::string& graph) {
  return ddaq::Config::parse("{\"graph\": " + graph + "}", "g.json").section("graph");
}

// The error a graph gives when built for training, or "" when it builds.
std::string build_error(const std::string& graph) {
  try {
    ddaq::EconTPipeline::from_graph(graph_section(graph), 1);
  } catch (const ddaq::Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

DOCTEST_TEST_SUITE("graph") {
  DOCTEST_TEST_CASE("graph errors: one line naming the file, the stage and the key") {
    DOCTEST_REQUIRE(build_error(kGraph).empty());
    const std::vector<std::pair<std::pair<std::string, std::string>, std::string>> cases = {
        {{"\"type\": \"econt_decoder\"", "\"type\": \"econt_decodr\""},
         "g.json: graph.stages[3].type: unknown stage type 'econt_decodr' (known: "},
        {{"\"filters\": 4}", "\"filters\": 4, \"filterz\": 2}"}, "g.json: graph.stages[3].filterz: unknown key"},
        {{"\"input\": \"normalized\"", "\"input\": \"normalised\""},
         "g.json: graph.stages[1].reads.input: tensor 'normalised' is not written before this stage"},
        {{"\"name\": \"classifier\"", "\"name\": \"encoder\""},
         "g.json: graph.stages[4].name: 'encoder' is also the name of stages[1]"},
        {{"\"output\": \"logits\"", "\"output\": \"target\""},
         "g.json: graph.stages[4].writes.output: tensor 'target' is already written by stage 'frontend'"},
        {{"\"reads\": {\"latent\": \"latent\"},", ""}, "g.json: graph.stages[3].reads.latent: required"},
        {{"\"reads\": {\"latent\": \"latent\"}", "\"reads\": {\"latnt\": \"latent\"}"},
         "g.json: graph.stages[3].reads.latnt: econt_decoder has no such role"},
        {{"\"layout\": \"4x4x3\", \"input\"", "\"input_shape\": [40], \"input\""},
         "g.json: stage 'encoder' (quantized_stack): cannot run on its inputs: "},
        {{"{\"type\": \"dense\", \"units\": 4}", "{\"type\": \"conv2d\", \"filters\": 4, \"kernel\": 3}"},
         "g.json: graph.stages[4].layers[0].type: conv2d needs a [channels, height, width] input"},
        {{"{\"type\": \"relu\"}", "{\"type\": \"sigmoid\"}"},
         "g.json: graph.stages[4].layers[1].type: unknown layer type 'sigmoid'"},
        {{"\"name\": \"link_budget\"", "\"name\": \"link_budget\", \"encoder\": \"decoder\""},
         "g.json: graph.stages[2].encoder: 'decoder' is not a quantized_stack stage before this one"},
        {{"\"bits\": 10,", "\"bits\": 10, \"rounding\": \"ROUND\","}, "g.json: graph.stages[1].input.rounding: "},
        {{"\"type\": \"dense\", \"units\": 1}", "\"type\": \"dense\", \"units\": 2}"},
         "g.json: graph: needs a classifier: a quantized_stack that reads 'latent' and writes one value per event"},
    };
    for (const auto& c : cases) {
      DOCTEST_CAPTURE(c.second);
      const std::string error = build_error(replaced(kGraph, c.first.first, c.first.second));
      DOCTEST_CHECK(error.rfind(c.second, 0) == 0);
      DOCTEST_CHECK(error.find('\n') == std::string::npos);
      if (error.rfind(c.second, 0) != 0) DOCTEST_MESSAGE(error);
    }
  }

  DOCTEST_TEST_CASE("the ECON-T graph config builds the pipeline its options build, tensor for tensor") {
    for (const auto& po : {ddaq::PipelineOptions(), ddaq::PipelineOptions()
                                                        .layout("4x4x3")
                                                        .learn_latent_bits(true)
                                                        .per_latent_bits(true)
                                                        .learn_weight_bits(true)
                                                        .learn_latent_gates(true)
                                                        .learn_conv_filters(true)
                                                        .latent(24)
                                                        .decoder_filters(5)
                                                        .decoder_hidden(7)}) {
      ddaq::EconTPipeline a(po, 7);
      ddaq::EconTPipeline b = ddaq::EconTPipeline::from_graph(graph_section(ddaq::econt_graph_json(po)), 7);
      const auto sa = a.named_state(), sb = b.named_state();
      DOCTEST_REQUIRE(sa.size() == sb.size());
      for (size_t i = 0; i < sa.size(); ++i) {
        DOCTEST_CHECK(sa[i].first == sb[i].first);
        DOCTEST_CHECK(torch::equal(sa[i].second, sb[i].second));
      }
      DOCTEST_CHECK(b.options().latent() == po.latent());
      DOCTEST_CHECK(b.options().learn_latent_gates() == po.learn_latent_gates());
      DOCTEST_CHECK(b.options().per_latent_bits() == po.per_latent_bits());
      const ddaq::EventTable t = ddaq::synthesize(ddaq::SynthOptions().events(32).seed(2).pileup_mu(5));
      const torch::Tensor x = torch::from_blob(const_cast<float*>(t.calq.data()), {32, 48}, torch::kFloat).clone();
      const auto ra = a.forward(x), rb = b.forward(x);
      for (const char* name : {"target", "reconstruction", "latent", "logits", "payload_bits", "ebops"})
        DOCTEST_CHECK(torch::equal(ra.get(name), rb.get(name)));
    }
  }

  // docs/extending.md: channel_gain is defined and registered in
  // graph_example_stage.cpp only.
  DOCTEST_TEST_CASE("a new stage type joins a graph by its registration alone, trains, saves and loads") {
    ddaq_test::TempDir dir;
    ddaq::synthesize_to_file(ddaq::SynthOptions().events(256).seed(3).pileup_mu(5), dir.file("train.h5"));
    const std::string graph = replaced(
        replaced(kGraph, "{\"type\": \"front_end\"",
                 "{\"type\": \"channel_gain\", \"name\": \"gain\", \"reads\": {\"charges\": \"calq\"}, "
                 "\"writes\": {\"calibrated\": \"calibrated\"}, \"initial\": 1.0},\n {\"type\": \"front_end\""),
        "\"name\": \"frontend\", \"reads\": {\"charges\": \"calq\"}",
        "\"name\": \"frontend\", \"reads\": {\"charges\": \"calibrated\"}");
    ddaq::EconTPipeline p = ddaq::EconTPipeline::from_graph(graph_section(graph), 1);
    torch::Tensor gain;
    for (const auto& kv : p.named_parameters())
      if (kv.first == "gain.gain") gain = kv.second;
    DOCTEST_REQUIRE(gain.defined());
    DOCTEST_CHECK(torch::equal(gain, torch::ones({48})));
    ddaq::train_pipeline(p, dir.file("train.h5"),
                         ddaq::TrainerOptions().loss("weighted_mse").epochs(1).batch_size(64).seed(4).threads(1));
    DOCTEST_CHECK(!torch::equal(gain, torch::ones({48})));  // the gain is trained with the rest
    p.save(dir.file("run"));
    ddaq::EconTPipeline q = ddaq::EconTPipeline::load(dir.file("run"));
    DOCTEST_CHECK(ddaq_test::read_text(dir.file("run/pipeline.json")).find("\"channel_gain\"") != std::string::npos);
    const ddaq::EventTable t = ddaq::synthesize(ddaq::SynthOptions().events(16).seed(5).pileup_mu(5));
    const torch::Tensor x = torch::from_blob(const_cast<float*>(t.calq.data()), {16, 48}, torch::kFloat).clone();
    p.train(false);
    DOCTEST_CHECK(torch::equal(p.forward(x).get("reconstruction"), q.forward(x).get("reconstruction")));
    // An edited graph in pipeline.json is refused (the run id covers it).
    const std::string saved = ddaq_test::read_text(dir.file("run/pipeline.json"));
    ddaq_test::write_text(dir.file("run/pipeline.json"), replaced(saved, "\"initial\": 1.0", "\"initial\": 2.0"));
    bool refused = false;
    try {
      ddaq::EconTPipeline::load(dir.file("run"));
    } catch (const ddaq::Error& e) {
      refused = std::string(e.what()).find("changed after the run was saved") != std::string::npos;
    }
    DOCTEST_CHECK(refused);
  }
  DOCTEST_TEST_CASE("front end: the loss target is the wafer before the threshold and the encoder input is after it") {
    // A learned threshold must not hide cells from the loss: the target is
    // the arriving wafer at unit sum whatever the threshold, in training and
    // in evaluation; only the encoder's input loses the cells below it.
    ddaq::EconTPipeline p(ddaq::PipelineOptions().threshold(2.0).learn_threshold(true), 3);
    ddaq::Stage* front = p.stages()[0];
    torch::Tensor calq = torch::zeros({2, 48});
    calq[0][3] = 10.0, calq[0][4] = 1.0, calq[0][5] = 0.5;  // two cells below the threshold
    calq[1][40] = 4.0, calq[1][41] = 4.0;
    for (bool training : {true, false}) {
      p.train(training);
      ddaq::NamedTensors flow;
      flow.set("calq", calq);
      front->forward(flow);
      const torch::Tensor target = flow.get("target"), normalized = flow.get("normalized");
      for (int i = 0; i < 2; ++i) {
        double sum = 0;
        for (int c = 0; c < 48; ++c) sum += calq[i][c].item<double>();
        for (int c = 0; c < 48; ++c)
          DOCTEST_CHECK(target[i][c].item<double>() == doctest::Approx(calq[i][c].item<double>() / sum));
      }
      if (!training) {  // the hard gate: cells below 2 CALQ do not reach the encoder
        DOCTEST_CHECK(normalized[0][4].item<double>() == 0.0);
        DOCTEST_CHECK(normalized[0][5].item<double>() == 0.0);
        DOCTEST_CHECK(normalized[0][3].item<double>() > 0.0);
      }
    }
  }

  DOCTEST_TEST_CASE("decoder size: decoder_filters and decoder_hidden shape the off-detector decoder only") {
    ddaq_test::TempDir dir;
    const auto small = ddaq::PipelineOptions().conv_filters(8).latent(16);
    const auto large = ddaq::PipelineOptions(small).decoder_filters(12).decoder_hidden(20);
    ddaq::EconTPipeline a(small, 5), b(large, 5);
    auto shapes = [](const ddaq::EconTPipeline& p) {
      std::vector<std::pair<std::string, std::vector<int64_t>>> out;
      for (const auto& kv : p.named_parameters())
        if (kv.first.rfind("decoder.", 0) == 0) out.emplace_back(kv.first, kv.second.sizes().vec());
      return out;
    };
    // By hand: 8x8 grid -> a 4x4 hidden image; dense 16 -> F*4*4, a 3x3
    // transposed conv F -> F, a 3x3 conv F -> 1 without bias.
    const std::vector<std::pair<std::string, std::vector<int64_t>>> want_small = {{"decoder.dense.weight", {128, 16}},
                                                                                  {"decoder.dense.bias", {128}},
                                                                                  {"decoder.up.weight", {8, 8, 3, 3}},
                                                                                  {"decoder.up.bias", {8}},
                                                                                  {"decoder.out.weight", {1, 8, 3, 3}}};
    const std::vector<std::pair<std::string, std::vector<int64_t>>> want_large = {
        {"decoder.hidden.weight", {20, 16}},   {"decoder.hidden.bias", {20}},
        {"decoder.dense.weight", {192, 20}},   {"decoder.dense.bias", {192}},
        {"decoder.up.weight", {12, 12, 3, 3}}, {"decoder.up.bias", {12}},
        {"decoder.out.weight", {1, 12, 3, 3}}};
    DOCTEST_CHECK(shapes(a) == want_small);
    DOCTEST_CHECK(shapes(b) == want_large);
    // The encoder (on detector) is the same network, initialized the same.
    for (const auto& ka : a.named_parameters())
      if (ka.first.rfind("encoder.", 0) == 0)
        for (const auto& kb : b.named_parameters())
          if (kb.first == ka.first) DOCTEST_CHECK(torch::equal(ka.second, kb.second));
    // Options at their defaults are not written: earlier runs keep their ids.
    DOCTEST_CHECK(small.to_json().find("decoder_") == std::string::npos);
    DOCTEST_CHECK(large.to_json().find("\"decoder_hidden\": 20") != std::string::npos);
    // Saved and loaded with its decoder.
    b.save(dir.file("run"));
    ddaq::EconTPipeline c = ddaq::EconTPipeline::load(dir.file("run"));
    DOCTEST_CHECK(shapes(c) == want_large);
    const ddaq::EventTable t = ddaq::synthesize(ddaq::SynthOptions().events(16).seed(5).pileup_mu(5));
    const torch::Tensor x = torch::from_blob(const_cast<float*>(t.calq.data()), {16, 48}, torch::kFloat).clone();
    b.train(false);
    c.train(false);
    DOCTEST_CHECK(torch::equal(b.forward(x).get("reconstruction"), c.forward(x).get("reconstruction")));
  }
}
