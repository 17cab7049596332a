// Any detector through the trainer and evaluation: the shipped pixel example
// (experiments/graphs/pixel16.json, its geometry file, synthetic clusters)
// trained by train_pipeline, judged with the exact EMD on its own metric,
// saved and loaded without the geometry file; and the errors that keep
// HGCAL-only steps off other detectors.
#include <doctest/doctest.h>
#include <torch/torch.h>

#include <cmath>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "ddaq/core/cell_geometry.h"
#include "ddaq/core/clusters.h"
#include "ddaq/core/config.h"
#include "ddaq/core/evaluation.h"
#include "ddaq/core/events.h"
#include "ddaq/core/pipeline.h"
#include "ddaq/core/synth.h"
#include "ddaq/core/trainer.h"
#include "ddaq/error.h"
#include "ddaq/surrogates/emd.h"
#include "test_support.h"

namespace {

const std::string kExample = std::string(DDAQ_SOURCE_DIR) + "/experiments/graphs/pixel16.json";
const std::string kCells = std::string(DDAQ_SOURCE_DIR) + "/experiments/graphs/pixel16_cells.csv";

void write_clusters(const std::string& path, int64_t events, uint64_t seed) {
  const ddaq::EventTable t =
      ddaq::synthesize_clusters(ddaq::ClusterOptions().events(events).seed(seed), ddaq::CellGeometry::load(kCells));
  ddaq::EventFileWriter w(path, true, t.cells);
  w.append(t);
  w.commit();
}

// The example's graph with `edit` applied to its JSON text.
ddaq::Config example_with(const std::string& from, const std::string& to) {
  std::string text = ddaq_test::read_text(kExample);
  const auto at = text.find(from);
  if (at == std::string::npos) throw std::runtime_error("test: '" + from + "' not in the example");
  text.replace(at, from.size(), to);
  return ddaq::Config::parse(text, kExample);
}

}  // namespace

