// Evaluation of a trained pipeline (ddaq/core/evaluation.h).
#include "ddaq/core/evaluation.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>  // c10::NoGradGuard (at:: lost the alias in LibTorch 2.x)

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <numeric>

#include "ddaq/core/baselines.h"
#include "ddaq/core/events.h"
#include "ddaq/core/wafer_metric.h"
#include "ddaq/error.h"
#include "ddaq/quant/layers.h"
#include "ddaq/surrogates/emd.h"
#include "ddaq/surrogates/energy.h"
#include "ddaq/surrogates/fpga_resources.h"
#include "ddaq/surrogates/link_budget.h"

namespace ddaq {

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

// Best Choice, threshold and super trigger cells on the same wafers
// (HGCAL), and the exact EMD by occupancy with Best Choice beside.
void add_classical_formats(const EventTable& t, const GroundMetric& metric, const std::vector<double>& emd,
                           EvaluationReport& rep) {
  const int64_t n = t.size();
  const ClassicalFormats formats;
  std::vector<float> y(static_cast<size_t>(n) * 48);
  auto score = [&](const std::string& name, int links, int cells) {
    std::vector<double> e(static_cast<size_t>(n)), fe;
    emd_exact_rows(metric, t.calq.data(), y.data(), n, e.data(), 0);
    for (double v : e)
      if (std::isfinite(v)) fe.push_back(v);
    return BaselineRow{name, links, cells, mean(fe), median(fe)};
  };
  std::vector<double> bc_same;  // Best Choice per event at the pipeline's e-links
  // 1..5 e-links (the published comparisons), and the pipeline's own beyond that.
  const int last_links = std::max(5, std::min(rep.elinks, 13));
  for (int links = 1; links <= last_links; ++links) {
    if (links > 5 && links != rep.elinks) continue;
    const int k = formats.best_choice_cells_for(links);
    best_choice(t.calq.data(), n, k, y.data());
    rep.best_choice.push_back(score("best_choice", links, k));
    if (links == rep.elinks) {
      bc_same.resize(static_cast<size_t>(n));
      emd_exact_rows(metric, t.calq.data(), y.data(), n, bc_same.data(), 0);
    }
  }
  for (const auto& range : std::vector<std::pair<int, int>>{{1, 9}, {10, 19}, {20, 29}, {30, 48}}) {
    OccupancyBin bin;
    bin.min_cells = range.first;
    bin.max_cells = range.second;
    double ae = 0, bc = 0;
    for (int64_t i = 0; i < n; ++i) {
      int occupied = 0;
      for (int c = 0; c < 48; ++c) occupied += t.calq[static_cast<size_t>(i * 48 + c)] > 0;
      const size_t k = static_cast<size_t>(i);
      if (occupied < range.first || occupied > range.second || !std::isfinite(emd[k])) continue;
      ++bin.events;
      ae += emd[k];
      bc += bc_same.empty() ? NAN : bc_same[k];
    }
    bin.emd_mean = bin.events ? ae / static_cast<double>(bin.events) : NAN;
    bin.best_choice_emd_mean = bin.events ? bc / static_cast<double>(bin.events) : NAN;
    rep.by_occupancy.push_back(bin);
  }
  for (int links = 2; links <= 5; ++links) {
    // Cells that fit beside the header and the 48-bit map.
    const int cells =
        (formats.elink_bits * links - formats.header_bits - formats.map_bits) / formats.threshold_cell_bits;
    threshold_truncated(t.calq.data(), n, 0.0f, std::max(cells, 0), y.data());
    rep.classical.push_back(score("threshold", links, std::max(cells, 0)));
  }
  for (int group : {16, 4}) {
    super_trigger_cells(t.calq.data(), n, group, y.data());
    rep.classical.push_back(score(group == 4 ? "stc4" : "stc16", formats.stc_elinks(group), 48 / group));
  }
}

}  // namespace

