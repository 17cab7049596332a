#include "ddaq/core/trainer.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <limits>
#include <mutex>
#include <nlohmann/json.hpp>
#include <numeric>

#include "checkpoint.h"
#include "ddaq/core/baselines.h"
#include "ddaq/core/distributed.h"
#include "ddaq/core/evaluation.h"
#include "ddaq/core/events.h"
#include "ddaq/core/loader.h"
#include "ddaq/core/overlay.h"
#include "ddaq/core/progress.h"
#include "ddaq/core/random.h"
#include "ddaq/core/wafer_metric.h"
#include "ddaq/error.h"
#include "ddaq/files.h"
#include "ddaq/interrupts.h"
#include "ddaq/objectives/budget.h"
#include "ddaq/objectives/objective.h"
#include "ddaq/quant/layers.h"
#include "ddaq/surrogates/emd.h"
#include "ddaq/surrogates/emd_surrogate.h"
#include "ddaq/surrogates/energy.h"
#include "ddaq/surrogates/fpga_resources.h"
#include "ddaq/surrogates/link_budget.h"
#include "ddaq/surrogates/sinkhorn.h"
#include "flat_adam.h"
#include "train_batches.h"

namespace ddaq {

namespace {

// One training run: set up from the options (data, loss, optimizer), then
// epochs of steps; each epoch ends with validation, a metrics line and a
// checkpoint. Every rank runs the same calls in the same order (the
// collectives line up); only rank 0 writes.
class TrainingRun {
 public:
  TrainingRun(EconTPipeline& pipeline, const std::string& train_file, const TrainerOptions& o, Communicator* comm)
      : pipeline_(pipeline),
        o_(o),
        comm_(comm),
        rank_(comm ? comm->rank() : 0),
        world_(comm ? comm->world_size() : 1),
        device_(torch::kCPU) {
    if (o.batch_size() % world_ != 0)
      throw Error("trainer: batch_size " + std::to_string(o.batch_size()) + " (global) is not divisible by " +
                  std::to_string(world_) + " ranks");
    at::set_num_threads(o.threads());
    torch::manual_seed(o.seed());
    pipeline.to(o.device());  // checks the device name and CUDA availability
    device_ = torch::Device(o.device());
    check_detector_options(pipeline, o);
    if (o.loss() == "surrogate") {
      surrogate_.reset(new EmdSurrogate(EmdSurrogate::load(o.surrogate())));
      surrogate_->to(o.device());
      for (auto& p : surrogate_->parameters()) p.requires_grad_(false);
      surrogate_->train_mode(false);
    }
    reconstruction_ = reconstruction_loss(o, device_, surrogate_.get(), pipeline);
    loader_.reset(new EventLoader(train_file, LoaderOptions()
                                                  .cells(pipeline.cells())
                                                  .batch_size(o.batch_size() / world_)
                                                  .seed(o.seed())
                                                  .drop_last(true)
                                                  .rank(rank_)
                                                  .world_size(world_)));
    // Bad values anywhere in the file stop training before its first step
    // (not epochs later): the reader checks every charge, this every label.
    {
      const EventFileReader reader(train_file, pipeline.cells());
      constexpr int64_t kBlock = 65536;
      std::vector<float> calq(static_cast<size_t>(kBlock) * pipeline.cells());
      std::vector<int32_t> labels(static_cast<size_t>(kBlock));
      for (int64_t first = 0; first < reader.size(); first += kBlock) {
        const int64_t rows = std::min(kBlock, reader.size() - first);
        reader.read(first, rows, calq.data(), labels.data());
        if (reader.has_labels()) {
          std::vector<int64_t> index(static_cast<size_t>(rows));
          std::iota(index.begin(), index.end(), first);
          check_labels(train_file, labels.data(), index.data(), rows, label_classes(pipeline.objectives()));
        }
      }
    }
    if (loader_->batches_per_epoch() == 0)
      throw Error(train_file + ": fewer events than one batch of " + std::to_string(o.batch_size()));
    pruning_.initial = 0.0;
    pruning_.final = o.prune_sparsity();
    pruning_.begin_step = o.prune_start_step();
    pruning_.end_step = o.prune_end_step();
    if (o.pileup_mu() > 0) {
      pool_ = EventFileReader(o.pileup_pool()).read_all();
      if (pool_.size() == 0) throw Error(o.pileup_pool() + ": the pileup pool has no wafers");
    }
    if (!o.validation().empty()) {
      const EventFileReader reader(o.validation(), pipeline.cells());
      const int64_t n = std::min(o.validation_events(), reader.size());
      if (n <= 0) throw Error(o.validation() + ": no validation events");
      validation_.cells = pipeline.cells();
      validation_.calq.resize(static_cast<size_t>(n) * pipeline.cells());
      reader.read(0, n, validation_.calq.data(), nullptr);
    }
    make_optimizer();
    planned_ = loader_->batches_per_epoch() * o.epochs();
    total_steps_ = o.max_steps() >= 0 ? std::min(planned_, o.max_steps()) : planned_;
    print_ = fingerprint(pipeline, train_file, loader_->file_size(), o);
    train_file_ = train_file;
    if (!o.budgets().empty()) {
      check_budgets_feasible(pipeline, o);
      BudgetLimits limits;
      limits.limits = o.budgets();
      // DSPs are counted in whole units: a limit of 0 is "at most 0.5" to the
      // relaxed term, whose constraint divides by the limit.
      if (limits.limits.count("dsp")) limits.limits["dsp"] = std::max(0.5, limits.limits["dsp"]);
      limits.penalty = o.budget_penalty();
      limits.update_every = o.budget_update_every();
      lagrangian_.reset(new AugmentedLagrangian(limits));
      projection_step_ = static_cast<int64_t>(std::llround(static_cast<double>(planned_) * (1.0 - o.finetune_fraction())));
      refresh_energy_constant();
    }
    // Cost terms enter the per-step graph only when weighted.
    with_costs_ = o.ebops_weight() > 0 || o.elinks_budget() > 0 || o.power_weight() > 0 || lagrangian_;
    summary_.world_size = world_;
  }

