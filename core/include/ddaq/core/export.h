// ddaq/core/export.h: a run's quantized parts for firmware flows.
#pragma once
#include <cstdint>
#include <string>

namespace ddaq {

// Exports RUN/<part>.qstack (part: encoder, classifier or all) as QONNX
// (`qonnx` file; for all: FILE.encoder.onnx, FILE.classifier.onnx) and/or an
// HLS project (`hls` folder; for all: DIR/encoder, DIR/classifier), with
// `samples` testbench inputs uniform over the input type's range. Returns
// the log lines, including resource, latency and energy estimates.
std::string export_run(const std::string& run, const std::string& qonnx, const std::string& hls, const std::string& part,
                       const std::string& name, int reuse, const std::string& io, int64_t samples, uint64_t seed);

}  // namespace ddaq
