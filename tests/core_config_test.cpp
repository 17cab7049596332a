#include <doctest/doctest.h>

#include "ddaq/core/config.h"
#include "ddaq/error.h"

DOCTEST_TEST_SUITE("config") {
  DOCTEST_TEST_CASE("values / defaults / sections") {
    const auto c = ddaq::Config::parse(R"({"name": "x", "data": {"events": 5, "mu": 40.5, "ok": true}})", "c.json");
    DOCTEST_CHECK(c.string("name", "") == "x");
    const auto d = c.section("data");
    DOCTEST_CHECK(d.integer("events", 0) == 5);
    DOCTEST_CHECK(d.number("mu", 0) == 40.5);
    DOCTEST_CHECK(d.number("events", 0) == 5.0);  // integers are numbers too
    DOCTEST_CHECK(d.boolean("ok", false));
    DOCTEST_CHECK(d.integer("missing", 7) == 7);
    DOCTEST_CHECK(c.section("absent").integer("a", 3) == 3);
  }

  DOCTEST_TEST_CASE("errors name the file and the dotted key") {
    const auto c = ddaq::Config::parse(R"({"data": {"events": "many", "evnts": 3, "n": -1}})", "c.json");
    DOCTEST_CHECK_THROWS_WITH_AS(c.section("data").integer("events", 0), "c.json: data.events: expected an integer, got \"many\"",
                                 ddaq::Error);
    DOCTEST_CHECK_THROWS_WITH_AS(c.section("data").integer("n", 0, 0), "c.json: data.n: -1 is outside [0, 9223372036854775807]",
                                 ddaq::Error);
    DOCTEST_CHECK_THROWS_WITH_AS(c.section("data").reject_unknown({"events", "n"}),
                                 "c.json: data.evnts: unknown key (known here: events, n)", ddaq::Error);
    DOCTEST_CHECK_THROWS_AS(ddaq::Config::parse("{\"a\": }", "bad.json"), ddaq::Error);
    DOCTEST_CHECK_THROWS_WITH_AS(ddaq::Config::parse("[1]", "arr.json"), "arr.json: the configuration must be a JSON object",
                                 ddaq::Error);
    DOCTEST_CHECK_THROWS_AS(ddaq::Config::load("/nonexistent/c.json"), ddaq::Error);
  }
}
