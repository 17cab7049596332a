// ddaq/core/detector_plan.h: a detector-wide plan (issue 19): what each HGCAL
// module sees, from an occupancy model by position, and which ECON-T
// algorithm and how many e-links each group of modules gets under one total.
//
//   DetectorConfig::load(json)       modules, event samples, occupancy, groups
//   build_detector_model(...)        per trigger module: eta (estimated where
//                                    the map lacks it), flux, pileup mu; the
//                                    scale calibrated to a mean occupancy
//   build_group_tables(...)          per group (layer x eta ring): wafers
//                                    drawn at its modules' mu, exact EMD of
//                                    every algorithm at every e-link count
//   plan_within(...)                 the plan under the budgets: e-links
//                                    (exact), lpGBT uplinks, ECON-T power
//   score_table(...)                 a per-module e-link table (the two
//                                    hand-made ones) under the same model
//
// The occupancy model (docs/detector.md): for a pileup density flat in eta
// (dN/deta constant), the particles crossing a module of fixed area at
// pseudorapidity eta on a plane at distance z scale as
// tanh(eta) sinh^2(eta) / z^2. Each module's wafers are a signal wafer plus
// Poisson(mu) pileup wafers from the pool (the overlay of core/overlay.h),
// with mu = scale x that flux; the scale is the one whose detector average
// occupancy (cells > 0, over trigger modules) equals the target (18 trigger
// cells: the real 200-pileup ECON-T sample). The mean wafer sum is then a
// check against the same sample's 951 CALQ, not fitted.
//
// Plain C++ (no LibTorch): the classical algorithms are exact functions.
#pragma once
#include <cmath>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "ddaq/core/detector.h"
#include "ddaq/core/events.h"

namespace ddaq {

// ECON-T power of one module running an algorithm: base_mw + per_elink_mw x
// its e-links. From the user (measurements or the ASIC team's estimates):
// ddaq ships no numbers (docs/detector.md).
struct PowerEntry {
  double base_mw = 0.0, per_elink_mw = 0.0;
};

struct DetectorConfig {
  std::string name = "detector";
  std::string modules_file;  // modules.csv (paths relative to the config's folder)
  std::string signal_file;   // event file: each module's own deposit (0 pileup)
  std::string pool_file;     // event file: the pileup wafers overlaid
  double target_mean_occupancy = 18.0;
  double reference_mean_sum = 951.0;
  // Scale the pool's charges so that the detector's mean wafer sum equals
  // reference_mean_sum (occupancy does not change: no charge crosses zero).
  bool match_reference_sum = false;
  // A longitudinal profile: each listed layer's pileup flux times its
  // weight (unlisted layers: 1) before the calibration, e.g. from a
  // full simulation of the detector at 200 pileup (docs/detector.md).
  std::map<int, double> layer_weights;
  int64_t calibration_wafers = 2000;  // per point of the occupancy curve
  double eta_ring_width = 0.2;        // groups: layer x ring of this width
  std::vector<int> layers;            // empty: every layer with trigger data
  int64_t wafers_per_group = 400;
  std::vector<std::string> algorithms{"best_choice", "threshold", "stc4", "stc16"};
  // Trained runs (ddaq run/sweep), each a choice at its own e-links, as
  // "NAME=PATH" or "PATH" (NAME "autoencoder"); one NAME per e-link count.
  std::vector<std::pair<std::string, std::string>> autoencoder_runs;  // name, path
  // What the hand-made tables' modules may run (e.g. the classical
  // algorithms and the one autoencoder per e-link count of the published
  // studies); empty: every choice the plan has.
  std::vector<std::string> table_algorithms;
  int max_elinks = 13;
  int64_t budget_elinks = 0;           // 0: the PU table's total over the modules planned
  int64_t budget_uplinks = 0;          // lpGBT uplinks at most (0: no limit)
  std::map<std::string, PowerEntry> power;  // by algorithm name (empty: no power model)
  double budget_power_w = 0.0;              // total ECON-T power at most, W (0: no limit)
  std::vector<int64_t> pareto_elinks;  // totals for the Pareto (empty: none)
  int lpgbt_user_bits = 230;           // 10.24 Gb/s, FEC5: 7 e-links per uplink
  uint64_t seed = 1;
  int threads = 0;  // exact EMD threads (0: all)