EvaluationReport evaluate_pipeline(EconTPipeline& pipeline, const std::string& data_file, int64_t max_events) {
  const EventFileReader reader(data_file, pipeline.cells());
  const int64_t n = std::min(max_events, reader.size());
  if (n <= 0) throw Error(data_file + ": no events to evaluate");
  const int cells = pipeline.cells();
  EventTable t;
  t.cells = cells;
  t.calq.resize(static_cast<size_t>(n) * cells);
  if (reader.has_labels()) t.label.resize(static_cast<size_t>(n));
  reader.read(0, n, t.calq.data(), reader.has_labels() ? t.label.data() : nullptr);
  if (t.has_labels()) check_labels(data_file, t.label.data(), nullptr, n, label_classes(pipeline.objectives()));
  pipeline.train(false);
  at::Tensor recon, logits;
  std::vector<std::pair<std::string, std::vector<double>>> objective_logits;
  std::vector<std::pair<const ObjectiveSpec*, std::vector<double>>> objective_probabilities;  // [n, classes]
  std::vector<std::pair<std::string, double>> regression_rmse;
  {
    c10::NoGradGuard no_grad;
    const PipelineResult r =
        pipeline.forward(at::from_blob(t.calq.data(), {n, static_cast<int64_t>(cells)}, at::kFloat));
    recon = r.get("reconstruction").contiguous();
    if (r.has("logits") && label_classes(pipeline.objectives()) == 2)
      logits = r.get("logits").to(at::kDouble).contiguous();
    for (const ObjectiveSpec& o : pipeline.objectives())
      if (o.type == "classification" && o.classes > 2) {
        const at::Tensor p = at::softmax(class_logits(o, r), 1).to(at::kDouble).contiguous();
        objective_probabilities.emplace_back(
            &o, std::vector<double>(p.data_ptr<double>(), p.data_ptr<double>() + p.numel()));
      } else if (o.type == "classification") {
        const at::Tensor l = r.get(objective_output(o, "logits")).to(at::kDouble).contiguous();
        if (l.numel() != n)
          throw Error("evaluation: objective '" + o.name + "': logits '" + o.tensor("logits") +
                      "' must hold one value per event, not " + std::to_string(l.numel() / std::max<int64_t>(n, 1)));
        objective_logits.emplace_back(o.name, std::vector<double>(l.data_ptr<double>(), l.data_ptr<double>() + n));
      } else if (o.type == "regression") {
        regression_rmse.emplace_back(o.name, regression_mse(o, r).to(at::kDouble).sqrt().item<double>());
      }
  }
  const GroundMetric metric = pipeline.metric();
  std::vector<double> emd(static_cast<size_t>(n));
  emd_exact_rows(metric, t.calq.data(), recon.data_ptr<float>(), n, emd.data(), 0);
  EvaluationReport rep;
  rep.events = n;
  for (int64_t i = 0; i < n; ++i)
    rep.empty_wafers += std::all_of(&t.calq[static_cast<size_t>(i) * cells],
                                    &t.calq[static_cast<size_t>(i) * cells] + cells, [](float q) { return q == 0.0f; });
  rep.latent_bits = pipeline.latent_bits();
  rep.elinks = pipeline.elinks();
  rep.latent_widths = pipeline.latent_widths();
  rep.payload_bits = pipeline.payload_bits();
  std::vector<double> finite;
  for (double e : emd)
    if (std::isfinite(e)) finite.push_back(e);
  if (!pipeline.hgcal()) rep.emd_unit = "cell pitches";
  rep.emd_mean = mean(finite);
  rep.emd_median = median(finite);
  rep.auc = t.has_labels() && logits.defined()
                ? auc(std::vector<double>(logits.data_ptr<double>(), logits.data_ptr<double>() + n), t.label)
                : NAN;
  for (const auto& kv : objective_logits)
    rep.aucs.emplace_back(kv.first, t.has_labels() ? auc(kv.second, t.label) : NAN);
  // More than two classes: the accuracy of the most probable class, and the
  // mean over classes of the AUC of its probability, that class against the rest.
  for (const auto& kv : objective_probabilities) {
    const int k = kv.first->classes;
    double macro = 0.0, correct = 0.0;
    for (int c = 0; c < k && t.has_labels(); ++c) {
      std::vector<double> score(static_cast<size_t>(n));
      std::vector<int32_t> is_c(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i) {
        score[i] = kv.second[static_cast<size_t>(i * k + c)];
        is_c[i] = t.label[i] == c;
      }
      macro += auc(score, is_c) / k;
    }
    for (int64_t i = 0; i < n && t.has_labels(); ++i) {
      const double* p = &kv.second[static_cast<size_t>(i * k)];
      correct += std::max_element(p, p + k) - p == t.label[i];
    }
    rep.aucs.emplace_back(kv.first->name, t.has_labels() ? macro : NAN);
    rep.accuracies.emplace_back(kv.first->name, t.has_labels() ? correct / static_cast<double>(n) : NAN);
    if (&kv == &objective_probabilities.front()) rep.auc = rep.aucs.back().second;  // the run's "logits"
  }
  rep.rmse = regression_rmse;
  // The classical formats are HGCAL's (48-cell wafer, ECON-T frame).
  if (pipeline.hgcal()) add_classical_formats(t, metric, emd, rep);
  const EnergyEstimate energy = estimate_energy(pipeline.encoder_description());
  rep.encoder_energy_pj = energy.total_pj;
  rep.encoder_power_mw = energy.power_mw;
  for (const auto& l : pipeline.encoder_description()) rep.encoder_ebops += l.ebops;
  const DesignSpec design = design_from(pipeline.encoder_description(), 1);
  const ResourceValues r = AnalyticResourceModel::shipped().predict(design);
  rep.encoder_fpga_warning = AnalyticResourceModel::shipped().range_warning(design);
  rep.encoder_lut = r[0];
  rep.encoder_ff = r[1];
  rep.encoder_dsp = r[2];
  rep.encoder_latency_cycles = r[4];
  return rep;
}

