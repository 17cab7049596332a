// `ddaq export RUN --qonnx FILE --hls DIR --emulator DIR`: the quantized parts
// of a run for firmware flows and experiment software, with cost estimates.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>

#include "commands.h"
#include "ddaq/core/export.h"

namespace ddaq {
namespace cli {
void add_export_command(CLI::App& app) {
  auto run = std::make_shared<std::string>();
  // CLI11 binds plain variables (defaults from ExportOptions); the options
  // are assembled in the callback.
  const ExportOptions defaults;
  auto qonnx = std::make_shared<std::string>(), hls = std::make_shared<std::string>(),
       name = std::make_shared<std::string>();
  auto emulator = std::make_shared<std::string>(), tb_data = std::make_shared<std::string>();
  auto part = std::make_shared<std::string>(defaults.part()), io = std::make_shared<std::string>(defaults.io());
  auto reuse = std::make_shared<int>(defaults.reuse_factor());
  auto samples = std::make_shared<int64_t>(defaults.testbench_samples());
  auto seed = std::make_shared<uint64_t>(defaults.seed());
  auto replace = std::make_shared<bool>(false);
  CLI::App* c = app.add_subcommand("export", "Export a run's quantized parts as QONNX and/or an HLS C++ project");
  c->add_option("run", *run, "run folder holding encoder.qstack and/or classifier.qstack")->required();
  c->add_option("--qonnx", *qonnx, "QONNX file to write (for --part all: FILE.encoder.onnx, FILE.classifier.onnx)");
  c->add_option("--hls", *hls, "HLS project folder to write (for --part all: DIR/encoder, DIR/classifier)");
  c->add_option("--emulator", *emulator,
                "emulator library folder to write: front end + encoder from the HLS C++, C API, CMake project");
  c->add_option("--part", *part, "a quantized stack of the run (encoder, classifier, or any stage of a graph), or all")
      ->capture_default_str();
  c->add_option("--name", *name, "top function name (default: the part): a C identifier, not a C++ keyword")
      ->check(c_identifier());
  c->add_option("--reuse-factor", *reuse, "HLS reuse factor")->capture_default_str()->check(whole_number_in(1, 1 << 20));
  c->add_option("--io", *io, "parallel or stream")->capture_default_str()->check(CLI::IsMember({"parallel", "stream"}));
  c->add_option("--tb-samples", *samples,
                "testbench wafers from the event data through the front end (plus accumulator-bound inputs)")
      ->capture_default_str()
      ->check(whole_number_in(1, 10000000));
  c->add_option("--tb-data", *tb_data, "event file for the testbench (default: RUN/test.h5 when present)");
  c->add_option("--seed", *seed, "seed of the uniform testbench inputs used without event data")
      ->capture_default_str()
      ->check(seed_number());
  c->add_flag("--replace", *replace, "replace an HLS project ddaq wrote before in --hls (other folders are refused)");
  c->callback([=] {
    const ExportOptions o = ExportOptions()
                                .qonnx(*qonnx)
                                .hls(*hls)
                                .part(*part)
                                .name(*name)
                                .reuse_factor(*reuse)
                                .io(*io)
                                .emulator(*emulator)
                                .testbench_samples(*samples)
                                .testbench_data(*tb_data)
                                .seed(*seed)
                                .replace(*replace);
    std::printf("%s", export_run(*run, o).c_str());
  });
}

}  // namespace cli
}  // namespace ddaq
