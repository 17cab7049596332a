#include "ddaq/core/trainer.h"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>

#include "ddaq/core/baselines.h"
#include "ddaq/core/events.h"
#include "ddaq/core/loader.h"
#include "ddaq/core/progress.h"
#include "ddaq/core/wafer_metric.h"
#include "ddaq/error.h"
#include "ddaq/objectives/objective.h"
#include "ddaq/surrogates/emd.h"
#include "ddaq/surrogates/emd_surrogate.h"
#include "ddaq/surrogates/energy.h"
#include "ddaq/quant/layers.h"
#include "ddaq/surrogates/link_budget.h"

namespace ddaq {

TrainerOptions TrainerOptions::from_config(const Config& c, const std::string& base_dir) {
  c.reject_unknown({"epochs", "max_steps", "batch_size", "learning_rate", "bits_learning_rate", "seed", "threads", "loss",
                    "surrogate",
                    "reconstruction_weight", "classification_weight", "elinks_budget", "link_weight", "ebops_weight"});
  TrainerOptions o;
  o.epochs(static_cast<int>(c.integer("epochs", o.epochs(), 1, 100000)))
      .max_steps(c.integer("max_steps", o.max_steps(), -1))
      .batch_size(c.integer("batch_size", o.batch_size(), 1, 1 << 20))
      .learning_rate(c.number("learning_rate", o.learning_rate(), 1e-9, 10.0))
      .bits_learning_rate(c.number("bits_learning_rate", o.bits_learning_rate(), 0.0, 10.0))
      .seed(static_cast<uint64_t>(c.integer("seed", static_cast<int64_t>(o.seed()), 0)))
      .threads(static_cast<int>(c.integer("threads", o.threads(), 1, 256)))
      .loss(c.string("loss", o.loss()))
      .reconstruction_weight(c.number("reconstruction_weight", o.reconstruction_weight(), 0.0))
      .classification_weight(c.number("classification_weight", o.classification_weight(), 0.0))
      .elinks_budget(c.number("elinks_budget", o.elinks_budget(), 0.0, 13.0))
      .link_weight(c.number("link_weight", o.link_weight(), 0.0))
      .ebops_weight(c.number("ebops_weight", o.ebops_weight(), 0.0));
  if (o.loss() != "surrogate" && o.loss() != "weighted_mse")
    throw Error(c.source() + ": " + c.where() + ".loss: '" + o.loss() + "' (expected \"surrogate\" or \"weighted_mse\")");
  const std::string s = c.string("surrogate", "");
  if (!s.empty()) o.surrogate(s[0] == '/' ? s : base_dir + "/" + s);
  if (o.loss() == "surrogate" && o.surrogate().empty())
    throw Error(c.source() + ": " + c.where() + ".surrogate: needed with loss \"surrogate\"");
  return o;
}

std::string TrainSummary::to_text() const {
  std::string s = std::to_string(steps) + " steps, " + std::to_string(epochs) + " epochs, " +
                  std::to_string(static_cast<int>(seconds + 0.5)) + " s; last epoch:";
  char buf[64];
  for (const auto& kv : last_epoch) {
    std::snprintf(buf, sizeof buf, " %s %.4g", kv.first.c_str(), kv.second);
    s += buf;
  }
  return s;
}

TrainSummary train_pipeline(EconTPipeline& pipeline, const std::string& train_file, const TrainerOptions& o,
                            const std::string& metrics_path, Progress* progress, const StepCallback& on_step) {
  const auto t0 = std::chrono::steady_clock::now();
  at::set_num_threads(o.threads());
  torch::manual_seed(o.seed());
  std::unique_ptr<EmdSurrogate> surrogate;
  if (o.loss() == "surrogate") {
    surrogate.reset(new EmdSurrogate(EmdSurrogate::load(o.surrogate())));
    for (auto& p : surrogate->parameters()) p.requires_grad_(false);
    surrogate->train_mode(false);
  }
  EventLoader loader(train_file, LoaderOptions().batch_size(o.batch_size()).seed(o.seed()).drop_last(true));
  if (loader.batches_per_epoch() == 0)
    throw Error(train_file + ": fewer events than one batch of " + std::to_string(o.batch_size()));
  std::vector<at::Tensor> weights, bits;
  for (const auto& kv : pipeline.named_parameters()) {
    const std::string stage = kv.first.substr(0, kv.first.find('.'));
    if (std::find(o.frozen().begin(), o.frozen().end(), stage) != o.frozen().end()) {
      kv.second.requires_grad_(false);
      continue;
    }
    (kv.first.find("fractional_bits") != std::string::npos ? bits : weights).push_back(kv.second);
  }
  if (weights.empty() && bits.empty()) throw Error("trainer: every stage is frozen");
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(weights, std::make_unique<torch::optim::AdamOptions>(o.learning_rate()));
  if (!bits.empty()) groups.emplace_back(bits, std::make_unique<torch::optim::AdamOptions>(o.bits_learning_rate()));
  torch::optim::Adam optimizer(groups, torch::optim::AdamOptions(o.learning_rate()));
  const std::vector<double> base_lr = {o.learning_rate(), o.bits_learning_rate()};
  const int64_t planned = loader.batches_per_epoch() * o.epochs();
  const int64_t total_steps = o.max_steps() >= 0 ? std::min(planned, o.max_steps()) : planned;
  if (progress) progress->set_total(total_steps);
  std::ofstream metrics;
  if (!metrics_path.empty()) {
    metrics.open(metrics_path, std::ios::app);
    if (!metrics) throw Error(metrics_path + ": cannot write metrics");
  }
  TrainSummary summary;
  EventBatch batch;
  pipeline.train(true);
  for (int epoch = 0; epoch < o.epochs() && summary.steps < total_steps; ++epoch) {
    loader.start_epoch(epoch);
    std::map<std::string, double> sums;
    int64_t steps_in_epoch = 0;
    while (summary.steps < total_steps && loader.next(batch)) {
      const double decay = 0.5 * (1.0 + std::cos(M_PI * summary.steps / std::max<int64_t>(1, total_steps)));
      for (size_t g = 0; g < optimizer.param_groups().size(); ++g)
        static_cast<torch::optim::AdamOptions&>(optimizer.param_groups()[g].options()).lr(base_lr[g] * decay);
      const int64_t n = batch.size();
      const torch::Tensor calq = torch::from_blob(batch.events.calq.data(), {n, 48}, torch::kFloat).clone();
      const PipelineResult r = pipeline.forward(calq);
      WeightedObjective objective;
      const torch::Tensor recon = surrogate ? surrogate->forward(r.get("target"), r.get("reconstruction")).mean()
                                            : weighted_mse(r.get("target"), r.get("reconstruction"));
      objective.add(surrogate ? "emd_surrogate" : "weighted_mse", o.reconstruction_weight(), recon);
      if (batch.events.has_labels()) {
        const torch::Tensor labels =
            torch::from_blob(batch.events.label.data(), {n}, torch::kInt).to(torch::kFloat).clamp(0, 1);
        objective.add("bce", o.classification_weight(), binary_cross_entropy_logits(r.get("logits"), labels));
      }
      objective.add("elinks", 0.0, r.get("elinks"));
      if (o.elinks_budget() > 0)
        objective.add("link_hinge", o.link_weight(), budget_hinge(r.get("elinks"), o.elinks_budget(), 1.0, 0.1));
      objective.add("ebops", o.ebops_weight(), r.get("ebops"));
      optimizer.zero_grad();
      objective.total().backward();
      optimizer.step();
      const auto values = objective.values();
      for (const auto& kv : values) sums[kv.first] += kv.second;
      ++steps_in_epoch;
      ++summary.steps;
      if (progress) progress->advance(1);
      if (on_step) on_step(summary.steps, total_steps, values.at("total"));
    }
    summary.epochs = epoch + 1;
    summary.last_epoch.clear();
    for (const auto& kv : sums) summary.last_epoch[kv.first] = kv.second / std::max<int64_t>(1, steps_in_epoch);
    if (metrics) {
      nlohmann::json line = {{"epoch", epoch + 1}, {"steps", summary.steps}};
      for (const auto& kv : summary.last_epoch) line[kv.first] = kv.second;
      metrics << line.dump() << "\n";
      metrics.flush();
    }
  }
  pipeline.train(false);
  summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return summary;
}

namespace {

double median(std::vector<double> v) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

double mean(const std::vector<double>& v) {
  return v.empty() ? NAN : std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
}

// Area under the ROC curve by the rank statistic (ties averaged).
double auc(const std::vector<double>& score, const std::vector<int32_t>& label) {
  std::vector<size_t> idx(score.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return score[a] < score[b]; });
  double rank_sum = 0;
  int64_t pos = 0, neg = 0;
  for (size_t i = 0; i < idx.size();) {
    size_t j = i;
    while (j < idx.size() && score[idx[j]] == score[idx[i]]) ++j;
    const double r = 0.5 * static_cast<double>(i + 1 + j);  // average rank, 1-based
    for (size_t k = i; k < j; ++k)
      if (label[idx[k]] == 1) rank_sum += r;
    i = j;
  }
  for (int32_t l : label) (l == 1 ? pos : neg)++;
  if (pos == 0 || neg == 0) return NAN;
  return (rank_sum - 0.5 * static_cast<double>(pos) * static_cast<double>(pos + 1)) / (static_cast<double>(pos) * neg);
}

}  // namespace

