// ddaq/core/evaluation.h: how good a trained pipeline is, on exact terms:
// exact EMD of the decoded wafers, classifier AUC, the classical formats at
// the same bandwidth on the same events, the encoder's exact costs, and the
// run's budgets checked on the exact, integer design.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "ddaq/core/events.h"
#include "ddaq/core/pipeline.h"

namespace ddaq {

using BudgetMap = std::map<std::string, double>;  // cost name -> limit

struct BaselineRow {
  std::string name;  // "best_choice", "threshold", "stc4", "stc16"
  int elinks = 0, cells = 0;
  double emd_mean = 0.0, emd_median = 0.0;
};

struct OccupancyBin {
  int min_cells = 0, max_cells = 0;  // non-zero input cells, inclusive
  int64_t events = 0;
  double emd_mean = 0.0, best_choice_emd_mean = 0.0;  // Best Choice at the pipeline's e-links
};

struct EvaluationReport {
  int64_t events = 0;
  int64_t empty_wafers = 0;  // all charges 0: no EMD (left out of every mean), counted here
  int latent_bits = 0, elinks = 0;
  double emd_mean = 0.0, emd_median = 0.0;  // exact EMD(input, reconstruction), in emd_unit
  // HGCAL: sensor-cell pitches (half the trigger-cell pitch); a graph with
  // its own geometry: cell pitches (the smallest distance between two cells).
  std::string emd_unit = "sensor-cell pitches";
  std::vector<OccupancyBin> by_occupancy;
  double auc = 0.0;  // of "logits"; NaN without labels or a classification
  // With declared objectives: each classification objective's AUC, in order.
  // (more than two classes: the mean one-vs-rest AUC).
  std::vector<std::pair<std::string, double>> aucs;
  // Each classification objective of more than two classes: the accuracy of
  // its most probable class.
  std::vector<std::pair<std::string, double>> accuracies;
  // With declared objectives: each regression objective's RMSE (the target's units).
  std::vector<std::pair<std::string, double>> rmse;
  std::vector<BaselineRow> best_choice;  // 1..5 e-links, and the pipeline's e-links when above 5
  std::vector<BaselineRow> classical;    // threshold at 2..5 e-links, super trigger cells
  double encoder_ebops = 0.0, encoder_energy_pj = 0.0, encoder_power_mw = 0.0;
  // FPGA estimate of the encoder (analytic model, reuse factor 1; indicative).
  double encoder_lut = 0.0, encoder_ff = 0.0, encoder_dsp = 0.0, encoder_latency_cycles = 0.0;
  // How the encoder leaves the resource model's fit data ("" inside it).
  std::string encoder_fpga_warning;
  std::vector<int> latent_widths;  // per latent, 0: not transmitted
  int64_t payload_bits = 0;
  // Budgets of the run (RUN/budgets.json) against this exact, integer design.
  struct Budget {
    std::string name;
    double limit = 0.0, achieved = 0.0;
    bool met = false;
  };
  std::vector<Budget> budgets;
  void check_budgets(const std::map<std::string, double>& limits);
  std::string to_text() const;
  std::string to_json() const;
};

// RUN/budgets.json: the budgets a run was trained under (written by
// `ddaq train`/`ddaq run`, removed when a retrained run has none), so that
// evaluation reports them; load gives {} when the file is absent.
void save_budgets(const std::string& run_dir, const BudgetMap& limits);
BudgetMap load_budgets(const std::string& run_dir);

// Exact EMD of the decoded wafers against the inputs (also by occupancy:
// non-zero cells 1-9, 10-19, 20-29, 30-48, with Best Choice beside),
// classifier AUC, and on the same events: Best Choice at 1..5 e-links (and
// at the pipeline's own above 5), the threshold format at 2..5 e-links,
// super trigger cells (4 and 16 cells); the encoder's EBOPs, energy
// per inference and power (45 nm Horowitz), FPGA LUT/FF/DSP and latency.
EvaluationReport evaluate_pipeline(EconTPipeline& pipeline, const std::string& data_file, int64_t max_events = 20000);

// The pipeline's reconstruction as deployed (evaluation mode, quantization
// on, CPU) of `rows` events: out is rows x pipeline.cells().
void deployed_reconstruction(EconTPipeline& pipeline, const float* in, int64_t rows, float* out);

// Mean exact EMD of the pipeline as deployed (evaluation mode, quantization
// on) between the wafers of `events` and their reconstructions, on
// `device`; wafers whose EMD is undefined (empty) are left out, NaN when
// none is left. The trainer's validation; leaves the pipeline in training mode.
double deployed_mean_emd(EconTPipeline& pipeline, const EventTable& events, const std::string& device);

}  // namespace ddaq
