// The `ddaq` Python module (pybind11) over the public headers. Arrays cross
// as numpy; long C++ work releases the GIL.
#include <ATen/ATen.h>
#include <c10/core/GradMode.h>  // c10::NoGradGuard: at:: lost the alias in LibTorch 2.x
#include <torch/csrc/utils/pybind.h>  // at::Tensor <-> torch.Tensor (libtorch_python)
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>

#include "ddaq/core/config.h"
#include "ddaq/core/csv_import.h"
#include "ddaq/core/export.h"
#include "ddaq/files.h"
#include "ddaq/core/pipeline.h"
#include "ddaq/core/trainer.h"
#include "ddaq/core/events.h"
#include "ddaq/core/overlay.h"
#include "ddaq/core/synth.h"
#include "ddaq/core/version.h"
#include "ddaq/core/wafer_metric.h"
#include "ddaq/error.h"
#include "ddaq/surrogates/emd.h"
#include "ddaq/surrogates/emd_surrogate.h"
#include "ddaq/surrogates/energy.h"
#include "ddaq/surrogates/fpga_resources.h"
#include "ddaq/surrogates/link_budget.h"
#include "ddaq/surrogates/sinkhorn.h"

namespace py = pybind11;
void bind_graph(py::module_& m);  // graph_bindings.cpp: ddaq.Graph, register_stage
using Floats = py::array_t<float, py::array::c_style | py::array::forcecast>;

namespace {

// [N, cells] float32 view of an array (HGCAL: 48), or ddaq::Error naming the argument.
Floats wafers(const py::array& a, const char* name, int cells = ddaq::kCellsPerWafer) {
  Floats f = Floats::ensure(a);
  if (!f || f.ndim() != 2 || f.shape(1) != cells)
    throw ddaq::Error(std::string(name) + ": expected an array of shape [N, " + std::to_string(cells) + "]");
  return f;
}

py::array_t<double> to_numpy(const std::vector<double>& v) {
  py::array_t<double> out(static_cast<py::ssize_t>(v.size()));
  std::memcpy(out.mutable_data(), v.data(), v.size() * sizeof(double));
  return out;
}

py::dict resources_dict(const ddaq::ResourceValues& r) {
  py::dict d;
  for (size_t k = 0; k < r.size(); ++k) d[ddaq::to_string(static_cast<ddaq::ResourceTarget>(k))] = r[k];
  return d;
}

// A pipeline with its training options, built from a JSON configuration
// (the "pipeline" and "training" sections of a ddaq config).
struct PyPipeline {
  ddaq::EconTPipeline pipeline;
  ddaq::TrainerOptions trainer;

  static PyPipeline from_json(const std::string& text, const std::string& source, const std::string& base_dir) {
    const ddaq::Config c = ddaq::Config::parse(text, source);
    return PyPipeline{
        ddaq::EconTPipeline::from_config(c, static_cast<uint64_t>(c.section("training").integer("seed", 1, 0))),
        ddaq::TrainerOptions::from_config(c.section("training"), base_dir)};
  }
};

// Called at every training step: Ctrl-C (SIGINT) raises KeyboardInterrupt
// in the notebook at the next step boundary, the pipeline left consistent.
void check_python_signals() {
  py::gil_scoped_acquire gil;
  if (PyErr_CheckSignals() != 0) throw py::error_already_set();
}

// Seeds are 0 ... 2^63 - 1 (a negative one would wrap into another seed).
void check_seed(int64_t seed) {
  if (seed < 0) throw ddaq::Error("seed " + std::to_string(seed) + " is negative (seeds are 0 ... 2^63 - 1)");
}

py::object json_to_py(const std::string& text) { return py::module_::import("json").attr("loads")(text); }

}  // namespace

