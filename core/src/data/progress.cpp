#include "ddaq/core/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

namespace ddaq {

Progress::Progress(std::string label, int64_t total, std::FILE* out, double plain_interval_s)
    : label_(std::move(label)), total_(total), out_(out), plain_interval_s_(plain_interval_s) {
  const char* env = std::getenv("DDAQ_PROGRESS");
  if (!out_ || (env && std::strcmp(env, "off") == 0))  // null: silent (e.g. ranks other than 0)
    mode_ = Mode::Off;
  else if (env && std::strcmp(env, "plain") == 0)
    mode_ = Mode::Plain;
  else if (env && std::strcmp(env, "bar") == 0)
    mode_ = Mode::Bar;
  else
    mode_ = ::isatty(::fileno(out_)) ? Mode::Bar : Mode::Plain;
  start_ = last_draw_ = std::chrono::steady_clock::now();
}

Progress::~Progress() {
  // Unwinding from an error: end a half-drawn bar line, claim nothing.
  if (!finished_ && mode_ == Mode::Bar && drawn_) std::fputc('\n', out_);
}

void Progress::advance(int64_t n) {
  done_ += n;
  const auto now = std::chrono::steady_clock::now();
  const double since = std::chrono::duration<double>(now - last_draw_).count();
  if ((mode_ == Mode::Bar && since >= 0.1) || (mode_ == Mode::Plain && since >= plain_interval_s_)) {
    last_draw_ = now;
    draw(false);
  }
}

void Progress::finish() {
  if (finished_) return;
  finished_ = true;
  draw(true);
}

void Progress::draw(bool final) {
  if (mode_ == Mode::Off) return;
  drawn_ = true;
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double frac = total_ > 0 ? std::min(1.0, static_cast<double>(done_) / static_cast<double>(total_)) : 0.0;
  const double rate = elapsed > 0 ? static_cast<double>(done_) / elapsed : 0.0;
  if (total_ <= 0) {  // unknown total: count only
    if (mode_ == Mode::Bar)
      std::fprintf(out_, "\r%s %lld %.1fs %.0f/s%s", label_.c_str(), static_cast<long long>(done_), elapsed, rate,
                   final ? "\n" : "");
    else
      std::fprintf(out_, "%s: %lld %.1fs%s\n", label_.c_str(), static_cast<long long>(done_), elapsed, final ? " done" : "");
    std::fflush(out_);
    return;
  }
  if (mode_ == Mode::Bar) {
    constexpr int kWidth = 30;
    const int filled = static_cast<int>(frac * kWidth);
    char bar[kWidth + 1];
    for (int i = 0; i < kWidth; ++i) bar[i] = i < filled ? '#' : '.';
    bar[kWidth] = '\0';
    std::fprintf(out_, "\r%s [%s] %3.0f%% %lld/%lld %.1fs %.0f/s%s", label_.c_str(), bar, 100.0 * frac,
                 static_cast<long long>(done_), static_cast<long long>(total_), elapsed, rate, final ? "\n" : "");
  } else {
    std::fprintf(out_, "%s: %lld/%lld (%.0f%%) %.1fs%s\n", label_.c_str(), static_cast<long long>(done_),
                 static_cast<long long>(total_), 100.0 * frac, elapsed, final ? " done" : "");
  }
  std::fflush(out_);
}

}  // namespace ddaq