  // From scratch or from the checkpoint (options.resume); every rank starts
  // from rank 0's state.
  void start(const std::string& metrics_path, Progress* progress) {
    if (o_.resume()) {
      if (o_.checkpoint().empty()) throw Error("trainer: resume needs a checkpoint path");
      LoadedCheckpoint c = load_checkpoint(o_.checkpoint(), optimizer_.get());
      if (c.meta.value("fingerprint", "") != print_)
        throw Error(o_.checkpoint() + ": written for another configuration: " +
                    first_difference(c.meta.value("fingerprint", "{}"), print_));
      restore(pipeline_, c.state, o_.checkpoint());
      best_ = c.best;
      pos_ = position_from(c.meta);
      if (lagrangian_) {
        lagrangian_->restore(c.meta.at("budgets").get<std::string>());
        fixed_energy_pj_ = c.meta.at("fixed_energy_pj").get<double>();
      }
      summary_.resumed_at_step = pos_.step;
      if (writer() && !metrics_path.empty()) truncate_metrics(metrics_path, pos_.step);
    }
    // The same events on every rank (the file's first), so every rank
    // raises alike; the broadcast below makes it certain.
    if (!o_.resume() && o_.raise_silent_units()) summary_.raised_units = raise_silent_units();
    if (comm_) {
      std::vector<at::Tensor> state;
      for (const auto& kv : pipeline_.named_state()) state.push_back(kv.second);
      comm_->broadcast(state, 0);
    }
    // Resumed after the projection: the same pins on the restored design
    // (not the projection again: the fine-tune may have moved the design's
    // EBOPs, e.g. weights that became zero, and the run it continues did not
    // project twice).
    if (has_projection() && pos_.step > projection_step_) {  // applied in an earlier step
      if (o_.budgets().count("elinks")) pipeline_.fit_latent_payload(payload_limit());
      pipeline_.pin_encoder_gates();
      if (!energy_limits().empty() || o_.budgets().count("dsp")) pipeline_.fit_encoder_energy({});  // pins only
    }
    progress_ = progress;
    if (progress_) {
      progress_->set_total(total_steps_);
      progress_->advance(pos_.step);
    }
    if (writer() && !metrics_path.empty()) {
      metrics_.open(metrics_path, std::ios::app);
      if (!metrics_) throw Error(metrics_path + ": cannot write metrics");
    }
    if (writer() && !o_.checkpoint().empty()) remove_stale_temporaries(o_.checkpoint());
  }

