#include <torch/torch.h>

#include <doctest/doctest.h>

#include <cmath>

#include "ddaq/core/random.h"
#include "ddaq/error.h"
#include "ddaq/quant/integer_reference.h"
#include "ddaq/quant/layers.h"

using ddaq::FixedPointType;
using ddaq::Overflow;
using ddaq::Rounding;

namespace {

// Random stack: input quantizer, then a random mix of layers with random types.
ddaq::QuantizedStack random_stack(ddaq::Rng& rng, bool learnable, bool prune) {
  auto rtype = [&](int wmin, int wmax, bool sat_only = false) {
    const int w = wmin + static_cast<int>(rng.below(wmax - wmin + 1));
    const int i = static_cast<int>(rng.below(5)) - 1;
    return FixedPointType(w, i, true, static_cast<Rounding>(rng.below(3)),
                          sat_only ? Overflow::SAT : static_cast<Overflow>(rng.below(3)));
  };
  auto wopt = [&](ddaq::Granularity g) {
    return ddaq::QuantizerOptions(rtype(3, 8)).learnable(learnable).granularity(g);
  };
  const int kind = static_cast<int>(rng.below(3));
  ddaq::QuantizedStack s(std::vector<int64_t>{2, 6, 6});
  s->input(rtype(6, 10));
  const auto g = static_cast<ddaq::Granularity>(rng.below(3));
  if (kind == 0) {  // conv -> relu -> dense
    s->conv(ddaq::QConvOptions(2, 4, 3).stride(1 + rng.below(2)).padding(rng.below(2)).weight(wopt(g))
                .batchnorm(rng.below(2) == 0).output(rtype(8, 14)));
    s->relu(FixedPointType(8, 4, false, Rounding::RND, Overflow::SAT));
    s->dense(ddaq::QLinearOptions(ddaq::elements(s->output_shape()), 5).weight(wopt(g)).output(rtype(10, 16)));
  } else if (kind == 1) {  // dense -> relu -> dense
    s->dense(ddaq::QLinearOptions(72, 7).weight(wopt(g)).output(rtype(8, 14)));
    s->relu(rtype(6, 10, true));
    s->dense(ddaq::QLinearOptions(7, 3).weight(wopt(g)).bias(rng.below(2) == 0).output(rtype(8, 16)));
  } else {  // conv stride 2 -> relu -> conv-transpose
    s->conv(ddaq::QConvOptions(2, 3, 3).stride(2).padding(1).weight(wopt(g)).output(rtype(8, 14)));
    s->relu(FixedPointType(9, 4, false, Rounding::TRN, Overflow::SAT));
    s->conv(ddaq::QConvOptions(3, 2, 3).stride(2).padding(1).output_padding(1).transposed(true).weight(wopt(g))
                .output(rtype(10, 16)));
  }
  // Train-mode passes set BatchNorm statistics and learned ranges.
  s->train();
  for (int k = 0; k < 3; ++k) s->forward(torch::randn({16, 2, 6, 6}) * 2);
  if (prune) s->prune_to(0.4);
  s->eval();
  return s;
}

}  // namespace

