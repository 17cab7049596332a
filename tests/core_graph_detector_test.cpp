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
#include "ddaq/core/front_end.h"
#include "ddaq/core/graph.h"
#include "ddaq/core/layouts.h"
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

// The message of the ddaq::Error `f` throws ("no error" when none).
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const ddaq::Error& e) {
    return std::string(e.what());
  }
  return std::string("no error");
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
    DOCTEST_CHECK(p.link_bits() == 32);
    // On 48-bit links the same 72 bits need 2 links of 48 bits.
    const ddaq::EconTPipeline wide =
        ddaq::EconTPipeline::from_config(example_with("\"link_bits\": 32", "\"link_bits\": 48"), 1);
    DOCTEST_CHECK(wide.link_bits() == 48);
    DOCTEST_CHECK(wide.elinks() == 2);
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
    const auto message = error_of;
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

DOCTEST_TEST_SUITE("graph") {
  DOCTEST_TEST_CASE("layout geometry: a detector's cells gathered onto its square grid") {
    const ddaq::CellGeometry pixels = ddaq::CellGeometry::load(kCells);
    const ddaq::CellLayout l = ddaq::CellLayout::from_positions(pixels.positions());
    DOCTEST_CHECK(l.name() == "geometry");
    DOCTEST_CHECK(l.grid_shape() == std::array<int64_t, 3>{1, 16, 16});
    // The file is row-major (x = column, y = row): the gather is a reshape.
    torch::manual_seed(3);
    const torch::Tensor x = torch::rand({5, 256});
    DOCTEST_CHECK(torch::equal(l.to_grid(x), x.reshape({5, 1, 16, 16})));
    DOCTEST_CHECK(torch::equal(l.to_cells(l.to_grid(x)), x));

    // A ring of 8 cells (a 3 x 3 grid without its centre), listed out of
    // grid order: the centre reads 0 and is not in the mask.
    const std::vector<std::array<double, 2>> ring = {{2, 2}, {0, 0}, {1, 0}, {2, 0}, {0, 1}, {2, 1}, {0, 2}, {1, 2}};
    const ddaq::CellLayout r = ddaq::CellLayout::from_positions(ring);
    DOCTEST_CHECK(r.grid_shape() == std::array<int64_t, 3>{1, 3, 3});
    const torch::Tensor cells = torch::arange(1, 9, torch::kFloat).reshape({1, 8});
    const torch::Tensor expected = torch::tensor({2.f, 3.f, 4.f, 5.f, 0.f, 6.f, 7.f, 8.f, 1.f}).reshape({1, 1, 3, 3});
    DOCTEST_CHECK(torch::equal(r.to_grid(cells), expected));
    DOCTEST_CHECK(torch::equal(r.to_cells(r.to_grid(cells)), cells));
    DOCTEST_CHECK(r.mask().reshape({9})[4].item<float>() == 0.0f);
    DOCTEST_CHECK(r.mask().sum().item<float>() == 8.0f);
    // The front end the testbenches use reads 0 there too.
    ddaq::EconTFrontEnd fe;
    fe.cells = 8;
    fe.normalization = "none";
    fe.grid_to_cell = r.grid_to_cell();
    std::vector<float> grid(9);
    const std::vector<float> q = {1, 2, 3, 4, 5, 6, 7, 8};
    fe.apply(q.data(), grid.data());
    DOCTEST_CHECK(grid == std::vector<float>{2, 3, 4, 5, 0, 6, 7, 8, 1});

    // Offset rows (a hexagonal arrangement) are not a square grid.
    const std::vector<std::array<double, 2>> hexagonal = {{0, 0}, {1, 0}, {0.5, 0.866}, {1.5, 0.866}};
    DOCTEST_CHECK_THROWS_WITH_AS(ddaq::CellLayout::from_positions(hexagonal),
                                 doctest::Contains("cell 2 is not on a square grid"), ddaq::Error);
  }

  DOCTEST_TEST_CASE("layout geometry in a graph equals the reshape it replaces and its errors name the key") {
    auto pipeline = [](const std::string& from, const std::string& to) {
      return ddaq::EconTPipeline::from_config(example_with(from, to), 7);
    };
    ddaq::EconTPipeline reshaped = pipeline("\"input_shape\": [1, 16, 16],", "\"input_shape\": [1, 16, 16],");
    ddaq::EconTPipeline gathered = pipeline("\"input_shape\": [1, 16, 16],", "\"layout\": \"geometry\",");
    torch::manual_seed(4);
    const torch::Tensor x = torch::rand({6, 256}) * 50;
    reshaped.train(false);
    gathered.train(false);
    torch::NoGradGuard no_grad;
    DOCTEST_CHECK(torch::equal(reshaped.forward(x).get("latent"), gathered.forward(x).get("latent")));
    DOCTEST_CHECK(gathered.front_end().grid_to_cell.size() == 256);
    auto message = [&](const std::string& to) {
      return error_of([&] { pipeline("\"input_shape\": [1, 16, 16],", to); });
    };
    DOCTEST_CHECK(message("\"layout\": \"8x8\",").find("graph.stages[1].layout: '8x8' is HGCAL's wafer layout") !=
                  std::string::npos);
    DOCTEST_CHECK(message("\"layout\": \"hex\",").find("(expected \"8x8\", \"4x4x3\" or \"geometry\")") !=
                  std::string::npos);
  }
}

namespace {
// Pair-counting AUC (ties count one half): independent of evaluation's ranks.
double pair_auc(const std::vector<double>& score, const std::vector<bool>& positive) {
  double wins = 0, pairs = 0;
  for (size_t i = 0; i < score.size(); ++i)
    for (size_t j = 0; j < score.size(); ++j)
      if (positive[i] && !positive[j]) {
        wins += score[i] > score[j] ? 1.0 : score[i] == score[j] ? 0.5 : 0.0;
        pairs += 1;
      }
  return wins / pairs;
}
}  // namespace

