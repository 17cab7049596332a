// ddaq/core/graph.h: the DAQ graph as data, an ordered list of stages from a
// config's `graph` section, built through a registry of stage types.
//
//   "graph": {
//     "input": {"name": "calq", "shape": [48]},
//     "stages": [
//       {"type": "front_end", "name": "frontend",
//        "reads": {"charges": "calq"},
//        "writes": {"target": "target", "normalized": "normalized"},
//        "threshold": 0.0},
//       {"type": "quantized_stack", "name": "encoder", ...}, ...
//     ],
//     "objectives": [
//       {"name": "trigger", "type": "classification", "logits": "trigger_logits", "weight": 1.0},
//       {"name": "emd", "type": "reconstruction", "target": "target",
//        "reconstruction": "reconstruction", "weight": 0.1}
//     ]
//   }
//
// Each stage names the tensors it reads and writes by role (the stage type
// fixes the roles). GraphSpec::parse checks the whole list before anything
// is built: unknown type, role or option, a name used twice, a tensor read
// before any stage writes it or written twice; each error is one line naming
// the file and the key ("main.json: graph.stages[2].reads.input: ...").
// Graph then builds the stages in order and runs a two-event dry forward,
// so a shape mismatch is named by stage before training starts.
//
// A new stage type is a class deriving from Stage with
//   static std::vector<std::string> reads();        // roles read
//   static std::vector<std::string> writes();       // roles written
//   static std::vector<std::string> option_keys();  // its own config keys
//   Class(const StageSpec& spec, const Graph& built_so_far);
// and one line in its own .cpp: DDAQ_REGISTER_STAGE("my_type", Class);
// (docs/extending.md). The built-in types are in stages.h.
#pragma once
#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "ddaq/core/config.h"
#include "ddaq/core/stage.h"

namespace ddaq {

class Graph;

// One stage as the config gives it.
struct StageSpec {
  std::string type, name;
  std::map<std::string, std::string> reads, writes;  // role -> tensor name
  Config options;                                    // the stage's object (its own keys checked by option_keys)
  // The tensor a role names (throws naming the role when the type has none).
  const std::string& read(const std::string& role) const;
  const std::string& write(const std::string& role) const;
};

// What the registry knows of a stage type.
struct StageType {
  std::vector<std::string> reads, writes, option_keys;
  std::function<std::unique_ptr<Stage>(const StageSpec&, const Graph&)> make;

  template <class S>
  static StageType of() {
    return {S::reads(), S::writes(), S::option_keys(),
            [](const StageSpec& spec, const Graph& built) { return std::unique_ptr<Stage>(new S(spec, built)); }};
  }
};

class StageRegistry {
 public:
  // Registers `type` (a second registration of one name throws at start).
  static bool add(const std::string& type, StageType stage_type);
  // nullptr for an unknown type.
  static const StageType* find(const std::string& type);
  static std::vector<std::string> types();  // sorted
};

#define DDAQ_STAGE_CONCAT2(a, b) a##b
#define DDAQ_STAGE_CONCAT(a, b) DDAQ_STAGE_CONCAT2(a, b)
// One line in the stage's own .cpp file registers it by type name.
#define DDAQ_REGISTER_STAGE(TYPE, CLASS)                                  \
  static const bool DDAQ_STAGE_CONCAT(ddaq_stage_registered_, __LINE__) = \
      ::ddaq::StageRegistry::add(TYPE, ::ddaq::StageType::of<CLASS>())

// One term of the training loss on named tensors (optional `objectives`
// list; without it the trainer uses the ECON-T roles and the training
// section's weights). "classification": binary cross-entropy of the
// `logits` tensor (one value per event) on the event labels, and an AUC in
// evaluation; "reconstruction": training.loss between `target` and
// `reconstruction` (unit-sum wafers), exact EMD in evaluation (the first one);
// "regression": mean squared error of `prediction` against `target` (a
// tensor of the graph, e.g. a module sum: a regressor head), its RMSE in
// evaluation.
struct ObjectiveSpec {
  std::string name, type;
  std::map<std::string, std::string> tensors;  // role -> tensor name
  double weight = 1.0;
  // classification: 2 (binary: one logit per event, BCE, AUC) or more
  // (`classes`: logits [N, classes], softmax cross-entropy on labels
  // 0..classes-1; evaluation gives the accuracy and the mean one-vs-rest AUC).
  int classes = 2;
  const std::string& tensor(const std::string& role) const { return tensors.at(role); }
};

// Classes of the event labels: the classifications' (all alike), else 2.
int label_classes(const std::vector<ObjectiveSpec>& objectives);

// A checked graph description.
struct GraphSpec {
  std::string input = "calq";
  std::vector<int64_t> input_shape{48};  // per event
  // The detector's cells (optional `geometry`: a cell,x,y CSV file, or
  // {"positions": [[x, y], ...]}; saved runs hold the positions): one per
  // input value, the ground metric of the exact EMD and of Sinkhorn. Empty:
  // HGCAL's 48 trigger cells (then the input must hold 48 values).
  std::vector<std::array<double, 2>> cell_positions;
  std::vector<StageSpec> stages;
  std::vector<ObjectiveSpec> objectives;  // empty: the ECON-T roles' defaults
  std::string json;    // the section as given (saved with runs, hashed into run ids)
  std::string source;  // file of the section, for messages

  // From a `graph` section; every error names the file and key.
  static GraphSpec parse(const Config& graph_section);
  // Every tensor name the stages write, in order.
  std::vector<std::string> written() const;
  // Values per event of the input (the product of input_shape).
  int64_t input_cells() const;
};

// The stages of a GraphSpec, built and owned; runs them in order.
class Graph {
 public:
  // Builds every stage (seeding LibTorch with `seed` first, so construction
  // order fixes the initialization) and dry-runs two zero events through
  // them in evaluation mode; a failure names the stage.
  Graph(const GraphSpec& spec, uint64_t seed);
  ~Graph();
  Graph(Graph&&) noexcept;

  const GraphSpec& spec() const { return spec_; }
  // Reads spec().input from `flow` and adds every stage's outputs.
  void forward(NamedTensors& flow) const;
  std::vector<Stage*> stages() const;
  // The stage named `name` (nullptr when none); during construction, only
  // the stages built so far.
  Stage* find(const std::string& name) const;
  // The per-event shape of `tensor` as the stages built so far make it (a
  // dry run of two zero events in evaluation mode, for stages that size
  // themselves to their input); empty when none of them writes it.
  std::vector<int64_t> probe_shape(const std::string& tensor) const;
  template <class S>
  S* find_as(const std::string& name) const {
    return dynamic_cast<S*>(find(name));
  }

 private:
  // Two zero events through the stages in evaluation mode, without
  // gradients, until `until` is written ("": all); a failure names the stage.
  NamedTensors dry_run(const std::string& until) const;
  GraphSpec spec_;
  std::vector<std::unique_ptr<Stage>> stages_;
};

}  // namespace ddaq
