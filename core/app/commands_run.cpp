// `ddaq run CONFIG -o RUN`: ddaq's main job. It runs every step that exists
// for the configuration: today the data steps (events, pileup pool, overlay,
// statistics report); the pipeline, training, evaluation and export steps
// join here as they land.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "ddaq/core/config.h"
#include "ddaq/error.h"
#include "ddaq/core/files.h"
#include "ddaq/core/overlay.h"
#include "ddaq/core/progress.h"
#include "ddaq/core/statistics.h"
#include "ddaq/core/synth.h"
#include "ddaq/core/version.h"

namespace ddaq {
namespace cli {
namespace {

struct DataPlan {
  int64_t train_events, test_events, pool_events;
  double pileup_mu;
  uint64_t seed;
};

DataPlan read_data_plan(const Config& config) {
  const Config data = config.section("data");
  data.reject_unknown({"source", "train_events", "test_events", "pool_events", "pileup_mu", "seed"});
  const std::string source = data.string("source", "synth");
  if (source != "synth") throw Error(config.source() + ": data.source: '" + source + "' not supported (use \"synth\")");
  DataPlan p;
  p.train_events = data.integer("train_events", 20000, 1, int64_t(1) << 40);
  p.test_events = data.integer("test_events", 5000, 1, int64_t(1) << 40);
  p.pool_events = data.integer("pool_events", 10000, 1, int64_t(1) << 40);
  p.pileup_mu = data.number("pileup_mu", 0.0, 0.0, 1000.0);
  p.seed = static_cast<uint64_t>(data.integer("seed", 1, 0));
  return p;
}

// Synthesizes `events` wafers at 0PU, then overlays the pool when mu > 0.
void make_events(const std::string& run, const std::string& name, int64_t events, uint64_t seed,
                 const DataPlan& plan) {
  const std::string clean = run + "/" + name + (plan.pileup_mu > 0 ? "_0pu.h5" : ".h5");
  {
    Progress progress("synth " + name, events);
    synthesize_to_file(SynthOptions().events(events).seed(seed), clean, &progress);
    progress.finish();
  }
  if (plan.pileup_mu > 0) {
    Progress progress("overlay " + name, events);
    overlay_file(OverlayOptions().mu(plan.pileup_mu).seed(seed), clean, run + "/pool.h5", run + "/" + name + ".h5",
                 &progress);
    progress.finish();
  }
}

}  // namespace

void add_run_command(CLI::App& app) {
  auto config_path = std::make_shared<std::string>();
  auto run_dir = std::make_shared<std::string>();
  CLI::App* c = app.add_subcommand("run", "Run ddaq's main job for a configuration (data -> ... -> report)");
  c->add_option("config", *config_path, "configuration file (JSON), e.g. experiments/econt/quick.json")->required();
  c->add_option("-o,--output", *run_dir, "run folder to write (created if missing)")->required();
  c->callback([=] {
    const Config config = Config::load(*config_path);
    config.reject_unknown({"name", "description", "data"});
    const std::string name = config.string("name", "unnamed");
    const DataPlan plan = read_data_plan(config);
    make_directories(*run_dir);
    const std::string& run = *run_dir;

    if (plan.pileup_mu > 0) {
      // The pool: jet-like wafers only, as in the HGCAL studies' overlay.
      Progress progress("synth pool", plan.pool_events);
      synthesize_to_file(SynthOptions().events(plan.pool_events).seed(plan.seed + 2).electron_fraction(0.0),
                         run + "/pool.h5", &progress);
      progress.finish();
    }
    make_events(run, "train", plan.train_events, plan.seed, plan);
    make_events(run, "test", plan.test_events, plan.seed + 1, plan);

    nlohmann::json report = {{"ddaq_version", version()}, {"config", *config_path}, {"name", name}};
    std::string text = "ddaq run '" + name + "' (" + *config_path + ")\n";
    for (const char* split : {"train", "test"}) {
      const EventStatistics s = compute_statistics(run + "/" + split + ".h5");
      report["data"][split] = nlohmann::json::parse(s.to_json());
      text += std::string("\n[") + split + ".h5]\n" + s.to_text();
    }
    text += "\nSteps not yet available in this build: pipeline training, evaluation, export.\n";
    write_file_atomic(run + "/report.json", report.dump(2) + "\n");
    write_file_atomic(run + "/report.txt", text);
    std::printf("%s\nwrote %s/report.txt and report.json\n", text.c_str(), run.c_str());
  });
}

}  // namespace cli
}  // namespace ddaq
