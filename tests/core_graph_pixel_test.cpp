// A detector that is not HGCAL: a 16 x 16 pixel matrix with its own
// geometry file and synthetic clusters, through front end -> encoder ->
// links -> decoder as a graph, trained on Sinkhorn over its metric and
// judged with the exact EMD on that metric.
#include <doctest/doctest.h>
#include <torch/torch.h>

#include <cmath>
#include <string>
#include <vector>

#include "ddaq/core/cell_geometry.h"
#include "ddaq/core/config.h"
#include "ddaq/core/graph.h"
#include "ddaq/core/stages.h"
#include "ddaq/error.h"
#include "ddaq/surrogates/emd.h"
#include "ddaq/surrogates/sinkhorn.h"
#include "test_support.h"

namespace {

constexpr int kSide = 16;
constexpr double kPitchCm = 0.0055;  // 55 um pixels (a Timepix-like matrix)

std::string pixel_geometry_csv() {
  std::string csv = "cell,x,y\n# 16 x 16 pixels, 55 um pitch, row-major\n";
  for (int r = 0; r < kSide; ++r)
    for (int c = 0; c < kSide; ++c)
      csv += std::to_string(r * kSide + c) + "," + std::to_string(c * kPitchCm) + "," + std::to_string(r * kPitchCm) + "\n";
  return csv;
}

// [n, 256] charges: one or two Gaussian clusters (sigma 0.6 to 1.5 pixels)
// at uniform positions, energies 50 to 500, rounded to whole counts.
torch::Tensor clusters(int64_t n, uint64_t seed) {
  torch::Generator gen = at::detail::createCPUGenerator(seed);
  const torch::Tensor xs = torch::arange(kSide, torch::kFloat).repeat({kSide});
  const torch::Tensor ys = torch::arange(kSide, torch::kFloat).repeat_interleave(kSide);
  torch::Tensor out = torch::zeros({n, kSide * kSide});
  for (int k = 0; k < 2; ++k) {
    const torch::Tensor on = k == 0 ? torch::ones({n, 1}) : (torch::rand({n, 1}, gen) < 0.5).to(torch::kFloat);
    const torch::Tensor cx = torch::rand({n, 1}, gen) * (kSide - 1), cy = torch::rand({n, 1}, gen) * (kSide - 1);
    const torch::Tensor sigma = 0.6 + 0.9 * torch::rand({n, 1}, gen);
    const torch::Tensor energy = 50 + 450 * torch::rand({n, 1}, gen);
    torch::Tensor blob = torch::exp(-((xs - cx).pow(2) + (ys - cy).pow(2)) / (2 * sigma.pow(2)));
    out += on * energy * blob / blob.sum(1, true);
  }
  return out.round();
}

const char* kPixelGraph = R"({"input": {"name": "pixels", "shape": [256]}, "stages": [
 {"type": "front_end", "name": "frontend", "reads": {"charges": "pixels"},
  "writes": {"target": "target", "normalized": "normalized"}, "threshold": 2.0, "learn_threshold": false,
  "normalization": "sum"},
 {"type": "quantized_stack", "name": "encoder", "reads": {"input": "normalized"}, "writes": {"output": "latent"},
  "input_shape": [1, 16, 16], "input": {"bits": 12, "integer_bits": 1},
  "layers": [{"type": "conv2d", "filters": 4, "kernel": 3, "stride": 2, "padding": 1, "weight": {"bits": 8}},
             {"type": "relu", "output": {"bits": 10, "integer_bits": 2}},
             {"type": "dense", "units": 16, "weight": {"bits": 8}},
             {"type": "relu", "output": {"bits": 5, "integer_bits": 1}}]},
 {"type": "link_budget", "name": "links", "encoder": "encoder", "header_bits": 8, "link_bits": 32, "max_links": 4},
 {"type": "float_stack", "name": "decoder", "reads": {"input": "latent"}, "writes": {"output": "reconstruction"},
  "layers": [{"type": "dense", "units": 128}, {"type": "relu"}, {"type": "dense", "units": 256}],
  "head": "softmax"}]})";

double mean_exact_emd(const ddaq::GroundMetric& metric, const torch::Tensor& a, const torch::Tensor& b) {
  const torch::Tensor ca = a.to(torch::kFloat).contiguous(), cb = b.to(torch::kFloat).contiguous();
  std::vector<double> out(static_cast<size_t>(a.size(0)));
  ddaq::emd_exact_rows(metric, ca.data_ptr<float>(), cb.data_ptr<float>(), a.size(0), out.data());
  double sum = 0;
  for (double v : out) sum += v;
  return sum / static_cast<double>(out.size());
}

}  // namespace

