// hls_stream.h: the subset of Xilinx hls::stream that ddaq's emitted io_stream
// projects use, for C simulation with a plain C++ compiler (no Vitis).
// Written by ddaq (quant/hls/hls_stream.h); not Xilinx code.
#ifndef DDAQ_HLS_STREAM_SIM_H
#define DDAQ_HLS_STREAM_SIM_H

#include <cstdio>
#include <cstdlib>
#include <deque>

namespace hls {

template <class T>
class stream {
 public:
  stream() = default;
  explicit stream(const char*) {}
  void write(const T& v) { q_.push_back(v); }
  T read() {
    if (q_.empty()) {
      std::fprintf(stderr, "hls::stream: read from an empty stream\n");
      std::abort();
    }
    T v = q_.front();
    q_.pop_front();
    return v;
  }
  bool empty() const { return q_.empty(); }
  std::size_t size() const { return q_.size(); }

 private:
  std::deque<T> q_;
};

}  // namespace hls

#endif  // DDAQ_HLS_STREAM_SIM_H
