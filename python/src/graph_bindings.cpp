// ddaq.Graph (any graph section, any detector) and stage types written in
// Python (a torch.nn.Module per stage), for notebooks. Python stages run in
// the C++ graph and trainer like any other stage (their parameters are
// trained and saved with the run); they have no integer description, so
// they are never exported.
#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <torch/csrc/utils/pybind.h>  // at::Tensor <-> torch.Tensor

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "ddaq/core/config.h"
#include "ddaq/core/graph.h"
#include "ddaq/error.h"

namespace py = pybind11;

namespace {

// The named tensors of a torch.nn.Module call (parameters or buffers).
std::vector<std::pair<std::string, at::Tensor>> named(const py::object& module, const char* method) {
  py::gil_scoped_acquire gil;
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const py::handle item : module.attr(method)()) {
    const auto pair = item.cast<py::tuple>();
    out.emplace_back(pair[0].cast<std::string>(), pair[1].cast<at::Tensor>());
  }
  return out;
}

// A stage whose forward is module(**{role: tensor}), returning a tensor (one
// role written) or a dict {role: tensor}.
class PythonStage : public ddaq::Stage {
 public:
  PythonStage(const ddaq::StageSpec& spec, py::object module) : spec_(spec), module_(std::move(module)) {}
  ~PythonStage() override {
    py::gil_scoped_acquire gil;
    module_ = py::object();
  }
  const std::string& name() const override { return spec_.name; }
  void forward(ddaq::NamedTensors& flow) override {
    py::gil_scoped_acquire gil;
    py::dict kwargs;
    for (const auto& kv : spec_.reads) kwargs[py::str(kv.first)] = flow.get(kv.second);
    const py::object out = module_(**kwargs);
    const std::string at = "stage '" + spec_.name + "' (" + spec_.type + ", Python): ";
    if (spec_.writes.size() == 1 && !py::isinstance<py::dict>(out)) {
      flow.set(spec_.writes.begin()->second, out.cast<at::Tensor>());
      return;
    }
    if (!py::isinstance<py::dict>(out)) throw ddaq::Error(at + "forward must return a dict {role: tensor}");
    const auto d = out.cast<py::dict>();
    for (const auto& kv : spec_.writes) {
      if (!d.contains(kv.first)) throw ddaq::Error(at + "forward returned no '" + kv.first + "'");
      flow.set(kv.second, d[py::str(kv.first)].cast<at::Tensor>());
    }
  }
  std::vector<std::pair<std::string, at::Tensor>> named_parameters() const override {
    return named(module_, "named_parameters");
  }
  std::vector<std::pair<std::string, at::Tensor>> named_buffers() const override {
    return named(module_, "named_buffers");
  }
  void train(bool on) override {
    py::gil_scoped_acquire gil;
    module_.attr("train")(on);
  }
  void to(const std::string& device) override {
    py::gil_scoped_acquire gil;
    module_.attr("to")(device);
  }

 private:
  ddaq::StageSpec spec_;
  py::object module_;
};

py::object json_to_py(const std::string& text) { return py::module_::import("json").attr("loads")(text); }

ddaq::Config graph_section(const std::string& text, const std::string& source) {
  const ddaq::Config root = ddaq::Config::parse(text, source);
  if (!root.has("graph")) throw ddaq::Error(source + ": no 'graph' section");
  return root.section("graph");
}

}  // namespace

void bind_graph(py::module_& m) {
  m.def(
      "register_stage",
      [](const std::string& type, py::object factory, const std::vector<std::string>& reads,
         const std::vector<std::string>& writes, const std::vector<std::string>& options) {
        if (type.empty()) throw ddaq::Error("register_stage: the type name is empty");
        if (writes.empty()) throw ddaq::Error("register_stage: '" + type + "' writes no role");
        // Kept for the life of the process: the registry outlives the interpreter's objects.
        auto* kept = new py::object(std::move(factory));
        ddaq::StageType t;
        t.reads = reads;
        t.writes = writes;
        t.option_keys = options;
        t.make = [kept](const ddaq::StageSpec& spec, const ddaq::Graph&) -> std::unique_ptr<ddaq::Stage> {
          py::gil_scoped_acquire gil;
          py::dict opts = json_to_py(spec.options.dump()).cast<py::dict>();
          for (const char* k : {"type", "name", "reads", "writes"})
            if (opts.contains(k)) PyDict_DelItemString(opts.ptr(), k);
          return std::unique_ptr<ddaq::Stage>(new PythonStage(spec, (*kept)(opts)));
        };
        ddaq::StageRegistry::add(type, std::move(t));
      },
      py::arg("type"), py::arg("factory"), py::arg("reads"), py::arg("writes"),
      py::arg("options") = std::vector<std::string>{},
      "Register a stage type written in Python: factory(options: dict) returns a torch.nn.Module whose "
      "forward(**{read role: tensor}) returns the tensor it writes (or {write role: tensor}). It trains and is "
      "saved with runs of this process; it is never exported (no integer description).");
  m.def("stage_types", &ddaq::StageRegistry::types, "The registered stage types, sorted.");

  py::class_<ddaq::Graph>(m, "_Graph")
      .def(py::init([](const std::string& text, const std::string& source, uint64_t seed) {
             return new ddaq::Graph(ddaq::GraphSpec::parse(graph_section(text, source)), seed);
           }),
           py::arg("config_json"), py::arg("source"), py::arg("seed"))
      .def(
          "forward",
          [](ddaq::Graph& g, const at::Tensor& x, bool training) {
            for (ddaq::Stage* s : g.stages()) s->train(training);
            ddaq::NamedTensors flow;
            flow.set(g.spec().input, x);
            g.forward(flow);
            py::dict d;
            for (const auto& kv : flow.named) d[py::str(kv.first)] = kv.second;
            return d;
          },
          py::arg("x"), py::arg("training") = false,
          "Every tensor of the graph (by name, with autograd) for input `x` [N, input shape...].")
      .def_property_readonly("stages",
                             [](const ddaq::Graph& g) {
                               std::vector<std::pair<std::string, std::string>> out;
                               for (const auto& s : g.spec().stages) out.emplace_back(s.name, s.type);
                               return out;
                             })
      .def_property_readonly("input", [](const ddaq::Graph& g) { return g.spec().input; })
      .def_property_readonly("objectives",
                             [](const ddaq::Graph& g) {
                               py::list out;
                               for (const auto& o : g.spec().objectives) {
                                 py::dict d;
                                 d["name"] = o.name;
                                 d["type"] = o.type;
                                 d["weight"] = o.weight;
                                 d["tensors"] = o.tensors;
                                 out.append(d);
                               }
                               return out;
                             })
      .def(
          "named_parameters",
          [](const ddaq::Graph& g) {
            py::dict d;
            for (ddaq::Stage* s : g.stages())
              for (const auto& kv : s->named_parameters()) d[py::str(s->name() + "." + kv.first)] = kv.second;
            return d;
          },
          "Every trainable tensor, '<stage>.<name>' (torch tensors: a torch optimizer can train the graph).");
}
