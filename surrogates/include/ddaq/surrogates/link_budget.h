// ddaq/surrogates/link_budget.h: bits per bunch crossing, e-links, uplinks.
//
// Units: bits per bunch crossing (BX, 40 MHz); an e-link carries 32 bits/BX
// (1.28 Gb/s). The frame formats are plain numbers (defaults: CMS HGCAL
// ECON-T), so other detectors plug in their own.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "ddaq/options.h"

namespace at {
class Tensor;
}

namespace ddaq {

constexpr double kBunchCrossingRateHz = 40e6;

// The ECON-T autoencoder frame: header + module sum + payload, where n
// e-links carry a payload of min(first_link_payload + elink_bits (n - 1),
// max_payload) bits.
struct AutoencoderFrame {
  DDAQ_OPTION(int, header_bits) = 5;
  DDAQ_OPTION(int, module_sum_bits) = 9;
  DDAQ_OPTION(int, elink_bits) = 32;
  DDAQ_OPTION(int, first_link_payload) = 18;
  DDAQ_OPTION(int, max_payload) = 146;
  DDAQ_OPTION(int, max_elinks) = 13;
 public:
  int payload_capacity(int elinks) const;  // bits
  // Fewest e-links whose payload holds `payload_bits`; throws ddaq::Error
  // (naming the bits) when no allowed count does.
  int elinks_for_payload(int64_t payload_bits) const;
  // Exact count for `latents` values of `bits` bits each.
  int elinks_for_latent(int64_t latents, int bits) const { return elinks_for_payload(latents * int64_t(bits)); }
};

// Classical formats at equal bandwidth.
struct ClassicalFormats {
  // Best Choice: trigger cells kept for 1..13 e-links (ECON-T table).
  std::vector<int> best_choice_cells{1, 4, 6, 9, 14, 18, 23, 28, 32, 37, 41, 46, 48};
  // Assumed bit costs (not in the ECON-T references ddaq carries; change them
  // to the real format): threshold = header + cell map + bits per kept cell;
  // super trigger cells = header + groups x (energy + position bits).
  int header_bits = 5;
  int map_bits = 48;
  int threshold_cell_bits = 7;
  int stc_energy_bits = 9;
  int elink_bits = 32;
  int max_elinks = 13;

  int best_choice_cells_for(int elinks) const;  // throws outside 1..13
  int elinks_for_bits(int64_t bits) const;      // ceil(bits / 32), throws above max
  // Threshold format: e-links for a wafer with `kept` cells above threshold.
  int threshold_elinks(int kept) const;
  // Super trigger cells of `group` cells (4: 2x2, 16: 4x4) on a 48-cell wafer,
  // each sent with the position of its largest cell.
  int stc_elinks(int group) const;
};

// lpGBT uplinks for a detector: module groups with their e-link counts.
struct ModuleGroup {
  std::string name;
  int64_t modules = 0;
  int elinks_per_module = 0;
};

struct SystemBudget {
  int64_t modules = 0, elinks = 0, uplinks = 0;
  double bandwidth_tbps = 0.0;  // e-link payload, Tb/s
  std::string to_text() const;
};

// Uplinks with `user_bits` per BX (230: 10.24 Gb/s FEC5; 202 FEC12; 112 and
// 98 at 5.12 Gb/s), each holding floor(user_bits / 32) e-links.
SystemBudget system_budget(const std::vector<ModuleGroup>& groups, int user_bits = 230);

// Differentiable relaxations (LibTorch).
//   fractional_elinks: e-links as a continuous, increasing function of the
//     payload: linear between the frame's capacity boundaries, through
//     (0, 0) and (payload_capacity(k), k) for every k up to the largest
//     count whose capacity still grows, then rising by 1 per elink_bits
//     beyond it (a payload no count carries is still pushed down). So the
//     exact count is ceil(fractional_elinks(p)) for 0 < p <= the frame's
//     maximum, and "exact e-links <= B" is exactly "fractional_elinks <= B".
//     Why not a smooth staircase: between two boundaries a staircase is
//     flat, so a payload 30 bits below one (or above the frame's maximum)
//     gets no gradient; Adam then moves every latent gate alike on the
//     staircase's tiny tails, and they all close at once.
//   budget_hinge: 0 inside the budget, growing as softplus((x - budget)/t) * t
//     (linear, steep with `slope`) outside.
at::Tensor fractional_elinks(const at::Tensor& payload_bits, const AutoencoderFrame& frame = AutoencoderFrame());
at::Tensor budget_hinge(const at::Tensor& value, double budget, double slope = 1.0, double temperature = 1.0);

}  // namespace ddaq