  void run(const StepCallback& on_step) {
    const auto train_start = std::chrono::steady_clock::now();
    EventBatch batch, next_batch;
    pipeline_.train(true);
    for (; pos_.epoch < o_.epochs() && pos_.step < total_steps_ && !pos_.stop; ++pos_.epoch, pos_.batch_in_epoch = 0) {
      loader_->start_epoch(pos_.epoch);
      for (int64_t skip = 0; skip < pos_.batch_in_epoch; ++skip) loader_->next(batch);  // resumed mid-epoch
      bool have_batch = pos_.step < total_steps_ && loader_->next(batch);
      while (pos_.step < total_steps_ && have_batch) {
        have_batch = step(batch, next_batch);
        std::swap(batch, next_batch);
        if (on_step) on_step(pos_.step, total_steps_, last_total_);
        if (const int sig = interrupt_requested()) {
          checkpoint();  // the step boundary: --resume continues exactly from here
          throw Interrupted(sig, "interrupted by " + signal_name(sig) + " at step " + std::to_string(pos_.step) +
                                     (o_.checkpoint().empty() ? std::string(" (no checkpoint configured)")
                                                              : "; wrote " + o_.checkpoint() + ": continue with --resume"));
        }
        // Mid-epoch checkpoints; a completed epoch gets its own after its metrics line.
        if (o_.checkpoint_every() > 0 && pos_.step % o_.checkpoint_every() == 0 && pos_.step < total_steps_ &&
            pos_.batch_in_epoch < loader_->batches_per_epoch())
          checkpoint();
      }
      if (!end_epoch()) break;
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - train_start).count();
    summary_.events_per_second = seconds > 0 ? static_cast<double>(events_trained_) / seconds : 0.0;
  }

  TrainSummary finish() {
    summary_.stopped_early = summary_.stopped_early || pos_.stop;
    pipeline_.set_quantization(true);  // what is saved and exported is quantized
    // The last state (not the best, not projected): --resume with more steps
    // continues exactly as if never stopped.
    checkpoint();
    // The projection is applied at the start of step projection_step_.
    const bool applied = has_projection() && pos_.step > projection_step_;
    // Stopped before it (max_steps): the budgets still hold for what is
    // saved and exported.
    if (has_projection() && !applied) project();
    // EBOPs count non-zero weights, which the fine-tune may have changed: the
    // saved design meets the energy budgets exactly, not only at the projection.
    if (applied && !energy_limits().empty()) pipeline_.fit_encoder_energy(energy_limits());
    if (!best_.empty()) {
      restore(pipeline_, best_, "validation");
      if (has_projection()) project();
      summary_.best_epoch = pos_.best_epoch;
      summary_.best_validation_emd = pos_.best_validation;
    }
    if (comm_) comm_->barrier();
    pipeline_.train(false);
    summary_.steps = pos_.step;
    summary_.epochs = pos_.epoch + (pos_.batch_in_epoch > 0 ? 1 : 0);
    return summary_;
  }

 private:
  bool writer() const { return rank_ == 0; }

  // Frozen stages get no gradient; bit widths have their own learning rate.
  void make_optimizer() {
    std::vector<at::Tensor> weights, bits;
    for (const auto& kv : pipeline_.named_parameters()) {
      const std::string stage = kv.first.substr(0, kv.first.find('.'));
      if (std::find(o_.frozen().begin(), o_.frozen().end(), stage) != o_.frozen().end()) {
        kv.second.requires_grad_(false);
        continue;
      }
      (kv.first.find("fractional_bits") != std::string::npos ? bits : weights).push_back(kv.second);
    }
    for (const auto& kv : pipeline_.named_state())
      if (kv.first.size() > 6 && kv.first.compare(kv.first.size() - 6, 6, ".range") == 0) ranges_.push_back(kv.second);
    if (weights.empty() && bits.empty()) throw Error("trainer: every stage is frozen");
    std::vector<FlatAdam::Group> groups = {{weights, o_.learning_rate(), o_.weight_decay()}};
    if (!bits.empty()) groups.push_back({bits, o_.bits_learning_rate(), 0.0});
    optimizer_.reset(new FlatAdam(groups));  // parameters become views into its buffer
  }

