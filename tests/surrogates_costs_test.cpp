#include <doctest/doctest.h>

#include <cmath>
#include <torch/torch.h>

#include "ddaq/error.h"
#include "ddaq/quant/layers.h"
#include "ddaq/surrogates/energy.h"
#include "ddaq/surrogates/link_budget.h"

using ddaq::FixedPointType;

DOCTEST_TEST_SUITE("link budget") {
  DOCTEST_TEST_CASE("exact e-link counts reproduce the ECON-T table") {
    const ddaq::AutoencoderFrame f;
    // Latent 16 values: 3/5/7/9 bits -> 2/3/4/5 e-links (domain-facts.md).
    DOCTEST_CHECK(f.elinks_for_latent(16, 3) == 2);
    DOCTEST_CHECK(f.elinks_for_latent(16, 5) == 3);
    DOCTEST_CHECK(f.elinks_for_latent(16, 7) == 4);
    DOCTEST_CHECK(f.elinks_for_latent(16, 9) == 5);
    DOCTEST_CHECK(f.payload_capacity(1) == 18);
    DOCTEST_CHECK(f.payload_capacity(5) == 146);
    DOCTEST_CHECK(f.payload_capacity(9) == 146);  // the payload stops growing
    // Frame = header 5 + sum 9 + payload: exactly 32 bits per e-link up to 5.
    for (int n = 1; n <= 5; ++n) DOCTEST_CHECK(f.header_bits() + f.module_sum_bits() + f.payload_capacity(n) == 32 * n);
    DOCTEST_CHECK_THROWS_WITH_AS(f.elinks_for_payload(147),
                                 "link budget: a payload of 147 bits exceeds the frame's 146 bits", ddaq::Error);
    const ddaq::ClassicalFormats c;
    DOCTEST_CHECK(c.best_choice_cells_for(2) == 4);
    DOCTEST_CHECK(c.best_choice_cells_for(5) == 14);
    DOCTEST_CHECK(c.best_choice_cells_for(13) == 48);
    DOCTEST_CHECK_THROWS_AS(c.best_choice_cells_for(14), ddaq::Error);
    DOCTEST_CHECK(c.threshold_elinks(0) == 2);   // 5 + 48 bits
    DOCTEST_CHECK(c.threshold_elinks(10) == 4);  // 123 bits
    DOCTEST_CHECK(c.stc_elinks(16) == 2);        // 5 + 3 x 13
    DOCTEST_CHECK(c.stc_elinks(4) == 5);         // 5 + 12 x 11 = 137
  }

  DOCTEST_TEST_CASE("e-links at every capacity boundary of the ECON-T frame: payload exactly 18 + 32k bits") {
    const ddaq::AutoencoderFrame f;
    // Independent: 32-bit e-links carry header 5 + module sum 9 + payload, so
    // n e-links hold 32 n - 14 payload bits, up to 146 (5 e-links).
    auto independent = [](int bits) {
      int n = 1;
      while (32 * n - 14 < bits) ++n;
      return n;
    };
    for (int k = 0; 18 + 32 * k <= 146; ++k) {
      const int edge = 18 + 32 * k;
      DOCTEST_CAPTURE(edge);
      DOCTEST_CHECK(f.elinks_for_payload(edge) == k + 1);
      DOCTEST_CHECK(f.elinks_for_payload(edge) == independent(edge));
      if (edge > 18) DOCTEST_CHECK(f.elinks_for_payload(edge - 1) == k + 1);
      if (edge + 1 <= 146) DOCTEST_CHECK(f.elinks_for_payload(edge + 1) == k + 2);
    }
    DOCTEST_CHECK(f.elinks_for_payload(0) == 1);
  }

  DOCTEST_TEST_CASE("system view: lpGBT uplinks and bandwidth") {
    const auto s = ddaq::system_budget({{"inner", 1000, 5}, {"outer", 3000, 2}}, 230);
    DOCTEST_CHECK(s.modules == 4000);
    DOCTEST_CHECK(s.elinks == 11000);
    DOCTEST_CHECK(s.uplinks == 715 + 858);  // 7 e-links per 230-bit uplink
    DOCTEST_CHECK(s.bandwidth_tbps == doctest::Approx(11000 * 32 * 40e6 / 1e12));
    DOCTEST_CHECK_THROWS_AS(ddaq::system_budget({{"x", -1, 1}}), ddaq::Error);
  }

  DOCTEST_TEST_CASE("fractional e-links: ceil is the exact count, the slope is never flat / the hinge is flat inside") {
    const ddaq::AutoencoderFrame f;
    // Independent: the frame's capacities 18 + 32 (n - 1) up to 146 bits.
    auto exact = [](int bits) {
      for (int n = 1; n <= 5; ++n)
        if (bits <= 18 + 32 * (n - 1)) return n;
      return -1;
    };
    for (int bits = 1; bits <= 146; ++bits) {
      const double e =
          ddaq::fractional_elinks(torch::tensor(static_cast<double>(bits), torch::kDouble), f).item<double>();
      DOCTEST_CHECK_MESSAGE(static_cast<int>(std::ceil(e - 1e-9)) == exact(bits), bits << " bits: " << e);
    }
    // Exactly n at each capacity boundary (an e-link budget is exact on them).
    for (int n = 1; n <= 5; ++n)
      DOCTEST_CHECK(ddaq::fractional_elinks(torch::tensor(18.0 + 32 * (n - 1), torch::kDouble), f).item<double>() ==
                    doctest::Approx(n).epsilon(1e-12));
    // The gradient: 1/18 per bit in the first e-link, 1/32 after, also
    // between boundaries and above the frame's 146 bits (where a staircase
    // would be flat).
    for (double bits : {9.0, 30.0, 66.0, 130.0, 144.0, 200.0, 300.0}) {
      const torch::Tensor p = torch::tensor(bits, torch::dtype(torch::kDouble).requires_grad(true));
      ddaq::fractional_elinks(p, f).backward();
      DOCTEST_CHECK_MESSAGE(p.grad().item<double>() == doctest::Approx(bits < 18 ? 1.0 / 18 : 1.0 / 32), bits);
    }
    const torch::Tensor inside = ddaq::budget_hinge(torch::tensor(60.0), 112.0, 10.0);
    const torch::Tensor outside = ddaq::budget_hinge(torch::tensor(130.0), 112.0, 10.0);
    DOCTEST_CHECK(inside.item<double>() < 1e-10);
    DOCTEST_CHECK(outside.item<double>() == doctest::Approx(180.0).epsilon(1e-3));
  }
}