DOCTEST_TEST_SUITE("graph") {
  DOCTEST_TEST_CASE("clusters on any geometry: energies, labels and determinism") {
    const ddaq::CellGeometry cells = ddaq::CellGeometry::load(kCells);
    DOCTEST_CHECK(cells.size() == 256);
    DOCTEST_CHECK(cells.pitch() == doctest::Approx(0.055).epsilon(1e-12));
    const ddaq::ClusterOptions o = ddaq::ClusterOptions().events(400).seed(5).two_cluster_fraction(0.25);
    const ddaq::EventTable a = ddaq::synthesize_clusters(o, cells), b = ddaq::synthesize_clusters(o, cells);
    DOCTEST_CHECK(a.calq == b.calq);
    DOCTEST_CHECK(a.cells == 256);
    int64_t two = 0;
    for (int64_t i = 0; i < a.size(); ++i) {
      double sum = 0;
      for (int c = 0; c < 256; ++c) {
        const float q = a.calq[static_cast<size_t>(i * 256 + c)];
        DOCTEST_CHECK(q == std::round(q));
        sum += q;
      }
      const int k = a.label[static_cast<size_t>(i)] == 1 ? 2 : 1;
      two += k == 2;
      // Rounding and clusters beyond the edge keep the sum within
      // [k * energy_min - rounding, k * energy_max + rounding].
      DOCTEST_CHECK(sum > 0.0);
      DOCTEST_CHECK(sum <= k * 500.0 + 128.0);
    }
    DOCTEST_CHECK(two > 60);  // 25% of 400: 100 +- 9 (binomial)
    DOCTEST_CHECK(two < 140);
  }

  DOCTEST_TEST_CASE("experiments/graphs/pixel16.json trains through the trainer and is judged on its own metric") {
    ddaq_test::TempDir dir;
    write_clusters(dir.file("train.h5"), 512, 1);
    write_clusters(dir.file("test.h5"), 300, 2);
    ddaq::EconTPipeline p = ddaq::EconTPipeline::from_config(ddaq::Config::load(kExample), 1);
    DOCTEST_CHECK(p.cells() == 256);
    DOCTEST_CHECK(!p.hgcal());
    // 16 latents x 4 bits + 8 header bits on 32-bit links: 72 bits, 3 links.
    DOCTEST_CHECK(p.payload_bits() == 64);
    DOCTEST_CHECK(p.elinks() == 3);
    DOCTEST_CHECK(p.payload_capacity(3) == 3 * 32 - 8);  // the generic stage's rule, not the ECON-T frame's
    const ddaq::TrainSummary s = ddaq::train_pipeline(
        p, dir.file("train.h5"),
        ddaq::TrainerOptions().loss("mse").epochs(1).max_steps(6).batch_size(64).seed(4).threads(1));
    DOCTEST_CHECK(s.steps == 6);
    const ddaq::EvaluationReport rep = ddaq::evaluate_pipeline(p, dir.file("test.h5"));
    DOCTEST_CHECK(rep.events == 300);
    // No HGCAL formats on a pixel matrix.
    DOCTEST_CHECK(rep.best_choice.empty());
    DOCTEST_CHECK(rep.classical.empty());
    DOCTEST_CHECK(rep.aucs.size() == 1);
    // The exact EMD against a metric built here from the file's positions in
    // units of the 55 um pitch (independent of the pipeline's geometry code).
    const ddaq::EventTable test = ddaq::EventFileReader(dir.file("test.h5"), 256).read_all();
    at::Tensor recon;
    {
      torch::NoGradGuard no_grad;
      p.train(false);
      recon = p.forward(torch::from_blob(const_cast<float*>(test.calq.data()), {300, 256}))
                  .get("reconstruction")
                  .contiguous();
    }
    std::vector<std::array<double, 2>> positions;
    for (int r = 0; r < 16; ++r)
      for (int c = 0; c < 16; ++c) positions.push_back({c * 0.055, r * 0.055});
    const ddaq::GroundMetric metric = ddaq::GroundMetric::euclidean(positions, 0.055);
    std::vector<double> emd(300);
    ddaq::emd_exact_rows(metric, test.calq.data(), recon.data_ptr<float>(), 300, emd.data());
    double mean = 0;
    for (double e : emd) mean += e / 300.0;
    DOCTEST_CHECK(rep.emd_mean == doctest::Approx(mean).epsilon(1e-9));
    DOCTEST_CHECK(rep.emd_mean > 0.1);  // a pixel metric, not HGCAL's (a wrong metric would differ by far)

    // Saved runs hold the positions: the geometry file is not needed to load.
    p.save(dir.file("run"));
    const ddaq::EconTPipeline loaded = ddaq::EconTPipeline::load(dir.file("run"));
    DOCTEST_CHECK(loaded.cells() == 256);
    DOCTEST_CHECK(ddaq_test::read_text(dir.file("run") + "/pipeline.json").find("pixel16_cells.csv") ==
                  std::string::npos);
    ddaq::EconTPipeline again = ddaq::EconTPipeline::load(dir.file("run"));
    const ddaq::EvaluationReport rep2 = ddaq::evaluate_pipeline(again, dir.file("test.h5"));
    DOCTEST_CHECK(rep2.emd_mean == rep.emd_mean);
  }

  DOCTEST_TEST_CASE("other detectors: what is HGCAL's is refused by name") {
    ddaq_test::TempDir dir;
    write_clusters(dir.file("pixels.h5"), 128, 1);
    ddaq::synthesize_to_file(ddaq::SynthOptions().events(128).seed(1), dir.file("wafers.h5"));
    ddaq::EconTPipeline p = ddaq::EconTPipeline::from_config(ddaq::Config::load(kExample), 1);
    auto message = [](const std::function<void()>& f) {
      try {
        f();
      } catch (const ddaq::Error& e) {
        return std::string(e.what());
      }
      return std::string("no error");
    };
    // HGCAL wafers into the pixel graph, and pixels into an HGCAL step.
    DOCTEST_CHECK(message([&] {
                    ddaq::evaluate_pipeline(p, dir.file("wafers.h5"));
                  }).find("has 48 columns, expected 256") != std::string::npos);
    DOCTEST_CHECK(message([&] {
                    ddaq::EventFileReader r(dir.file("pixels.h5"));
                  }).find("has 256 columns, expected 48 (HGCAL trigger cells") != std::string::npos);
    // HGCAL-only training options.
    for (const char* loss : {"telescope"})
      DOCTEST_CHECK(message([&] {
                      ddaq::train_pipeline(p, dir.file("pixels.h5"),
                                           ddaq::TrainerOptions().loss(loss).max_steps(1).batch_size(64).threads(1));
                    }).find("training.loss 'telescope' is HGCAL's") != std::string::npos);
    // The geometry: required off 48 values, and one cell per input value.
    DOCTEST_CHECK(
        message([&] {
          ddaq::EconTPipeline::from_config(
              example_with("\"shape\": [256]},\n    \"geometry\": \"pixel16_cells.csv\",", "\"shape\": [256]},"), 1);
        }).find("graph.geometry: required: the input holds 256 values") != std::string::npos);
    DOCTEST_CHECK(message([&] {
                    ddaq::EconTPipeline::from_config(example_with("\"shape\": [256]", "\"shape\": [255]"), 1);
                  }).find("graph.geometry: 256 cells, but the input holds 255 values") != std::string::npos);
    DOCTEST_CHECK(message([&] {
                    ddaq::EconTPipeline::from_config(
                        example_with("\"shape\": [256]},\n    \"geometry\": \"pixel16_cells.csv\"",
                                     "\"shape\": [256]},\n    \"geometry\": \"missing.csv\""),
                        1);
                  }).find("missing.csv: cannot open cell geometry") != std::string::npos);
    // The emulator library is the ECON-T front end's.
    DOCTEST_CHECK(p.front_end().normalization == "sum");
    DOCTEST_CHECK(p.front_end().cells == 256);
  }
}
