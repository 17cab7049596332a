// ddaq/core/export.h: a run's quantized parts for firmware flows.
#pragma once
#include <cstdint>
#include <string>

#include "ddaq/options.h"

namespace ddaq {

struct ExportOptions {
  DDAQ_OPTION(std::string, qonnx);  // QONNX file; for part "all": FILE.encoder.onnx, FILE.classifier.onnx
  DDAQ_OPTION(std::string, hls);    // HLS project folder; for part "all": DIR/encoder, DIR/classifier
  DDAQ_OPTION(std::string, part) = "encoder";  // a quantized stack of the run (RUN/<part>.qstack), or all
  DDAQ_OPTION(std::string, name);              // HLS top function (default: the part)
  DDAQ_OPTION(int, reuse_factor) = 1;
  DDAQ_OPTION(std::string, io) = "parallel";  // or "stream"
  // Emulator library of front end + encoder (emulator.h); needs RUN/pipeline.json.
  DDAQ_OPTION(std::string, emulator);
  // Testbench inputs: this many wafers of `testbench_data` (default
  // RUN/test.h5 when present) through the front end (the classifier gets
  // their latents), plus inputs at every first-layer accumulator bound.
  // Without event data: uniform over the input type's range (seeded).
  DDAQ_OPTION(int64_t, testbench_samples) = 1000;
  DDAQ_OPTION(std::string, testbench_data);
  DDAQ_OPTION(uint64_t, seed) = 1;
  // Replace HLS projects ddaq wrote before in the same folders (any other
  // non-empty folder is refused). QONNX files are always replaced.
  DDAQ_OPTION(bool, replace) = false;
};

// Exports RUN/<part>.qstack as QONNX, an HLS project and/or (encoder) an
// emulator library (at least one of options.qonnx / hls / emulator). Returns the log lines, including resource,
// latency and energy estimates.
std::string export_run(const std::string& run, const ExportOptions& options);

}  // namespace ddaq