  // Throws ddaq::Error naming the file and key for unknown keys, bad values.
  static DetectorConfig load(const std::string& path);
};

// One module with trigger data, as the model sees it.
struct ModuleSite {
  int layer = 0, u = 0, v = 0, motherboard = 0;
  double eta = 0.0;
  bool eta_estimated = false;  // not in the eta/phi map: from the same (u,v) in another layer
  double z = 1.0;              // the layer's distance, relative to layer 1's
  double flux = 0.0;           // layer weight x tanh(eta) sinh^2(eta) / z^2
  double mu = 0.0;             // pileup wafers overlaid (scale x flux)
  int elinks_pu = 0, elinks_signal = 0;
  int group = -1;
};

struct DetectorModel {
  std::vector<ModuleSite> sites;
  std::vector<double> layer_z;  // index = layer (0 unused); relative to layer 1
  double mu_per_flux = 0.0;     // the calibrated scale
  double mean_occupancy = 0.0;  // detector average, trigger modules
  double mean_sum = 0.0;        // detector average wafer sum, CALQ
  double pileup_scale = 1.0;    // the pool's charges times this (match_reference_sum)
  int64_t eta_estimated = 0;
  std::vector<double> curve_mu, curve_occupancy, curve_sum;  // the overlay's curve
};

class Rng;
// One wafer of a module with pileup `mu`: a signal wafer plus Poisson(mu)
// pool wafers, each drawn uniformly with replacement and its charges times
// pileup_scale (the overlay of core/overlay.h with a per-module mu).
void draw_module_wafer(Rng& rng, double mu, const EventTable& signal, const EventTable& pool, float* out,
                       double pileup_scale = 1.0);

// The detector's mix as training data: each wafer of `calq` (rows x 48,
// in place) gets the pileup of a trigger module drawn uniformly from the
// model's sites (every module counts once, as in the plan's mean):
// Poisson(its mu) pool wafers at the model's pileup_scale. Wafer i depends
// only on (seed, first_index + i). mu_out, when given, receives each
// wafer's module mu. An encoder trained on such wafers is the stand-in of
// the published ECON-T autoencoders, trained on one 200-pileup sample of
// the whole detector.
void overlay_detector_mix(const DetectorModel& model, const EventTable& pool, uint64_t seed, int64_t first_index,
                          int64_t rows, float* calq, float* mu_out = nullptr);

// The model restricted to the trigger modules between two quantiles of mu:
// those of rank r (ascending mu, ties by table order) with lo N <= r < hi N,
// 0 <= lo < hi <= 1, so adjacent ranges share out the modules, each once.
// Only the sites change (the calibration is the whole detector's). An
// encoder class of the detector's sparse or dense modules for
// overlay_detector_mix; throws ddaq::Error when the range holds no module.
DetectorModel between_mu_quantiles(const DetectorModel& model, double lo, double hi);

// Layer distances come from the table itself: for modules at the same (u,v)
// in layers L and 1, z_L / z_1 = sinh(eta_L) / sinh(eta_1) (same transverse
// radius), the median over those modules.
DetectorModel build_detector_model(const DetectorConfig& config, const ModuleTable& modules, const EventTable& signal,
                                   const EventTable& pool);

struct GroupTable {
  std::string name;  // "L09 eta 2.0-2.2"
  int layer = 0;
  double eta_min = 0.0, eta_max = 0.0;
  int64_t modules = 0;
  double mu_mean = 0.0, occupancy_mean = 0.0, sum_mean = 0.0;  // of its drawn wafers
  std::vector<AllocationChoice> choices;                       // algorithm x e-links, mean exact EMD
};

// An algorithm beyond the ECON-T's classical ones (a trained autoencoder):
// `compress` maps rows x 48 charges to their reconstruction at `elinks`.
struct PlanAlgorithm {
  std::string name;
  int elinks = 0;
  std::function<void(const float* in, int64_t rows, float* out)> compress;
};

// A classical ECON-T algorithm ("best_choice", "threshold", "stc4",
// "stc16") at `elinks`; throws ddaq::Error naming an unknown one or a count
// it cannot use (threshold below 2 e-links, STC at another count).
PlanAlgorithm classical_algorithm(const std::string& name, int elinks);

// Assigns site.group and draws config.wafers_per_group wafers per group
// (module uniform in the group, its own mu; row j of group g depends only on
// (seed, g, j)); exact EMD in sensor-cell pitches.
std::vector<GroupTable> build_group_tables(const DetectorConfig& config, DetectorModel& model, const EventTable& signal,
                                           const EventTable& pool, const std::vector<PlanAlgorithm>& more = {});

// The best a module of group g can do with `elinks` e-links: the least EMD
// among the group's choices that need no more (NaN when none fits).
// `allowed`: the algorithms that may be taken (empty: all).
const AllocationChoice* best_choice_within(const GroupTable& group, int elinks,
                                           const std::vector<std::string>& allowed = {});

struct TableScore {  // a per-module e-link table judged under the model
  std::string name;
  int64_t elinks = 0, uplinks = 0;
  double emd_mean = 0.0;
  double power_w = 0.0;              // sum of the modules' choices' power_mw / 1000
  std::vector<double> emd_by_layer;  // index = layer, NaN where none
};

// Sets each choice's power_mw from `table` (by algorithm); throws naming the
// first algorithm the table lacks (`source`: the config, for the message).
void apply_power_table(const std::map<std::string, PowerEntry>& table, std::vector<GroupTable>& groups,
                       const std::string& source);

// The allocation problem of group tables at an e-link total.
AllocationProblem allocation_problem(const std::vector<GroupTable>& groups, int64_t budget_elinks);

struct PlanBudgets {
  int64_t elinks = 0;    // total e-links at most (> 0)
  int64_t uplinks = 0;   // lpGBT uplinks at most (0: no limit)
  double power_w = 0.0;  // total ECON-T power at most (0: no limit; needs power_mw in the tables)
};

struct BudgetedPlan {
  AllocationSummary group_plan;                 // one choice per group (priced tables when power binds)
  int64_t group_plan_elinks = 0;                // the total it was solved at
  std::vector<int> elinks;                      // per module
  std::vector<const AllocationChoice*> chosen;  // per module, into the groups given
  int64_t elinks_filled = 0;                    // added by fill_uplinks
  bool uplinks_binding = false, power_binding = false;
  double power_price = 0.0;  // EMD per mW the tables were priced at (0: power not binding)
  double power_w = 0.0;      // of the chosen algorithms
  int64_t modules_power_filled = 0;  // modules whose algorithm fill_power changed
  // When power binds: no plan within the e-link and power budgets, even one
  // whose modules of a group differ, has a lower mean EMD (Lagrangian bound
  // at power_price); NaN otherwise.
  double emd_lower_bound = NAN;
};

// The plan under the budgets. E-links: the exact group plan. Uplinks: if the
// plan needs more, the group plan at the largest total that fits
// (bisection), then its free uplink slots filled (fill_uplinks). Power: if
// the plan needs more, every choice priced at lambda EMD per mW (emd +
// lambda x power_mw) and the smallest lambda found (bisection) whose plan
// fits taken, then the power it leaves spent (fill_power): feasible, and
// the optimum lies between emd_lower_bound and its EMD (not proven equal to
// the latter). A module's algorithm is the least priced one within its
// e-links, unless the fill changed it. Throws ddaq::Error
// naming the budget when even the fewest e-links need more uplinks, or no
// price brings the power within the budget.
BudgetedPlan plan_within(const std::vector<GroupTable>& groups, const DetectorModel& model, const PlanBudgets& budgets,
                         int lpgbt_user_bits);

// Spends power left under budget_mw: module by module, the swap of a
// module's algorithm for another of its group's choices at its e-links
// (elinks[i]) that lowers the EMD most per added mW (swaps that add none
// first; ties: the earlier module), while the total stays within the
// budget. E-links and uplinks do not change. Returns the modules changed.
int64_t fill_power(const std::vector<GroupTable>& groups, const DetectorModel& model, const std::vector<int>& elinks,
                   std::vector<const AllocationChoice*>& chosen, double budget_mw);

// A plan judged as it stands: module i has elinks[i] e-links (uplinks and
// the total count them) and runs chosen[i] (its EMD and power).
TableScore score_choices(const std::string& name, const DetectorModel& model,
                         const std::vector<const AllocationChoice*>& chosen, const std::vector<int>& elinks,
                         int lpgbt_user_bits);

// Each module runs the best algorithm its group has within its e-links
// (`elinks[i]` for site i); uplinks: per (layer, motherboard), e-links packed
// onto lpGBT uplinks of floor(user_bits / 32) e-links each.
TableScore score_table(const std::string& name, const DetectorModel& model, const std::vector<GroupTable>& groups,
                       const std::vector<int>& elinks, int lpgbt_user_bits,
                       const std::vector<std::string>& allowed = {});

// lpGBT uplinks of a per-module e-link table: per (layer, motherboard), the
// modules' e-links packed onto uplinks of floor(user_bits / 32) e-links.
int64_t count_uplinks(const DetectorModel& model, const std::vector<int>& elinks, int lpgbt_user_bits);

// Spends e-links that cost no uplink: on each (layer, motherboard) whose
// e-links leave its last uplink part empty, the free slots go, one upgrade
// at a time, to the module of that board (its group's table, any
// algorithm) whose EMD falls most per added e-link, largest first over all
// boards, while sum(elinks) stays <= budget_elinks. Uplinks never rise;
// modules of one group may end with different e-links. Returns the e-links
// added. With tables convex in e-links this is the optimum of such fills.
int64_t fill_uplinks(const DetectorModel& model, const std::vector<GroupTable>& groups, std::vector<int>& elinks,
                     int64_t budget_elinks, int lpgbt_user_bits);

// A table scaled to exactly `total` e-links (total >= modules): each module
// max(1, floor(e x total / sum)), then the rest one by one to the largest
// fractions (ties: the earlier module); throws when total < modules.
std::vector<int> scale_table(const std::vector<int>& elinks, int64_t total);

}  // namespace ddaq