DOCTEST_TEST_SUITE("energy") {
  DOCTEST_TEST_CASE("Horowitz polynomials / power at 40 MHz / technology fit") {
    ddaq::LayerDescription d;
    d.kind = ddaq::LayerKind::Dense;
    d.input_type = FixedPointType(8, 3);
    d.weight_type = FixedPointType(8, 1);
    d.accumulator_type = FixedPointType(16, 6);
    d.multiplies = 100;
    const ddaq::EnergyEstimate e = ddaq::estimate_energy({d});
    // 8-bit multiply: 0.0029948*64 + 0.0010417*8 = 0.2 pJ; 16-bit add: 0.05 pJ.
    DOCTEST_CHECK(e.multiply_pj == doctest::Approx(100 * (0.0029948 * 64 + 0.0010417 * 8)));
    DOCTEST_CHECK(e.add_pj == doctest::Approx(100 * 0.05));
    DOCTEST_CHECK(e.power_mw == doctest::Approx(e.total_pj * 1e-12 * 40e6 * 1e3));
    const ddaq::TechnologyFit fit = ddaq::fit_technology_scale({d}, 0.1, 4.0);  // 100 pJ, 4 mW
    DOCTEST_CHECK(fit.model.technology_scale == doctest::Approx(100.0 / e.total_pj).epsilon(1e-6));
    const ddaq::TechnologyFit again = ddaq::fit_technology_scale({d}, 0.1, 4.0);
    DOCTEST_CHECK(again.model.technology_scale == fit.model.technology_scale);  // reproducible
    DOCTEST_CHECK_THROWS_AS(ddaq::fit_technology_scale({}, 1.0, 1.0), ddaq::Error);
  }
}

