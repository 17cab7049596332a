// ddaq/core/trainer.h: end-to-end training of the ECON-T pipeline, and its
// evaluation against the classical baselines.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "ddaq/core/config.h"
#include "ddaq/core/pipeline.h"
#include "ddaq/options.h"

namespace ddaq {

class Progress;

struct TrainerOptions {
  DDAQ_OPTION(int, epochs) = 5;
  DDAQ_OPTION(int64_t, max_steps) = -1;  // < 0: no limit
  DDAQ_OPTION(int64_t, batch_size) = 256;
  DDAQ_OPTION(double, learning_rate) = 3e-3;  // Adam, cosine decay to 0
  // Learned bit widths move in whole bits: they get their own, larger rate.
  DDAQ_OPTION(double, bits_learning_rate) = 3e-2;
  DDAQ_OPTION(uint64_t, seed) = 1;
  DDAQ_OPTION(int, threads) = 1;  // intra-op threads (1 is fastest for these sizes here)
  // Objective: "surrogate" (the learned EMD, file `surrogate`), or "weighted_mse".
  DDAQ_OPTION(std::string, loss) = "surrogate";
  DDAQ_OPTION(std::string, surrogate);
  DDAQ_OPTION(double, reconstruction_weight) = 1.0;
  DDAQ_OPTION(double, classification_weight) = 0.1;  // BCE on labels, when the file has them
  DDAQ_OPTION(double, elinks_budget) = 0.0;           // hinge above this many e-links (0: none)
  DDAQ_OPTION(double, link_weight) = 1.0;
  DDAQ_OPTION(double, ebops_weight) = 0.0;
  // Stages whose parameters stay fixed ("frontend", "encoder", "decoder",
  // "classifier"), e.g. an encoder trained elsewhere and frozen.
  DDAQ_OPTION(std::vector<std::string>, frozen);
 public:
  // From a config section; `base_dir` resolves a relative surrogate path.
  static TrainerOptions from_config(const Config& section, const std::string& base_dir);
};

struct TrainSummary {
  int64_t steps = 0;
  int epochs = 0;
  double seconds = 0.0;
  std::map<std::string, double> last_epoch;  // mean of every objective term
  std::string to_text() const;
};

// Trains on an event file; appends one JSON line per epoch to `metrics_path`
// (if not empty). Bit for bit reproducible on CPU for a seed and thread count.
// `on_step(step, total_steps, loss)` is called after every step (e.g. a
// notebook's progress bar).
using StepCallback = std::function<void(int64_t, int64_t, double)>;
TrainSummary train_pipeline(EconTPipeline& pipeline, const std::string& train_file, const TrainerOptions& options,
                            const std::string& metrics_path = "", Progress* progress = nullptr,
                            const StepCallback& on_step = {});

struct BaselineRow {
  std::string name;  // "best_choice", "threshold", "stc4", "stc16"
  int elinks = 0, cells = 0;
  double emd_mean = 0.0, emd_median = 0.0;
};

struct EvaluationReport {
  int64_t events = 0;
  int latent_bits = 0, elinks = 0;
  double emd_mean = 0.0, emd_median = 0.0;  // exact EMD(input, reconstruction), sensor-cell pitches
  double auc = 0.0;                         // NaN without labels
  std::vector<BaselineRow> best_choice;     // 1..5 e-links
  std::vector<BaselineRow> classical;       // threshold at 2..5 e-links, super trigger cells
  double encoder_ebops = 0.0, encoder_energy_pj = 0.0, encoder_power_mw = 0.0;
  std::string to_text() const;
  std::string to_json() const;
};

// Exact EMD of the decoded wafers against the inputs, classifier AUC, and on
// the same events: Best Choice at 1..5 e-links, the threshold format at 2..5
// e-links, super trigger cells (4 and 16 cells); the encoder's EBOPs, energy
// per inference and power (45 nm Horowitz).
EvaluationReport evaluate_pipeline(EconTPipeline& pipeline, const std::string& data_file, int64_t max_events = 20000);

}  // namespace ddaq
