#include <torch/torch.h>

#include <doctest/doctest.h>

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
    DOCTEST_CHECK_THROWS_WITH_AS(f.elinks_for_payload(147), "link budget: a payload of 147 bits exceeds the frame's 146 bits",
                                 ddaq::Error);
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

  DOCTEST_TEST_CASE("system view: lpGBT uplinks and bandwidth") {
    const auto s = ddaq::system_budget({{"inner", 1000, 5}, {"outer", 3000, 2}}, 230);
    DOCTEST_CHECK(s.modules == 4000);
    DOCTEST_CHECK(s.elinks == 11000);
    DOCTEST_CHECK(s.uplinks == 715 + 858);  // 7 e-links per 230-bit uplink
    DOCTEST_CHECK(s.bandwidth_tbps == doctest::Approx(11000 * 32 * 40e6 / 1e12));
    DOCTEST_CHECK_THROWS_AS(ddaq::system_budget({{"x", -1, 1}}), ddaq::Error);
  }

  DOCTEST_TEST_CASE("relaxed e-links follow the exact steps / the hinge is flat inside") {
    const ddaq::AutoencoderFrame f;
    for (int bits : {10, 30, 60, 100, 130}) {
      const torch::Tensor r = ddaq::relaxed_elinks(torch::tensor(static_cast<double>(bits)), f, 1.0);
      DOCTEST_CHECK(r.item<double>() == doctest::Approx(f.elinks_for_payload(bits)).epsilon(1e-3));
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
    const torch::Tensor links = ddaq::relaxed_elinks(16 * latent_bits.sum(), ddaq::AutoencoderFrame(), 4.0);
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
