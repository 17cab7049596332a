// `ddaq export RUN --qonnx FILE --hls DIR`: the quantized parts of a run for
// firmware flows, with cost estimates.
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
  auto qonnx = std::make_shared<std::string>(), hls = std::make_shared<std::string>(), name = std::make_shared<std::string>();
  auto part = std::make_shared<std::string>(defaults.part()), io = std::make_shared<std::string>(defaults.io());
  auto reuse = std::make_shared<int>(defaults.reuse_factor());
  auto samples = std::make_shared<int64_t>(defaults.testbench_samples());
  auto seed = std::make_shared<uint64_t>(defaults.seed());
  auto replace = std::make_shared<bool>(false);
  CLI::App* c = app.add_subcommand("export", "Export a run's quantized parts as QONNX and/or an HLS C++ project");
  c->add_option("run", *run, "run folder holding encoder.qstack and/or classifier.qstack")->required();
  c->add_option("--qonnx", *qonnx, "QONNX file to write (for --part all: FILE.encoder.onnx, FILE.classifier.onnx)");
  c->add_option("--hls", *hls, "HLS project folder to write (for --part all: DIR/encoder, DIR/classifier)");
  c->add_option("--part", *part, "encoder, classifier or all")->capture_default_str()->check(
      CLI::IsMember({"encoder", "classifier", "all"}));
  c->add_option("--name", *name, "top function name (default: the part)");
  c->add_option("--reuse-factor", *reuse, "HLS reuse factor")->capture_default_str();
  c->add_option("--io", *io, "parallel or stream")->capture_default_str();
  c->add_option("--tb-samples", *samples, "testbench inputs (uniform over the input type's range)")->capture_default_str();
  c->add_option("--seed", *seed, "testbench seed")->capture_default_str();
  c->add_flag("--replace", *replace, "replace an HLS project ddaq wrote before in --hls (other folders are refused)");
  c->callback([=] {
    const ExportOptions o = ExportOptions()
                                .qonnx(*qonnx)
                                .hls(*hls)
                                .part(*part)
                                .name(*name)
                                .reuse_factor(*reuse)
                                .io(*io)
                                .testbench_samples(*samples)
                                .seed(*seed)
                                .replace(*replace);
    std::printf("%s", export_run(*run, o).c_str());
  });
}

}  // namespace cli
}  // namespace ddaq