std::string EvaluationReport::to_text() const {
  char buf[256];
  std::string s;
  int sent = 0;
  std::string widths;
  for (int w : latent_widths) sent += w > 0, widths += (widths.empty() ? "" : ",") + std::to_string(w);
  std::snprintf(buf, sizeof buf, "events %lld; latent widths [%s] (%d sent, %lld payload bits) -> %d e-links\n",
                static_cast<long long>(events), widths.c_str(), sent, static_cast<long long>(payload_bits), elinks);
  s += buf;
  if (empty_wafers > 0)
    s += std::to_string(empty_wafers) +
         " empty wafers (all charges 0) left out of every EMD (it is undefined for them)\n";
  std::snprintf(buf, sizeof buf, "autoencoder: exact EMD mean %.4f, median %.4f (%s); classifier AUC %.4f\n", emd_mean,
                emd_median, emd_unit.c_str(), auc);
  s += buf;
  // One line per kind of named figure: "TITLE: name value name value".
  auto named = [&](const char* title, const std::vector<std::pair<std::string, double>>& values, const char* format) {
    if (values.empty()) return;
    s += title;
    for (const auto& kv : values) {
      std::snprintf(buf, sizeof buf, format, kv.first.c_str(), kv.second);
      s += buf;
    }
    s += "\n";
  };
  named("AUC by classification objective:", aucs, " %s %.4f");
  named("accuracy by classification objective (most probable class):", accuracies, " %s %.4f");
  named("RMSE by regression objective:", rmse, " %s %.4g");
  // The HGCAL formats (none for a detector with its own geometry).
  if (best_choice.empty()) s += "no classical formats: they are HGCAL's (the graph has its own geometry)\n";
  if (!by_occupancy.empty())
    s += "by occupancy (non-zero input cells): events, autoencoder EMD, Best Choice EMD at the same e-links\n";
  for (const auto& b : by_occupancy) {
    std::snprintf(buf, sizeof buf, "  %2d-%2d cells: %6lld events, EMD %.4f vs %.4f\n", b.min_cells, b.max_cells,
                  static_cast<long long>(b.events), b.emd_mean, b.best_choice_emd_mean);
    s += buf;
  }
  if (!best_choice.empty()) s += "Best Choice (same events):\n";
  for (const auto& b : best_choice) {
    std::snprintf(buf, sizeof buf, "  %d e-link(s), %2d cells: EMD mean %.4f, median %.4f%s\n", b.elinks, b.cells,
                  b.emd_mean, b.emd_median, b.elinks == elinks ? "   <- same bandwidth" : "");
    s += buf;
  }
  if (!classical.empty()) s += "other classical formats (same events):\n";
  for (const auto& b : classical) {
    std::snprintf(buf, sizeof buf, "  %-10s %d e-link(s), %2d cells: EMD mean %.4f, median %.4f\n", b.name.c_str(),
                  b.elinks, b.cells, b.emd_mean, b.emd_median);
    s += buf;
  }
  std::snprintf(buf, sizeof buf, "encoder: EBOPs %.0f, %.4g pJ per inference, %.4g mW at 40 MHz (45 nm)\n",
                encoder_ebops, encoder_energy_pj, encoder_power_mw);
  s += buf;
  std::snprintf(buf, sizeof buf,
                "encoder on an FPGA (analytic model, reuse 1, indicative): LUT %.0f, FF %.0f, DSP %.0f, latency %.0f "
                "cycles\n",
                encoder_lut, encoder_ff, encoder_dsp, encoder_latency_cycles);
  s += buf;
  if (!encoder_fpga_warning.empty()) s += "  warning: " + encoder_fpga_warning + "\n";
  for (const auto& b : best_choice)
    if (b.elinks == elinks) {
      std::snprintf(buf, sizeof buf, "autoencoder / Best Choice at %d e-links: %.3f\n", elinks, emd_mean / b.emd_mean);
      s += buf;
    }
  if (!budgets.empty()) s += "budgets (the exact design above):\n";
  for (const auto& b : budgets) {
    std::snprintf(buf, sizeof buf, "  %-9s limit %.6g, achieved %.6g: %s\n", b.name.c_str(), b.limit, b.achieved,
                  b.met ? "met" : "NOT MET");
    s += buf;
  }
  return s;
}

