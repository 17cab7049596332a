// The DAQ graph (graph.h): stage registry, checked specs, building and running.
#include "ddaq/core/graph.h"

#include <ATen/ATen.h>
#include <torch/utils.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>

#include "ddaq/core/cell_geometry.h"
#include "ddaq/core/geometry.h"
#include "ddaq/error.h"

namespace ddaq {

extern int ddaq_builtin_stages_anchor;    // stages.cpp: links the built-in registrations
extern int ddaq_classical_stages_anchor;  // stages_classical.cpp

namespace {
// A real reference to each built-in stage file (its address kept through a
// volatile), so the static library's linker pulls their registrations in.
void link_builtin_stages() {
  static int* volatile anchors[] = {&ddaq_builtin_stages_anchor, &ddaq_classical_stages_anchor};
  (void)anchors;
}
std::map<std::string, StageType>& registry() {
  static std::map<std::string, StageType> types;
  return types;
}
std::string joined(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
  return out.empty() ? "none" : out;
}
}  // namespace

bool StageRegistry::add(const std::string& type, StageType stage_type) {
  if (!registry().emplace(type, std::move(stage_type)).second)
    throw Error("stage registry: type '" + type + "' registered twice");
  return true;
}

const StageType* StageRegistry::find(const std::string& type) {
  link_builtin_stages();
  const auto it = registry().find(type);
  return it == registry().end() ? nullptr : &it->second;
}

std::vector<std::string> StageRegistry::types() {
  link_builtin_stages();
  std::vector<std::string> out;
  for (const auto& kv : registry()) out.push_back(kv.first);
  return out;
}

const std::string& StageSpec::read(const std::string& role) const {
  const auto it = reads.find(role);
  if (it == reads.end()) throw Error("stage '" + name + "' (" + type + "): reads no '" + role + "'");
  return it->second;
}

const std::string& StageSpec::write(const std::string& role) const {
  const auto it = writes.find(role);
  if (it == writes.end()) throw Error("stage '" + name + "' (" + type + "): writes no '" + role + "'");
  return it->second;
}

namespace {
// role -> tensor name, every role of the type present, no others.
std::map<std::string, std::string> roles(const Config& stage, const std::string& key,
                                         const std::vector<std::string>& expected, const std::string& type) {
  const std::string at = stage.source() + ": " + stage.where() + "." + key;
  std::map<std::string, std::string> out;
  const Config c = stage.section(key);
  for (const std::string& role : c.keys()) {
    if (std::find(expected.begin(), expected.end(), role) == expected.end())
      throw Error(at + "." + role + ": " + type + " has no such role (its roles: " + joined(expected) + ")");
    const std::string tensor = c.string(role, "");
    if (tensor.empty()) throw Error(at + "." + role + ": expected a tensor name");
    out[role] = tensor;
  }
  for (const std::string& role : expected)
    if (!out.count(role))
      throw Error(at + "." + role + ": required (" + type + " " + key + " " + joined(expected) + ")");
  return out;
}
// The `objectives` list: known types, unique names, tensors some stage writes.
std::vector<ObjectiveSpec> parse_objectives(const Config& g, const std::map<std::string, std::string>& writer) {
  static const std::map<std::string, std::vector<std::string>> kRoles = {
      {"classification", {"logits"}},
      {"reconstruction", {"target", "reconstruction"}},
      {"regression", {"prediction", "target"}}};
  std::vector<ObjectiveSpec> out;
  const std::vector<Config> list = g.list("objectives");
  const std::string at = g.source() + ": " + (g.where().empty() ? std::string("graph") : g.where()) + ".objectives";
  if (list.empty()) throw Error(at + ": expected a non-empty list (or leave it out)");
  for (const Config& c : list) {
    const std::string here = c.source() + ": " + c.where();
    ObjectiveSpec o;
    o.type = c.string("type", "");
    const auto roles_of = kRoles.find(o.type);
    if (roles_of == kRoles.end())
      throw Error(here + ".type: " + (o.type.empty() ? std::string("required") : "unknown objective '" + o.type + "'") +
                  " (known: classification, reconstruction, regression)");
    std::vector<std::string> known{"name", "type", "weight"};
    if (o.type == "classification") known.push_back("classes");
    known.insert(known.end(), roles_of->second.begin(), roles_of->second.end());
    c.reject_unknown(known);
    o.name = c.string("name", "");
    if (o.name.empty()) throw Error(here + ".name: required (it names the term in metrics and reports)");
    // The trainer's own terms keep their names in metrics.
    for (const char* own : {"total", "elinks", "link_hinge", "ebops", "encoder_power_mw", "bce"})
      if (o.name == own) throw Error(here + ".name: '" + o.name + "' is the name of one of the trainer's own terms");
    if (o.name.rfind("budget_", 0) == 0)
      throw Error(here + ".name: '" + o.name + "' (names starting with budget_ are the budgets' terms)");
    for (const ObjectiveSpec& before : out)
      if (before.name == o.name) throw Error(here + ".name: '" + o.name + "' is used by another objective");
    o.weight = c.number("weight", 1.0, 0.0, 1e12);
    o.classes = static_cast<int>(c.integer("classes", 2, 2, 4096));
    // One label per event: every classification reads the same classes.
    for (const ObjectiveSpec& before : out)
      if (o.type == "classification" && before.type == "classification" && before.classes != o.classes)
        throw Error(here + ".classes: " + std::to_string(o.classes) + ", but objective '" + before.name + "' has " +
                    std::to_string(before.classes) + " (the event labels are one set of classes)");
    for (const std::string& role : roles_of->second) {
      const std::string tensor = c.string(role, "");
      if (tensor.empty()) throw Error(here + "." + role + ": required (a tensor name)");
      if (!writer.count(tensor)) {
        std::vector<std::string> names;
        for (const auto& w : writer) names.push_back(w.first);
        throw Error(here + "." + role + ": no stage writes '" + tensor + "' (written: " + joined(names) + ")");
      }
      o.tensors[role] = tensor;
    }
    out.push_back(std::move(o));
  }
  return out;
}
}  // namespace

namespace {
// `geometry`: a file name (read now) or {"positions": [[x, y], ...]}. The
// saved section holds the positions, so a run never depends on the file.
void parse_geometry(const std::string& at, GraphSpec& spec) {
  nlohmann::json section = nlohmann::json::parse(spec.json);
  const nlohmann::json& value = section.at("geometry");
  CellGeometry cells;
  if (value.is_string()) {
    // Relative to the config's folder, like every file a config names.
    std::string file = value.get<std::string>();
    const auto slash = spec.source.find_last_of('/');
    if (!file.empty() && file[0] != '/' && slash != std::string::npos) file = spec.source.substr(0, slash) + "/" + file;
    cells = CellGeometry::load(file);
  } else if (value.is_object() && value.size() == 1 && value.contains("positions") && value["positions"].is_array()) {
    std::vector<std::array<double, 2>> positions;
    for (const auto& p : value["positions"]) {
      if (!p.is_array() || p.size() != 2 || !p[0].is_number() || !p[1].is_number())
        throw Error(at + ".positions[" + std::to_string(positions.size()) + "]: expected [x, y]");
      positions.push_back({p[0].get<double>(), p[1].get<double>()});
    }
    cells = CellGeometry::from_positions(positions, at);
  } else {
    throw Error(at + ": expected a cell,x,y CSV file name or {\"positions\": [[x, y], ...]}");
  }
  if (cells.size() != spec.input_cells())
    throw Error(at + ": " + std::to_string(cells.size()) + " cells, but the input holds " +
                std::to_string(spec.input_cells()) + " values per event");
  spec.cell_positions = cells.positions();
  nlohmann::json positions = nlohmann::json::array();
  for (const auto& p : spec.cell_positions) positions.push_back({p[0], p[1]});
  section["geometry"] = {{"positions", positions}};
  spec.json = section.dump();
}
}  // namespace

GraphSpec GraphSpec::parse(const Config& g) {
  GraphSpec spec;
  spec.source = g.source();
  spec.json = g.dump();
  g.reject_unknown({"input", "stages", "objectives", "geometry"});
  const std::string at = g.source() + ": " + (g.where().empty() ? std::string("graph") : g.where());
  if (g.has("input")) {
    const Config in = g.section("input");
    in.reject_unknown({"name", "shape"});
    spec.input = in.string("name", spec.input);
    spec.input_shape = in.integers("shape", spec.input_shape, 1, 1 << 20);
  }
  if (g.has("geometry")) {
    parse_geometry(at + ".geometry", spec);
  } else if (spec.input_cells() != kCellsPerWafer) {
    throw Error(at + ".geometry: required: the input holds " + std::to_string(spec.input_cells()) +
                " values per event, the default geometry (HGCAL's trigger cells) has 48");
  }
  const std::vector<Config> stages = g.list("stages");
  if (stages.empty()) throw Error(at + ".stages: required (an ordered list of stages)");
  std::map<std::string, size_t> names;
  std::map<std::string, std::string> writer{{spec.input, "the graph input"}};
  for (size_t i = 0; i < stages.size(); ++i) {
    const Config& c = stages[i];
    const std::string here = c.source() + ": " + c.where();
    StageSpec s;
    s.type = c.string("type", "");
    s.name = c.string("name", "");
    const StageType* t = StageRegistry::find(s.type);
    if (!t)
      throw Error(here +
                  ".type: " + (s.type.empty() ? std::string("required") : "unknown stage type '" + s.type + "'") +
                  " (known: " + joined(StageRegistry::types()) + ")");
    if (s.name.empty()) throw Error(here + ".name: required (also the prefix of the stage's parameters)");
    if (s.name.find('.') != std::string::npos || s.name.find('/') != std::string::npos)
      throw Error(here + ".name: '" + s.name + "' (no '.' or '/': it prefixes parameter and file names)");
    if (names.count(s.name))
      throw Error(here + ".name: '" + s.name + "' is also the name of stages[" + std::to_string(names[s.name]) + "]");
    names[s.name] = i;
    std::vector<std::string> known{"type", "name", "reads", "writes"};
    known.insert(known.end(), t->option_keys.begin(), t->option_keys.end());
    c.reject_unknown(known);
    s.reads = roles(c, "reads", t->reads, s.type);
    s.writes = roles(c, "writes", t->writes, s.type);
    for (const auto& kv : s.reads)
      if (!writer.count(kv.second)) {
        std::vector<std::string> so_far;
        for (const auto& w : writer) so_far.push_back(w.first);
        throw Error(here + ".reads." + kv.first + ": tensor '" + kv.second +
                    "' is not written before this stage (written so far: " + joined(so_far) + ")");
      }
    for (const auto& kv : s.writes) {
      if (writer.count(kv.second))
        throw Error(here + ".writes." + kv.first + ": tensor '" + kv.second + "' is already written by " +
                    writer[kv.second] + " (every tensor has one writer)");
      writer[kv.second] = "stage '" + s.name + "'";
    }
    s.options = c;
    spec.stages.push_back(std::move(s));
  }
  if (g.has("objectives")) spec.objectives = parse_objectives(g, writer);
  return spec;
}

int label_classes(const std::vector<ObjectiveSpec>& objectives) {
  for (const ObjectiveSpec& o : objectives)
    if (o.type == "classification") return o.classes;
  return 2;
}

int64_t GraphSpec::input_cells() const {
  int64_t n = 1;
  for (int64_t d : input_shape) n *= d;
  return n;
}

std::vector<std::string> GraphSpec::written() const {
  std::vector<std::string> out;
  for (const auto& s : stages)
    for (const auto& kv : s.writes) out.push_back(kv.second);
  return out;
}

Graph::Graph(const GraphSpec& spec, uint64_t seed) : spec_(spec) {
  torch::manual_seed(seed);
  for (const StageSpec& s : spec_.stages) {
    const std::string here = spec_.source + ": stage '" + s.name + "' (" + s.type + ")";
    try {
      stages_.push_back(StageRegistry::find(s.type)->make(s, *this));
    } catch (const Error& e) {
      const std::string what = e.what();
      if (what.rfind(spec_.source + ": ", 0) == 0) throw;
      throw Error(here + ": " + what);
    } catch (const std::exception& e) {
      throw Error(here + ": " + e.what());
    }
  }
  // Shape mismatches surface here, named by stage, not in the first step.
  dry_run("");
}

NamedTensors Graph::dry_run(const std::string& until) const {
  at::NoGradGuard no_grad;
  NamedTensors flow;
  std::vector<int64_t> shape{2};
  shape.insert(shape.end(), spec_.input_shape.begin(), spec_.input_shape.end());
  flow.set(spec_.input, at::zeros(shape, at::kFloat));
  // Stages are in training mode until the graph is complete.
  for (const auto& s : stages_) s->train(false);
  for (const auto& s : stages_) {
    try {
      s->forward(flow);
    } catch (const std::exception& e) {
      for (const auto& t : stages_) t->train(true);
      std::string what = e.what();
      if (const auto* c = dynamic_cast<const c10::Error*>(&e)) what = c->what_without_backtrace();
      what = what.substr(0, what.find('\n'));
      throw Error(spec_.source + ": stage '" + s->name() + "' (" + spec_.stages[&s - &stages_[0]].type +
                  "): cannot run on its inputs: " + what);
    }
    if (!until.empty() && flow.has(until)) break;
  }
  for (const auto& s : stages_) s->train(true);
  return flow;
}

Graph::~Graph() = default;
Graph::Graph(Graph&&) noexcept = default;

void Graph::forward(NamedTensors& flow) const {
  for (const auto& s : stages_) s->forward(flow);
}

std::vector<Stage*> Graph::stages() const {
  std::vector<Stage*> out;
  for (const auto& s : stages_) out.push_back(s.get());
  return out;
}

std::vector<int64_t> Graph::probe_shape(const std::string& tensor) const {
  if (tensor == spec_.input) return spec_.input_shape;
  const NamedTensors flow = dry_run(tensor);
  if (!flow.has(tensor)) return {};
  const auto sizes = flow.get(tensor).sizes();
  return std::vector<int64_t>(sizes.begin() + 1, sizes.end());
}

Stage* Graph::find(const std::string& name) const {
  for (const auto& s : stages_)
    if (s->name() == name) return s.get();
  return nullptr;
}

}  // namespace ddaq
