// ddaq/core/sweep.h: a grid of budgets, one budgeted training per point, and
// the Pareto front of what came out (`ddaq sweep`).
//
// A point is one `ddaq train CONFIG --budget NAME=VALUE...` and one
// `ddaq eval` in its own run folder, run as child processes `jobs` at a time
// on this machine, or written as a SLURM job array. The sweep folder DIR:
//   sweep.json        the plan (config, budgets, data, points): what --resume checks
//   state.json        each point's status and time, as this machine ran it
//   runs/<point>/     each point's run (exportable with `ddaq export`)
//   logs/<point>.log  each point's output (both commands)
//   pareto.csv        one row per point (columns: PARETO_COLUMNS in sweep.cpp)
//   pareto.png        exact EMD vs e-links (Best Choice beside), vs LUT, vs power
//   sweep.slurm       with --slurm only
// A point is done when its run holds decoder.pt (training finished) and
// eval.json; an interrupted point resumes from its checkpoint.
#pragma once
#include <cstdint>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

namespace ddaq {

struct BudgetAxis {
  std::string name;
  std::vector<std::string> values;  // as given ("3", "40000"), passed on verbatim
};

// "elinks=2,3,4" -> {"elinks", {"2", "3", "4"}}. Throws ddaq::Error naming
// the spec when the form is wrong, a value is not a finite number > 0, or a
// value repeats. (Whether the name is a budget is the trainer's to say.)
BudgetAxis parse_budget_axis(const std::string& spec);

struct SweepPoint {
  std::string name;                                          // "elinks3_lut40000"
  std::vector<std::pair<std::string, std::string>> budgets;  // name, value
  std::string run;                                           // DIR/runs/<name>
};

struct SweepPlan {
  std::string config;                 // the configuration file (absolute)
  std::string train_file, test_file;  // event files (absolute)
  int64_t eval_events = 20000;        // `ddaq eval --events`
  std::vector<BudgetAxis> axes;       // at least one; names distinct
  std::string dir;                    // the sweep folder (absolute)

  std::vector<SweepPoint> points() const;  // the grid; the first axis varies slowest
  std::string to_json() const;             // DIR/sweep.json (with the config's content hash)
  // Throws ddaq::Error naming the first difference when DIR/sweep.json holds
  // another plan (another config content, budgets, data or events).
  void check_same_as_saved() const;

  // argv of a point's two commands; `executable` is ddaq itself.
  std::vector<std::string> train_command(const SweepPoint& p, const std::string& executable, bool resume) const;
  std::vector<std::string> eval_command(const SweepPoint& p, const std::string& executable) const;
};

// A bash job-array script: task i runs point i (the same commands and the
// same done / resume rules as a local sweep), logging to logs/<point>.log.
std::string slurm_script(const SweepPlan& plan, const std::string& executable, int cpus_per_task);

struct PointOutcome {
  std::string name;
  std::string status;  // "ok", "failed", "interrupted", "not run"
  std::string reason;  // failed: the log's last error line
  // Wall time of the point's commands run by `ddaq sweep` here, summed over
  // the invocations that ran them (DIR/state.json); 0 when run elsewhere (SLURM).
  double seconds = 0;
};

// Runs every point that is not done, `jobs` at a time, each in its own
// process group; progress lines go to `progress` (may be null). A signal to
// the sweep is passed on once to every running point (each checkpoints and
// stops); the sweep then waits for them and throws ddaq::Interrupted.
std::vector<PointOutcome> run_sweep(const SweepPlan& plan, const std::string& executable, int jobs,
                                    std::FILE* progress);

// Reads each point's RUN/eval.json and writes DIR/pareto.csv and
// DIR/pareto.png (atomically). `shown_dir` is DIR as the user wrote it (the
// `run` column). Returns the CSV text.
std::string write_pareto(const SweepPlan& plan, const std::vector<PointOutcome>& outcomes,
                         const std::string& shown_dir);

}  // namespace ddaq
