// The FPGA resource model that training uses: accurate on architectures it
// never saw (real synthesis data), monotone, bounded outside its data.
#include <doctest/doctest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "ddaq/error.h"
#include "ddaq/surrogates/fpga_resources.h"
#include "ddaq/surrogates/resource_net.h"
#include "test_support.h"

namespace {

const std::string kFpgaCsv = std::string(DDAQ_SHARED_DATA) + "/fpga/wa_hls4ml_dense_sample_hls_xcu250.csv";

constexpr size_t kLut = 0, kFf = 1, kBram = 3, kLatency = 4;

ddaq::DesignSpec dense(std::vector<int64_t> dims, double wb, double ab, int64_t r) {
  ddaq::DesignSpec d;
  for (size_t k = 0; k + 1 < dims.size(); ++k) d.layers.push_back({dims[k], dims[k + 1], wb, ab, r});
  return d;
}

}  // namespace

DOCTEST_TEST_SUITE("fpga resources") {
  DOCTEST_TEST_CASE("held-out architectures (real wa-hls4ml data): sMAPE below 10% for LUT, FF and latency") {
    if (!ddaq_test::exists(kFpgaCsv)) {
      std::printf("SKIPPED: needs %s (absent in a user's clone)\n", kFpgaCsv.c_str());
      std::exit(77);
    }
    const ddaq::ResourceTable t = ddaq::read_resource_csv(kFpgaCsv, true);
    // Own split, independent of cross_validate: architectures (layer_dims)
    // in sorted order, every 4th held out; sMAPE computed here.
    std::set<std::string> groups;
    for (const auto& d : t.designs) groups.insert(d.group);
    std::set<std::string> held;
    int i = 0;
    for (const auto& g : groups)
      if (i++ % 4 == 1) held.insert(g);
    std::vector<ddaq::DesignSpec> fit_d;
    std::vector<ddaq::ResourceValues> fit_y;
    for (size_t r = 0; r < t.designs.size(); ++r)
      if (!held.count(t.designs[r].group)) fit_d.push_back(t.designs[r]), fit_y.push_back(t.targets[r]);
    ddaq::AnalyticResourceModel m;
    m.fit(fit_d, fit_y);
    std::map<size_t, double> sum;
    int n = 0;
    for (size_t r = 0; r < t.designs.size(); ++r) {
      if (!held.count(t.designs[r].group)) continue;
      // Never seen: no design of this architecture in the fit.
      for (const auto& d : fit_d) DOCTEST_REQUIRE(d.group != t.designs[r].group);
      const ddaq::ResourceValues p = m.predict(t.designs[r]);
      for (size_t k : {kLut, kFf, kLatency}) {
        const double y = t.targets[r][k];
        sum[k] += 2 * std::fabs(p[k] - y) / (std::fabs(y) + std::fabs(p[k]));
      }
      ++n;
    }
    DOCTEST_REQUIRE(n > 50);
    DOCTEST_REQUIRE(held.size() >= 5);
    for (size_t k : {kLut, kFf, kLatency}) {
      DOCTEST_MESSAGE(std::string(ddaq::to_string(static_cast<ddaq::ResourceTarget>(k)))
                      << " held-out sMAPE " << sum[k] / n);
      DOCTEST_CHECK(sum[k] / n < 0.10);
    }
  }

  DOCTEST_TEST_CASE("the shipped model is monotone in bits, units and reuse factor, exact and differentiable") {
    const ddaq::AnalyticResourceModel& m = ddaq::AnalyticResourceModel::shipped();
    for (size_t k = 0; k < 5; ++k)
      for (const auto& kv : m.parameters(static_cast<ddaq::ResourceTarget>(k)))
        if (kv.first != "intercept") DOCTEST_CHECK_MESSAGE(kv.second >= 0, kv.first);
    // A grid around the ECON-T encoder and the fit data; one variable moves at a time.
    const std::vector<int64_t> units = {4, 8, 16, 48, 128, 256};
    const std::vector<double> bits = {2, 4, 6, 8, 12, 16};
    const std::vector<int64_t> reuse = {1, 4, 64, 1024, 4096};
    int checked = 0;
    for (int64_t in : units)
      for (int64_t out : units)
        for (double b : bits)
          for (int64_t r : reuse) {
            const ddaq::ResourceValues base = m.predict(dense({in, out, 8}, b, 10, r));
            for (size_t k = 0; k < 5; ++k) DOCTEST_REQUIRE(std::isfinite(base[k]));
            const ddaq::ResourceValues more_bits = m.predict(dense({in, out, 8}, b + 1, 10, r));
            const ddaq::ResourceValues more_act = m.predict(dense({in, out, 8}, b, 11, r));
            const ddaq::ResourceValues more_in = m.predict(dense({in + 1, out, 8}, b, 10, r));
            const ddaq::ResourceValues more_out = m.predict(dense({in, out + 1, 8}, b, 10, r));
            const ddaq::ResourceValues more_reuse = m.predict(dense({in, out, 8}, b, 10, r * 2));
            for (size_t k : {kLut, kFf, kBram, kLatency}) {
              DOCTEST_REQUIRE(more_bits[k] >= base[k]);
              DOCTEST_REQUIRE(more_act[k] >= base[k]);
              DOCTEST_REQUIRE(more_in[k] >= base[k]);
              DOCTEST_REQUIRE(more_out[k] >= base[k]);
            }
            // Reuse trades logic for time.
            DOCTEST_REQUIRE(more_reuse[kLut] <= base[kLut]);
            DOCTEST_REQUIRE(more_reuse[kFf] <= base[kFf]);
            DOCTEST_REQUIRE(more_reuse[kBram] <= base[kBram]);
            DOCTEST_REQUIRE(more_reuse[kLatency] >= base[kLatency]);
            ++checked;
          }
    DOCTEST_CHECK(checked == 6 * 6 * 6 * 5);
    // The differentiable form: equal to predict at integer points, gradients >= 0.
    const torch::Tensor in = torch::tensor(48.0, torch::kDouble).requires_grad_(true);
    const torch::Tensor out = torch::tensor(16.0, torch::kDouble).requires_grad_(true);
    const torch::Tensor wb = torch::tensor(6.0, torch::kDouble).requires_grad_(true);
    const torch::Tensor ab = torch::tensor(10.0, torch::kDouble).requires_grad_(true);
    for (size_t k : {kLut, kFf}) {
      for (const auto* t : {&in, &out, &wb, &ab}) t->mutable_grad().reset();
      const torch::Tensor v =
          m.predict_differentiable({{&in, &out, &wb, &ab, 1}}, static_cast<ddaq::ResourceTarget>(k));
      DOCTEST_CHECK(v.item<double>() == doctest::Approx(m.predict(dense({48, 16}, 6, 10, 1))[k]).epsilon(1e-9));
      v.backward();
      for (const auto* t : {&in, &out, &wb, &ab}) DOCTEST_CHECK(t->grad().item<double>() >= 0);
      DOCTEST_CHECK(out.grad().item<double>() > 0);
    }
  }

  DOCTEST_TEST_CASE("outside the fit data: a warning naming the feature, a clamped finite estimate") {
    const ddaq::AnalyticResourceModel& m = ddaq::AnalyticResourceModel::shipped();
    DOCTEST_REQUIRE(m.domain().known());
    // The case: one 48->16 dense layer at reuse factor 1 (fit data: 1024-4093, 2-3 layers).
    const ddaq::DesignSpec small = dense({48, 16}, 6, 16, 1);
    const ddaq::ResourceValues p = m.predict(small);
    for (double v : p) DOCTEST_CHECK(std::isfinite(v));
    DOCTEST_CHECK(p[kLatency] >= 1.0);  // one cycle per layer at least (the fit's intercept says -42)
    const std::string w = m.range_warning(small);
    DOCTEST_CHECK(w.find("reuse factor 1 below the fit range 1024..4093") != std::string::npos);
    DOCTEST_CHECK(w.find("layers 1 below the fit range 2..3") != std::string::npos);
    // Inside the data: no warning.
    DOCTEST_CHECK(m.range_warning(dense({64, 32, 16}, 8, 16, 2048)).empty());
    // The learned correction is bounded too (it predicted BRAM 2.5e15 and
    // latency 0 for this design before its features and output were clamped).
    const std::string learned_path = std::string(DDAQ_SOURCE_DIR) + "/surrogates/models/fpga_resources_learned.pt";
    const ddaq::LearnedResourceModel learned = ddaq::LearnedResourceModel::load(learned_path);
    for (const ddaq::DesignSpec& d : {small, dense({48, 16}, 2, 4, 1), dense({1000, 1000}, 24, 24, 100000)}) {
      const ddaq::ResourceValues l = learned.predict(d), a = learned.analytic().predict(d);
      for (double v : l) DOCTEST_CHECK(std::isfinite(v));
      DOCTEST_CHECK(l[kLatency] >= static_cast<double>(d.layers.size()));
      // Within a factor 20 of the analytic estimate (the log residuals of the fit data span less).
      for (size_t k : {kLut, kFf, kBram, kLatency}) DOCTEST_CHECK((l[k] + 1) <= 20 * (a[k] + 1));
    }
    // Beyond the fit's inputs (128) the correction stops changing: the
    // estimate extrapolates along the analytic form, not along the MLP.
    // (n_w / R <= 1 in both, so the layer features differ by the inputs alone.)
    const ddaq::DesignSpec wide1 = dense({256, 4}, 8, 16, 2048), wide2 = dense({512, 4}, 8, 16, 2048);
    const ddaq::ResourceValues l1 = learned.predict(wide1), a1 = learned.analytic().predict(wide1);
    const ddaq::ResourceValues l2 = learned.predict(wide2), a2 = learned.analytic().predict(wide2);
    DOCTEST_CHECK((l1[kLut] + 1) / (a1[kLut] + 1) == doctest::Approx((l2[kLut] + 1) / (a2[kLut] + 1)).epsilon(1e-5));
    DOCTEST_CHECK((l1[kFf] + 1) / (a1[kFf] + 1) == doctest::Approx((l2[kFf] + 1) / (a2[kFf] + 1)).epsilon(1e-5));
  }

  DOCTEST_TEST_CASE("fit ranges round-trip through the text format / bad domain lines name the line") {
    ddaq_test::TempDir dir;
    const ddaq::AnalyticResourceModel& m = ddaq::AnalyticResourceModel::shipped();
    m.save(dir.file("m.txt"));
    const ddaq::AnalyticResourceModel loaded = ddaq::AnalyticResourceModel::load(dir.file("m.txt"));
    DOCTEST_CHECK(loaded.domain().reuse_factor == m.domain().reuse_factor);
    DOCTEST_CHECK(loaded.domain().layers == m.domain().layers);
    ddaq_test::write_text(dir.file("bad.txt"), "# x\ndomain reuse_factor 9 3\n");
    DOCTEST_CHECK_THROWS_WITH_AS(
        ddaq::AnalyticResourceModel::load(dir.file("bad.txt")),
        (dir.file("bad.txt") + ":2: expected 'domain FEATURE MIN MAX' with 0 < MIN <= MAX").c_str(), ddaq::Error);
    ddaq_test::write_text(dir.file("bad2.txt"), "domain colour 1 2\n");
    DOCTEST_CHECK_THROWS_WITH_AS(ddaq::AnalyticResourceModel::load(dir.file("bad2.txt")),
                                 (dir.file("bad2.txt") + ":1: unknown domain feature 'colour'").c_str(), ddaq::Error);
  }
}
