#include "ddaq/core/export.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "ddaq/core/random.h"
#include "ddaq/core/version.h"
#include "ddaq/error.h"
#include "ddaq/quant/hls.h"
#include "ddaq/quant/layers.h"
#include "ddaq/quant/qonnx.h"
#include "ddaq/surrogates/energy.h"
#include "ddaq/surrogates/fpga_resources.h"

namespace ddaq {
namespace {

// Testbench inputs: uniform over the input type's range.
std::vector<std::vector<double>> tb_inputs(const ModelDescription& model, int64_t n, uint64_t seed) {
  const FixedPointType& t = model.front().output_type;
  const int64_t size = elements(model.front().input_shape);
  std::vector<std::vector<double>> out(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    Rng rng(seed, static_cast<uint64_t>(i));
    for (int64_t k = 0; k < size; ++k)
      out[i].push_back(t.min_value() + (t.max_value() - t.min_value()) * rng.uniform());
  }
  return out;
}

std::string with_suffix(const std::string& path, const std::string& part) {
  const std::filesystem::path p(path);
  return (p.parent_path() / (p.stem().string() + "." + part + p.extension().string())).string();
}

}  // namespace

std::string export_run(const std::string& run, const ExportOptions& o) {
  const std::string &qonnx = o.qonnx(), &hls = o.hls(), &part = o.part();
  if (qonnx.empty() && hls.empty()) throw Error("export: give --qonnx FILE and/or --hls DIR");
  if (part != "encoder" && part != "classifier" && part != "all")
    throw Error("export: part '" + part + "' (expected encoder, classifier or all)");
  const std::vector<std::string> parts =
      part == "all" ? std::vector<std::string>{"encoder", "classifier"} : std::vector<std::string>{part};
  std::string log;
  char buf[512];
  for (const std::string& p : parts) {
    const std::string file = run + "/" + p + ".qstack";
    QuantizedStack stack = load_quantized_stack(file);
    const ModelDescription model = stack->describe();
    if (!qonnx.empty()) {
      const std::string out = parts.size() > 1 ? with_suffix(qonnx, p) : qonnx;
      QonnxOptions::Metadata meta{{"ddaq_version", version()}, {"run", run}, {"part", p}, {"spec", stack->spec()}};
      // The pipeline configuration (layout, bits, ...) when the run has one.
      std::ifstream cfg(run + "/pipeline.json");
      if (cfg) meta["pipeline_config"] = std::string(std::istreambuf_iterator<char>(cfg), {});
      write_qonnx(model, out, QonnxOptions().graph_name(p).metadata(meta));
      log += "wrote " + out + " (QONNX, opset 11)\n";
    }
    if (!hls.empty()) {
      const std::string out = parts.size() > 1 ? hls + "/" + p : hls;
      write_hls_project(model, out,
                        HlsOptions()
                            .name(o.name().empty() ? p : o.name())
                            .reuse_factor(o.reuse_factor())
                            .io(o.io())
                            .replace(o.replace()),
                        tb_inputs(model, o.testbench_samples(), o.seed()));
      log += "wrote " + out + " (HLS project, testbench with " + std::to_string(o.testbench_samples()) + " samples)\n";
    }
    const ResourceValues r = AnalyticResourceModel::shipped().predict(design_from(model, o.reuse_factor()));
    std::snprintf(buf, sizeof buf,
                  "%s estimates: LUT %.0f, FF %.0f, DSP %.0f, BRAM18K %.1f, latency %.0f cycles (analytic model fitted "
                  "on Resource-strategy dense designs: indicative only)\n",
                  p.c_str(), r[0], r[1], r[2], r[3], r[4]);
    log += buf;
    log += p + " energy: " + estimate_energy(model).to_text() + "\n";
  }
  return log;
}

}  // namespace ddaq
