// ddaq/core/emulator.h: an emulator library of the on-detector chain (front
// end + encoder), compiled from the very HLS C++ that goes to firmware, as
// experiment software uses firmware emulators.
//
// DIR/
//   hls/                     the encoder's HLS project (io_parallel), as `--hls` writes it
//   include/NAME_emulator.h  plain C API:
//       int NAME_latent_size(void);
//       int NAME_emulate(const float* calq, long long n, float* latent);
//   src/NAME_emulator.cpp    the front end (front_end.h) in C++, then the HLS top function
//   CMakeLists.txt           builds libNAME_emulator.so (-DAP_TYPES_DIR=... for vendor headers)
//   example.py, README.md    ctypes example and instructions
//
// NAME_emulate takes n modules x 48 raw CALQ charges (row-major), writes
// n x NAME_latent_size() latent values as transmitted (the encoder's output
// type, as float), equal bit for bit to `ddaq predict`'s latent dataset.
// Returns 0; 1 when a charge is negative or not finite, 2 for a null pointer
// or a negative n; on a non-zero return nothing is written.
#pragma once
#include <string>

#include "ddaq/core/front_end.h"
#include "ddaq/options.h"
#include "ddaq/quant/description.h"

namespace ddaq {

struct EmulatorOptions {
  DDAQ_OPTION(std::string, name) = "encoder";  // C identifier: NAME_emulate, libNAME_emulator.so
  DDAQ_OPTION(bool, replace) = false;          // replace an emulator ddaq wrote before in dir
};

// Writes the emulator project into `dir` (new or empty, or one ddaq wrote
// before when options.replace) through a temporary folder: a failure leaves
// nothing new. `test_inputs`: the HLS project's testbench inputs.
void write_emulator(const ModelDescription& encoder, const EconTFrontEnd& front_end, const std::string& dir,
                    const EmulatorOptions& options, const std::vector<std::vector<double>>& test_inputs);

}  // namespace ddaq
