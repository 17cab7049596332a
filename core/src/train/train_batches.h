// What the trainer does to a batch before the graph (train_batches.cpp):
// empty wafers out, augmentation, and the reconstruction loss it applies.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <string>
#include <utility>

#include "ddaq/core/events.h"
#include "ddaq/core/loader.h"
#include "ddaq/core/trainer.h"

namespace ddaq {

class EmdSurrogate;

// A graph with its own geometry (not HGCAL's wafer): the HGCAL-only
// augmentation (pileup overlay) and losses (surrogate, telescope) are
// refused in one line rather than applied to other cells.
void check_detector_options(const EconTPipeline& pipeline, const TrainerOptions& o);

// Removes the wafers whose charges sum to 0; returns how many.
int64_t drop_empty_wafers(EventBatch& batch);

// Pileup and noise for one batch; wafer `row` of epoch `epoch` uses stream
// epoch * rows + row, so every rank and every resumption draws the same.
void augment(const TrainerOptions& o, const EventTable& pool, int64_t epoch, int64_t file_rows, EventBatch& batch);

// The reconstruction term: its logged name and the loss on unit-sum wafers.
using ReconstructionLoss =
    std::pair<std::string, std::function<torch::Tensor(const torch::Tensor&, const torch::Tensor&)>>;
ReconstructionLoss reconstruction_loss(const TrainerOptions& o, const torch::Device& device,
                                       const EmdSurrogate* surrogate, const EconTPipeline& pipeline);

}  // namespace ddaq