  // The weighted terms of one batch (the graph is built here).
  void add_terms(EventBatch& batch, WeightedObjective& objective, bool with_budgets = true) {
    const int64_t n = batch.size();
    const torch::Tensor calq = torch::from_blob(batch.events.calq.data(), {n, batch.events.cells}, torch::kFloat)
                                   .to(device_, torch::kFloat, false, /*copy=*/true);
    const PipelineResult r = pipeline_.forward(calq, with_costs_);
    torch::Tensor labels, classes;
    if (batch.events.has_labels()) {
      const torch::Tensor l = torch::from_blob(batch.events.label.data(), {n}, torch::kInt);
      labels = l.to(device_, torch::kFloat, false, true).clamp(0, 1);
      classes = l.to(device_, torch::kLong, false, true);
    }
    if (pipeline_.objectives().empty()) {
      objective.add(reconstruction_.first, o_.reconstruction_weight(),
                    reconstruction_.second(r.get("target"), r.get("reconstruction")));
      if (labels.defined())
        objective.add("bce", o_.classification_weight(), binary_cross_entropy_logits(r.get("logits"), labels));
    }
    // Declared objectives: each a term under its own name and weight.
    for (const ObjectiveSpec& o : pipeline_.objectives()) {
      if (o.type == "reconstruction")
        objective.add(
            o.name, o.weight,
            reconstruction_.second(r.get(objective_output(o, "target")), r.get(objective_output(o, "reconstruction"))));
      else if (o.type == "regression")
        objective.add(o.name, o.weight, regression_mse(o, r));
      else if (labels.defined() && o.classes > 2)
        objective.add(o.name, o.weight, torch::nll_loss(torch::log_softmax(class_logits(o, r), 1), classes));
      else if (labels.defined())
        objective.add(o.name, o.weight, binary_cross_entropy_logits(r.get(objective_output(o, "logits")), labels));
    }
    if (with_costs_) {
      objective.add("elinks", 0.0, r.get("elinks"));
      if (o_.elinks_budget() > 0)
        objective.add("link_hinge", o_.link_weight(), budget_hinge(r.get("elinks"), o_.elinks_budget(), 1.0, 0.1));
      objective.add("ebops", o_.ebops_weight(), r.get("ebops"));
      if (o_.power_weight() > 0) {
        const EnergyModel e;
        objective.add("encoder_power_mw", o_.power_weight(),
                      r.get("encoder_ebops") * (e.mult_pj_per_bit_product * e.inference_rate_hz * 1e-9));
      }
      if (lagrangian_ && with_budgets) {
        const EnergyModel e;
        std::map<std::string, torch::Tensor> costs = {
            {"ebops", r.get("encoder_ebops")},
            {"power_mw", (r.get("encoder_ebops") * e.mult_pj_per_bit_product + fixed_energy_pj_) *
                             (e.inference_rate_hz * 1e-9)}};
        // e-links <= E is payload <= capacity(E): the constraint is on the
        // payload, scaled to e-link units (the relaxed e-link staircase is
        // flat between capacity boundaries, so it gives no gradient there).
        // After the projection the e-links are exact and fixed: no term.
        for (const char* name : {"lut", "ff", "dsp", "latency_cycles"}) costs[name] = r.get(std::string("encoder_") + name);
        if (o_.budgets().count("elinks")) {
          const double e = o_.budgets().at("elinks");
          costs["elinks"] = projected() ? torch::zeros({}, r.get("payload_bits").options())
                                        : r.get("payload_bits") * (e / static_cast<double>(payload_limit()));
        }
        lagrangian_->add_terms(costs, objective);
      }
    }
  }

  // One line for a step whose loss or gradient is not finite: the step, the
  // term, and what in the batch may have caused it (file and row).
  std::string non_finite_message(const std::string& term, double value, const EventBatch& batch) {
    std::string m = "training stopped at step " + std::to_string(pos_.step + 1) + ": ";
    m += term.empty() ? std::string("the gradient is not finite") + (comm_ ? " (on some rank)" : "")
                      : "the loss term '" + term + "' is " + (std::isnan(value) ? "nan" : "infinite");
    // Which wafer: the terms of each row alone (only now, training stops).
    int64_t culprit = -1;
    if (!term.empty()) {
      torch::NoGradGuard no_grad;
      pipeline_.train(false);  // no range observation: the probe changes nothing
      for (int64_t r = 0; r < batch.size() && culprit < 0; ++r) {
        EventBatch one;
        const int64_t c = batch.events.cells;
        one.events.cells = batch.events.cells;
        one.events.calq.assign(batch.events.calq.begin() + r * c, batch.events.calq.begin() + (r + 1) * c);
        if (batch.events.has_labels()) one.events.label = {batch.events.label[static_cast<size_t>(r)]};
        WeightedObjective o;
        add_terms(one, o, /*with_budgets=*/false);
        for (const auto& kv : o.values())
          if (!std::isfinite(kv.second)) culprit = batch.index.empty() ? r : batch.index[static_cast<size_t>(r)];
      }
      pipeline_.train(true);
    }
    if (culprit >= 0)
      m += " for row " + std::to_string(culprit) + " of " + train_file_ + " (its charges give it alone)";
    return m + " (parameters not updated; checkpoints written before this step are finite)";
  }