DOCTEST_TEST_SUITE("cost gradients") {
  DOCTEST_TEST_CASE("link budget and energy gradients reach bit widths and mask logits") {
    ddaq::QuantizedStack s(std::vector<int64_t>{12});
    s->input(FixedPointType(10, 4));
    s->dense(ddaq::QLinearOptions(12, 8)
                 .weight(ddaq::QuantizerOptions(FixedPointType(6, 1)).learnable(true))
                 .pruning(ddaq::PruningOptions().gates(true)));
    s->relu(FixedPointType(8, 3, false));
    s->dense(ddaq::QLinearOptions(8, 16).output(ddaq::QuantizerOptions(FixedPointType(7, 3, false)).learnable(true)));
    s->train();
    s->forward(torch::randn({32, 12}));
    const auto latent_bits = s->layers().back()->output_quantizer()->bits();
    const torch::Tensor links = ddaq::fractional_elinks(16 * latent_bits.sum());
    const torch::Tensor energy = ddaq::energy_pj(s->ebops(), 224, 8, 16);
    (links + ddaq::budget_hinge(16 * latent_bits.sum(), 50.0) + energy).backward();
    int bits_reached = 0, gates_reached = 0;
    for (const auto& p : s->named_parameters()) {
      if (!p.value().grad().defined() || p.value().grad().abs().sum().item<double>() == 0) continue;
      bits_reached += p.key().find("fractional_bits") != std::string::npos;
      gates_reached += p.key().find("gate_logits") != std::string::npos;
    }
    DOCTEST_CHECK(bits_reached == 2);  // weight bits (energy) and latent bits (links)
    DOCTEST_CHECK(gates_reached == 1);
  }
}

#include "ddaq/surrogates/fpga_resources.h"
#include "test_support.h"

