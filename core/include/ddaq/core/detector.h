// ddaq/core/detector.h: the detector-wide link budget (issue 19, first part):
// HGCAL's module table as data, and the exact allocation of e-links and
// compression algorithms to groups of modules under one total.
//
//   ModuleTable::load("modules.csv")   one row per silicon module with its
//                                      position and the real e-link tables
//   AllocationProblem                  groups of modules, each with the
//                                      choices it may take (algorithm,
//                                      e-links, expected EMD per module)
//   solve_allocation(problem)          the choice per group that minimizes
//                                      the module-weighted mean EMD with
//                                      sum(modules x e-links) <= budget
//
// Plain C++ (no LibTorch): the allocation is a multiple-choice knapsack,
// solved exactly by dynamic programming over the budget.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace ddaq {

// One row of modules.csv (../shared/data/hgcal/PROVENANCE.md).
struct ModuleRecord {
  int layer = 0, u = 0, v = 0;
  bool high_density = false;  // "HD" (else "LD")
  std::string mod_type;
  int motherboard = 0, cassette = 0;
  int elinks_pu = 0;      // the "PU allocation" table (0: no trigger data)
  int elinks_signal = 0;  // the "signal allocation" table
  int econd_elinks = 0;
  bool has_eta_phi = false;  // the eta/phi map lacks some modules
  double eta = 0.0, phi = 0.0;
};

class ModuleTable {
 public:
  // Header layer,u,v,density,mod_type,motherboard,cassette,econt_elinks_pu,
  // econt_elinks_signal,econd_elinks,eta,phi (eta and phi may be empty).
  // Throws ddaq::Error naming the file and line for a missing file, another
  // header, a bad number, density other than HD/LD, e-links outside 0..13.
  static ModuleTable load(const std::string& path);
  static ModuleTable parse(const std::string& csv, const std::string& source);

  const std::vector<ModuleRecord>& modules() const { return modules_; }
  int64_t total_elinks_pu() const;
  int64_t total_elinks_signal() const;

 private:
  std::vector<ModuleRecord> modules_;
};

// What a group of modules may run: an algorithm at a number of e-links, and
// the mean EMD expected per module of the group with it (sensor-cell pitches).
struct AllocationChoice {
  std::string algorithm;  // "autoencoder", "best_choice", "threshold", "stc4", ...
  int elinks = 0;         // per module
  double emd = 0.0;
  double power_mw = 0.0;  // per module, from a user's power table (0 without one)
};

struct AllocationGroup {
  std::string name;
  int64_t modules = 0;  // modules in the group (its weight in the mean)
  std::vector<AllocationChoice> choices;
};

struct AllocationProblem {
  std::vector<AllocationGroup> groups;
  int64_t budget_elinks = 0;  // sum over modules of their e-links, at most
};

struct AllocationSummary {
  std::vector<int> choice;  // per group: the index of its choice
  int64_t elinks = 0;       // sum over modules
  int64_t modules = 0;
  double emd_mean = 0.0;  // module-weighted mean expected EMD
  std::string to_text(const AllocationProblem& problem) const;
};

// The exact optimum: minimal module-weighted mean EMD with sum over groups of
// modules x e-links <= budget. Among equal means, the fewest e-links; the
// result depends on the problem alone (reproducible).
// Throws ddaq::Error when a group has no choice, a value is not finite or
// negative, or even the fewest e-links per group exceed the budget (naming
// the budget and the least it needs). Cost: groups x choices x budget steps.
AllocationSummary solve_allocation(const AllocationProblem& problem);

}  // namespace ddaq
