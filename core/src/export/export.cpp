#include "ddaq/core/export.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <set>

#include "ddaq/core/emulator.h"
#include "ddaq/core/events.h"
#include "ddaq/core/pipeline.h"
#include "ddaq/core/random.h"
#include "ddaq/core/version.h"
#include "ddaq/error.h"
#include "ddaq/files.h"
#include "ddaq/quant/bounds.h"
#include "ddaq/quant/hls.h"
#include "ddaq/quant/integer_reference.h"
#include "ddaq/quant/layers.h"
#include "ddaq/quant/qonnx.h"
#include "ddaq/surrogates/energy.h"
#include "ddaq/surrogates/fpga_resources.h"

namespace ddaq {
namespace {

namespace fs = std::filesystem;
using Samples = std::vector<std::vector<double>>;

// Inputs uniform over the input type's range: only when no event data is
// at hand (most such values are outside what the chip sees).
Samples uniform_inputs(const ModelDescription& model, int64_t n, uint64_t seed) {
  const FixedPointType& t = model.front().output_type;
  const int64_t size = elements(model.front().input_shape);
  Samples out(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    Rng rng(seed, static_cast<uint64_t>(i));
    for (int64_t k = 0; k < size; ++k)
      out[i].push_back(static_cast<float>(t.min_value() + (t.max_value() - t.min_value()) * rng.uniform()));
  }
  return out;
}

// Encoder inputs as the chip sees them: `n` wafers spread evenly over the
// file, through the front end.
Samples front_end_inputs(const std::string& file, int64_t n, const EconTFrontEnd& fe) {
  const EventFileReader reader(file, fe.cells);
  const int64_t rows = std::min(n, reader.size());
  Samples out;
  std::vector<float> calq(static_cast<size_t>(fe.cells)), grid(fe.grid_to_cell.size());
  for (int64_t i = 0; i < rows; ++i) {
    reader.read(i * reader.size() / rows, 1, calq.data(), nullptr);
    for (float v : calq)
      if (!std::isfinite(v) || v < 0)
        throw Error(file + ": row " + std::to_string(i * reader.size() / rows) +
                    " has a negative or non-finite charge");
    fe.apply(calq.data(), grid.data());
    out.emplace_back(grid.begin(), grid.end());
  }
  return out;
}

std::string with_suffix(const std::string& path, const std::string& part) {
  const fs::path p(path);
  return (p.parent_path() / (p.stem().string() + "." + part + p.extension().string())).string();
}

// "prj/", "./prj" -> "prj": how logs name a folder.
std::string normal_folder(const std::string& dir) {
  fs::path p = fs::path(dir).lexically_normal();
  if (!p.has_filename()) p = p.parent_path();
  return p.string();
}

// The run folder's own name ("runs/quick/" -> "quick"): metadata must not
// carry the exporting machine's paths.
std::string run_name(const std::string& run) {
  fs::path p = fs::path(run).lexically_normal();
  if (!p.has_filename()) p = p.parent_path();
  return p.filename().string();
}

// hls4ml's documented QONNX flow gives the input layer its default precision
// fixed<16,6> whatever the input Quant declares: say when that changes values.
std::string hls4ml_input_note(const FixedPointType& t) {
  const int integer_with_sign = t.integer + (t.is_signed ? 0 : 1);
  if (integer_with_sign <= 6 && t.fractional() <= 10 && t.integer <= 6) {
    if (t.rounding == Rounding::TRN || t.fractional() >= 10) return "";
    return "  note: the input type " + t.hls_type() +
           " rounds; hls4ml's default input precision fixed<16,6> truncates "
           "inputs to 10 fractional bits first, so inputs off that grid can round differently\n";
  }
  return "  note: the input type " + t.hls_type() +
         " does not fit hls4ml's default input precision fixed<16,6>: set "
         "the input layer's precision to it in the hls4ml configuration (inputs would wrap otherwise)\n";
}

size_t distinct_rows(const IntegerReference& reference, const Samples& inputs) {
  std::set<std::vector<int64_t>> rows;
  for (const auto& x : inputs) rows.insert(reference.run_raw(x));
  return rows.size();
}

}  // namespace

std::string export_run(const std::string& run, const ExportOptions& o) {
  const std::string &qonnx = o.qonnx(), &hls = o.hls(), &part = o.part();
  if (qonnx.empty() && hls.empty() && o.emulator().empty())
    throw Error("export: give --qonnx FILE, --hls DIR and/or --emulator DIR");
  if (o.testbench_samples() < 1) throw Error("export: --tb-samples must be at least 1");
  // A run's parts are its quantized stacks (RUN/<stage>.qstack), the
  // encoder first: "all" is every one of them.
  std::vector<std::string> held;
  for (const std::string& p : {std::string("encoder"), std::string("classifier")})
    if (fs::exists(run + "/" + p + ".qstack")) held.push_back(p);
  {
    std::error_code ec;
    std::vector<std::string> others;
    for (const auto& e : fs::directory_iterator(run, ec))
      if (e.path().extension() == ".qstack" && e.path().stem() != "encoder" && e.path().stem() != "classifier")
        others.push_back(e.path().stem().string());
    std::sort(others.begin(), others.end());
    held.insert(held.end(), others.begin(), others.end());
  }
  if (part != "all" && std::find(held.begin(), held.end(), part) == held.end()) {
    std::string list;
    for (const auto& p : held) list += (list.empty() ? "" : ", ") + p;
    throw Error("export: part '" + part + "': " + run + " has no " + part +
                ".qstack (its parts: " + (list.empty() ? std::string("none") : list) + ", or all)");
  }
  const std::vector<std::string> parts = part == "all" ? held : std::vector<std::string>{part};
  if (parts.empty()) throw Error("export: " + run + ": no quantized stack (.qstack) to export");
  if (!o.emulator().empty() && std::find(parts.begin(), parts.end(), "encoder") == parts.end())
    throw Error("export: --emulator emulates the encoder (it takes raw CALQ): use --part encoder or all");
  const bool has_pipeline = fs::exists(run + "/pipeline.json");
  // Loaded once: the run's files must belong together (run ids), and the
  // testbench and emulator take its front end.
  std::unique_ptr<EconTPipeline> pipeline;
  if (has_pipeline) pipeline.reset(new EconTPipeline(EconTPipeline::load(run)));
  if (!o.emulator().empty() && !has_pipeline)
    throw Error("export: " + run + "/pipeline.json: missing; the emulator needs the run's front end");
  // Testbench data: wafers of the run's test file (or --tb-data) through the
  // front end, and inputs that reach every first-layer accumulator bound.
  std::string tb_file = o.testbench_data();
  if (tb_file.empty() && fs::exists(run + "/test.h5")) tb_file = run + "/test.h5";
  if (!tb_file.empty() && !has_pipeline)
    throw Error("export: " + run + "/pipeline.json: missing; testbench data from " + tb_file +
                " need the run's front end");
  {
    // Outputs that are inputs, or one file twice, are refused before any work.
    std::vector<std::string> inputs = {run + "/pipeline.json", tb_file}, files;
    for (const std::string& p : parts) {
      inputs.push_back(run + "/" + p + ".qstack");
      if (!qonnx.empty()) files.push_back(parts.size() > 1 ? with_suffix(qonnx, p) : qonnx);
    }
    check_outputs(inputs, files);
  }
  // Every output (QONNX files, HLS projects, emulator) appears at the end,
  // together, or none does.
  OutputTransaction transaction;
  std::string log;
  char buf[512];
  Samples encoder_real;  // front-end output of the event file's wafers
  // Testbench data only for what carries a testbench (HLS, emulator).
  const bool need_testbench = !hls.empty() || !o.emulator().empty();
  std::unique_ptr<EconTFrontEnd> front_end;
  if (has_pipeline && need_testbench && (!tb_file.empty() || !o.emulator().empty()))
    front_end.reset(new EconTFrontEnd(pipeline->front_end()));
  if (!tb_file.empty() && need_testbench) encoder_real = front_end_inputs(tb_file, o.testbench_samples(), *front_end);
  // The latents the encoder sends: a latent whose gate closed is removed
  // from the encoder's output and from the classifier's input alike.
  std::vector<int64_t> sent_latents;
  if (std::find(parts.begin(), parts.end(), "classifier") != parts.end() && fs::exists(run + "/encoder.qstack"))
    load_quantized_stack(run + "/encoder.qstack")->describe({}, &sent_latents);
  for (const std::string& p : parts) {
    const std::string file = run + "/" + p + ".qstack";
    QuantizedStack stack = load_quantized_stack(file);
    const bool reads_latents = p == "classifier" && !sent_latents.empty() &&
                               stack->input_shape().size() == 1 && stack->input_shape()[0] >= sent_latents.back() + 1;
    const ModelDescription model = reads_latents ? stack->describe(sent_latents) : stack->describe();
    Samples inputs;
    std::string origin, tb_line;
    if (!need_testbench) {
    } else if (!encoder_real.empty() && p == "encoder") {
      inputs = encoder_real;
      origin = "wafers of " + tb_file + " through the front end";
    } else if (!encoder_real.empty() && p == "classifier") {
      // The latent the encoder transmits for those wafers.
      const IntegerReference encoder(load_quantized_stack(run + "/encoder.qstack")->describe());
      for (const auto& x : encoder_real) inputs.push_back(encoder.run(x));
      origin = "latents of wafers of " + tb_file;
    } else {
      inputs = uniform_inputs(model, o.testbench_samples(), o.seed());
      origin = "uniform over the input type (no event data: RUN/test.h5 absent and no --tb-data)";
    }
    if (need_testbench) {
      const size_t real = inputs.size();
      for (auto& x : accumulator_bound_inputs(model)) inputs.push_back(std::move(x));
      const IntegerReference reference(model);
      tb_line = "testbench: " + std::to_string(inputs.size()) + " samples (" + std::to_string(real) + " " + origin +
                ", " + std::to_string(inputs.size() - real) + " at the accumulator bounds), " +
                std::to_string(distinct_rows(reference, inputs)) + " distinct expected output rows\n";
    }
    if (!qonnx.empty()) {
      const std::string out = parts.size() > 1 ? with_suffix(qonnx, p) : qonnx;
      QonnxOptions::Metadata meta{
          {"ddaq_version", version()}, {"run", run_name(run)}, {"part", p}, {"spec", stack->spec()}};
      // The pipeline configuration (layout, bits, ...) when the run has one.
      std::ifstream cfg(run + "/pipeline.json");
      if (cfg) meta["pipeline_config"] = std::string(std::istreambuf_iterator<char>(cfg), {});
      write_qonnx(model, out, QonnxOptions().graph_name(p).metadata(meta));
      log += "wrote " + out + " (QONNX, opset 11)\n" + hls4ml_input_note(model.front().output_type);
    }
    if (!hls.empty()) {
      const std::string out = parts.size() > 1 ? (fs::path(hls) / p).lexically_normal().string() : hls;
      write_hls_project(model, out,
                        HlsOptions()
                            .name(o.name().empty() ? p : o.name())
                            .reuse_factor(o.reuse_factor())
                            .io(o.io())
                            .replace(o.replace()),
                        inputs);
      log += "wrote " + normal_folder(out) + " (HLS project, io_" + o.io() + ")\n  " + tb_line;
    }
    if (!o.emulator().empty() && p == "encoder") {
      write_emulator(model, *front_end, o.emulator(),
                     EmulatorOptions().name(o.name().empty() ? p : o.name()).replace(o.replace()), inputs);
      const std::string emu = normal_folder(o.emulator());
      log += "wrote " + emu + " (emulator library: cmake -S " + emu + " -B " + emu + "/build && cmake --build " + emu +
             "/build)\n";
    }
    const DesignSpec design = design_from(model, o.reuse_factor());
    const ResourceValues r = AnalyticResourceModel::shipped().predict(design);
    std::snprintf(buf, sizeof buf,
                  "%s estimates: LUT %.0f, FF %.0f, DSP %.0f, BRAM18K %.1f, latency %.0f cycles (analytic model fitted "
                  "on Resource-strategy dense designs: indicative only)\n",
                  p.c_str(), r[0], r[1], r[2], r[3], r[4]);
    log += buf;
    const std::string warning = AnalyticResourceModel::shipped().range_warning(design);
    if (!warning.empty()) log += "  warning: " + warning + "\n";
    log += p + " energy: " + estimate_energy(model).to_text() + "\n";
  }
  transaction.commit();
  return log;
}

}  // namespace ddaq