EvaluationReport evaluate_pipeline(EconTPipeline& pipeline, const std::string& data_file, int64_t max_events) {
  const EventFileReader reader(data_file);
  const int64_t n = std::min(max_events, reader.size());
  if (n <= 0) throw Error(data_file + ": no events to evaluate");
  EventTable t;
  t.calq.resize(static_cast<size_t>(n) * 48);
  if (reader.has_labels()) t.label.resize(static_cast<size_t>(n));
  reader.read(0, n, t.calq.data(), reader.has_labels() ? t.label.data() : nullptr);
  pipeline.train(false);
  torch::Tensor recon, logits;
  {
    torch::NoGradGuard no_grad;
    const PipelineResult r = pipeline.forward(torch::from_blob(t.calq.data(), {n, 48}, torch::kFloat));
    recon = r.get("reconstruction").contiguous();
    logits = r.get("logits").to(torch::kDouble).contiguous();
  }
  const GroundMetric metric = trigger_cell_metric();
  std::vector<double> emd(static_cast<size_t>(n));
  emd_exact_rows(metric, t.calq.data(), recon.data_ptr<float>(), n, emd.data(), 0);
  EvaluationReport rep;
  rep.events = n;
  rep.latent_bits = pipeline.latent_bits();
  rep.elinks = pipeline.elinks();
  std::vector<double> finite;
  for (double e : emd)
    if (std::isfinite(e)) finite.push_back(e);
  rep.emd_mean = mean(finite);
  rep.emd_median = median(finite);
  rep.auc = t.has_labels() ? auc(std::vector<double>(logits.data_ptr<double>(), logits.data_ptr<double>() + n), t.label)
                           : NAN;
  const ClassicalFormats formats;
  std::vector<float> y(static_cast<size_t>(n) * 48);
  auto score = [&](const std::string& name, int links, int cells) {
    std::vector<double> e(static_cast<size_t>(n)), fe;
    emd_exact_rows(metric, t.calq.data(), y.data(), n, e.data(), 0);
    for (double v : e)
      if (std::isfinite(v)) fe.push_back(v);
    return BaselineRow{name, links, cells, mean(fe), median(fe)};
  };
  for (int links = 1; links <= 5; ++links) {
    const int k = formats.best_choice_cells_for(links);
    best_choice(t.calq.data(), n, k, y.data());
    rep.best_choice.push_back(score("best_choice", links, k));
  }
  for (int links = 2; links <= 5; ++links) {
    // Cells that fit beside the header and the 48-bit map.
    const int cells = (formats.elink_bits * links - formats.header_bits - formats.map_bits) / formats.threshold_cell_bits;
    threshold_truncated(t.calq.data(), n, 0.0f, std::max(cells, 0), y.data());
    rep.classical.push_back(score("threshold", links, std::max(cells, 0)));
  }
  for (int group : {16, 4}) {
    super_trigger_cells(t.calq.data(), n, group, y.data());
    rep.classical.push_back(score(group == 4 ? "stc4" : "stc16", formats.stc_elinks(group), 48 / group));
  }
  const EnergyEstimate energy = estimate_energy(pipeline.encoder_description());
  rep.encoder_energy_pj = energy.total_pj;
  rep.encoder_power_mw = energy.power_mw;
  for (const auto& l : pipeline.encoder_description()) rep.encoder_ebops += l.ebops;
  return rep;
}