std::string EvaluationReport::to_json() const {
  nlohmann::json bc = nlohmann::json::array(), other = nlohmann::json::array();
  for (const auto& b : best_choice)
    bc.push_back({{"elinks", b.elinks}, {"cells", b.cells}, {"emd_mean", b.emd_mean}, {"emd_median", b.emd_median}});
  for (const auto& b : classical)
    other.push_back({{"name", b.name},
                     {"elinks", b.elinks},
                     {"cells", b.cells},
                     {"emd_mean", b.emd_mean},
                     {"emd_median", b.emd_median}});
  nlohmann::json occupancy = nlohmann::json::array();
  auto number = [](double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); };
  for (const auto& b : by_occupancy)
    occupancy.push_back({{"min_cells", b.min_cells},
                         {"max_cells", b.max_cells},
                         {"events", b.events},
                         {"emd_mean", number(b.emd_mean)},
                         {"best_choice_emd_mean", number(b.best_choice_emd_mean)}});
  nlohmann::json budget_json = nlohmann::json::object();
  for (const auto& b : budgets) budget_json[b.name] = {{"limit", b.limit}, {"achieved", b.achieved}, {"met", b.met}};
  nlohmann::json rmse_json = nlohmann::json::object();
  for (const auto& kv : rmse)
    rmse_json[kv.first] = std::isfinite(kv.second) ? nlohmann::json(kv.second) : nlohmann::json(nullptr);
  nlohmann::json aucs_json = nlohmann::json::object(), accuracy_json = nlohmann::json::object();
  for (const auto& kv : aucs) aucs_json[kv.first] = number(kv.second);
  for (const auto& kv : accuracies) accuracy_json[kv.first] = number(kv.second);
  return nlohmann::json({{"events", events},
                         {"empty_wafers", empty_wafers},
                         {"by_occupancy", occupancy},
                         {"latent_widths", latent_widths},
                         {"payload_bits", payload_bits},
                         {"budgets", budget_json},
                         {"encoder_fpga",
                          {{"lut", encoder_lut},
                           {"ff", encoder_ff},
                           {"dsp", encoder_dsp},
                           {"latency_cycles", encoder_latency_cycles},
                           {"warning", encoder_fpga_warning}}},
                         {"latent_bits", latent_bits},
                         {"elinks", elinks},
                         {"emd_mean", emd_mean},
                         {"emd_unit", emd_unit},
                         {"emd_median", emd_median},
                         {"auc", std::isfinite(auc) ? nlohmann::json(auc) : nlohmann::json(nullptr)},
                         {"aucs", aucs_json},
                         {"accuracies", accuracy_json},
                         {"rmse", rmse_json},
                         {"best_choice", bc},
                         {"classical", other},
                         {"encoder_ebops", encoder_ebops},
                         {"encoder_energy_pj", encoder_energy_pj},
                         {"encoder_power_mw", encoder_power_mw}})
      .dump(2);
}

void deployed_reconstruction(EconTPipeline& pipeline, const float* in, int64_t rows, float* out) {
  c10::NoGradGuard no_grad;
  pipeline.train(false);
  pipeline.set_quantization(true);
  const at::Tensor x =
      at::from_blob(const_cast<float*>(in), {rows, static_cast<int64_t>(pipeline.cells())}, at::kFloat);
  const at::Tensor recon = pipeline.forward(x).get("reconstruction").cpu().contiguous();
  std::copy(recon.data_ptr<float>(), recon.data_ptr<float>() + recon.numel(), out);
}

double deployed_mean_emd(EconTPipeline& pipeline, const EventTable& v, const std::string& device) {
  const int64_t n = v.size();
  at::Tensor recon;
  {
    c10::NoGradGuard no_grad;
    pipeline.train(false);
    pipeline.set_quantization(true);  // judge what would be deployed (the next step resets it)
    const at::Tensor x =
        at::from_blob(const_cast<float*>(v.calq.data()), {n, static_cast<int64_t>(v.cells)}, at::kFloat)
            .to(at::Device(device));
    recon = pipeline.forward(x).get("reconstruction").cpu().contiguous();
    pipeline.train(true);
  }
  std::vector<double> emd(static_cast<size_t>(n));
  emd_exact_rows(pipeline.metric(), v.calq.data(), recon.data_ptr<float>(), n, emd.data(), 0);
  double sum = 0;
  int64_t count = 0;
  for (double e : emd)
    if (std::isfinite(e)) sum += e, ++count;
  return count ? sum / static_cast<double>(count) : NAN;
}

}  // namespace ddaq
