// ddaq/core/progress.h: progress of long work, for people and for logs.
//
// On a terminal: one redrawn bar line. Otherwise (CI, batch jobs, files):
// plain lines at most every `plain_interval_s` seconds and at the end.
// DDAQ_PROGRESS=plain|bar|off in the environment overrides the choice.
// A total <= 0 means unknown: only the count is shown.
#pragma once
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace ddaq {

class Progress {
 public:
  // `out` null: prints nothing.
  Progress(std::string label, int64_t total, std::FILE* out = stderr,
           double plain_interval_s = 10.0);
  ~Progress();  // without finish() (an error unwinding): prints no "done"

  void advance(int64_t n = 1);
  void set_total(int64_t total) { total_ = total; }
  void finish();

 private:
  void draw(bool final);

  std::string label_;
  int64_t total_;
  int64_t done_ = 0;
  std::FILE* out_;
  enum class Mode { Bar, Plain, Off } mode_;
  double plain_interval_s_;
  bool finished_ = false;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

}  // namespace ddaq
