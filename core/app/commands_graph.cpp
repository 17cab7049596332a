// `ddaq graph CONFIG [--json]`: the checked DAQ graph of a configuration
// (its `graph` section, or the ECON-T graph of its `pipeline` section), one
// line per stage, or as a `graph` section to start a new config from.
// `ddaq graph --types`: the registered stage types with their roles.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "commands.h"
#include "ddaq/core/config.h"
#include "ddaq/core/graph.h"
#include "ddaq/core/pipeline.h"
#include "ddaq/error.h"

namespace ddaq {
namespace cli {
namespace {
std::string joined(const std::map<std::string, std::string>& roles) {
  std::string out;
  for (const auto& kv : roles) out += (out.empty() ? "" : ", ") + kv.first + "=" + kv.second;
  return out.empty() ? "-" : out;
}
std::string joined(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
  return out.empty() ? "-" : out;
}
}  // namespace

void add_graph_command(CLI::App& app) {
  auto config_path = std::make_shared<std::string>();
  auto json = std::make_shared<bool>(false), types = std::make_shared<bool>(false);
  CLI::App* c = app.add_subcommand("graph", "The checked stage graph of a configuration (or --types: the stage types)");
  c->add_option("config", *config_path, "configuration JSON with a graph or pipeline section");
  c->add_flag("--json", *json, "print the graph as a `graph` section (JSON) instead of one line per stage");
  c->add_flag("--types", *types, "list the registered stage types with their roles and options");
  c->callback([=] {
    if (*types) {
      for (const std::string& t : StageRegistry::types()) {
        const StageType* s = StageRegistry::find(t);
        std::printf("%-20s reads %s; writes %s; options %s\n", t.c_str(), joined(s->reads).c_str(),
                    joined(s->writes).c_str(), joined(s->option_keys).c_str());
      }
      return;
    }
    if (config_path->empty()) throw Error("ddaq graph: a configuration is required (or --types)");
    const Config config = Config::load(*config_path);
    check_top_level(config);
    // Building checks everything the trainer would (and dry-runs the stages).
    const EconTPipeline pipeline = EconTPipeline::from_config(config, 1);
    const std::string text =
        config.has("graph") ? config.section("graph").dump() : econt_graph_json(pipeline.options());
    if (*json) {
      std::printf("%s\n", nlohmann::json::parse(text).dump(2).c_str());
      return;
    }
    const GraphSpec spec = GraphSpec::parse(Config::from_json_text(text, *config_path, "graph"));
    std::printf("input %s [N", spec.input.c_str());
    for (int64_t d : spec.input_shape) std::printf(", %lld", static_cast<long long>(d));
    std::printf("]\n");
    const auto stages = pipeline.stages();
    int name_width = 12, type_width = 18;
    for (const StageSpec& s : spec.stages) {
      name_width = std::max(name_width, static_cast<int>(s.name.size()));
      type_width = std::max(type_width, static_cast<int>(s.type.size()));
    }
    for (size_t i = 0; i < spec.stages.size(); ++i) {
      int64_t parameters = 0;
      for (const auto& p : stages[i]->named_parameters()) parameters += p.second.numel();
      std::printf("%2zu %-*s %-*s reads %s; writes %s; %lld parameters\n", i, name_width, spec.stages[i].name.c_str(),
                  type_width, spec.stages[i].type.c_str(), joined(spec.stages[i].reads).c_str(),
                  joined(spec.stages[i].writes).c_str(), static_cast<long long>(parameters));
    }
    for (const ObjectiveSpec& o : spec.objectives)
      std::printf("objective %s: %s of %s, weight %g\n", o.name.c_str(), o.type.c_str(), joined(o.tensors).c_str(),
                  o.weight);
  });
}

}  // namespace cli
}  // namespace ddaq