DOCTEST_TEST_SUITE("fpga resources") {
  DOCTEST_TEST_CASE("CSV rows: good ones parsed / bad ones reported by line and column") {
    ddaq_test::TempDir dir;
    const std::string header =
        "model_id,layer_dims,weight_bits,act_bits,reuse_factor,strategy,LUT,FF,DSP,BRAM18K,latency_cycles_best\n";
    ddaq_test::write_text(dir.file("ok.csv"), header + "a,16-8-4,6,,4,resource,1000,900,0,1,40\n" +
                                                  "b,\"16-8\",12,8,2,Resource,2000,1800,64,2,70\n");
    const ddaq::ResourceTable t = ddaq::read_resource_csv(dir.file("ok.csv"), true);
    DOCTEST_REQUIRE(t.designs.size() == 2);
    DOCTEST_CHECK(t.designs[0].layers.size() == 2);
    DOCTEST_CHECK(t.designs[0].layers[0].act_bits == 16.0);  // empty = the hls4ml default
    DOCTEST_CHECK(t.targets[1][0] == 2000.0);
    // DSP rule: 12-bit weights, 16*8/2 = 64 multipliers.
    DOCTEST_CHECK(ddaq::AnalyticResourceModel().predict(t.designs[1])[2] == 64.0);
    ddaq_test::write_text(dir.file("bad.csv"),
                          header + "a,16-8-4,6,,4,resource,1000,900,0,1,40\n" + "b,16-x,6,,4,resource,1,1,0,1,40\n");
    DOCTEST_CHECK_THROWS_WITH_AS(
        ddaq::read_resource_csv(dir.file("bad.csv"), true),
        (dir.file("bad.csv") + ":3: layer_dims: expected sizes like 80-24-120, got '16-x'").c_str(), ddaq::Error);
    ddaq_test::write_text(dir.file("bad2.csv"), header + "a,16-8-4,six,,4,resource,1000,900,0,1,40\n");
    DOCTEST_CHECK_THROWS_WITH_AS(ddaq::read_resource_csv(dir.file("bad2.csv"), true),
                                 (dir.file("bad2.csv") + ":2: weight_bits: not a number: 'six'").c_str(), ddaq::Error);
    ddaq_test::write_text(dir.file("bad3.csv"), header + "a,16-8-4,6,,4,resource,1000,900,0\n");
    DOCTEST_CHECK_THROWS_AS(ddaq::read_resource_csv(dir.file("bad3.csv"), true), ddaq::Error);
    ddaq_test::write_text(dir.file("bad4.csv"), "model_id,weight_bits\n");
    DOCTEST_CHECK_THROWS_WITH_AS(ddaq::read_resource_csv(dir.file("bad4.csv"), false),
                                 (dir.file("bad4.csv") + ":1: missing column 'layer_dims'").c_str(), ddaq::Error);
  }

  DOCTEST_TEST_CASE("fits recover a known linear model and are reproducible / save and load") {
    // Synthetic designs from known parameters: the fit must find them.
    std::vector<ddaq::DesignSpec> designs;
    std::vector<ddaq::ResourceValues> targets;
    for (int i = 0; i < 60; ++i) {
      ddaq::DesignSpec d;
      d.group = std::to_string(i % 12);
      d.layers = {{16 + 4 * (i % 7), 8 + 2 * (i % 5), 4.0 + i % 9, 16, 1 + i % 4},
                  {8 + 2 * (i % 5), 5, 4.0 + i % 9, 16, 1}};
      double io_a = 0, io_b = 0, mults = 0, kbits = 0, cycles = 0;
      for (const auto& l : d.layers) {
        io_a += (l.in + l.out) * l.act_bits;
        io_b += (l.in + l.out) * l.weight_bits;
        mults += std::ceil(static_cast<double>(l.in * l.out) / l.reuse_factor);
        kbits += l.in * l.out * l.weight_bits / 1000.0;
        cycles += std::min<double>(l.reuse_factor, l.in * l.out);
      }
      ddaq::ResourceValues y;
      y[0] = 500 + 2 * io_a + 1 * io_b + 30 * mults + 10 * kbits + 100 * 2;
      y[1] = 300 + 1 * io_a + 20 * mults + 100 * 2;
      y[2] = NAN;
      y[3] = NAN;
      y[4] = 10 + 1 * cycles + 5 * 2;
      designs.push_back(d);
      targets.push_back(y);
    }
    ddaq::AnalyticResourceModel a, b;
    a.fit(designs, targets);
    b.fit(designs, targets);
    DOCTEST_CHECK(a.parameters(ddaq::ResourceTarget::LUT) == b.parameters(ddaq::ResourceTarget::LUT));
    DOCTEST_CHECK(a.parameters(ddaq::ResourceTarget::LUT).at("multipliers") == doctest::Approx(30).epsilon(1e-3));
    DOCTEST_CHECK(a.parameters(ddaq::ResourceTarget::LatencyCycles).at("cycles_per_reuse") ==
                  doctest::Approx(1).epsilon(1e-3));
    DOCTEST_CHECK(a.predict(designs[7])[0] == doctest::Approx(targets[7][0]).epsilon(1e-4));
    const auto cv = ddaq::cross_validate(designs, targets, 4, 1);
    DOCTEST_CHECK(cv.smape[0] < 0.01);
    ddaq_test::TempDir dir;
    a.save(dir.file("m.txt"));
    const auto loaded = ddaq::AnalyticResourceModel::load(dir.file("m.txt"));
    DOCTEST_CHECK(loaded.predict(designs[3])[0] == a.predict(designs[3])[0]);
    ddaq_test::write_text(dir.file("bad.txt"), "LUT nonsense 3\n");
    DOCTEST_CHECK_THROWS_WITH_AS(ddaq::AnalyticResourceModel::load(dir.file("bad.txt")),
                                 (dir.file("bad.txt") + ":1: unknown parameter 'LUT nonsense'").c_str(), ddaq::Error);
    // Differentiable form: gradients reach bits and kept-unit counts.
    const torch::Tensor in = torch::tensor(16.0, torch::kDouble).requires_grad_(true);
    const torch::Tensor out = torch::tensor(8.0, torch::kDouble).requires_grad_(true);
    const torch::Tensor wb = torch::tensor(6.0, torch::kDouble).requires_grad_(true);
    const torch::Tensor ab = torch::tensor(16.0, torch::kDouble);
    const torch::Tensor lut = a.predict_differentiable({{&in, &out, &wb, &ab, 2}}, ddaq::ResourceTarget::LUT);
    lut.backward();
    DOCTEST_CHECK(wb.grad().item<double>() > 0);
    DOCTEST_CHECK(out.grad().item<double>() > 0);
  }
}

