#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <vector>

#include "ddaq/error.h"
#include "ddaq/core/geometry.h"

DOCTEST_TEST_SUITE("geometry") {
  DOCTEST_TEST_CASE("embedded HGCAL table: 48 cells / their 8x8 and 4x4x3 positions") {
    const ddaq::WaferGeometry& g = ddaq::WaferGeometry::hgcal();
    DOCTEST_CHECK(g.trigger_cell_pitch_cm() == doctest::Approx(2.4168015).epsilon(1e-6));
    std::set<int> blocks;
    for (const auto& c : g.cells()) blocks.insert(c.block4x4);
    DOCTEST_CHECK(blocks.size() == 48);
    DOCTEST_CHECK(g.cell(1).y_cm == doctest::Approx(-2.4168015));
    int used = 0;
    for (int p = 0; p < 64; ++p) used += g.mask8x8()[p];
    DOCTEST_CHECK(used == 48);
    // The lower-right 4x4 block repeats cells 32..47 and is masked.
    for (int r = 4; r < 8; ++r)
      for (int c = 4; c < 8; ++c) {
        DOCTEST_CHECK_FALSE(g.mask8x8()[r * 8 + c]);
        DOCTEST_CHECK(g.layout8x8()[r * 8 + c] >= 32);
      }
    for (int tc = 0; tc < 48; ++tc) DOCTEST_CHECK(g.layout8x8()[g.image8x8_position()[tc]] == tc);
  }

  // Independent of ../shared: physical properties any correct table of the
  // 8-inch HGCAL wafer's trigger cells has. Its three sectors make it
  // symmetric under a 120 degree rotation about its centre (not 60 or 180);
  // cells do not overlap (no two centres closer than 0.9 pitch); neighbours
  // (within 1.05 pitch) connect all 48 cells, each to 2..6 others.
  DOCTEST_TEST_CASE("embedded HGCAL table: three-fold symmetric, no overlaps, one connected wafer") {
    const double pitch = 2.4168015;
    const auto& cells = ddaq::WaferGeometry::hgcal().cells();
    DOCTEST_REQUIRE(cells.size() == 48);
    double cx = 0, cy = 0;
    for (const auto& c : cells) cx += c.x_cm / 48, cy += c.y_cm / 48;
    auto worst_match = [&](double degrees) {  // largest distance of a rotated cell to its nearest cell
      const double t = degrees * M_PI / 180, ct = std::cos(t), st = std::sin(t);
      double worst = 0;
      for (const auto& c : cells) {
        const double x = cx + ct * (c.x_cm - cx) - st * (c.y_cm - cy), y = cy + st * (c.x_cm - cx) + ct * (c.y_cm - cy);
        double best = 1e9;
        for (const auto& o : cells) best = std::min(best, std::hypot(x - o.x_cm, y - o.y_cm));
        worst = std::max(worst, best);
      }
      return worst / pitch;
    };
    DOCTEST_CHECK(worst_match(120) < 1e-4);
    DOCTEST_CHECK(worst_match(240) < 1e-4);
    DOCTEST_CHECK(worst_match(60) > 0.1);
    DOCTEST_CHECK(worst_match(180) > 0.1);
    std::vector<std::vector<int>> neighbours(48);
    for (int i = 0; i < 48; ++i)
      for (int j = i + 1; j < 48; ++j) {
        const double d = std::hypot(cells[i].x_cm - cells[j].x_cm, cells[i].y_cm - cells[j].y_cm) / pitch;
        DOCTEST_INFO("cells " << i << ", " << j << " at " << d << " pitches");
        DOCTEST_CHECK(d > 0.9);
        if (d < 1.05) neighbours[i].push_back(j), neighbours[j].push_back(i);
      }
    std::vector<int> seen(48, 0), todo = {0};
    seen[0] = 1;
    while (!todo.empty()) {
      const int c = todo.back();
      todo.pop_back();
      DOCTEST_CHECK(neighbours[c].size() >= 2);
      DOCTEST_CHECK(neighbours[c].size() <= 6);
      for (int n : neighbours[c])
        if (!seen[n]) seen[n] = 1, todo.push_back(n);
    }
    DOCTEST_CHECK(std::count(seen.begin(), seen.end(), 1) == 48);
  }

  DOCTEST_TEST_CASE("malformed tables are rejected with file and line") {
    const std::string layout = "0,1,2,3,4,5,6,7\n";
    DOCTEST_CHECK_THROWS_WITH_AS(ddaq::WaferGeometry::parse("tc,u,v\n", layout, "g.csv"),
                                 "g.csv:1: expected header tc,u,v,x_cm,y_cm,block4x4", ddaq::Error);
    DOCTEST_CHECK_THROWS_AS(ddaq::WaferGeometry::parse("tc,u,v,x_cm,y_cm,block4x4\n0,1,2,x,0,0\n", layout, "g"),
                            ddaq::Error);
  }
}
