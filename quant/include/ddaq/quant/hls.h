// ddaq/quant/hls.h: an HLS C++ project from a quantized model description,
// laid out as firmware engineers expect from hls4ml:
//   firmware/NAME.cpp, NAME.h   top function NAME(input_t in[N_IN], result_t out[N_OUT])
//   firmware/defines.h          ap_fixed typedefs per layer
//   firmware/parameters.h       per-layer sizes, reuse factor, kernel/stride/padding
//   firmware/weights/wK.h, bK.h weights and biases (zero and pruned ones skipped in the code)
//   firmware/ap_types/         ddaq's ap_fixed and hls::stream subsets for C simulation without Vitis
//   NAME_test.cpp, tb_data/     testbench with inputs and expected outputs (the integer reference)
//   build_prj.tcl, README.md    Vitis HLS script (csim, csynth) and instructions
// io_parallel: arrays in and out, partitioned completely, the top function
// pipelined with II = reuse factor, multipliers limited to ceil(mults / R).
// io_stream: hls::stream (AXI-Stream) in and out, one word per feature, around
// the same datapath (II = max(R, inputs)); not a per-layer dataflow.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "ddaq/options.h"
#include "ddaq/quant/description.h"

namespace ddaq {

struct HlsOptions {
  DDAQ_OPTION(std::string, name) = "ddaq_model";
  DDAQ_OPTION(int, reuse_factor) = 1;
  DDAQ_OPTION(std::string, io) = "parallel";  // or "stream"
  DDAQ_OPTION(std::string, part) = "xcvu13p-flga2577-2-e";
  DDAQ_OPTION(double, clock_period_ns) = 25.0;  // 40 MHz, one inference per bunch crossing
  // An existing HLS project written by ddaq (build_prj.tcl and firmware/) in
  // `dir` is replaced once the new one is complete; any other non-empty
  // folder is still refused.
  DDAQ_OPTION(bool, replace) = false;
};

// Writes the project into `dir` (which must not exist or be empty, unless
// options.replace), through a temporary folder renamed at the end: a failure
// leaves nothing new and the old project intact. The
// testbench data are `test_inputs` (each elements(input_shape) reals) and the
// integer reference's outputs for them. Throws ddaq::Error for unsupported
// layers or options (a reuse factor that does not divide a layer's
// multiplications, io stream) and unwritable folders.
void write_hls_project(const ModelDescription& model, const std::string& dir, const HlsOptions& options,
                       const std::vector<std::vector<double>>& test_inputs);

// Writes a generated project folder: `fill` writes into a temporary folder
// beside `dir` (given its path), which then takes dir's place. `dir` must be
// new or empty, or, with `replace`, a folder for which `ours` is true (`kind`
// names such a folder in the error). On any failure nothing new is left and
// an old project is kept. `what` starts error messages ("hls export").
void write_project_folder(const std::string& dir, bool replace, const std::string& what, const std::string& kind,
                          const std::function<bool(const std::string&)>& ours,
                          const std::function<void(const std::string&)>& fill);

}  // namespace ddaq