PYBIND11_MODULE(_ddaq, m) {
  m.doc() = "ddaq: event files, exact and learned EMD, link budget, FPGA and energy cost models";
  m.attr("__version__") = ddaq::version();
  // PyErr_SetString rather than error(msg): the call form is deprecated in
  // pybind11 3 and py::set_error is missing in Debian's 2.10.
  static py::exception<ddaq::Error> error(m, "Error");
  // Every failure of ddaq code is ddaq.Error with the command line's one-line
  // message; Python's own exceptions (KeyboardInterrupt from a step, errors
  // in a callback) and pybind11's argument errors pass through unchanged.
  py::register_local_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const py::error_already_set&) {
      throw;
    } catch (const py::builtin_exception&) {
      throw;
    } catch (const ddaq::Error& e) {
      PyErr_SetString(error.ptr(), e.what());
    } catch (const c10::Error& e) {
      PyErr_SetString(error.ptr(), ddaq::first_line(e.what_without_backtrace()).c_str());
    } catch (const std::bad_alloc&) {
      PyErr_SetString(error.ptr(), "out of memory");
    } catch (const std::exception& e) {
      PyErr_SetString(error.ptr(), ddaq::first_line(e.what()).c_str());
    }
  });

  // ------------------------------------------------------------------ data
  m.def(
      "import_csv",
      [](const std::vector<std::string>& files, const std::string& output, const std::vector<int32_t>& labels) {
        py::gil_scoped_release release;
        return ddaq::import_calq_csv(files, output, labels).events;
      },
      py::arg("files"), py::arg("output"), py::arg("labels") = std::vector<int32_t>{},
      "Import CALQ_0..CALQ_47 CSV files into an event file; returns the number of events.");
  m.def(
      "synthesize",
      [](int64_t events, int64_t seed, double pileup, double electron_fraction) {
        check_seed(seed);
        ddaq::EventTable t;
        {
          py::gil_scoped_release release;
          t = ddaq::synthesize(
              ddaq::SynthOptions().events(events).seed(seed).pileup_mu(pileup).electron_fraction(electron_fraction));
        }
        py::array_t<float> calq({static_cast<py::ssize_t>(events), static_cast<py::ssize_t>(48)});
        py::array_t<int32_t> label(static_cast<py::ssize_t>(events));
        std::memcpy(calq.mutable_data(), t.calq.data(), t.calq.size() * sizeof(float));
        std::memcpy(label.mutable_data(), t.label.data(), t.label.size() * sizeof(int32_t));
        return py::make_tuple(calq, label);
      },
      py::arg("events"), py::arg("seed") = 1, py::arg("pileup") = 0.0, py::arg("electron_fraction") = 0.5,
      "Synthetic HGCAL wafers in memory: (calq [N, 48] float32, label [N] int32).");
  m.def(
      "synth",
      [](const std::string& output, int64_t events, int64_t seed, double pileup, double electron_fraction) {
        check_seed(seed);
        py::gil_scoped_release release;
        ddaq::synthesize_to_file(
            ddaq::SynthOptions().events(events).seed(seed).pileup_mu(pileup).electron_fraction(electron_fraction), output);
      },
      py::arg("output"), py::arg("events"), py::arg("seed") = 1, py::arg("pileup") = 0.0,
      py::arg("electron_fraction") = 0.5, "Write synthetic wafers to an event file (as `ddaq data synth`).");
  m.def(
      "overlay",
      [](const std::string& input, const std::string& pool, const std::string& output, double mu, int64_t seed) {
        check_seed(seed);
        py::gil_scoped_release release;
        ddaq::overlay_file(ddaq::OverlayOptions().mu(mu).seed(seed), input, pool, output);
      },
      py::arg("input"), py::arg("pool"), py::arg("output"), py::arg("mu"), py::arg("seed") = 1,
      "Pileup overlay file to file (as `ddaq data overlay`).");
  m.def(
      "read_events",
      [](const std::string& path) {
        const ddaq::EventFileReader r(path, ddaq::EventFileReader::kAnyCells);
        ddaq::EventTable t;
        {
          py::gil_scoped_release release;
          t = r.read_all();
        }
        py::array_t<float> calq({static_cast<py::ssize_t>(t.size()), static_cast<py::ssize_t>(t.cells)});
        std::memcpy(calq.mutable_data(), t.calq.data(), t.calq.size() * sizeof(float));
        py::dict d;
        d["calq"] = calq;
        if (t.has_labels()) {
          py::array_t<int32_t> label(static_cast<py::ssize_t>(t.size()));
          std::memcpy(label.mutable_data(), t.label.data(), t.label.size() * sizeof(int32_t));
          d["label"] = label;
        } else {
          d["label"] = py::none();
        }
        d["attrs"] = r.attributes();
        return d;
      },
      py::arg("path"), "Read an event file: {'calq': [N, cells] (HGCAL: 48), 'label': [N] or None, 'attrs': {...}}.");

  // ------------------------------------------------------------------ EMD
  m.def(
      "emd",
      [](const at::Tensor& a, const at::Tensor& b, int threads) {
        if (a.dim() != 2 || a.size(1) != 48 || b.sizes() != a.sizes())
          throw ddaq::Error("emd: expected tensors of shape [N, 48]");
        const at::Tensor fa = a.detach().to(at::kFloat).cpu().contiguous(), fb = b.detach().to(at::kFloat).cpu().contiguous();
        at::Tensor out = at::empty({fa.size(0)}, at::kDouble);
        {
          py::gil_scoped_release release;
          ddaq::emd_exact_rows(ddaq::trigger_cell_metric(), fa.data_ptr<float>(), fb.data_ptr<float>(), fa.size(0),
                               out.data_ptr<double>(), threads);
        }
        return out;
      },
      py::arg("a"), py::arg("b"), py::arg("threads") = 0, "Exact EMD of torch tensors (returns a float64 tensor).");
  m.def(
      "emd",
      [](const py::array& a, const py::array& b, int threads) {
        const Floats fa = wafers(a, "a"), fb = wafers(b, "b");
        if (fa.shape(0) != fb.shape(0)) throw ddaq::Error("emd: a and b have different numbers of rows");
        std::vector<double> out(static_cast<size_t>(fa.shape(0)));
        {
          py::gil_scoped_release release;
          ddaq::emd_exact_rows(ddaq::trigger_cell_metric(), fa.data(), fb.data(), fa.shape(0), out.data(), threads);
        }
        return to_numpy(out);
      },
      py::arg("a"), py::arg("b"), py::arg("threads") = 0,
      "Exact EMD row by row (sensor-cell pitch units); NaN where exactly one wafer is empty.");
  m.def(
      "sinkhorn_emd",
      [](const py::array& a, const py::array& b, double epsilon, int iterations) {
        const Floats fa = wafers(a, "a"), fb = wafers(b, "b");
        if (fa.shape(0) != fb.shape(0)) throw ddaq::Error("sinkhorn: a and b have different numbers of rows");
        const int64_t n = fa.shape(0);
        std::vector<double> out(static_cast<size_t>(n));
        {
          py::gil_scoped_release release;
          const at::Tensor ta = at::from_blob(const_cast<float*>(fa.data()), {n, 48}).to(at::kDouble);
          const at::Tensor tb = at::from_blob(const_cast<float*>(fb.data()), {n, 48}).to(at::kDouble);
          const at::Tensor r = ddaq::sinkhorn_emd(ta, tb, ddaq::cost_tensor(ddaq::trigger_cell_metric()),
                                                  ddaq::SinkhornOptions().epsilon(epsilon).iterations(iterations))
                                   .contiguous();
          std::memcpy(out.data(), r.data_ptr<double>(), static_cast<size_t>(n) * sizeof(double));
        }
        return to_numpy(out);
      },
      py::arg("a"), py::arg("b"), py::arg("epsilon") = 0.2, py::arg("iterations") = 100,
      "Entropic (Sinkhorn) EMD, log domain.");
  py::class_<ddaq::EmdSurrogate>(m, "EmdSurrogate", "The learned EMD surrogate.")
      .def(py::init([](const std::string& path) { return ddaq::EmdSurrogate::load(path); }), py::arg("path"),
           "Load a surrogate file (as EmdSurrogate.load).")
      .def_static("load", &ddaq::EmdSurrogate::load, py::arg("path"))
      .def_property_readonly("parameter_count", &ddaq::EmdSurrogate::parameter_count)
      .def(
          "forward",
          [](const ddaq::EmdSurrogate& s, const at::Tensor& a, const at::Tensor& b) { return s.forward(a, b); },
          py::arg("a"), py::arg("b"), "Differentiable surrogate EMD of torch tensors [N, 48] (autograd works).")
      .def(
          "predict",
          [](const ddaq::EmdSurrogate& s, const py::array& a, const py::array& b) {
            const Floats fa = wafers(a, "a"), fb = wafers(b, "b");
            if (fa.shape(0) != fb.shape(0)) throw ddaq::Error("surrogate: a and b have different numbers of rows");
            std::vector<double> out(static_cast<size_t>(fa.shape(0)));
            {
              py::gil_scoped_release release;
              s.predict(fa.data(), fb.data(), fa.shape(0), out.data());
            }
            return to_numpy(out);
          },
          py::arg("a"), py::arg("b"));

  // ------------------------------------------------------------------ costs
  m.def(
      "elinks_for_latent", [](int64_t latents, int bits) { return ddaq::AutoencoderFrame().elinks_for_latent(latents, bits); },
      py::arg("latents"), py::arg("bits"), "E-links of the ECON-T autoencoder frame for latents x bits.");
  m.def(
      "best_choice_cells", [](int elinks) { return ddaq::ClassicalFormats().best_choice_cells_for(elinks); },
      py::arg("elinks"), "Trigger cells Best Choice keeps with this many e-links.");
  m.def(
      "system_budget",
      [](const std::vector<std::tuple<std::string, int64_t, int>>& groups, int user_bits) {
        std::vector<ddaq::ModuleGroup> g;
        for (const auto& t : groups) g.push_back({std::get<0>(t), std::get<1>(t), std::get<2>(t)});
        const ddaq::SystemBudget s = ddaq::system_budget(g, user_bits);
        py::dict d;
        d["modules"] = s.modules;
        d["elinks"] = s.elinks;
        d["uplinks"] = s.uplinks;
        d["bandwidth_tbps"] = s.bandwidth_tbps;
        return d;
      },
      py::arg("groups"), py::arg("user_bits") = 230, "lpGBT uplinks for (name, modules, e-links per module) groups.");
  m.def(
      "fpga_resources",
      [](const std::vector<std::tuple<int64_t, int64_t, double, double, int64_t>>& layers, const std::string& model) {
        ddaq::DesignSpec d;
        for (const auto& t : layers)
          d.layers.push_back({std::get<0>(t), std::get<1>(t), std::get<2>(t), std::get<3>(t), std::get<4>(t)});
        const ddaq::AnalyticResourceModel m =
            model.empty() ? ddaq::AnalyticResourceModel::shipped() : ddaq::AnalyticResourceModel::load(model);
        return resources_dict(m.predict(d));
      },
      py::arg("layers"), py::arg("model") = "",
      "LUT, FF, DSP, BRAM18K, latency for dense layers (in, out, weight bits, act bits, reuse factor).");
  m.def(
      "energy",
      [](const std::vector<std::tuple<int64_t, int, int, int>>& layers) {
        ddaq::ModelDescription model;
        for (const auto& t : layers) {
          ddaq::LayerDescription l;
          l.kind = ddaq::LayerKind::Dense;
          l.multiplies = std::get<0>(t);
          l.input_type = ddaq::FixedPointType(std::get<1>(t), 1);
          l.weight_type = ddaq::FixedPointType(std::get<2>(t), 1);
          l.accumulator_type = ddaq::FixedPointType(std::get<3>(t), 1);
          model.push_back(l);
        }
        const ddaq::EnergyEstimate e = ddaq::estimate_energy(model);
        py::dict d;
        d["pj_per_inference"] = e.total_pj;
        d["multiply_pj"] = e.multiply_pj;
        d["add_pj"] = e.add_pj;
        d["power_mw"] = e.power_mw;
        return d;
      },
      py::arg("layers"),
      "Energy (45 nm Horowitz) for layers given as (multiplies, input bits, weight bits, accumulator bits).");

  bind_graph(m);

  // ------------------------------------------------------------------ pipelines
  py::class_<PyPipeline>(m, "_Pipeline")
      .def(py::init([](const std::string& text, const std::string& source, const std::string& base_dir) {
             return PyPipeline::from_json(text, source, base_dir);
           }),
           py::arg("config_json"), py::arg("source"), py::arg("base_dir"))
      .def_static(
          "load",
          [](const std::string& run) {
            return PyPipeline{ddaq::EconTPipeline::load(run), ddaq::TrainerOptions().loss("weighted_mse")};
          },
          py::arg("run"))
      .def(
          "train",
          [](PyPipeline& p, const std::string& train_file, const std::string& run, py::object progress,
             int64_t max_steps) {
            ddaq::TrainerOptions o = p.trainer;
            if (max_steps >= 0) o.max_steps(max_steps);
            const ddaq::StepCallback cb = [progress](int64_t step, int64_t total, double loss) {
              check_python_signals();
              if (progress.is_none()) return;
              py::gil_scoped_acquire gil;
              progress(step, total, loss);
            };
            if (!run.empty()) ddaq::make_directories(run);
            ddaq::TrainSummary s;
            {
              py::gil_scoped_release release;
              s = ddaq::train_pipeline(p.pipeline, train_file, o, run.empty() ? "" : run + "/metrics.jsonl", nullptr, cb);
              if (!run.empty()) p.pipeline.save(run);
            }
            py::dict d;
            d["steps"] = s.steps;
            d["epochs"] = s.epochs;
            d["seconds"] = s.seconds;
            d["last_epoch"] = s.last_epoch;
            return d;
          },
          py::arg("train_file"), py::arg("run") = "", py::arg("progress") = py::none(), py::arg("max_steps") = -1,
          "Train end to end; `progress(step, total, loss)` is called after every step; saves into `run` if given.")
      .def(
          "forward",
          [](PyPipeline& p, const at::Tensor& calq, bool training) {
            p.pipeline.train(training);
            const ddaq::PipelineResult r = p.pipeline.forward(calq);
            py::dict d;
            for (const auto& kv : r.named) d[py::str(kv.first)] = kv.second;
            return d;
          },
          py::arg("calq"), py::arg("training") = false,
          "All named outputs as torch tensors, with autograd (target, reconstruction, latent, logits, "
          "payload_bits, elinks, ebops).")
      .def(
          "predict",
          [](PyPipeline& p, const at::Tensor& calq) {
            if (calq.dim() != 2 || calq.size(1) != p.pipeline.cells())
              throw ddaq::Error("calq: expected a tensor of shape [N, " + std::to_string(p.pipeline.cells()) + "]");
            c10::NoGradGuard no_grad;
            p.pipeline.train(false);
            const at::Tensor x = calq.detach().to(at::kFloat).cpu().contiguous();
            ddaq::PipelineResult r;
            {
              py::gil_scoped_release release;
              r = p.pipeline.forward(x);
            }
            py::dict d;
            d["reconstruction"] = r.get("reconstruction");
            d["latent"] = r.get("latent");
            // absent without a classification; [N, classes] probabilities above two classes
            if (r.has("logits"))
              d["score"] = ddaq::label_classes(p.pipeline.objectives()) > 2 ? at::softmax(r.get("logits"), 1)
                                                                            : at::sigmoid(r.get("logits"));
            return d;
          },
          py::arg("calq"), "As below, for a torch tensor: returns torch tensors (no gradient).")
      .def(
          "predict",
          [](PyPipeline& p, const py::array& calq) {
            const Floats x = wafers(calq, "calq", p.pipeline.cells());
            const int64_t n = x.shape(0);
            at::Tensor rec, lat, score;
            {
              py::gil_scoped_release release;
              c10::NoGradGuard no_grad;
              p.pipeline.train(false);
              const ddaq::PipelineResult r = p.pipeline.forward(
                  at::from_blob(const_cast<float*>(x.data()), {n, static_cast<int64_t>(p.pipeline.cells())}));
              rec = r.get("reconstruction").contiguous();
              // The latents sent (a latent whose learned gate closed is not), as `ddaq predict`.
              const std::vector<int64_t> sent = p.pipeline.transmitted_latents();
              lat = r.get("latent").index_select(1, at::tensor(sent, at::kLong)).contiguous();
              if (r.has("logits"))
                score = (ddaq::label_classes(p.pipeline.objectives()) > 2 ? at::softmax(r.get("logits"), 1)
                                                                          : at::sigmoid(r.get("logits")))
                            .contiguous();
            }
            auto copy = [](const at::Tensor& t) {
              std::vector<py::ssize_t> shape(t.sizes().begin(), t.sizes().end());
              py::array_t<float> a(shape);
              std::memcpy(a.mutable_data(), t.data_ptr<float>(), static_cast<size_t>(t.numel()) * sizeof(float));
              return a;
            };
            py::dict d;
            d["reconstruction"] = copy(rec);
            d["latent"] = copy(lat);
            if (score.defined()) d["score"] = copy(score);
            return d;
          },
          py::arg("calq"),
          "Decoded wafers (unit sum), transmitted latents and classifier scores for [N, cells] charges.")
      .def(
          "evaluate",
          [](PyPipeline& p, const std::string& data, int64_t events) {
            std::string json;
            {
              py::gil_scoped_release release;
              json = ddaq::evaluate_pipeline(p.pipeline, data, events).to_json();
            }
            return json_to_py(json);
          },
          py::arg("data"), py::arg("events") = 20000, "Exact EMD, AUC and Best Choice at 1..5 e-links.")
      .def(
          "save", [](const PyPipeline& p, const std::string& run) { p.pipeline.save(run); }, py::arg("run"))
      .def(
          "named_parameters",
          [](const PyPipeline& p) {
            py::dict d;
            for (const auto& kv : p.pipeline.named_parameters()) d[py::str(kv.first)] = kv.second;
            return d;
          },
          "Every trainable tensor, '<stage>.<name>' (torch tensors, shared with the pipeline).")
      .def_property_readonly("elinks", [](const PyPipeline& p) { return p.pipeline.elinks(); })
      .def_property_readonly("latent_bits", [](const PyPipeline& p) { return p.pipeline.latent_bits(); })
      .def_property_readonly(
          "transmitted_latents", [](const PyPipeline& p) { return p.pipeline.transmitted_latents(); },
          "Indices of the latents sent (all without learned latent gates).");
  m.def(
      "read_checkpoint",
      [](const std::string& path) {
        py::module_::import("torch");  // its tensor type must exist before tensors cross
        ddaq::CheckpointContents c;
        {
          py::gil_scoped_release release;
          c = ddaq::read_checkpoint(path);
        }
        py::dict state;
        for (const auto& kv : c.state) state[py::str(kv.first)] = kv.second;
        py::dict d;
        d["step"] = c.step;
        d["epoch"] = c.epoch;
        d["batch_in_epoch"] = c.batch_in_epoch;
        d["fingerprint"] = json_to_py(c.fingerprint);
        d["state"] = state;
        return d;
      },
      py::arg("path"),
      "A training checkpoint (RUN/checkpoint.pt): step, epoch, batch_in_epoch, fingerprint (the configuration it "
      "belongs to) and state (every pipeline tensor by name, torch tensors).");
  m.def(
      "export",
      [](const std::string& run, const std::string& qonnx, const std::string& hls, const std::string& part, int reuse,
         const std::string& io, int64_t samples, bool replace, const std::string& emulator,
         const std::string& tb_data) {
        py::gil_scoped_release release;
        return ddaq::export_run(run, ddaq::ExportOptions()
                                         .qonnx(qonnx)
                                         .hls(hls)
                                         .emulator(emulator)
                                         .testbench_data(tb_data)
                                         .part(part)
                                         .reuse_factor(reuse)
                                         .io(io)
                                         .testbench_samples(samples)
                                         .replace(replace));
      },
      py::arg("run"), py::arg("qonnx") = "", py::arg("hls") = "", py::arg("part") = "encoder", py::arg("reuse_factor") = 1,
      py::arg("io") = "parallel", py::arg("tb_samples") = 1000, py::arg("replace") = false, py::arg("emulator") = "",
      py::arg("tb_data") = "",
      "Export a saved run as QONNX, an HLS project and/or an emulator library (front end + encoder, C API); "
      "returns the log with cost estimates.");
}
