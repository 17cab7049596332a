// The trainer's options from a config, its printable summary, and the
// budgets refused before any step (trainer.h); the training loop is in
// trainer.cpp.
#include <cstdio>

#include "ddaq/core/trainer.h"
#include "ddaq/error.h"
#include "ddaq/surrogates/fpga_resources.h"
#include "ddaq/surrogates/link_budget.h"

namespace ddaq {

TrainerOptions TrainerOptions::from_config(const Config& c, const std::string& base_dir) {
  c.reject_unknown({"epochs",
                    "max_steps",
                    "batch_size",
                    "learning_rate",
                    "weight_decay",
                    "bits_learning_rate",
                    "seed",
                    "threads",
                    "loss",
                    "surrogate",
                    "reconstruction_weight",
                    "classification_weight",
                    "elinks_budget",
                    "link_weight",
                    "ebops_weight",
                    "power_weight",
                    "validation",
                    "validation_events",
                    "patience",
                    "checkpoint_every",
                    "device",
                    "pileup_pool",
                    "pileup_mu",
                    "pileup_mu_min",
                    "noise",
                    "qat_start_step",
                    "prune_sparsity",
                    "prune_start_step",
                    "prune_end_step",
                    "prune_every",
                    "budgets",
                    "budget_penalty",
                    "budget_update_every",
                    "finetune_fraction",
                    "raise_silent_units"});
  TrainerOptions o;
  o.epochs(static_cast<int>(c.integer("epochs", o.epochs(), 1, 100000)))
      .max_steps(c.integer("max_steps", o.max_steps(), -1))
      .batch_size(c.integer("batch_size", o.batch_size(), 1, 1 << 20))
      .learning_rate(c.number("learning_rate", o.learning_rate(), 1e-9, 10.0))
      .weight_decay(c.number("weight_decay", o.weight_decay(), 0.0, 10.0))
      .bits_learning_rate(c.number("bits_learning_rate", o.bits_learning_rate(), 0.0, 10.0))
      .seed(static_cast<uint64_t>(c.integer("seed", static_cast<int64_t>(o.seed()), 0)))
      .raise_silent_units(c.boolean("raise_silent_units", o.raise_silent_units()))
      .threads(static_cast<int>(c.integer("threads", o.threads(), 1, 256)))
      .loss(c.string("loss", o.loss()))
      .reconstruction_weight(c.number("reconstruction_weight", o.reconstruction_weight(), 0.0))
      .classification_weight(c.number("classification_weight", o.classification_weight(), 0.0))
      .elinks_budget(c.number("elinks_budget", o.elinks_budget(), 0.0, 13.0))
      .link_weight(c.number("link_weight", o.link_weight(), 0.0))
      .ebops_weight(c.number("ebops_weight", o.ebops_weight(), 0.0))
      .power_weight(c.number("power_weight", o.power_weight(), 0.0))
      .validation_events(c.integer("validation_events", o.validation_events(), 1))
      .patience(static_cast<int>(c.integer("patience", o.patience(), 0, 100000)))
      .checkpoint_every(c.integer("checkpoint_every", o.checkpoint_every(), 0))
      .device(c.string("device", o.device()))
      .pileup_mu(c.number("pileup_mu", o.pileup_mu(), 0.0, 1000.0))
      .pileup_mu_min(c.number("pileup_mu_min", o.pileup_mu_min(), 0.0, 1000.0))
      .noise(c.number("noise", o.noise(), 0.0, 1e6))
      .qat_start_step(c.integer("qat_start_step", o.qat_start_step(), 0))
      .prune_sparsity(c.number("prune_sparsity", o.prune_sparsity(), 0.0, 0.99))
      .prune_start_step(c.integer("prune_start_step", o.prune_start_step(), 0))
      .prune_end_step(c.integer("prune_end_step", o.prune_end_step(), 1))
      .prune_every(c.integer("prune_every", o.prune_every(), 1));
  o.budget_penalty(c.number("budget_penalty", o.budget_penalty(), 1e-6, 1e6))
      .budget_update_every(c.integer("budget_update_every", o.budget_update_every(), 1))
      .finetune_fraction(c.number("finetune_fraction", o.finetune_fraction(), 0.0, 0.9));
  if (c.has("budgets")) {
    const Config b = c.section("budgets");
    b.reject_unknown({"elinks", "ebops", "power_mw", "lut", "ff", "dsp", "latency_cycles"});
    std::map<std::string, double> limits;
    if (b.has("elinks"))
      limits["elinks"] = static_cast<double>(b.integer("elinks", 0, 1, AutoencoderFrame().max_elinks()));
    if (b.has("ebops")) limits["ebops"] = b.number("ebops", 0, 1.0);
    if (b.has("power_mw")) limits["power_mw"] = b.number("power_mw", 0, 1e-6);
    for (const char* name : {"lut", "ff", "latency_cycles"})
      if (b.has(name)) limits[name] = b.number(name, 0, 1.0);
    if (b.has("dsp")) limits["dsp"] = b.number("dsp", 0, 0.0);  // 0: no DSP at all
    o.budgets(limits);
  }
  if (o.prune_end_step() <= o.prune_start_step())
    throw Error(c.source() + ": " + c.where() + ".prune_end_step: must come after prune_start_step");
  const std::vector<std::string> losses = {"surrogate", "weighted_mse", "mse", "telescope", "sinkhorn"};
  if (std::find(losses.begin(), losses.end(), o.loss()) == losses.end())
    throw Error(c.source() + ": " + c.where() + ".loss: '" + o.loss() +
                "' (expected surrogate, weighted_mse, mse, telescope or sinkhorn)");
  auto resolve = [&](const std::string& p) { return p.empty() || p[0] == '/' ? p : base_dir + "/" + p; };
  o.surrogate(resolve(c.string("surrogate", "")));
  o.validation(resolve(c.string("validation", "")));
  o.pileup_pool(resolve(c.string("pileup_pool", "")));
  if (o.pileup_mu_min() > o.pileup_mu())
    throw Error(c.source() + ": " + c.where() + ".pileup_mu_min: larger than pileup_mu");
  if (o.pileup_mu() > 0 && o.pileup_pool().empty())
    throw Error(c.source() + ": " + c.where() + ".pileup_mu: needs a pool of wafers (training.pileup_pool)");
  if (o.loss() == "surrogate" && o.surrogate().empty())
    throw Error(c.source() + ": " + c.where() + ".surrogate: needed with loss \"surrogate\"");
  if (o.patience() > 0 && o.validation().empty())
    throw Error(c.source() + ": " + c.where() +
                ".patience: early stopping needs a validation file (training.validation)");
  return o;
}

std::string TrainSummary::to_text() const {
  char buf[160];
  std::snprintf(buf, sizeof buf, "%lld steps, %d epochs, %.0f s (%.0f events/s, %d rank%s)",
                static_cast<long long>(steps), epochs, seconds, events_per_second, world_size,
                world_size == 1 ? "" : "s");
  std::string s = buf;
  if (resumed_at_step > 0) s += "; resumed at step " + std::to_string(resumed_at_step);
  if (raised_units > 0) s += "; " + std::to_string(raised_units) + " silent units raised at start";
  if (raised_after_projection > 0) s += "; " + std::to_string(raised_after_projection) + " raised after the projection";
  if (empty_wafers_skipped > 0) s += "; " + std::to_string(empty_wafers_skipped) + " empty wafers skipped";
  if (best_epoch > 0) {
    std::snprintf(buf, sizeof buf, "; kept epoch %d (validation EMD %.4f)%s", best_epoch, best_validation_emd,
                  stopped_early ? ", stopped early" : "");
    s += buf;
  }
  s += "; last epoch:";
  for (const auto& kv : last_epoch) {
    std::snprintf(buf, sizeof buf, " %s %.4g", kv.first.c_str(), kv.second);
    s += buf;
  }
  return s;
}

void check_budgets_feasible(const EconTPipeline& pipeline, const TrainerOptions& o) {
  if (o.budgets().count("elinks") && !pipeline.options().learn_latent_bits() &&
      !pipeline.options().learn_latent_gates())
    throw Error(
        "training.budgets.elinks: needs pipeline.learn_latent_bits or pipeline.learn_latent_gates (a fixed "
        "latent gives a fixed " +
        std::to_string(pipeline.elinks()) + " e-links)");
  // The model's latency depends on the reuse factor and the layer count
  // only, which training does not change: a budget below it is refused
  // now rather than reported unmet after the run.
  if (o.budgets().count("latency_cycles")) {
    const double cycles = AnalyticResourceModel::shipped().predict(
        design_from(pipeline.encoder_description(), 1))[static_cast<size_t>(ResourceTarget::LatencyCycles)];
    if (cycles > o.budgets().at("latency_cycles"))
      throw Error("training.budgets.latency_cycles: " + std::to_string(o.budgets().at("latency_cycles")) +
                  " cannot be met: the encoder's estimated latency is " + std::to_string(cycles) +
                  " cycles at reuse factor 1 whatever its bits and units (the model's latency depends on the "
                  "layer count and reuse factor only)");
  }
}

}  // namespace ddaq
