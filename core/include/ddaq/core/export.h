// ddaq/core/export.h: a run's quantized parts for firmware flows.
#pragma once
#include <cstdint>
#include <string>

#include "ddaq/options.h"

namespace ddaq {

struct ExportOptions {
  DDAQ_OPTION(std::string, qonnx);  // QONNX file; for part "all": FILE.encoder.onnx, FILE.classifier.onnx
  DDAQ_OPTION(std::string, hls);    // HLS project folder; for part "all": DIR/encoder, DIR/classifier
  DDAQ_OPTION(std::string, part) = "encoder";  // encoder, classifier or all
  DDAQ_OPTION(std::string, name);              // HLS top function (default: the part)
  DDAQ_OPTION(int, reuse_factor) = 1;
  DDAQ_OPTION(std::string, io) = "parallel";  // or "stream"
  DDAQ_OPTION(int64_t, testbench_samples) = 1000;  // uniform over the input type's range
  DDAQ_OPTION(uint64_t, seed) = 1;                 // of the testbench inputs
  // Replace HLS projects ddaq wrote before in the same folders (any other
  // non-empty folder is refused). QONNX files are always replaced.
  DDAQ_OPTION(bool, replace) = false;
};

// Exports RUN/<part>.qstack as QONNX and/or an HLS project (at least one of
// options.qonnx / options.hls). Returns the log lines, including resource,
// latency and energy estimates.
std::string export_run(const std::string& run, const ExportOptions& options);

}  // namespace ddaq
