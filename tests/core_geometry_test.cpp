#include <doctest/doctest.h>

#include <set>

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

  DOCTEST_TEST_CASE("malformed tables are rejected with file and line") {
    const std::string layout = "0,1,2,3,4,5,6,7\n";
    DOCTEST_CHECK_THROWS_WITH_AS(ddaq::WaferGeometry::parse("tc,u,v\n", layout, "g.csv"),
                                 "g.csv:1: expected header tc,u,v,x_cm,y_cm,block4x4", ddaq::Error);
    DOCTEST_CHECK_THROWS_AS(ddaq::WaferGeometry::parse("tc,u,v,x_cm,y_cm,block4x4\n0,1,2,x,0,0\n", layout, "g"),
                            ddaq::Error);
  }
}
