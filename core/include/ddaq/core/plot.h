// ddaq/core/plot.h: small PNG charts for reports (pareto.png and maps), drawn
// with libgd and its built-in fonts: no Python, no font files, so a report
// is complete wherever ddaq runs (cluster nodes included).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace ddaq {

struct PlotSeries {
  std::string label;                      // legend text ("" : not in the legend)
  std::vector<double> x, y;               // same length; non-finite points are skipped
  std::vector<std::string> point_labels;  // empty, or one short text per point
  uint32_t color = 0x1f77b4;              // 0xRRGGBB
  bool line = true;                       // join the points in the given order
  bool hollow = false;                    // open markers (a reference beside the results)
};

struct PlotPanel {
  std::string title, x_label, y_label;
  std::vector<PlotSeries> series;
};

// The panels side by side, each `panel_width` x `panel_height` pixels, under
// `title`, as one PNG written atomically (ddaq/files.h). Axes span the finite
// points with a margin and "nice" ticks; a panel without finite points says
// "no data". Throws ddaq::Error naming the path when it cannot be written or
// a series' x and y differ in length.
void write_png_chart(const std::string& path, const std::vector<PlotPanel>& panels, const std::string& title = "",
                     int panel_width = 440, int panel_height = 360);

// Tick positions for [lo, hi]: multiples of 1, 2 or 5 x 10^k, about `target`
// of them, covering the range (exposed for tests).
std::vector<double> nice_ticks(double lo, double hi, int target = 5);

}  // namespace ddaq
