// The sweep's plan (budget axes, the grid, the SLURM script) and the PNG
// charts, without training (the command itself: cli_test.cpp).
#include <doctest/doctest.h>
#include <gd.h>

#include <cmath>
#include <cstdlib>
#include <set>

#include "ddaq/core/plot.h"
#include "ddaq/core/sweep.h"
#include "ddaq/error.h"
#include "test_support.h"

namespace {

bool has_color(gdImagePtr im, uint32_t rgb) {
  for (int y = 0; y < gdImageSY(im); ++y)
    for (int x = 0; x < gdImageSX(im); ++x)
      if (static_cast<uint32_t>(gdImageGetTrueColorPixel(im, x, y) & 0xffffff) == rgb) return true;
  return false;
}

}  // namespace

DOCTEST_TEST_SUITE("sweep") {
  DOCTEST_TEST_CASE("budget axes: values kept verbatim, bad specs named") {
    const ddaq::BudgetAxis a = ddaq::parse_budget_axis("lut=40000,1.5e5");
    DOCTEST_CHECK(a.name == "lut");
    DOCTEST_CHECK(a.values == std::vector<std::string>{"40000", "1.5e5"});
    for (const char* bad : {"elinks", "=3", "elinks=", "elinks=2,", "elinks=2,,3", "elinks=0", "elinks=-1",
                            "elinks=nan", "elinks=2,2.0", "el/inks=2"})
      DOCTEST_CHECK_THROWS_AS(ddaq::parse_budget_axis(bad), ddaq::Error);
    DOCTEST_CHECK_THROWS_WITH_AS(ddaq::parse_budget_axis("elinks=2,x"),
                                 "--budget 'elinks=2,x': 'x' is not a finite number > 0", ddaq::Error);
  }

  DOCTEST_TEST_CASE("the grid: every combination once, first axis slowest, distinct names") {
    ddaq::SweepPlan plan;
    plan.dir = "/s";
    plan.axes = {ddaq::parse_budget_axis("elinks=2,3,4"), ddaq::parse_budget_axis("lut=1e5,2e5")};
    const auto pts = plan.points();
    DOCTEST_REQUIRE(pts.size() == 6);
    std::set<std::string> names, combos;
    for (const auto& p : pts) {
      names.insert(p.name);
      DOCTEST_REQUIRE(p.budgets.size() == 2);
      combos.insert(p.budgets[0].second + "/" + p.budgets[1].second);
      DOCTEST_CHECK(p.run == "/s/runs/" + p.name);
    }
    DOCTEST_CHECK(names.size() == 6);
    DOCTEST_CHECK(combos.size() == 6);
    DOCTEST_CHECK(pts[0].name == "elinks2_lut1e5");
    DOCTEST_CHECK(pts[1].name == "elinks2_lut2e5");
    DOCTEST_CHECK(pts[2].budgets[0].second == "3");
    const auto train = plan.train_command(pts[1], "/bin/ddaq", false);
    DOCTEST_CHECK(train.back() == "--overwrite");
    DOCTEST_CHECK(plan.train_command(pts[1], "/bin/ddaq", true).back() == "--resume");
    int budget_flags = 0;
    for (size_t i = 0; i + 1 < train.size(); ++i)
      if (train[i] == "--budget") budget_flags += train[i + 1] == "elinks=2" || train[i + 1] == "lut=2e5";
    DOCTEST_CHECK(budget_flags == 2);
  }

  DOCTEST_TEST_CASE("the SLURM script: one task per point, valid bash, names quoted") {
    ddaq_test::TempDir dir;
    ddaq::SweepPlan plan;
    plan.dir = dir.file("it's here");  // a quote in the path: the script must still parse
    plan.config = "/c.json";
    plan.train_file = "/t.h5";
    plan.test_file = "/e.h5";
    plan.axes = {ddaq::parse_budget_axis("elinks=2,3,4,5")};
    const std::string s = ddaq::slurm_script(plan, "/bin/ddaq", 4);
    DOCTEST_CHECK(s.find("#SBATCH --array=0-3\n") != std::string::npos);
    DOCTEST_CHECK(s.find("#SBATCH --cpus-per-task=4\n") != std::string::npos);
    ddaq_test::write_text(dir.file("s.sh"), s);
    DOCTEST_CHECK(std::system(("bash -n '" + dir.file("s.sh") + "'").c_str()) == 0);
    // Task 7 does not exist: the script says so and fails before running anything.
    DOCTEST_CHECK(std::system(("SLURM_ARRAY_TASK_ID=7 bash '" + dir.file("s.sh") + "' 2>/dev/null").c_str()) != 0);
  }

  DOCTEST_TEST_CASE("nice ticks cover the range with 1, 2 or 5 x 10^k steps") {
    for (const auto& r : std::vector<std::pair<double, double>>{
             {0, 1}, {0.93, 4.17}, {111367, 222893}, {-3, 7}, {1e-4, 3e-4}, {21.5, 26.4}}) {
      const std::vector<double> t = ddaq::nice_ticks(r.first, r.second);
      DOCTEST_INFO(r.first << ".." << r.second);
      DOCTEST_REQUIRE(t.size() >= 2);
      DOCTEST_CHECK(t.front() <= r.first);
      DOCTEST_CHECK(t.back() >= r.second);
      DOCTEST_CHECK(t.size() <= 12);
      const double step = t[1] - t[0];
      const double mantissa = step / std::pow(10.0, std::floor(std::log10(step) + 1e-9));
      DOCTEST_CHECK(
          (std::fabs(mantissa - 1) < 1e-6 || std::fabs(mantissa - 2) < 1e-6 || std::fabs(mantissa - 5) < 1e-6));
      for (size_t i = 1; i < t.size(); ++i)
        DOCTEST_CHECK(std::fabs(t[i] - t[i - 1] - step) < 1e-9 * std::fabs(step) * 10);
    }
    DOCTEST_CHECK_THROWS_AS(ddaq::nice_ticks(1, 1), ddaq::Error);
  }

  DOCTEST_TEST_CASE("PNG chart: decodes at the stated size, series drawn, NaN skipped, bad series refused") {
    ddaq_test::TempDir dir;
    ddaq::PlotSeries a;
    a.label = "a";
    a.color = 0xff00ff;
    a.x = {1, 2, NAN, 4};
    a.y = {3, 1, 2, 0.5};
    ddaq::PlotSeries b = a;
    b.color = 0x00ff00;
    b.x = {NAN};
    b.y = {NAN};
    ddaq::write_png_chart(dir.file("c.png"), {{"t", "x", "y", {a}}, {"empty", "x", "y", {b}}}, "title", 300, 200);
    const std::string bytes = ddaq_test::read_text(dir.file("c.png"));
    DOCTEST_REQUIRE(bytes.size() > 8);
    DOCTEST_CHECK(bytes.compare(0, 8, "\x89PNG\r\n\x1a\n") == 0);
    gdImagePtr im = gdImageCreateFromPngPtr(static_cast<int>(bytes.size()), const_cast<char*>(bytes.data()));
    DOCTEST_REQUIRE(im != nullptr);
    DOCTEST_CHECK(gdImageSX(im) == 600);
    DOCTEST_CHECK(gdImageSY(im) == 224);  // 200 + the title line
    DOCTEST_CHECK(has_color(im, 0xff00ff));
    DOCTEST_CHECK_FALSE(has_color(im, 0x00ff00));  // only non-finite points: nothing drawn
    gdImageDestroy(im);
    b.x = {1, 2};
    DOCTEST_CHECK_THROWS_WITH_AS(ddaq::write_png_chart(dir.file("d.png"), {{"t", "x", "y", {b}}}),
                                 (dir.file("d.png") + ": series 'a' has 2 x and 1 y values").c_str(), ddaq::Error);
    DOCTEST_CHECK_FALSE(ddaq_test::exists(dir.file("d.png")));
  }
}
