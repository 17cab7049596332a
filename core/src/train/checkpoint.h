// Checkpoints of the trainer (internal to core/src: trainer.cpp and
// checkpoint.cpp). RUN/checkpoint.pt holds every pipeline tensor, the
// optimizer, the CPU generator, the data position and a fingerprint of what
// fixes the trajectory; written atomically, read back exactly.
#pragma once
#include <ATen/core/Tensor.h>

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "ddaq/core/pipeline.h"
#include "ddaq/core/trainer.h"
#include "flat_adam.h"

namespace ddaq {

using StateTensors = std::vector<std::pair<std::string, at::Tensor>>;

// Where training stands: everything besides tensors that a resumed run needs.
struct Position {
  int64_t step = 0;
  int epoch = 0;
  int64_t batch_in_epoch = 0;
  std::map<std::string, double> epoch_sums;  // this epoch's objective sums so far (this rank)
  double best_validation = INFINITY;
  int best_epoch = 0, epochs_without_improvement = 0;
  bool stop = false;
  std::string budgets;  // AugmentedLagrangian::state_json() (budgeted runs)
  double fixed_energy_pj = 0.0;
};

// Everything that fixes the trajectory (options, and the data, pool,
// validation and surrogate files by content identity); a checkpoint resumes
// only under the same.
std::string fingerprint(const EconTPipeline& pipeline, const std::string& train_file, int64_t file_events,
                        const TrainerOptions& o);

// A copy of every pipeline tensor; restore() copies one back by name (throws
// naming `source` when a tensor is missing or has another shape).
StateTensors snapshot(const EconTPipeline& p);
void restore(EconTPipeline& p, const StateTensors& state, const std::string& source);

void write_checkpoint(const std::string& path, const EconTPipeline& pipeline, const FlatAdam& optimizer,
                      const Position& pos, const std::string& print, const StateTensors& best);

struct LoadedCheckpoint {
  nlohmann::json meta;
  StateTensors state, best;
};
// With an optimizer: its state and the CPU generator are restored too.
LoadedCheckpoint load_checkpoint(const std::string& path, FlatAdam* optimizer);
Position position_from(const nlohmann::json& meta);

// The first top-level key whose value differs (for a one-line error).
std::string first_difference(const std::string& a, const std::string& b);

// Keeps only metrics lines up to `step`: a run killed after an epoch line but
// before its checkpoint must not get that line twice.
void truncate_metrics(const std::string& path, int64_t step);

}  // namespace ddaq
