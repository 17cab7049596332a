// ddaq/core/trainer.h: end-to-end training of the ECON-T pipeline, and its
// evaluation against the classical baselines.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "ddaq/core/config.h"
#include "ddaq/core/evaluation.h"
#include "ddaq/core/pipeline.h"
#include "ddaq/options.h"

namespace ddaq {

class Progress;


struct TrainerOptions {
  DDAQ_OPTION(int, epochs) = 5;
  DDAQ_OPTION(int64_t, max_steps) = -1;  // < 0: no limit
  DDAQ_OPTION(int64_t, batch_size) = 256;
  DDAQ_OPTION(double, learning_rate) = 3e-3;  // Adam, cosine decay to 0
  DDAQ_OPTION(double, weight_decay) = 0.0;     // > 0: AdamW (decoupled), not on bit widths
  // Learned bit widths move in whole bits: they get their own, larger rate.
  DDAQ_OPTION(double, bits_learning_rate) = 3e-2;
  DDAQ_OPTION(uint64_t, seed) = 1;
  // Before the first step (not on resume), and again right after a budget
  // projection in training: units that would be zero on most of the first
  // 4,096 training events get their bias raised
  // (EconTPipeline::raise_silent_units). Off: the plain random start, where
  // about half the latents of a ReLU latent layer never fire.
  DDAQ_OPTION(bool, raise_silent_units) = true;
  DDAQ_OPTION(int, threads) = 1;  // intra-op threads (1 is fastest for these sizes here)
  // Reconstruction loss: "surrogate" (the learned EMD, file `surrogate`),
  // "weighted_mse", "mse", "telescope" (cells + 2x2 + 4x4 sums) or
  // "sinkhorn" (entropic EMD).
  DDAQ_OPTION(std::string, loss) = "surrogate";
  DDAQ_OPTION(std::string, surrogate);
  DDAQ_OPTION(double, reconstruction_weight) = 1.0;
  DDAQ_OPTION(double, classification_weight) = 0.1;  // BCE on labels, when the file has them
  DDAQ_OPTION(double, elinks_budget) = 0.0;           // hinge above this many e-links (0: none)
  DDAQ_OPTION(double, link_weight) = 1.0;
  DDAQ_OPTION(double, ebops_weight) = 0.0;
  // On-detector power (mW at 40 MHz, 45 nm Horowitz): the part that depends
  // on the learned bits, encoder EBOPs x 0.0029948 pJ per bit product.
  DDAQ_OPTION(double, power_weight) = 0.0;
  // Budgets as constraints (objectives/budget.h: augmented Lagrangian):
  // "elinks" (exact ECON-T e-links of the latent payload; needs learned latent
  // bits), "ebops" (encoder EBOPs), "power_mw" (encoder power, 45 nm
  // Horowitz at 40 MHz). The e-link budget is made exact: at step
  // (1 - finetune_fraction) x the schedule's steps (or at the end, when
  // max_steps stops sooner) the latent widths are projected onto the budget
  // (EconTPipeline::fit_latent_payload) and kept for the remaining steps.
  DDAQ_OPTION(BudgetMap, budgets);
  DDAQ_OPTION(double, budget_penalty) = 10.0;
  DDAQ_OPTION(int64_t, budget_update_every) = 50;
  DDAQ_OPTION(double, finetune_fraction) = 0.1;
  // Stages whose parameters stay fixed ("frontend", "encoder", "decoder",
  // "classifier"), e.g. an encoder trained elsewhere and frozen.
  DDAQ_OPTION(std::vector<std::string>, frozen);
  // Augmentation before the graph, new every epoch: pileup overlay of
  // k ~ Poisson(pileup_mu) wafers from `pileup_pool` (an event file), then
  // Gaussian noise of `noise` CALQ per cell (clipped at 0). Each wafer draws
  // from its own stream (seed, epoch, row): independent of ranks, batch
  // size and resumption.
  DDAQ_OPTION(std::string, pileup_pool);
  DDAQ_OPTION(double, pileup_mu) = 0.0;
  // > 0: each wafer's mu is uniform in [pileup_mu_min, pileup_mu] (robust
  // to the pileup level); 0: every wafer gets pileup_mu.
  DDAQ_OPTION(double, pileup_mu_min) = 0.0;
  DDAQ_OPTION(double, noise) = 0.0;
  // Quantization-aware training starts at this step (float before it).
  DDAQ_OPTION(int64_t, qat_start_step) = 0;
  // Structured pruning of the encoder's conv filters: sparsity rises from 0
  // at `prune_start_step` to `prune_sparsity` at `prune_end_step` (cubic,
  // PolynomialSchedule), applied every `prune_every` steps by magnitude.
  DDAQ_OPTION(double, prune_sparsity) = 0.0;
  DDAQ_OPTION(int64_t, prune_start_step) = 0;
  DDAQ_OPTION(int64_t, prune_end_step) = 1000;
  DDAQ_OPTION(int64_t, prune_every) = 50;
  // Validation: exact EMD mean of up to `validation_events` wafers of this
  // file after every epoch; the pipeline ends with the best epoch's state.
  // `patience` > 0 stops after that many epochs without improvement.
  DDAQ_OPTION(std::string, validation);
  DDAQ_OPTION(int64_t, validation_events) = 5000;
  DDAQ_OPTION(int, patience) = 0;
  // Checkpoints: written atomically (temp file, fsync, rename) by rank 0 to
  // `checkpoint` every `checkpoint_every` steps (0: at epoch ends only) and
  // at the end. `resume` continues from it, bit for bit on CPU.
  DDAQ_OPTION(std::string, checkpoint);
  DDAQ_OPTION(int64_t, checkpoint_every) = 0;
  DDAQ_OPTION(bool, resume) = false;
  DDAQ_OPTION(std::string, device) = "cpu";  // "cpu", "cuda", "cuda:N"
 public:
  // From a config section; `base_dir` resolves a relative surrogate path.
  static TrainerOptions from_config(const Config& section, const std::string& base_dir);
};

struct TrainSummary {
  int64_t steps = 0;
  int epochs = 0;
  double seconds = 0.0;
  double events_per_second = 0.0;  // training steps only (this run, all ranks)
  int64_t resumed_at_step = 0;     // 0: fresh start
  int64_t raised_units = 0;        // units whose bias the start raised (raise_silent_units)
  int64_t raised_after_projection = 0;  // and the projection (in training; not when resumed after it)
  int world_size = 1;
  int best_epoch = 0;                // with validation: the epoch kept (1-based)
  double best_validation_emd = 0.0;  // its exact EMD mean (NaN without validation)
  bool stopped_early = false;
  int64_t empty_wafers_skipped = 0;  // wafers with all charges 0 (after augmentation): left out of their step
  std::map<std::string, double> last_epoch;  // mean of every objective term
  std::string to_text() const;
};

class Communicator;

// Trains on an event file; appends one JSON line per epoch to `metrics_path`
// (if not empty). Bit for bit reproducible on CPU for a seed and thread count.
// `on_step(step, total_steps, loss)` is called after every step (e.g. a
// notebook's progress bar).
//
// Data parallel: with a Communicator, `batch_size` is the global batch; each
// rank trains on batch_size / world_size wafers of its shard, gradients are
// averaged, parameters start from rank 0's, and only rank 0 writes metrics
// and checkpoints. The global order of wafers per step does not depend on the
// number of ranks, so R ranks follow one rank's trajectory up to float
// rounding, and a checkpoint resumes under any number of ranks.
// The cosine learning-rate schedule spans `epochs`; `max_steps` only stops.
using StepCallback = std::function<void(int64_t, int64_t, double)>;
TrainSummary train_pipeline(EconTPipeline& pipeline, const std::string& train_file, const TrainerOptions& options,
                            const std::string& metrics_path = "", Progress* progress = nullptr,
                            const StepCallback& on_step = {}, Communicator* communicator = nullptr);

// Budgets that cannot work with this pipeline, refused before any step (and
// by `ddaq sweep` before any point starts): an e-link budget without learned
// latent bits, a latency budget below the architecture's latency. Throws
// ddaq::Error naming training.budgets.<name>.
void check_budgets_feasible(const EconTPipeline& pipeline, const TrainerOptions& options);

// A checkpoint read back for inspection: where training stood and every
// tensor of the pipeline's state (CPU), by name.
struct CheckpointContents {
  int64_t step = 0;
  int epoch = 0;                 // epoch in progress (0-based)
  int64_t batch_in_epoch = 0;    // its batches already trained
  std::string fingerprint;       // JSON of what fixes the trajectory
  std::vector<std::pair<std::string, at::Tensor>> state;
};
CheckpointContents read_checkpoint(const std::string& path);


}  // namespace ddaq