DOCTEST_TEST_SUITE("graph") {
  DOCTEST_TEST_CASE("a multi-class head: cross-entropy on labels 0..K-1 and accuracy and one-vs-rest AUC") {
    ddaq_test::TempDir dir;
    const ddaq::CellGeometry cells = ddaq::CellGeometry::load(kCells);
    auto write = [&](const std::string& path, int64_t n, uint64_t seed) {
      const ddaq::EventTable t = ddaq::synthesize_clusters(
          ddaq::ClusterOptions().events(n).seed(seed).two_cluster_fraction(0.33).three_cluster_fraction(0.33), cells);
      ddaq::EventFileWriter w(path, true, t.cells);
      w.append(t);
      w.commit();
      return t;
    };
    write(dir.file("train.h5"), 1024, 1);
    const ddaq::EventTable test = write(dir.file("test.h5"), 300, 2);
    const std::string head = "{\"type\": \"dense\", \"units\": 1, \"weight\": {\"bits\": 6, \"integer_bits\": 1}}";
    const std::string three = "{\"type\": \"dense\", \"units\": 3, \"weight\": {\"bits\": 6, \"integer_bits\": 1}}";
    auto config = [&](const std::string& units, const std::string& classes) {
      std::string text = ddaq_test::read_text(kExample);
      text.replace(text.find(head), head.size(), units);
      const std::string objective = "\"logits\": \"two_clusters\", \"weight\": 0.1}";
      text.replace(text.find(objective), objective.size(),
                   "\"logits\": \"two_clusters\", \"weight\": 1.0" + classes + "}");
      return ddaq::Config::parse(text, kExample);
    };
    ddaq::EconTPipeline p = ddaq::EconTPipeline::from_config(config(three, ", \"classes\": 3"), 1);
    const ddaq::TrainerOptions o =
        ddaq::TrainerOptions().loss("mse").epochs(8).learning_rate(0.01).batch_size(64).seed(4).threads(1);
    ddaq::train_pipeline(p, dir.file("train.h5"), o);
    const ddaq::EvaluationReport rep = ddaq::evaluate_pipeline(p, dir.file("test.h5"));
    DOCTEST_REQUIRE(rep.accuracies.size() == 1);
    DOCTEST_REQUIRE(rep.aucs.size() == 1);
    // The same numbers from the logits, computed here.
    at::Tensor logits;
    {
      torch::NoGradGuard no_grad;
      p.train(false);
      logits = p.forward(torch::from_blob(const_cast<float*>(test.calq.data()), {300, 256})).get("logits");
    }
    DOCTEST_REQUIRE(logits.sizes() == std::vector<int64_t>{300, 3});
    const at::Tensor prob = torch::softmax(logits.to(torch::kDouble), 1);
    double correct = 0, macro = 0;
    for (int64_t i = 0; i < 300; ++i) correct += prob[i].argmax().item<int64_t>() == test.label[i];
    for (int c = 0; c < 3; ++c) {
      std::vector<double> score;
      std::vector<bool> positive;
      for (int64_t i = 0; i < 300; ++i) {
        score.push_back(prob[i][c].item<double>());
        positive.push_back(test.label[i] == c);
      }
      macro += pair_auc(score, positive) / 3;
    }
    DOCTEST_CHECK(rep.accuracies[0].second == doctest::Approx(correct / 300).epsilon(1e-12));
    DOCTEST_CHECK(rep.aucs[0].second == doctest::Approx(macro).epsilon(1e-9));
    DOCTEST_CHECK(rep.auc == rep.aucs[0].second);
    DOCTEST_MESSAGE("3 classes after 8 epochs: accuracy ", rep.accuracies[0].second, ", one-vs-rest AUC ", macro);
    // Trained on the labels: better than guessing the most common class.
    DOCTEST_CHECK(rep.accuracies[0].second > 0.45);

    const auto message = error_of;
    // A label beyond the classes, a head of the wrong width, mixed classes.
    {
      ddaq::EventTable bad = test;
      bad.label[7] = 3;
      ddaq::EventFileWriter w(dir.file("bad.h5"), true, 256);
      w.append(bad);
      w.commit();
    }
    DOCTEST_CHECK(message([&] {
                    ddaq::evaluate_pipeline(p, dir.file("bad.h5"));
                  }).find("row 7: label 3 (the classification has 3 classes: 0..2)") != std::string::npos);
    ddaq::EconTPipeline narrow = ddaq::EconTPipeline::from_config(config(head, ", \"classes\": 3"), 1);
    DOCTEST_CHECK(message([&] {
                    ddaq::train_pipeline(narrow, dir.file("train.h5"), ddaq::TrainerOptions(o).max_steps(1));
                  }).find("logits 'two_clusters' must be [N, 3] (one value per class), not 1 values per event") !=
                  std::string::npos);
    std::string mixed = ddaq_test::read_text(kExample);
    const std::string last = "\"weight\": 0.1}";
    mixed.replace(mixed.find(last), last.size(),
                  "\"weight\": 0.1, \"classes\": 3},\n {\"name\": \"binary\", \"type\": \"classification\", "
                  "\"logits\": \"two_clusters\"}");
    DOCTEST_CHECK(message([&] {
                    ddaq::EconTPipeline::from_config(ddaq::Config::parse(mixed, kExample), 1);
                  }).find("objectives[2].classes: 2, but objective 'two_clusters' has 3") != std::string::npos);
  }
}
