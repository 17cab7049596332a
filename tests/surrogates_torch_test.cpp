#include <ATen/ATen.h>
#include <c10/core/GradMode.h>  // c10::NoGradGuard: at:: lost the alias in LibTorch 2.x
#include <torch/csrc/autograd/autograd.h>

#include <doctest/doctest.h>

#include <cmath>

#include "ddaq/core/baselines.h"
#include "ddaq/core/synth.h"
#include "ddaq/core/wafer_metric.h"
#include "ddaq/error.h"
#include "ddaq/surrogates/emd.h"
#include "ddaq/surrogates/emd_pairs.h"
#include "ddaq/surrogates/emd_surrogate.h"
#include "ddaq/surrogates/sinkhorn.h"
#include "test_support.h"

namespace {

ddaq::EmdSurrogateOptions small_options() {
  ddaq::CellCentres centres;
  for (const auto& c : ddaq::WaferGeometry::hgcal().cells()) centres.push_back({c.x_cm, c.y_cm});
  return ddaq::EmdSurrogateOptions().points(centres).unit(ddaq::kSensorCellPitchCm).hidden({24, 16}).directions(8);
}

ddaq::EmdPairs small_pairs(int64_t n, uint64_t seed) {
  const ddaq::EventTable t = ddaq::synthesize(ddaq::SynthOptions().events(n).seed(seed).pileup_mu(10));
  return ddaq::make_emd_pairs(ddaq::trigger_cell_metric(), t.calq.data(), n, ddaq::EmdPairOptions().seed(seed));
}

at::Tensor rows(const std::vector<float>& v, int64_t n) {
  return at::tensor(at::ArrayRef<float>(v)).reshape({n, 48}).slice(0, 0, n);
}

}  // namespace

DOCTEST_TEST_SUITE("sinkhorn") {
  DOCTEST_TEST_CASE("approaches the exact EMD for small epsilon and has finite gradients") {
    // Converged (eps 0.1, 2000 iterations) the entropic cost lies within a
    // few hundredths of a sensor-cell pitch of the exact EMD (measured: up to
    // 0.015 on real mu-10 pairs, 0.023 on these synthetic ones).
    const ddaq::EmdPairs p = small_pairs(30, 3);
    const at::Tensor a = rows(p.a, 30).clone().requires_grad_(true), b = rows(p.b, 30).clone().requires_grad_(true);
    const at::Tensor cost = ddaq::cost_tensor(ddaq::trigger_cell_metric());
    {
      c10::NoGradGuard no_grad;
      const at::Tensor sharp = ddaq::sinkhorn_emd(a.to(at::kDouble), b.to(at::kDouble), cost,
                                                  ddaq::SinkhornOptions().epsilon(0.1).iterations(2000));
      for (int64_t i = 0; i < 30; ++i) DOCTEST_CHECK(std::fabs(sharp[i].item<double>() - p.emd[i]) <= 0.04);
    }
    const at::Tensor blurry = ddaq::sinkhorn_emd(a, b, cost, ddaq::SinkhornOptions().epsilon(0.5).iterations(50));
    const auto grads = torch::autograd::grad({blurry.sum()}, {a, b});
    DOCTEST_CHECK(at::isfinite(grads[0]).all().item<bool>());
    DOCTEST_CHECK(at::isfinite(grads[1]).all().item<bool>());
    DOCTEST_CHECK(grads[0].abs().sum().item<double>() > 0.0);
  }

  DOCTEST_TEST_CASE("empty rows give NaN / bad options throw") {
    const at::Tensor cost = ddaq::cost_tensor(ddaq::trigger_cell_metric());
    const at::Tensor a = at::zeros({1, 48}), b = at::ones({1, 48});
    DOCTEST_CHECK(at::isnan(ddaq::sinkhorn_emd(a, b, cost)).all().item<bool>());
    DOCTEST_CHECK_THROWS_AS(ddaq::sinkhorn_emd(b, b, cost, ddaq::SinkhornOptions().epsilon(0)), ddaq::Error);
    DOCTEST_CHECK_THROWS_AS(ddaq::sinkhorn_emd(b, at::ones({2, 48}), cost), ddaq::Error);
  }
}