  // The e-link budget's payload capacity (ECON-T frame).
  int64_t payload_limit() const { return pipeline_.payload_capacity(static_cast<int>(o_.budgets().at("elinks"))); }
  // Budgets met by a projection onto an integer design: e-links (latent
  // width), LUT and FF (hidden units).
  std::map<std::string, double> fpga_limits() const {
    std::map<std::string, double> l;
    for (const char* name : {"lut", "ff", "dsp"})
      if (o_.budgets().count(name)) l[name] = o_.budgets().at(name);
    return l;
  }
  std::map<std::string, double> energy_limits() const {
    std::map<std::string, double> l;
    for (const char* name : {"ebops", "power_mw"})
      if (o_.budgets().count(name)) l[name] = o_.budgets().at(name);
    return l;
  }
  bool has_projection() const {
    return lagrangian_ && (o_.budgets().count("elinks") || !fpga_limits().empty() || !energy_limits().empty());
  }
  bool projected() const { return has_projection() && pos_.step >= projection_step_; }
  // Units that would be zero on most of the training file's first 4,096
  // events get their bias raised (EconTPipeline::raise_silent_units).
  int64_t raise_silent_units() {
    const EventFileReader reader(train_file_, pipeline_.cells());
    const int64_t n = std::min<int64_t>(4096, reader.size());
    std::vector<float> calq(static_cast<size_t>(n) * pipeline_.cells());
    reader.read(0, n, calq.data(), nullptr);
    const torch::Tensor x = torch::from_blob(calq.data(), {n, static_cast<int64_t>(pipeline_.cells())}, torch::kFloat)
                                .to(device_, torch::kFloat, false, /*copy=*/true);
    return pipeline_.raise_silent_units(x, o_.frozen());
  }
  void project() {
    if (o_.budgets().count("elinks")) pipeline_.fit_latent_payload(payload_limit());
    if (!fpga_limits().empty()) pipeline_.fit_encoder_resources(fpga_limits());
    if (!energy_limits().empty()) pipeline_.fit_encoder_energy(energy_limits());
  }
  // Relaxed power = (pJ per bit product x EBOPs + the rest of the exact
  // estimate, fixed between multiplier updates) x rate.
  void refresh_energy_constant() {
    const EnergyModel e;
    double bit_products = 0.0;
    const ModelDescription d = pipeline_.encoder_description();
    for (const LayerDescription& l : d)
      if (l.kind == LayerKind::Dense || l.kind == LayerKind::Conv2d || l.kind == LayerKind::ConvTranspose2d)
        bit_products += l.ebops > 0 ? l.ebops : static_cast<double>(l.multiplies) * l.input_type.width * l.weight_type.width;
    fixed_energy_pj_ = estimate_energy(d, e).total_pj - e.mult_pj_per_bit_product * bit_products;
  }

