// The `ddaq` command line: one registration function per command group.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace CLI {
class App;
class Validator;
}

namespace ddaq {
class Config;
struct EventTable;
namespace cli {

void add_data_commands(CLI::App& app);  // ddaq data import|synth|overlay|stats
void add_run_command(CLI::App& app);    // ddaq run CONFIG -o RUN (the main job)
void add_emd_command(CLI::App& app);    // ddaq emd A B -o OUT
void add_export_command(CLI::App& app);  // ddaq export RUN --qonnx F --hls D
void add_surrogate_commands(CLI::App& app);  // ddaq surrogate emd train|eval
// ddaq run, train, eval: add_run_command registers all three.
void add_sweep_command(CLI::App& app);  // ddaq sweep CONFIG --budget NAME=V1,V2 -o DIR
void add_graph_command(CLI::App& app);  // ddaq graph CONFIG [--json] | --types
void add_detector_commands(CLI::App& app);  // ddaq detector plan|compare|eval|overlay
// ddaq detector eval (commands_detector_eval.cpp).
void detector_eval(const std::string& plan_dir, const std::string& data, int64_t max_events, bool json);
// ddaq detector overlay (commands_detector_overlay.cpp), registered under `detector`.
void add_detector_overlay_command(CLI::App& detector);
// An event file, or a CALQ CSV (CMS HGCAL's samples) imported on the way.
EventTable read_wafers(const std::string& path);
// allocation.csv's header (written by plan, read by compare and eval).
inline constexpr const char* kAllocationHeader =
    "layer,u,v,motherboard,eta,eta_estimated,mu,group,algorithm,elinks,expected_emd,elinks_pu,elinks_signal";
// A plan folder's CSV (allocation.csv, tables.csv) as written: the header
// checked, every row with the header's field count, numbers parsed on
// access. Each failure is one ddaq::Error naming file, line and column.
class PlanCsv {
 public:
  PlanCsv(const std::string& path, const std::string& header);
  const std::string& path() const { return path_; }
  size_t rows() const { return rows_.size(); }
  const std::string& text(size_t row, size_t column) const { return rows_[row][column]; }
  int whole(size_t row, size_t column) const;
  double number(size_t row, size_t column) const;

 private:
  [[noreturn]] void bad(size_t row, size_t column, const char* what) const;
  std::string path_;
  std::vector<std::string> columns_;
  std::vector<std::vector<std::string>> rows_;
};

// Shared by run, train and sweep (commands_run.cpp):
// the top-level keys a configuration may have;
void check_top_level(const Config& config);
// the config with `--budget NAME=VALUE` options set in training.budgets
// (errors name the options: "quick.json with --budget elinks=99: ...");
Config with_budget_options(const Config& config, const std::vector<std::string>& specs);
// the data step of `ddaq run`: train.h5 and test.h5 made in `folder` from the
// data section (synth), or the config's files (source "files").
std::pair<std::string, std::string> prepare_data(const Config& config, const std::string& folder);
// the paths prepare_data() gives, without writing anything.
std::pair<std::string, std::string> prepare_data_paths(const Config& config, const std::string& folder);

// Validators for numeric options (options.cpp): a finite number in [lo, hi];
// a whole number in [lo, hi] (no wrap-around of "-1" into an unsigned type);
// a seed, 0 ... 2^63 - 1.
CLI::Validator number_in(double lo, double hi);
CLI::Validator whole_number_in(int64_t lo, int64_t hi);
CLI::Validator seed_number();
// A name that becomes a C/C++ symbol (HLS top function, emulator library).
CLI::Validator c_identifier();


}  // namespace cli
}  // namespace ddaq