DOCTEST_TEST_SUITE("quantized layers") {
  DOCTEST_TEST_CASE("the fake quantizer equals FixedPointType::quantize element by element") {
    ddaq::Rng rng(5);
    for (int trial = 0; trial < 60; ++trial) {
      const FixedPointType t(1 + static_cast<int>(rng.below(12)), static_cast<int>(rng.below(8)) - 2, rng.below(2) == 0,
                             static_cast<Rounding>(rng.below(3)), static_cast<Overflow>(rng.below(3)));
      ddaq::FixedPointQuantizer q(ddaq::QuantizerOptions(t), std::vector<int64_t>{50}, true);
      const torch::Tensor x = (torch::rand({4, 50}, torch::kDouble) - 0.5) * 40;
      const torch::Tensor y = q->forward(x);
      const auto xa = x.accessor<double, 2>();
      const auto ya = y.accessor<double, 2>();
      for (int i = 0; i < 4; ++i)
        for (int j = 0; j < 50; ++j) DOCTEST_REQUIRE(ya[i][j] == t.quantize(xa[i][j]));
    }
  }

  DOCTEST_TEST_CASE("straight-through gradients: 1 inside the range / 0 outside") {
    ddaq::FixedPointQuantizer q(ddaq::QuantizerOptions(FixedPointType(4, 2, true, Rounding::RND, Overflow::SAT)),
                                std::vector<int64_t>{4}, true);
    const torch::Tensor x = torch::tensor({{-3.0, -0.4, 1.2, 5.0}}).requires_grad_(true);
    q->forward(x).sum().backward();
    DOCTEST_CHECK(torch::equal(x.grad(), torch::tensor({{0.0, 1.0, 1.0, 0.0}}).to(torch::kFloat)));
  }

  DOCTEST_TEST_CASE("learnable bits: HGQ surrogate gradient / bits reach EBOPs / zero width prunes") {
    ddaq::FixedPointQuantizer q(
        ddaq::QuantizerOptions(FixedPointType(6, 2)).learnable(true).granularity(ddaq::Granularity::PerElement),
        std::vector<int64_t>{3}, false);
    const torch::Tensor w = torch::tensor({0.3, -0.71, 1.26});
    const torch::Tensor y = q->forward(w);
    y.sum().backward();
    const torch::Tensor f = q->named_parameters()["fractional_bits"];
    const torch::Tensor expected = -std::log(2.0) * (y.detach() - w);
    DOCTEST_CHECK(torch::allclose(f.grad(), expected, 1e-6, 1e-7));
    const torch::Tensor b = q->bits();
    DOCTEST_CHECK(b.requires_grad());
    // Integer bits follow the range: |1.26| < 2 -> 1 + sign = 2 bits; width = 2 + 4.
    DOCTEST_CHECK(b[2].item<double>() == 6.0);
    {
      torch::NoGradGuard no_grad;
      f.fill_(-5.0);  // widths <= 0 everywhere
    }
    DOCTEST_CHECK(torch::equal(q->forward(w), torch::zeros({3})));
  }

  DOCTEST_TEST_CASE("EBOPs are differentiable in the weight bits") {
    ddaq::QuantizedStack s(std::vector<int64_t>{8});
    s->input(FixedPointType(8, 3));
    s->dense(ddaq::QLinearOptions(8, 4).weight(ddaq::QuantizerOptions(FixedPointType(6, 1)).learnable(true)));
    s->forward(torch::randn({4, 8}));
    const torch::Tensor e = s->ebops();
    e.backward();
    bool reached = false;
    for (const auto& p : s->named_parameters())
      if (p.key().find("fractional_bits") != std::string::npos && p.value().grad().defined())
        reached = reached || p.value().grad().abs().sum().item<double>() > 0;
    DOCTEST_CHECK(reached);
    DOCTEST_CHECK(e.item<double>() > 0);
  }

  DOCTEST_TEST_CASE("integer reference equals the float64 fake-quantized forward bit for bit (random stacks)") {
    ddaq::Rng rng(11);
    torch::manual_seed(11);
    int64_t compared = 0, nonzero = 0, values = 0;
    for (int trial = 0; trial < 24; ++trial) {
      const bool learnable = trial % 3 == 1, prune = trial % 2 == 1;
      ddaq::QuantizedStack s = random_stack(rng, learnable, prune);
      const ddaq::ModelDescription model = s->describe();
      const ddaq::IntegerReference reference(model);
      const int64_t n = trial < 6 ? 2500 : 300;  // 10,000+ inputs in all
      const torch::Tensor x = torch::randn({n, 2, 6, 6}, torch::kDouble) * 3;
      torch::Tensor y;
      {
        torch::NoGradGuard no_grad;
        y = s->forward(x).reshape({n, -1}).contiguous();
      }
      // prune_to() never prunes the last layer (its outputs are the interface).
      const int64_t outs = ddaq::elements(model.back().output_shape);
      DOCTEST_REQUIRE(outs == y.size(1));
      const auto xa = x.reshape({n, -1}).contiguous();
      int64_t mismatches = 0;
      for (int64_t i = 0; i < n; ++i) {
        std::vector<double> in(xa[i].data_ptr<double>(), xa[i].data_ptr<double>() + xa.size(1));
        const auto out = reference.run(in);
        const double* yr = y[i].data_ptr<double>();
        for (int64_t k = 0; k < outs; ++k) {
          mismatches += out[k] != yr[k];
          nonzero += out[k] != 0.0;
        }
        ++compared;
      }
      values += n * outs;
      DOCTEST_INFO("trial " << trial);
      DOCTEST_CHECK(mismatches == 0);
    }
    DOCTEST_CHECK(compared >= 10000);
    DOCTEST_MESSAGE("non-zero outputs: " << nonzero << " of " << values);
    DOCTEST_CHECK(nonzero > values / 4);  // not a trivially zero comparison
  }

  DOCTEST_TEST_CASE("pruning: magnitude masks / schedule reaches its target / physical removal shrinks the next layer") {
    ddaq::PolynomialSchedule schedule{0.0, 0.75, 10, 110, 3.0};
    DOCTEST_CHECK(schedule.at(0) == 0.0);
    DOCTEST_CHECK(schedule.at(110) == 0.75);
    DOCTEST_CHECK(schedule.at(60) > 0.6);
    double last = 0;
    for (int64_t t = 0; t <= 120; ++t) {
      DOCTEST_REQUIRE(schedule.at(t) >= last);
      last = schedule.at(t);
    }
    torch::manual_seed(3);
    ddaq::QuantizedStack s(std::vector<int64_t>{16});
    s->input(FixedPointType(10, 4));
    s->dense(ddaq::QLinearOptions(16, 12).output(FixedPointType(12, 5, true, Rounding::TRN, Overflow::SAT)));
    s->relu(FixedPointType(10, 4, false, Rounding::TRN, Overflow::SAT));
    s->dense(ddaq::QLinearOptions(12, 3));
    torch::optim::Adam opt(s->parameters(), 1e-2);
    for (int64_t step = 0; step <= 120; ++step) {
      s->prune_to(schedule.at(step));
      opt.zero_grad();
      const torch::Tensor x = torch::randn({32, 16});
      (s->forward(x) - x.narrow(1, 0, 3)).pow(2).mean().add(1e-4 * s->group_lasso()).backward();
      opt.step();
    }
    DOCTEST_CHECK(s->layers()[1]->sparsity() == doctest::Approx(0.75));
    const auto model = s->describe();
    DOCTEST_CHECK(model[1].output_shape[0] == 3);  // 12 units, 9 pruned
    DOCTEST_CHECK(model[2].input_shape[0] == 3);
    DOCTEST_CHECK(model[3].weight_shape == std::vector<int64_t>{3, 3});
  }

  DOCTEST_TEST_CASE("learned gates: a penalty closes gates and export removes those units") {
    torch::manual_seed(5);
    ddaq::QuantizedStack s(std::vector<int64_t>{10});
    s->input(FixedPointType(10, 4));
    s->dense(ddaq::QLinearOptions(10, 16).pruning(ddaq::PruningOptions().gates(true)));
    s->relu(FixedPointType(10, 4, false, Rounding::TRN, Overflow::SAT));
    s->dense(ddaq::QLinearOptions(16, 2));
    torch::optim::Adam opt(s->parameters(), 2e-2);
    const double before = s->gate_penalty().item<double>();
    for (int step = 0; step < 150; ++step) {
      opt.zero_grad();
      const torch::Tensor x = torch::randn({64, 10});
      // Target uses 2 inputs only: most hidden units are dispensable.
      const torch::Tensor target = torch::stack({x.select(1, 0), x.select(1, 1)}, 1).relu();
      ((s->forward(x) - target).pow(2).mean() + 0.003 * s->gate_penalty()).backward();
      opt.step();
    }
    s->eval();
    DOCTEST_CHECK(s->gate_penalty().item<double>() < before);
    const double sparsity = s->layers()[1]->sparsity();
    DOCTEST_CHECK(sparsity > 0.0);  // some gates closed (2 of 16 with this seed)
    const auto model = s->describe();
    DOCTEST_CHECK(model[1].output_shape[0] == static_cast<int64_t>(std::lround(16 * (1 - sparsity))));
    DOCTEST_CHECK(model[3].input_shape[0] == model[1].output_shape[0]);
    // The exported model still computes what the gated stack computes.
    const ddaq::IntegerReference reference(model);
    const torch::Tensor x = torch::randn({50, 10}, torch::kDouble);
    torch::Tensor y;
    {
      torch::NoGradGuard no_grad;
      y = s->forward(x);
    }
    for (int64_t i = 0; i < 50; ++i) {
      std::vector<double> in(x[i].data_ptr<double>(), x[i].data_ptr<double>() + 10);
      const auto out = reference.run(in);
      DOCTEST_CHECK(out[0] == y[i][0].item<double>());
      DOCTEST_CHECK(out[1] == y[i][1].item<double>());
    }
  }

  DOCTEST_TEST_CASE(
      "raise_silent_units: silent units fire on at least half the events after it, the rest are untouched") {
    torch::manual_seed(7);
    ddaq::QuantizedStack s(std::vector<int64_t>{1, 6, 6});
    s->input(FixedPointType(10, 3, false));
    s->conv(ddaq::QConvOptions(1, 4, 3).output(FixedPointType(16, 6)));
    s->relu(FixedPointType(8, 3, false, Rounding::RND, Overflow::SAT));  // smallest step 1/32
    s->dense(ddaq::QLinearOptions(64, 12).pruning(ddaq::PruningOptions().gates(true)).output(FixedPointType(16, 6)));
    s->relu(FixedPointType(3, 2, false, Rounding::RND, Overflow::SAT));  // 0.5: as the ECON-T latent
    const auto conv = s->layers()[1], dense = s->layers()[3];
    auto param = [](const std::shared_ptr<ddaq::QLayerImpl>& l, const char* name) {
      return l->named_parameters(false)[name];
    };
    {
      torch::NoGradGuard no_grad;
      param(conv, "bias")[0] = -3.0;                     // a silent filter
      param(dense, "bias").narrow(0, 0, 4).fill_(-6.0);  // silent latents
      param(dense, "bias")[4] = 2.0;                     // a live one
      param(dense, "gate_logits")[11] = -5.0;            // a closed gate: not sent, left alone
    }
    const torch::Tensor x = torch::rand({2000, 1, 6, 6}) * 2.0;  // non-negative, as charges are
    auto fires = [&](int64_t upto) {                             // per unit: share of outputs > 0 after layer `upto`
      torch::NoGradGuard no_grad;
      s->eval();
      torch::Tensor h = x;
      for (int64_t i = 0; i <= upto; ++i) h = s->layers()[static_cast<size_t>(i)]->forward(h);
      return (h > 0).to(torch::kDouble).transpose(0, 1).reshape({h.size(1), -1}).mean(1);
    };
    DOCTEST_REQUIRE(fires(2)[0].item<double>() < 0.01);
    DOCTEST_REQUIRE(fires(4).narrow(0, 0, 4).max().item<double>() < 0.01);
    const torch::Tensor conv_bias = param(conv, "bias").detach().clone();
    const torch::Tensor dense_bias = param(dense, "bias").detach().clone();
    s->train();
    const int64_t raised = s->raise_silent_units(x);
    DOCTEST_CHECK(s->is_training());  // mode restored
    const torch::Tensor conv_after = fires(2), dense_after = fires(4);
    DOCTEST_CHECK(conv_after.min().item<double>() >= 0.45);
    for (int64_t u = 0; u < 11; ++u) DOCTEST_CHECK(dense_after[u].item<double>() >= 0.45);
    DOCTEST_CHECK(dense_after[11].item<double>() == 0.0);
    // Only silent units moved, only upwards; the count is theirs.
    const torch::Tensor dc = param(conv, "bias").detach() - conv_bias, dd = param(dense, "bias").detach() - dense_bias;
    DOCTEST_CHECK((dc >= 0).all().item<bool>());
    DOCTEST_CHECK((dd >= 0).all().item<bool>());
    DOCTEST_CHECK(dc[0].item<double>() > 0);
    DOCTEST_CHECK(dd.narrow(0, 0, 4).min().item<double>() > 0);
    DOCTEST_CHECK(dd[4].item<double>() == 0.0);
    DOCTEST_CHECK(dd[11].item<double>() == 0.0);
    DOCTEST_CHECK(raised == (dc != 0).sum().item<int64_t>() + (dd != 0).sum().item<int64_t>());
    // Running it again finds nothing silent.
    DOCTEST_CHECK(s->raise_silent_units(x) == 0);
  }

  DOCTEST_TEST_CASE("raise_silent_units: a learned ReLU width counts, per unit (a narrowed latent is raised)") {
    // After a budget's projection a latent may keep only a coarse step: its
    // outputs then round to zero although they are far above the configured
    // type's step. The raise must measure against the step forward uses.
    torch::manual_seed(3);
    ddaq::QuantizedStack s(std::vector<int64_t>{8});
    s->input(FixedPointType(10, 3, false));
    s->dense(ddaq::QLinearOptions(8, 4).output(FixedPointType(16, 6)));
    s->relu(ddaq::QuantizerOptions(FixedPointType(9, 1, false, Rounding::RND, Overflow::SAT))
                .learnable(true)
                .granularity(ddaq::Granularity::PerChannel)
                .shared_integer_bits(true));  // configured step 1/256
    const auto dense = s->layers()[1];
    const torch::Tensor x = torch::rand({2000, 8}) * 0.01;  // the weights barely matter: the bias sets each unit
    {
      torch::NoGradGuard no_grad;
      dense->named_parameters(false)["bias"].copy_(torch::tensor({0.1, 0.1, 0.1, 1.0}));
    }
    s->train();
    s->forward(x);  // the ReLU's ranges (integer bits) from what it sees
    s->layers()[2]->output_quantizer()->set_fractional_bits(torch::tensor({8.0, 8.0, 1.0, 1.0}), true);
    auto fires = [&] {
      torch::NoGradGuard no_grad;
      s->eval();
      return (s->forward(x) > 0).to(torch::kDouble).mean(0);
    };
    DOCTEST_REQUIRE(fires()[2].item<double>() < 0.01);  // 0.1 rounds to 0 with step 1/2
    DOCTEST_REQUIRE(fires()[0].item<double>() > 0.99);  // and fires with step 1/256
    const torch::Tensor before = dense->named_parameters(false)["bias"].detach().clone();
    DOCTEST_CHECK(s->raise_silent_units(x) == 1);
    const torch::Tensor after = fires();
    DOCTEST_CHECK(after[2].item<double>() >= 0.45);
    const torch::Tensor moved = dense->named_parameters(false)["bias"].detach() != before;
    DOCTEST_CHECK(moved.sum().item<int64_t>() == 1);
    DOCTEST_CHECK(moved[2].item<bool>());
  }

  DOCTEST_TEST_CASE("per-element widths (shared integer bits): one type plus a truncation, on each element's grid") {
    torch::manual_seed(21);
    ddaq::QuantizedStack s(std::vector<int64_t>{10});
    s->input(FixedPointType(9, 3, false, Rounding::TRN, Overflow::SAT));
    s->dense(ddaq::QLinearOptions(10, 8).pruning(ddaq::PruningOptions().gates(true)));
    s->relu(ddaq::QuantizerOptions(FixedPointType(6, 3, false, Rounding::TRN, Overflow::SAT))
                .learnable(true)
                .granularity(ddaq::Granularity::PerChannel)
                .shared_integer_bits(true)
                .min_fractional(-4)
                .max_fractional(4));
    s->train();
    const torch::Tensor seen = torch::rand({256, 10}) * 6;
    s->forward(seen);
    double largest = 0;  // the largest latent the quantizer saw (train mode: soft gates)
    {
      torch::NoGradGuard no_grad;
      largest = torch::relu(s->layers()[1]->forward(s->layers()[0]->forward(seen))).max().item<double>();
    }
    const std::vector<double> set{4, 3, 2, 1, 0, -1, -9, 2.4};  // -9 clamps to -4, 2.4 rounds to 2
    const std::vector<int> expect{4, 3, 2, 1, 0, -1, -4, 2};
    auto q = s->layers().back()->output_quantizer();
    q->set_fractional_bits(torch::tensor(set).view({1, 8}), /*freeze_range=*/true);
    s->layers()[1]->keep_strongest_units(7);  // one latent not sent
    const std::vector<int64_t> kept = s->layers()[1]->kept_unit_indices();
    DOCTEST_REQUIRE(kept.size() == 7);
    s->eval();
    const ddaq::ModelDescription model = s->describe();
    const ddaq::LayerDescription& relu = model.back();
    // The range seen decides the shared integer bits: floor(log2 max) + 1.
    DOCTEST_CHECK(relu.output_type.integer == static_cast<int>(std::floor(std::log2(largest))) + 1);
    DOCTEST_CHECK(relu.output_type.fractional() == 4);
    DOCTEST_REQUIRE(relu.channel_fractional.size() == 7);
    for (size_t k = 0; k < kept.size(); ++k) DOCTEST_CHECK(relu.channel_fractional[k] == expect[kept[k]]);
    const int I = relu.output_type.integer;
    const ddaq::IntegerReference reference(model);
    const int64_t n = 2000;
    const torch::Tensor x = torch::rand({n, 10}, torch::kDouble) * 8;
    torch::Tensor y;
    {
      torch::NoGradGuard no_grad;
      y = s->forward(x).contiguous();
    }
    int64_t mismatches = 0, off_grid = 0, nonzero = 0;
    for (int64_t i = 0; i < n; ++i) {
      std::vector<double> in(x[i].data_ptr<double>(), x[i].data_ptr<double>() + 10);
      const auto out = reference.run(in);
      for (size_t k = 0; k < kept.size(); ++k) {
        const double v = out[k];
        mismatches += v != y[i][kept[k]].item<double>();
        // Independently: element k holds multiples of 2^-f in [0, 2^I - 2^-f];
        // width I + f <= 0 holds only 0.
        const int f = expect[kept[k]];
        const double step = std::ldexp(1.0, -f);
        const bool on_grid = I + f <= 0 ? v == 0.0
                                         : std::floor(v / step) * step == v && v >= 0 && v <= std::ldexp(1.0, I) - step;
        off_grid += !on_grid;
        nonzero += v != 0.0;
      }
    }
    DOCTEST_CHECK(mismatches == 0);
    DOCTEST_CHECK(off_grid == 0);
    DOCTEST_CHECK(nonzero > n);  // not a trivially zero comparison
    // Bits per element as the payload counts them.
    for (size_t k = 0; k < kept.size(); ++k)
      DOCTEST_CHECK(ddaq::channel_width(relu, static_cast<int64_t>(k)) == std::max(0, I + expect[kept[k]]));
  }

  DOCTEST_TEST_CASE("export refuses what it cannot represent exactly") {
    ddaq::QuantizedStack s(std::vector<int64_t>{4});
    s->input(ddaq::QuantizerOptions(FixedPointType(8, 3)).learnable(true).granularity(ddaq::Granularity::PerElement));
    s->dense(ddaq::QLinearOptions(4, 2));
    s->forward(torch::randn({3, 4}));
    DOCTEST_CHECK_THROWS_AS(s->describe(), ddaq::Error);
    ddaq::QuantizedStack t(std::vector<int64_t>{4});
    DOCTEST_CHECK_THROWS_AS(t->dense(ddaq::QLinearOptions(5, 2)), ddaq::Error);
  }
}