#include "ddaq/surrogates/resource_net.h"

DOCTEST_TEST_SUITE("fpga resources") {
  DOCTEST_TEST_CASE("the learned readout corrects what the analytic form cannot express / save and load") {
    std::vector<ddaq::DesignSpec> designs;
    std::vector<ddaq::ResourceValues> targets;
    for (int i = 0; i < 80; ++i) {
      ddaq::DesignSpec d;
      d.group = std::to_string(i % 16);
      const double b = 3.0 + i % 11;
      d.layers = {{16 + 8 * (i % 5), 16, b, 16, 1 + i % 3}, {16, 4 + i % 4, b, 16, 1}};
      // LUT grows with the square of the bits: not in the analytic form.
      const double mults = 16.0 * (16 + 8 * (i % 5)) / (1 + i % 3) + 16.0 * (4 + i % 4);
      ddaq::ResourceValues y{};
      y[0] = 1000 + 2.0 * mults * b * b;
      y[1] = 800 + 10 * mults;
      y[2] = NAN;
      y[3] = 1 + i % 3;
      y[4] = 20.0 + (1 + i % 3) * 2;
      designs.push_back(d);
      targets.push_back(y);
    }
    auto mean_abs_rel = [&](const std::function<ddaq::ResourceValues(const ddaq::DesignSpec&)>& f) {
      double s = 0;
      for (size_t r = 0; r < designs.size(); ++r) s += std::fabs(f(designs[r])[0] - targets[r][0]) / targets[r][0];
      return s / designs.size();
    };
    ddaq::LearnedResourceModel learned(ddaq::LearnedResourceOptions().epochs(800));
    learned.fit(designs, targets);
    const double analytic_err = mean_abs_rel([&](const ddaq::DesignSpec& d) { return learned.analytic().predict(d); });
    const double learned_err = mean_abs_rel([&](const ddaq::DesignSpec& d) { return learned.predict(d); });
    DOCTEST_MESSAGE("LUT mean |relative error|: analytic " << analytic_err << ", learned " << learned_err);
    DOCTEST_CHECK(learned_err < 0.5 * analytic_err);
    ddaq_test::TempDir dir;
    learned.save(dir.file("l.pt"));
    const ddaq::LearnedResourceModel loaded = ddaq::LearnedResourceModel::load(dir.file("l.pt"));
    DOCTEST_CHECK(loaded.predict(designs[5])[0] == learned.predict(designs[5])[0]);
    DOCTEST_CHECK_THROWS_AS(ddaq::LearnedResourceModel::load(dir.file("none.pt")), ddaq::Error);
  }
}