std::string EvaluationReport::to_text() const {
  char buf[256];
  std::string s;
  std::snprintf(buf, sizeof buf, "events %lld; latent %d bits -> %d e-links\n", static_cast<long long>(events), latent_bits,
                elinks);
  s += buf;
  std::snprintf(buf, sizeof buf, "autoencoder: exact EMD mean %.4f, median %.4f (sensor-cell pitches); classifier AUC %.4f\n",
                emd_mean, emd_median, auc);
  s += buf;
  s += "Best Choice (same events):\n";
  for (const auto& b : best_choice) {
    std::snprintf(buf, sizeof buf, "  %d e-link(s), %2d cells: EMD mean %.4f, median %.4f%s\n", b.elinks, b.cells,
                  b.emd_mean, b.emd_median, b.elinks == elinks ? "   <- same bandwidth" : "");
    s += buf;
  }
  s += "other classical formats (same events):\n";
  for (const auto& b : classical) {
    std::snprintf(buf, sizeof buf, "  %-10s %d e-link(s), %2d cells: EMD mean %.4f, median %.4f\n", b.name.c_str(),
                  b.elinks, b.cells, b.emd_mean, b.emd_median);
    s += buf;
  }
  std::snprintf(buf, sizeof buf, "encoder: EBOPs %.0f, %.4g pJ per inference, %.4g mW at 40 MHz (45 nm)\n", encoder_ebops,
                encoder_energy_pj, encoder_power_mw);
  s += buf;
  for (const auto& b : best_choice)
    if (b.elinks == elinks) {
      std::snprintf(buf, sizeof buf, "autoencoder / Best Choice at %d e-links: %.3f\n", elinks, emd_mean / b.emd_mean);
      s += buf;
    }
  return s;
}

std::string EvaluationReport::to_json() const {
  nlohmann::json bc = nlohmann::json::array(), other = nlohmann::json::array();
  for (const auto& b : best_choice)
    bc.push_back({{"elinks", b.elinks}, {"cells", b.cells}, {"emd_mean", b.emd_mean}, {"emd_median", b.emd_median}});
  for (const auto& b : classical)
    other.push_back({{"name", b.name}, {"elinks", b.elinks}, {"cells", b.cells}, {"emd_mean", b.emd_mean},
                     {"emd_median", b.emd_median}});
  return nlohmann::json({{"events", events},
                         {"latent_bits", latent_bits},
                         {"elinks", elinks},
                         {"emd_mean", emd_mean},
                         {"emd_median", emd_median},
                         {"auc", std::isfinite(auc) ? nlohmann::json(auc) : nlohmann::json(nullptr)},
                         {"best_choice", bc},
                         {"classical", other},
                         {"encoder_ebops", encoder_ebops},
                         {"encoder_energy_pj", encoder_energy_pj},
                         {"encoder_power_mw", encoder_power_mw}})
      .dump(2);
}

}  // namespace ddaq
