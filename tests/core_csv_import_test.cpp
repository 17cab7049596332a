#include <doctest/doctest.h>

#include "ddaq/core/csv_import.h"
#include "ddaq/error.h"
#include "ddaq/core/events.h"
#include "test_support.h"

namespace {

std::vector<double> wafer(double base) {
  std::vector<double> w(48, 0.0);
  w[0] = base;
  w[47] = base + 1;
  w[13] = 2;
  return w;
}

// Imports `csv` and expects a ddaq::Error whose message is exactly `message`
// (with "FILE" replaced by the CSV's path), and no output file left.
void expect_rejected(const std::string& csv, const std::string& message) {
  ddaq_test::TempDir dir;
  const std::string in = dir.file("in.csv");
  ddaq_test::write_text(in, csv);
  std::string expected = message;
  const auto pos = expected.find("FILE");
  if (pos != std::string::npos) expected.replace(pos, 4, in);
  DOCTEST_CHECK_THROWS_WITH_AS(ddaq::import_calq_csv({in}, dir.file("out.h5")), expected.c_str(), ddaq::Error);
  DOCTEST_CHECK(dir.entries() == std::vector<std::string>{"in.csv"});
}

}  // namespace

DOCTEST_TEST_SUITE("csv import") {
  DOCTEST_TEST_CASE("good files: rows / per-file labels / provenance") {
    ddaq_test::TempDir dir;
    ddaq_test::write_text(dir.file("a.csv"), ddaq_test::calq_csv({wafer(3), wafer(10)}));
    ddaq_test::write_text(dir.file("b.csv"), ddaq_test::calq_csv({wafer(100)}) + "\n");
    const auto s = ddaq::import_calq_csv({dir.file("a.csv"), dir.file("b.csv")}, dir.file("o.h5"), {1, 0});
    DOCTEST_CHECK(s.events == 3);
    const ddaq::EventTable t = ddaq::EventFileReader(dir.file("o.h5")).read_all();
    DOCTEST_REQUIRE(t.size() == 3);
    DOCTEST_CHECK(t.calq[0] == 3.0f);
    DOCTEST_CHECK(t.calq[47] == 4.0f);
    DOCTEST_CHECK(t.calq[2 * 48] == 100.0f);
    DOCTEST_CHECK(t.label == std::vector<int32_t>{1, 1, 0});
    const auto attrs = ddaq::EventFileReader(dir.file("o.h5")).attributes();
    DOCTEST_CHECK(attrs.at("provenance").find("a.csv") != std::string::npos);
  }

  DOCTEST_TEST_CASE("columns are matched by name / in any order") {
    ddaq_test::TempDir dir;
    std::string csv;
    for (int i = 47; i >= 0; --i) csv += "CALQ_" + std::to_string(i) + (i ? "," : "\n");
    for (int i = 47; i >= 0; --i) csv += std::to_string(i) + (i ? "," : "\r\n");  // CRLF too
    ddaq_test::write_text(dir.file("r.csv"), csv);
    ddaq::import_calq_csv({dir.file("r.csv")}, dir.file("o.h5"));
    const ddaq::EventTable t = ddaq::EventFileReader(dir.file("o.h5")).read_all();
    for (int i = 0; i < 48; ++i) DOCTEST_CHECK(t.calq[i] == static_cast<float>(i));
    DOCTEST_CHECK_FALSE(t.has_labels());
  }

  DOCTEST_TEST_CASE("malformed input: one error naming file and line / no output") {
    const std::string header = ddaq_test::calq_csv({});
    std::string row47;
    for (int i = 0; i < 47; ++i) row47 += std::string(i ? "," : "") + "1";
    auto row_value = [](const std::string& v, int column = 2) {
      std::string r;
      for (int i = 0; i < 48; ++i) r += std::string(i ? "," : "") + (i == column ? v : "0");
      return r + "\n";
    };
    expect_rejected("", "FILE:1: empty file (expected a header CALQ_0..CALQ_47)");
    expect_rejected(header, "FILE:1: no events after the header");
    expect_rejected(header + row47 + "\n", "FILE:2: has 47 columns, expected 48");
    expect_rejected(header + row_value("0") + row_value("abc", 5), "FILE:3: column 6 is not a number: 'abc'");
    expect_rejected(header + row_value("-3"), "FILE:2: column 3 is a negative charge: '-3'");
    expect_rejected(header + row_value("nan"), "FILE:2: column 3 is not finite: 'nan'");
    expect_rejected(header + row_value("inf"), "FILE:2: column 3 is not finite: 'inf'");
    expect_rejected(header + row_value(""), "FILE:2: column 3 is not a number: ''");
    expect_rejected("a,b,c\n1,2,3\n", "FILE:1: header has 3 columns, expected 48 named CALQ_0..CALQ_47");
    std::string dup = header;
    dup.replace(dup.find("CALQ_1,"), 7, "CALQ_0,");
    expect_rejected(dup + row_value("1"), "FILE:1: header names CALQ_0 twice");
  }

  DOCTEST_TEST_CASE("unreadable path and bad label count") {
    ddaq_test::TempDir dir;
    DOCTEST_CHECK_THROWS_WITH_AS(ddaq::import_calq_csv({dir.file("nope.csv")}, dir.file("o.h5")),
                                 (dir.file("nope.csv") + ": cannot open (missing or unreadable)").c_str(),
                                 ddaq::Error);
    ddaq_test::write_text(dir.file("a.csv"), ddaq_test::calq_csv({wafer(3)}));
    DOCTEST_CHECK_THROWS_AS(ddaq::import_calq_csv({dir.file("a.csv")}, dir.file("o.h5"), {1, 0}), ddaq::Error);
    // A good first file and a bad second one: still no output.
    ddaq_test::write_text(dir.file("b.csv"), "oops\n");
    DOCTEST_CHECK_THROWS_AS(ddaq::import_calq_csv({dir.file("a.csv"), dir.file("b.csv")}, dir.file("o.h5")),
                            ddaq::Error);
    DOCTEST_CHECK_FALSE(ddaq_test::exists(dir.file("o.h5")));
    DOCTEST_CHECK(dir.entries().size() == 2);
  }
}
