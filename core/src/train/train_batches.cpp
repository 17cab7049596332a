// What the trainer does to a batch before the graph (train_batches.h).
#include "train_batches.h"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "ddaq/core/baselines.h"
#include "ddaq/core/overlay.h"
#include "ddaq/core/random.h"
#include "ddaq/error.h"
#include "ddaq/objectives/objective.h"
#include "ddaq/surrogates/emd.h"
#include "ddaq/surrogates/emd_surrogate.h"
#include "ddaq/surrogates/sinkhorn.h"

namespace ddaq {

void check_detector_options(const EconTPipeline& pipeline, const TrainerOptions& o) {
  if (pipeline.hgcal()) return;
  const std::string at =
      "trainer: the graph has its own geometry (" + std::to_string(pipeline.cells()) + " cells), not HGCAL's: ";
  if (o.loss() == "surrogate" || o.loss() == "telescope")
    throw Error(at + "training.loss '" + o.loss() + "' is HGCAL's (use sinkhorn, mse or weighted_mse)");
  if (o.pileup_mu() > 0) throw Error(at + "training.pileup overlays HGCAL wafers (leave it out)");
}

// Removes the wafers whose charges sum to 0; returns how many.
int64_t drop_empty_wafers(EventBatch& batch) {
  const int64_t n = batch.size(), cells = batch.events.cells;
  int64_t kept = 0;
  for (int64_t r = 0; r < n; ++r) {
    const float* row = batch.events.calq.data() + r * cells;
    double sum = 0;
    for (int64_t c = 0; c < cells; ++c) sum += row[c];
    if (sum <= 0) continue;
    if (kept != r) {
      std::copy(row, row + cells, batch.events.calq.data() + kept * cells);
      if (batch.events.has_labels())
        batch.events.label[static_cast<size_t>(kept)] = batch.events.label[static_cast<size_t>(r)];
      if (!batch.index.empty()) batch.index[static_cast<size_t>(kept)] = batch.index[static_cast<size_t>(r)];
    }
    ++kept;
  }
  batch.events.calq.resize(static_cast<size_t>(kept * cells));
  if (batch.events.has_labels()) batch.events.label.resize(static_cast<size_t>(kept));
  if (!batch.index.empty()) batch.index.resize(static_cast<size_t>(kept));
  return n - kept;
}

// Pileup and noise for one batch; wafer `row` of epoch `epoch` uses stream
// epoch * rows + row, so every rank and every resumption draws the same.
void augment(const TrainerOptions& o, const EventTable& pool, int64_t epoch, int64_t file_rows, EventBatch& batch) {
  if (o.pileup_mu() <= 0 && o.noise() <= 0) return;
  const OverlayOptions overlay = OverlayOptions().mu(o.pileup_mu()).seed(o.seed() + 0x9e3779b97f4a7c15ULL);
  for (int64_t i = 0; i < batch.size(); ++i) {
    const int64_t stream = epoch * file_rows + batch.index[static_cast<size_t>(i)];
    float* calq = batch.events.calq.data() + i * batch.events.cells;
    if (o.pileup_mu() > 0) {
      OverlayOptions wafer = overlay;
      if (o.pileup_mu_min() > 0) {
        Rng level(o.seed() + 0x2545f4914f6cdd1dULL, static_cast<uint64_t>(stream));
        wafer.mu(o.pileup_mu_min() + (o.pileup_mu() - o.pileup_mu_min()) * level.uniform());
      }
      overlay_pileup(wafer, pool, stream, 1, calq);
    }
    if (o.noise() > 0) {
      Rng rng(o.seed() + 0xda942042e4dd58b5ULL, static_cast<uint64_t>(stream));
      for (int c = 0; c < batch.events.cells; ++c)
        calq[c] = std::max(0.0f, calq[c] + static_cast<float>(o.noise() * rng.normal()));
    }
  }
}

ReconstructionLoss reconstruction_loss(const TrainerOptions& o, const torch::Device& device,
                                       const EmdSurrogate* surrogate, const EconTPipeline& pipeline) {
  if (surrogate)
    return {"emd_surrogate",
            [surrogate](const torch::Tensor& t, const torch::Tensor& y) { return surrogate->forward(t, y).mean(); }};
  if (o.loss() == "weighted_mse") return {"weighted_mse", weighted_mse};
  if (o.loss() == "mse") return {"mse", mse};
  if (o.loss() == "telescope") {
    auto groups = [&](int group) {
      const std::vector<int> g = super_cell_groups(group);
      return torch::tensor(std::vector<int64_t>(g.begin(), g.end()), torch::kLong).to(device);
    };
    const torch::Tensor t2 = groups(4), t4 = groups(16);
    return {"telescope", [t2, t4](const torch::Tensor& t, const torch::Tensor& y) { return telescope(t, y, t2, t4); }};
  }
  // sinkhorn: entropic OT with the detector's ground metric (cell pitches)
  const torch::Tensor cost = cost_tensor(pipeline.metric()).to(device);
  return {"sinkhorn_emd",
          [cost](const torch::Tensor& t, const torch::Tensor& y) { return sinkhorn_emd(t, y, cost).mean(); }};
}

}  // namespace ddaq