DOCTEST_TEST_SUITE("emd surrogate") {
  DOCTEST_TEST_CASE("pairs are deterministic and labelled by the exact solver") {
    const ddaq::EmdPairs p = small_pairs(300, 5), q = small_pairs(300, 5);
    DOCTEST_CHECK(p.b == q.b);
    DOCTEST_CHECK(p.emd == q.emd);
    ddaq::ExactEmd exact(ddaq::trigger_cell_metric());
    for (int i = 0; i < 300; i += 37) DOCTEST_CHECK(p.emd[i] == exact(p.a.data() + i * 48, p.b.data() + i * 48));
    int kinds[static_cast<int>(ddaq::ReconstructionKind::kCount)] = {};
    for (auto k : p.kind) ++kinds[k];
    for (int k = 0; k < static_cast<int>(ddaq::ReconstructionKind::kCount); ++k)
      if (k == static_cast<int>(ddaq::ReconstructionKind::SuperCells))
        DOCTEST_CHECK(kinds[k] == 0);  // no group maps given
      else
        DOCTEST_CHECK(kinds[k] > 25);
  }

  DOCTEST_TEST_CASE("super-cell pairs are the ECON-T super trigger cells / shifted wafers / given pairs are labelled exactly") {
    const ddaq::EventTable t = ddaq::synthesize(ddaq::SynthOptions().events(200).seed(3).pileup_mu(10));
    const auto metric = ddaq::trigger_cell_metric();
    for (int group : {4, 16}) {
      const auto only_super = ddaq::EmdPairOptions().kind_weights({0, 0, 0, 0, 0, 1, 0}).super_cell_groups(
          {ddaq::super_cell_groups(group)});
      const ddaq::EmdPairs p = ddaq::make_emd_pairs(metric, t.calq.data(), 200, only_super);
      std::vector<float> stc(t.calq.size());
      ddaq::super_trigger_cells(t.calq.data(), 200, group, stc.data());
      DOCTEST_CHECK(p.b == stc);
      for (auto k : p.kind) DOCTEST_CHECK(k == static_cast<int>(ddaq::ReconstructionKind::SuperCells));
    }
    // Shifted wafers: energy kept, every unit moves to a cell within half a
    // pitch of one pitch away (a trigger-cell pitch = 2 sensor-cell
    // pitches), so EMD <= 1.5 x 2.
    const ddaq::EmdPairs shifted = ddaq::make_emd_pairs(
        metric, t.calq.data(), 200, ddaq::EmdPairOptions().kind_weights({0, 0, 0, 0, 0, 0, 1}));
    int moved = 0;
    for (int i = 0; i < 200; ++i) {
      double sa = 0, sb = 0;
      for (int c = 0; c < 48; ++c) {
        sa += shifted.a[i * 48 + c];
        sb += shifted.b[i * 48 + c];
      }
      DOCTEST_CHECK(sb == doctest::Approx(sa).epsilon(1e-5));
      if (sa > 0) DOCTEST_CHECK(shifted.emd[i] <= 3.0 + 1e-9);
      moved += shifted.emd[i] > 0.05;
    }
    DOCTEST_CHECK(moved > 150);
    // Without group maps the kind cannot be drawn; a bad map is refused.
    DOCTEST_CHECK_THROWS_WITH_AS(
        ddaq::make_emd_pairs(metric, t.calq.data(), 200, ddaq::EmdPairOptions().kind_weights({0, 0, 0, 0, 0, 1, 0})),
        doctest::Contains("positive sum"), ddaq::Error);
    DOCTEST_CHECK_THROWS_WITH_AS(
        ddaq::make_emd_pairs(metric, t.calq.data(), 200, ddaq::EmdPairOptions().super_cell_groups({{0, 1, 2}})),
        doctest::Contains("group map"), ddaq::Error);
    const ddaq::EmdPairs given = ddaq::make_given_emd_pairs(metric, t.calq.data(), t.calq.data() + 48, 199, 1);
    ddaq::ExactEmd exact(metric);
    for (int i = 0; i < 199; i += 23) {
      DOCTEST_CHECK(given.emd[i] == exact(t.calq.data() + i * 48, t.calq.data() + (i + 1) * 48));
      DOCTEST_CHECK(given.kind[i] == static_cast<int>(ddaq::ReconstructionKind::Given));
    }
  }

  DOCTEST_TEST_CASE("symmetric / scale invariant / non-negative / differentiable in both inputs") {
    ddaq::EmdSurrogate model(small_options());
    DOCTEST_CHECK(model.parameter_count() == (48 + 8 + 1) * 24 + 24 + 24 * 16 + 16 + 16 + 1);
    const ddaq::EmdPairs p = small_pairs(64, 7);
    const at::Tensor a = rows(p.a, 64).clone().requires_grad_(true), b = rows(p.b, 64).clone().requires_grad_(true);
    const at::Tensor ab = model.forward(a, b), ba = model.forward(b, a);
    DOCTEST_CHECK(at::equal(ab, ba));
    DOCTEST_CHECK((ab >= 0).all().item<bool>());
    DOCTEST_CHECK(at::allclose(model.forward(a * 3.0, b), ab, 1e-4, 1e-6));
    const auto grads = torch::autograd::grad({ab.sum()}, {a, b});
    DOCTEST_CHECK(at::isfinite(grads[0]).all().item<bool>());
    DOCTEST_CHECK(grads[0].abs().sum().item<double>() > 0.0);
    DOCTEST_CHECK(grads[1].abs().sum().item<double>() > 0.0);
  }

  DOCTEST_TEST_CASE("training lowers the error and is deterministic / save and load round trip") {
    const ddaq::EmdPairs p = small_pairs(1500, 11);
    const auto train = ddaq::EmdSurrogateTrainOptions().epochs(6).batch_size(128).patience(100);
    ddaq::EmdSurrogate m1(small_options()), m2(small_options());
    const auto metric = ddaq::trigger_cell_metric();
    const double before = ddaq::evaluate_emd_surrogate(m1, p, metric).all.std;
    std::vector<double> losses;
    ddaq::train_emd_surrogate(m1, p, train, [&](int, double, double v) { losses.push_back(v); });
    ddaq::train_emd_surrogate(m2, p, train);
    const auto report = ddaq::evaluate_emd_surrogate(m1, p, metric);
    DOCTEST_CHECK(losses.back() < losses.front());
    DOCTEST_CHECK(report.all.std < before);
    for (size_t i = 0; i < m1.parameters().size(); ++i) DOCTEST_CHECK(at::equal(m1.parameters()[i], m2.parameters()[i]));
    ddaq_test::TempDir dir;
    m1.save(dir.file("s.pt"));
    DOCTEST_CHECK(dir.entries().size() == 1);
    const ddaq::EmdSurrogate loaded = ddaq::EmdSurrogate::load(dir.file("s.pt"));
    std::vector<double> x(100), y(100);
    m1.predict(p.a.data(), p.b.data(), 100, x.data());
    loaded.predict(p.a.data(), p.b.data(), 100, y.data());
    DOCTEST_CHECK(x == y);
    ddaq_test::write_text(dir.file("bad.pt"), "not a model");
    DOCTEST_CHECK_THROWS_AS(ddaq::EmdSurrogate::load(dir.file("bad.pt")), ddaq::Error);
    DOCTEST_CHECK_THROWS_AS(ddaq::EmdSurrogate::load(dir.file("missing.pt")), ddaq::Error);
    DOCTEST_CHECK(report.to_json().find("\"by_occupancy\"") != std::string::npos);
  }
}
