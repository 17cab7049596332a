// `ddaq sweep CONFIG --budget elinks=2,3,4 [--budget lut=...] -o DIR`: one
// budgeted training per point of the budget grid (child processes, --jobs at
// a time, or a SLURM job array with --slurm), then DIR/pareto.csv and
// DIR/pareto.png (ddaq/core/sweep.h).
#include <limits.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <set>

#include "commands.h"
#include "ddaq/core/config.h"
#include "ddaq/core/distributed.h"
#include "ddaq/core/events.h"
#include "ddaq/core/pipeline.h"
#include "ddaq/core/sweep.h"
#include "ddaq/core/trainer.h"
#include "ddaq/error.h"
#include "ddaq/files.h"

namespace ddaq {
namespace cli {
namespace {

namespace fs = std::filesystem;

std::string absolute(const std::string& p) {
  std::error_code ec;
  const fs::path a = fs::absolute(p, ec);
  if (ec) throw Error(p + ": cannot resolve (" + ec.message() + ")");
  return a.lexically_normal().string();
}

std::string this_executable() {
  char buf[PATH_MAX];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) throw Error("/proc/self/exe: cannot find the ddaq executable to run the points");
  return std::string(buf, static_cast<size_t>(n));
}

std::string folder_of(const std::string& path) {
  const auto slash = path.find_last_of('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

struct SweepRequest {
  std::string config, dir, train, test;
  std::vector<std::string> budgets;
  int64_t events = 20000;
  int jobs = 1;
  bool slurm = false, resume = false, overwrite = false;
};

// Every point's configuration is checked here, as its training would check
// it, before anything runs or is written.
void check_points(const Config& config, const SweepPlan& plan) {
  for (const SweepPoint& p : plan.points()) {
    std::vector<std::string> specs;
    for (const auto& kv : p.budgets) specs.push_back(kv.first + "=" + kv.second);
    const Config pc = with_budget_options(config, specs);
    const TrainerOptions to = TrainerOptions::from_config(pc.section("training"), folder_of(plan.config));
    try {
      check_budgets_feasible(EconTPipeline::from_config(pc, to.seed()), to);
    } catch (const Error& e) {
      throw Error(pc.source() + ": " + e.what());
    }
  }
}

// The sweep folder's rules (as a run folder's, docs/reliability.md): a
// folder holding a sweep is refused unless --resume continues it (same plan)
// or --overwrite replaces it (its sweep files only).
void claim_folder(const SweepPlan& plan, const SweepRequest& r) {
  std::error_code ec;
  if (fs::exists(plan.dir, ec) && !fs::is_directory(plan.dir, ec)) throw Error(r.dir + ": exists and is not a folder");
  const bool held = fs::exists(plan.dir + "/sweep.json", ec);
  if (r.resume && !held) throw Error(r.dir + "/sweep.json: no sweep to resume (without --resume it starts anew)");
  if (held && r.resume) plan.check_same_as_saved();
  if (held && !r.resume && !r.overwrite)
    throw Error(r.dir + ": holds a sweep already (sweep.json); --resume continues it, --overwrite replaces it");
  if (held && r.overwrite)
    for (const char* f :
         {"sweep.json", "runs", "logs", "data", "pareto.csv", "pareto.png", "sweep.slurm", "state.json"})
      remove_tree((fs::path(plan.dir) / f).string());
}

void sweep(const SweepRequest& r) {
  if (DistributedEnvironment::detect().distributed())
    throw Error("ddaq sweep starts its own processes; run it outside torchrun/srun/mpirun (or use --slurm)");
  const Config config = Config::load(r.config);
  check_top_level(config);
  EconTPipeline::from_config(config, 1);  // a missing or bad graph/pipeline section, before anything runs
  SweepPlan plan;
  plan.config = absolute(r.config);
  plan.dir = absolute(r.dir);
  plan.eval_events = r.events;
  std::set<std::string> names;
  for (const std::string& spec : r.budgets) {
    plan.axes.push_back(parse_budget_axis(spec));
    if (!names.insert(plan.axes.back().name).second)
      throw Error("--budget '" + spec + "': budget '" + plan.axes.back().name + "' is given twice");
  }
  check_points(config, plan);
  // The data: given, the config's files, or made once for every point.
  const bool made = r.train.empty() && config.section("data").string("source", "synth") == "synth";
  if (!made) {
    const auto files = r.train.empty() ? prepare_data_paths(config, plan.dir) : std::make_pair(r.train, r.test);
    plan.train_file = absolute(files.first);
    plan.test_file = absolute(r.test.empty() ? files.second : r.test);
    for (const std::string& f : {plan.train_file, plan.test_file}) EventFileReader check(f);  // clear error now
  } else {
    plan.train_file = plan.dir + "/data/train.h5";
    plan.test_file = plan.dir + "/data/test.h5";
  }
  claim_folder(plan, r);
  // A new sweep that fails before its plan is written leaves nothing.
  std::error_code ec;
  struct Cleanup {
    std::string dir;
    bool armed;
    ~Cleanup() {
      if (armed) remove_tree(dir);
    }
  } cleanup{plan.dir, !fs::exists(plan.dir, ec)};
  const int cpus =
      std::max(1, TrainerOptions::from_config(config.section("training"), folder_of(plan.config)).threads());
  if (made && !(fs::exists(plan.train_file) && fs::exists(plan.test_file))) prepare_data(config, plan.dir + "/data");
  make_directories(plan.dir + "/logs");
  if (!r.resume) write_file_atomic(plan.dir + "/sweep.json", plan.to_json() + "\n");
  cleanup.armed = false;
  const std::string exe = this_executable();
  const std::vector<SweepPoint> points = plan.points();
  if (r.slurm) {
    write_file_atomic(plan.dir + "/sweep.slurm", slurm_script(plan, exe, cpus));
    std::printf(
        "wrote %s/sweep.slurm: %zu points (job array 0-%zu, %d CPU(s) each)\n"
        "submit: sbatch %s/sweep.slurm\n"
        "then, when the array has finished: the same ddaq sweep command with --resume (writes pareto.csv "
        "and pareto.png; points not finished run here)\n",
        r.dir.c_str(), points.size(), points.size() - 1, cpus, r.dir.c_str());
    return;
  }
  // Points run at once share this machine's cores: say so when they
  // oversubscribe it (each point's result is the same, only slower).
  const long cores = sysconf(_SC_NPROCESSORS_ONLN);
  const long at_once = std::min<long>(r.jobs, static_cast<long>(points.size()));
  if (cores > 0 && at_once * cpus > cores)
    std::fprintf(stderr,
                 "ddaq: warning: %ld points at once x training.threads %d = %ld threads on %ld cores: the points slow "
                 "each other down (results are unchanged; --jobs %ld fits)\n",
                 at_once, cpus, at_once * cpus, cores, std::max<long>(1, cores / cpus));
  const std::vector<PointOutcome> outcomes = run_sweep(plan, exe, r.jobs, stdout);
  const std::string csv = write_pareto(plan, outcomes, r.dir);
  std::printf("%s\nwrote %s/pareto.csv and %s/pareto.png\n", csv.c_str(), r.dir.c_str(), r.dir.c_str());
  int failed = 0;
  std::string first;
  for (const PointOutcome& o : outcomes)
    if (o.status != "ok") {
      if (failed++ == 0) first = o.name + ": " + (o.reason.empty() ? o.status : o.reason);
    }
  if (failed)
    throw Error("sweep: " + std::to_string(failed) + " of " + std::to_string(outcomes.size()) +
                " points did not finish (" + first + "); the others are in " + r.dir +
                "/pareto.csv; --resume runs the missing ones");
}

}  // namespace

void add_sweep_command(CLI::App& app) {
  auto r = std::make_shared<SweepRequest>();
  CLI::App* c = app.add_subcommand(
      "sweep", "One budgeted training per point of a budget grid, then DIR/pareto.csv and DIR/pareto.png");
  c->add_option("config", r->config, "configuration file (JSON) with a pipeline section")->required();
  c->add_option("--budget", r->budgets,
                "NAME=V1,V2,...: a budget axis (repeatable; the points are the grid of all axes), e.g. elinks=2,3,4,5")
      ->required();
  c->add_option("-o,--output", r->dir, "sweep folder (sweep.json, runs/, logs/, pareto.csv, pareto.png)")->required();
  c->add_option("--jobs", r->jobs, "points trained at once on this machine (each uses training.threads cores)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1024));
  c->add_flag("--slurm", r->slurm, "write DIR/sweep.slurm (a job array, one task per point) instead of running");
  c->add_option("--data", r->train, "training event file (default: the config's data section)");
  c->add_option("--test", r->test, "evaluation event file (default: the config's data section)");
  c->add_option("--events", r->events, "evaluate each point on at most this many events")
      ->capture_default_str()
      ->check(whole_number_in(1, int64_t(1) << 50));
  c->add_flag("--resume", r->resume, "continue the sweep in DIR (same plan): finished points are kept");
  c->add_flag("--overwrite", r->overwrite, "replace the sweep in DIR")->excludes("--resume");
  c->callback([r] {
    if (!r->train.empty() && r->test.empty()) throw Error("--data needs --test (the evaluation events) beside it");
    if (r->train.empty() && !r->test.empty()) throw Error("--test needs --data (the training events) beside it");
    sweep(*r);
  });
}

}  // namespace cli
}  // namespace ddaq
