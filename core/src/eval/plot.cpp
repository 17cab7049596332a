// PNG charts with libgd: axes with nice ticks, series as lines and markers,
// a legend, point labels. Built-in bitmap fonts keep it dependency-free.
#include "ddaq/core/plot.h"

#include <gd.h>
#include <gdfontmb.h>
#include <gdfonts.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>

#include "ddaq/error.h"
#include "ddaq/files.h"

namespace ddaq {
namespace {

struct ImageDeleter {
  void operator()(gdImage* im) const { gdImageDestroy(im); }
};

int color_of(gdImagePtr im, uint32_t rgb) {
  return gdImageColorAllocate(im, static_cast<int>((rgb >> 16) & 0xff), static_cast<int>((rgb >> 8) & 0xff),
                              static_cast<int>(rgb & 0xff));
}

// Tick text: short, and thousands as "k" (LUT counts of 10^5 read better).
std::string tick_text(double v, double step) {
  char buf[32];
  if (std::fabs(v) < 1e-12 * std::max(1.0, step)) v = 0;
  if (step >= 1000 && std::fabs(v) >= 1000)
    std::snprintf(buf, sizeof buf, "%gk", v / 1000);
  else
    std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

void text(gdImagePtr im, gdFontPtr font, int x, int y, const std::string& s, int color) {
  gdImageString(im, font, x, y, reinterpret_cast<unsigned char*>(const_cast<char*>(s.c_str())), color);
}

void text_up(gdImagePtr im, gdFontPtr font, int x, int y, const std::string& s, int color) {
  gdImageStringUp(im, font, x, y, reinterpret_cast<unsigned char*>(const_cast<char*>(s.c_str())), color);
}

int text_width(gdFontPtr font, const std::string& s) { return font->w * static_cast<int>(s.size()); }

void marker(gdImagePtr im, int x, int y, int color, int white, bool hollow) {
  gdImageFilledEllipse(im, x, y, 9, 9, color);
  if (hollow) gdImageFilledEllipse(im, x, y, 5, 5, white);
}

void draw_panel(gdImagePtr im, const PlotPanel& p, int x0, int y0, int w, int h, int black, int grey, int white) {
  gdFontPtr small = gdFontGetSmall(), bold = gdFontGetMediumBold();
  const int left = x0 + 62, right = x0 + w - 12, top = y0 + 26, bottom = y0 + h - 44;
  text(im, bold, x0 + (w - text_width(bold, p.title)) / 2, y0 + 6, p.title, black);
  text(im, small, (left + right - text_width(small, p.x_label)) / 2, bottom + 24, p.x_label, black);
  text_up(im, small, x0 + 4, (top + bottom + text_width(small, p.y_label)) / 2, p.y_label, black);
  double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
  for (const PlotSeries& s : p.series)
    for (size_t i = 0; i < s.x.size(); ++i)
      if (std::isfinite(s.x[i]) && std::isfinite(s.y[i])) {
        xlo = std::min(xlo, s.x[i]);
        xhi = std::max(xhi, s.x[i]);
        ylo = std::min(ylo, s.y[i]);
        yhi = std::max(yhi, s.y[i]);
      }
  gdImageRectangle(im, left, top, right, bottom, black);
  if (!(xlo <= xhi)) {
    text(im, small, (left + right - text_width(small, "no data")) / 2, (top + bottom) / 2, "no data", black);
    return;
  }
  // One point (or one value) still needs a span to draw on.
  // Non-negative data (EMD, LUT, power) keeps a non-negative axis.
  auto widen = [](double& lo, double& hi) {
    const double pad = hi > lo ? 0.06 * (hi - lo) : std::max(1e-9, 0.1 * std::fabs(lo) + (lo == 0 ? 1 : 0));
    const bool non_negative = lo >= 0;
    lo -= pad;
    hi += pad;
    if (non_negative && lo < 0) lo = 0;
  };
  widen(xlo, xhi);
  widen(ylo, yhi);
  const std::vector<double> xt = nice_ticks(xlo, xhi), yt = nice_ticks(ylo, yhi);
  xlo = xt.front();
  xhi = xt.back();
  ylo = yt.front();
  yhi = yt.back();
  auto px = [&](double v) { return left + static_cast<int>(std::lround((v - xlo) / (xhi - xlo) * (right - left))); };
  auto py = [&](double v) { return bottom - static_cast<int>(std::lround((v - ylo) / (yhi - ylo) * (bottom - top))); };
  const double xstep = xt.size() > 1 ? xt[1] - xt[0] : 1, ystep = yt.size() > 1 ? yt[1] - yt[0] : 1;
  for (double t : xt) {
    const int x = px(t);
    gdImageLine(im, x, top + 1, x, bottom - 1, grey);
    gdImageLine(im, x, bottom, x, bottom + 4, black);
    const std::string s = tick_text(t, xstep);
    text(im, small, x - text_width(small, s) / 2, bottom + 6, s, black);
  }
  for (double t : yt) {
    const int y = py(t);
    gdImageLine(im, left + 1, y, right - 1, y, grey);
    gdImageLine(im, left - 4, y, left, y, black);
    const std::string s = tick_text(t, ystep);
    text(im, small, left - 6 - text_width(small, s), y - small->h / 2, s, black);
  }
  gdImageRectangle(im, left, top, right, bottom, black);
  int legend_y = top + 6;
  for (const PlotSeries& s : p.series) {
    const int c = color_of(im, s.color);
    gdImageSetThickness(im, 2);
    int last_x = 0, last_y = 0;
    bool have_last = false;
    for (size_t i = 0; i < s.x.size(); ++i) {
      if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i])) {
        have_last = false;
        continue;
      }
      const int x = px(s.x[i]), y = py(s.y[i]);
      if (s.line && have_last) gdImageLine(im, last_x, last_y, x, y, c);
      last_x = x;
      last_y = y;
      have_last = true;
    }
    gdImageSetThickness(im, 1);
    for (size_t i = 0; i < s.x.size(); ++i) {
      if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i])) continue;
      const int x = px(s.x[i]), y = py(s.y[i]);
      marker(im, x, y, c, white, s.hollow);
      if (i < s.point_labels.size() && !s.point_labels[i].empty()) {
        const int w = text_width(small, s.point_labels[i]);
        text(im, small, x + 6 + w < right - 2 ? x + 6 : x - 6 - w, y - 14, s.point_labels[i], c);  // inside the frame
      }
    }
    if (!s.label.empty()) {
      const int lx = right - 10 - text_width(small, s.label) - 22;
      gdImageLine(im, lx, legend_y + small->h / 2, lx + 16, legend_y + small->h / 2, c);
      marker(im, lx + 8, legend_y + small->h / 2, c, white, s.hollow);
      text(im, small, lx + 22, legend_y, s.label, black);
      legend_y += small->h + 3;
    }
  }
}

}  // namespace