  // One optimizer step on `batch`; loads the next batch into `next` while
  // the gradients are averaged over ranks. Returns whether it got one.
  bool step(EventBatch& batch, EventBatch& next) {
    const double decay = 0.5 * (1.0 + std::cos(M_PI * static_cast<double>(pos_.step) / static_cast<double>(planned_)));
    augment(o_, pool_, pos_.epoch, loader_->file_size(), batch);
    if (lagrangian_ && !projected()) {  // floors against gates all closing at once (pipeline.h)
      if (o_.budgets().count("elinks")) pipeline_.keep_latents_that_fit(payload_limit());
      std::map<std::string, double> unit_limits = fpga_limits();
      for (const auto& kv : energy_limits()) unit_limits.insert(kv);
      unit_limits.erase("dsp");  // met by weight widths, not units
      if (!unit_limits.empty()) pipeline_.keep_units_that_fit(unit_limits, fixed_energy_pj_);
    }
    // Empty wafers (all charges 0) have no shape to reconstruct: the EMD is
    // undefined for them. They are left out of the step (and counted).
    summary_.empty_wafers_skipped += drop_empty_wafers(batch);
    if (batch.size() == 0)
      throw Error("training stopped at step " + std::to_string(pos_.step + 1) + ": every wafer of the batch is empty (" +
                  train_file_ + ")");
    // Schedules are functions of the step alone: resumption repeats them.
    pipeline_.set_quantization(pos_.step >= o_.qat_start_step());
    if (o_.prune_sparsity() > 0 && pos_.step >= o_.prune_start_step() &&
        (pos_.step % o_.prune_every() == 0 || pos_.step == o_.prune_end_step()))
      pipeline_.prune_encoder(pruning_.at(pos_.step));
    if (has_projection() && pos_.step == projection_step_) {
      project();
      // Again after it: a latent the relaxed phase narrowed (or silenced)
      // below its pinned step would spend the fine-tune at zero, with no
      // gradient. Same events on every rank: the ranks stay equal.
      if (o_.raise_silent_units()) summary_.raised_after_projection = raise_silent_units();
    }
    WeightedObjective objective;
    add_terms(batch, objective);
    optimizer_->zero_grad();
    objective.total().backward();
    const auto values = objective.values();
    std::string bad_term;
    for (const auto& kv : values)
      if (!std::isfinite(kv.second) && (bad_term.empty() || bad_term == "total")) bad_term = kv.first;
    torch::Tensor grad = optimizer_->gather_grads();
    // A non-finite term poisons this rank's gradient, so that every rank sees
    // a non-finite average and all stop at the same step.
    if (!bad_term.empty()) grad.fill_(std::numeric_limits<float>::quiet_NaN());
    std::function<void()> finish_average;
    if (comm_) finish_average = comm_->start_average(grad);
    const bool have_next = loader_->next(next);
    if (finish_average) finish_average();
    if (!torch::isfinite(grad).all().item<bool>())
      throw Error(non_finite_message(bad_term, bad_term.empty() ? 0.0 : values.at(bad_term), batch));
    optimizer_->step(grad, decay);
    pipeline_.clamp_bits_to_limits();
    if (projected()) {  // Adam's momentum would move them
      pipeline_.pin_latent_bits();
      pipeline_.pin_encoder_gates();
      pipeline_.pin_encoder_bits();
    }
    if (comm_ && !ranges_.empty()) comm_->maximum(ranges_);  // ranks agree on what was seen
    for (const auto& kv : values) pos_.epoch_sums[kv.first] += kv.second;
    last_total_ = values.at("total");
    ++pos_.batch_in_epoch;
    ++pos_.step;
    if (lagrangian_) {
      lagrangian_->after_step(pos_.step);
      if (pos_.step % o_.budget_update_every() == 0) refresh_energy_constant();
    }
    events_trained_ += batch.size() * world_;
    if (progress_) progress_->advance(1);
    return have_next;
  }

  // Validation, the metrics line and the checkpoint of a finished epoch.
  // Returns false when the epoch was cut short by max_steps (training ends).
  bool end_epoch() {
    const bool partial = pos_.batch_in_epoch < loader_->batches_per_epoch();
    nlohmann::json line = epoch_line(partial);
    if (partial) {
      if (metrics_) metrics_ << line.dump() << "\n";
      return false;
    }
    if (!validation_.calq.empty()) {
      // Every rank computes it (same state, same data): all agree on stopping.
      const double v = deployed_mean_emd(pipeline_, validation_, o_.device());
      line["validation_emd"] = v;
      // A budgeted run keeps only designs that meet its budgets: epochs
      // before the projection (applied at the step after projection_step_)
      // are logged, neither kept nor counted by patience.
      if (has_projection() && pos_.step <= projection_step_) {
        line["validation_before_projection"] = true;
      } else if (v < pos_.best_validation) {
        pos_.best_validation = v;
        pos_.best_epoch = pos_.epoch + 1;
        pos_.epochs_without_improvement = 0;
        best_ = snapshot(pipeline_);
      } else if (o_.patience() > 0 && ++pos_.epochs_without_improvement >= o_.patience()) {
        pos_.stop = true;
        summary_.stopped_early = true;
      }
    }
    pos_.epoch_sums.clear();
    if (metrics_) {
      metrics_ << line.dump() << "\n";
      metrics_.flush();
    }
    if (pos_.epoch + 1 < o_.epochs() && pos_.step < total_steps_ && !pos_.stop) {
      ++pos_.epoch, pos_.batch_in_epoch = 0;  // the checkpoint starts the next epoch
      checkpoint();
      --pos_.epoch;
    }
    return true;
  }

