#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>

// doctest after the LibTorch headers (glog defines CHECK); short names off anyway.
#include <doctest/doctest.h>

#include "ddaq/error.h"
#include "ddaq/core/layouts.h"

DOCTEST_TEST_SUITE("layouts") {
  DOCTEST_TEST_CASE("8x8: positions follow the layout table / round trip is exact / mask has 48 ones") {
    const ddaq::CellLayout l = ddaq::CellLayout::image8x8();
    at::manual_seed(0);
    const at::Tensor x = at::rand({5, 48}, at::kDouble);
    const at::Tensor img = l.to_grid(x);
    DOCTEST_REQUIRE(img.sizes() == at::IntArrayRef({5, 1, 8, 8}));
    const auto& layout = ddaq::WaferGeometry::hgcal().layout8x8();
    for (int p = 0; p < 64; ++p)
      DOCTEST_CHECK(img[3][0][p / 8][p % 8].item<double>() == x[3][layout[p]].item<double>());
    DOCTEST_CHECK(at::equal(l.to_cells(img), x));
    DOCTEST_CHECK(l.mask().sum().item<float>() == 48.0f);
    DOCTEST_CHECK(l.mask()[0][7][7].item<float>() == 0.0f);  // lower right block repeats cells
    DOCTEST_CHECK(l.mask()[0][0][0].item<float>() == 1.0f);
  }

  DOCTEST_TEST_CASE("4x4x3: block4x4 gives channel / row / column / round trip both ways") {
    const ddaq::CellLayout l = ddaq::CellLayout::by_name("4x4x3");
    const at::Tensor x = at::arange(48, at::kFloat).unsqueeze(0);
    const at::Tensor g = l.to_grid(x);
    DOCTEST_REQUIRE(g.sizes() == at::IntArrayRef({1, 3, 4, 4}));
    for (const auto& c : ddaq::WaferGeometry::hgcal().cells()) {
      const int p = c.block4x4;
      DOCTEST_CHECK(g[0][p / 16][(p % 16) / 4][p % 4].item<float>() == static_cast<float>(c.tc));
    }
    DOCTEST_CHECK(at::equal(l.to_cells(g), x));
    const at::Tensor grid = at::rand({2, 3, 4, 4});
    DOCTEST_CHECK(at::equal(l.to_grid(l.to_cells(grid)), grid));  // a bijection here
    DOCTEST_CHECK(l.mask().sum().item<float>() == 48.0f);
  }

  DOCTEST_TEST_CASE("gradients flow through both directions") {
    for (const char* name : {"8x8", "4x4x3"}) {
      const ddaq::CellLayout l = ddaq::CellLayout::by_name(name);
      const at::Tensor x = at::rand({4, 48}, at::kDouble).requires_grad_(true);
      const at::Tensor w = at::rand({4, 48}, at::kDouble);
      // d/dx sum(to_cells(to_grid(x)) * w) = w
      const at::Tensor y = (l.to_cells(l.to_grid(x)) * w).sum();
      const auto grads = torch::autograd::grad({y}, {x});
      DOCTEST_CHECK(at::allclose(grads[0], w));
      // d/dx sum(to_grid(x) * mask) = 1 for every cell (each cell once unmasked)
      const at::Tensor z = (l.to_grid(x) * l.mask().to(at::kDouble)).sum();
      const auto gz = torch::autograd::grad({z}, {x});
      DOCTEST_CHECK(at::allclose(gz[0], at::ones_like(x)));
    }
  }

  DOCTEST_TEST_CASE("wrong shapes and names are errors") {
    DOCTEST_CHECK_THROWS_AS(ddaq::CellLayout::by_name("9x9"), ddaq::Error);
    DOCTEST_CHECK_THROWS_AS(ddaq::CellLayout::image8x8().to_grid(at::zeros({2, 47})), ddaq::Error);
    DOCTEST_CHECK_THROWS_AS(ddaq::CellLayout::image8x8().to_cells(at::zeros({2, 3, 4, 4})), ddaq::Error);
  }
}