std::vector<double> nice_ticks(double lo, double hi, int target) {
  if (!std::isfinite(lo) || !std::isfinite(hi) || hi <= lo) throw Error("nice_ticks: need finite lo < hi");
  const double raw = (hi - lo) / std::max(1, target);
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = 10 * mag;
  for (double m : {1.0, 2.0, 5.0})
    if (m * mag >= raw) {
      step = m * mag;
      break;
    }
  std::vector<double> ticks;
  const double first = std::floor(lo / step + 1e-9) * step;
  for (double t = first; t < hi + step * (1 - 1e-9); t += step) ticks.push_back(std::fabs(t) < step * 1e-9 ? 0 : t);
  if (ticks.back() < hi) ticks.push_back(ticks.back() + step);
  return ticks;
}

void write_png_chart(const std::string& path, const std::vector<PlotPanel>& panels, const std::string& title,
                     int panel_width, int panel_height) {
  for (const PlotPanel& p : panels)
    for (const PlotSeries& s : p.series)
      if (s.x.size() != s.y.size())
        throw Error(path + ": series '" + s.label + "' has " + std::to_string(s.x.size()) + " x and " +
                    std::to_string(s.y.size()) + " y values");
  const int n = std::max<int>(1, static_cast<int>(panels.size()));
  const int head = title.empty() ? 0 : 24;
  std::unique_ptr<gdImage, ImageDeleter> im(gdImageCreateTrueColor(n * panel_width, panel_height + head));
  if (!im) throw Error(path + ": cannot allocate the image");
  const int white = color_of(im.get(), 0xffffff), black = color_of(im.get(), 0x000000),
            grey = color_of(im.get(), 0xe3e3e3);
  gdImageFilledRectangle(im.get(), 0, 0, n * panel_width - 1, panel_height + head - 1, white);
  if (!title.empty()) {
    gdFontPtr bold = gdFontGetMediumBold();
    text(im.get(), bold, (n * panel_width - text_width(bold, title)) / 2, 6, title, black);
  }
  for (size_t i = 0; i < panels.size(); ++i)
    draw_panel(im.get(), panels[i], static_cast<int>(i) * panel_width, head, panel_width, panel_height, black, grey,
               white);
  int size = 0;
  void* png = gdImagePngPtr(im.get(), &size);
  if (!png || size <= 0) throw Error(path + ": PNG encoding failed");
  const std::string bytes(static_cast<const char*>(png), static_cast<size_t>(size));
  gdFree(png);
  write_file_atomic(path, bytes);
}

}  // namespace ddaq