  // Every rank calls it at the same steps: the running metric sums are saved
  // as their mean over ranks, so a resumed epoch's metrics stay right.
  void checkpoint() {
    if (o_.checkpoint().empty()) return;
    Position saved = pos_;
    if (comm_ && !saved.epoch_sums.empty()) {
      std::vector<double> sums;
      for (const auto& kv : saved.epoch_sums) sums.push_back(kv.second);
      sums = comm_->sum(sums);
      size_t i = 0;
      for (auto& kv : saved.epoch_sums) kv.second = sums[i++] / world_;
    }
    if (lagrangian_) saved.budgets = lagrangian_->state_json(), saved.fixed_energy_pj = fixed_energy_pj_;
    if (writer()) write_checkpoint(o_.checkpoint(), pipeline_, *optimizer_, saved, print_, best_);
  }

  // Means over the epoch's steps and all ranks (a line of metrics.jsonl).
  nlohmann::json epoch_line(bool partial) {
    std::vector<std::string> names;
    std::vector<double> sums;
    for (const auto& kv : pos_.epoch_sums) names.push_back(kv.first), sums.push_back(kv.second);
    if (comm_) sums = comm_->sum(sums);
    summary_.last_epoch.clear();
    for (size_t i = 0; i < names.size(); ++i)
      summary_.last_epoch[names[i]] =
          sums[i] / static_cast<double>(std::max<int64_t>(1, pos_.batch_in_epoch) * world_);
    if (!with_costs_) {  // not in the per-step graph: their value now
      torch::NoGradGuard no_grad;
      const PipelineResult c = pipeline_.costs();
      summary_.last_epoch["elinks"] = c.get("elinks").item<double>();
      summary_.last_epoch["ebops"] = c.get("ebops").item<double>();
    }
    if (lagrangian_)
      for (const auto& kv : lagrangian_->multipliers()) summary_.last_epoch["lambda_" + kv.first] = kv.second;
    nlohmann::json line = {{"epoch", pos_.epoch + 1}, {"steps", pos_.step}};
    if (partial) line["partial"] = true;
    for (const auto& kv : summary_.last_epoch) line[kv.first] = kv.second;
    return line;
  }

  EconTPipeline& pipeline_;
  const TrainerOptions& o_;
  Communicator* comm_;
  const int rank_, world_;
  torch::Device device_;
  std::unique_ptr<EmdSurrogate> surrogate_;
  ReconstructionLoss reconstruction_;
  std::unique_ptr<EventLoader> loader_;
  PolynomialSchedule pruning_;
  EventTable pool_, validation_;
  std::vector<at::Tensor> ranges_;  // observed activation ranges (max-reduced over ranks)
  std::unique_ptr<FlatAdam> optimizer_;
  int64_t planned_ = 0, total_steps_ = 0;
  std::string print_;  // fingerprint of config + data
  std::string train_file_;
  bool with_costs_ = false;
  std::unique_ptr<AugmentedLagrangian> lagrangian_;
  int64_t projection_step_ = 0;
  double fixed_energy_pj_ = 0.0;
  Position pos_;
  std::vector<std::pair<std::string, torch::Tensor>> best_;  // best validation epoch's state
  TrainSummary summary_;
  Progress* progress_ = nullptr;
  std::ofstream metrics_;
  int64_t events_trained_ = 0;
  double last_total_ = 0.0;
};

}  // namespace

TrainSummary train_pipeline(EconTPipeline& pipeline, const std::string& train_file, const TrainerOptions& o,
                            const std::string& metrics_path, Progress* progress, const StepCallback& on_step,
                            Communicator* comm) {
  const auto t0 = std::chrono::steady_clock::now();
  TrainingRun run(pipeline, train_file, o, comm);
  // One process: a signal stops at the next step with a checkpoint. Data
  // parallel ranks end at once (a lone rank's checkpoint would need the others).
  std::unique_ptr<CooperativeInterrupts> cooperative;
  if (!comm || comm->world_size() == 1) cooperative.reset(new CooperativeInterrupts());
  run.start(metrics_path, progress);
  run.run(on_step);
  TrainSummary summary = run.finish();
  summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return summary;
}

}  // namespace ddaq