DOCTEST_TEST_SUITE("graph") {
  DOCTEST_TEST_CASE("a 16x16 pixel detector: its geometry file, links and exact EMD on its metric") {
    ddaq_test::TempDir dir;
    ddaq_test::write_text(dir.file("pixels.csv"), pixel_geometry_csv());
    const ddaq::CellGeometry geometry = ddaq::CellGeometry::load(dir.file("pixels.csv"));
    DOCTEST_REQUIRE(geometry.size() == 256);
    const ddaq::GroundMetric metric = geometry.metric(kPitchCm);  // EMD in pixel pitches
    // Independent check of the metric: pixels 0 and 17 are one diagonal apart.
    DOCTEST_CHECK(metric(0, 17) == doctest::Approx(std::sqrt(2.0)).epsilon(1e-9));

    const ddaq::GraphSpec spec =
        ddaq::GraphSpec::parse(ddaq::Config::parse(std::string("{\"graph\": {\"geometry\": \"") +
                                                       dir.file("pixels.csv") + "\", " + (kPixelGraph + 1) + "}",
                                                   "pixels.json")
                                   .section("graph"));
    ddaq::Graph graph(spec, 3);
    // The link budget: 16 outputs x 5 bits + an 8-bit header on 32-bit links:
    // 88 bits, 2.75 links relaxed, 3 exact.
    const auto* links = graph.find_as<ddaq::LinkBudgetStage>("links");
    DOCTEST_REQUIRE(links != nullptr);
    const ddaq::NamedTensors costs = links->costs();
    DOCTEST_CHECK(costs.get("payload_bits").item<double>() == 80.0);
    DOCTEST_CHECK(costs.get("links").item<double>() == doctest::Approx(88.0 / 32.0));
    DOCTEST_CHECK(links->links_for_payload(80) == 3);
    DOCTEST_CHECK_THROWS_AS(links->links_for_payload(200), ddaq::Error);  // 7 links > max_links 4

    torch::set_num_threads(1);
    torch::manual_seed(5);
    const torch::Tensor train = clusters(2048, 11), test = clusters(200, 12);
    const torch::Tensor cost = ddaq::cost_tensor(metric);
    auto evaluate = [&] {
      torch::NoGradGuard no_grad;
      for (ddaq::Stage* s : graph.stages()) s->train(false);
      ddaq::NamedTensors flow;
      flow.set("pixels", test);
      graph.forward(flow);
      for (ddaq::Stage* s : graph.stages()) s->train(true);
      return mean_exact_emd(metric, flow.get("target"), flow.get("reconstruction"));
    };
    const double before = evaluate();
    std::vector<torch::Tensor> params;
    for (ddaq::Stage* s : graph.stages())
      for (const auto& p : s->named_parameters()) params.push_back(p.second);
    torch::optim::Adam adam(params, torch::optim::AdamOptions(3e-3));
    for (int step = 0; step < 150; ++step) {
      ddaq::NamedTensors flow;
      flow.set("pixels", train.narrow(0, (step * 64) % 2048, 64));
      graph.forward(flow);
      // Sinkhorn on the pixel metric every 25th step (it costs about a
      // second a batch at 256 cells), squared error between.
      const torch::Tensor loss =
          step % 25 == 24 ? ddaq::sinkhorn_emd(flow.get("target"), flow.get("reconstruction"), cost,
                                              ddaq::SinkhornOptions().epsilon(0.5).iterations(20))
                               .mean()
                         : (flow.get("target") - flow.get("reconstruction")).pow(2).sum(1).mean() * 100.0;
      adam.zero_grad();
      loss.backward();
      adam.step();
    }
    const double after = evaluate();
    DOCTEST_MESSAGE("exact EMD on the pixel metric (pitches): untrained ", before, ", trained ", after);
    // A uniform reconstruction (the decoder's start) against one that learned
    // where the clusters are.
    DOCTEST_CHECK(after < 0.6 * before);
    // The encoder is firmware: its integer description has the declared layers.
    DOCTEST_CHECK(graph.find("encoder")->describe().size() == 5);
  }

  DOCTEST_TEST_CASE("cell geometry files: errors name the file and the line") {
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"x,y\n0,0,0\n", "g.csv:1: expected the header \"cell,x,y\""},
        {"cell,x,y\n0,0,0\n2,1,0\n", "g.csv:3: cell 2 out of order (expected 1)"},
        {"cell,x,y\n0,0,0\n1,0,0\n", "g.csv:3: cell 1 has the position of cell 0"},
        {"cell,x,y\n0,0,0\n1,a,0\n", "g.csv:3: 'a' is not a finite number"},
        {"cell,x,y\n0,0,0\n1,1\n", "g.csv:3: expected three fields"},
        {"cell,x,y\n0,0,0\n", "g.csv: a cell geometry needs at least 2 cells"},
    };
    for (const auto& c : cases) {
      std::string error;
      try {
        ddaq::CellGeometry::parse(c.first, "g.csv");
      } catch (const ddaq::Error& e) {
        error = e.what();
      }
      DOCTEST_CAPTURE(error);
      DOCTEST_CHECK(error.rfind(c.second, 0) == 0);
    }
  }
}
