#include "ddaq/surrogates/link_budget.h"

#include <algorithm>
#include <cstdio>

#include "ddaq/error.h"

namespace ddaq {

int AutoencoderFrame::payload_capacity(int elinks) const {
  if (elinks < 1) return 0;
  return std::min(first_link_payload_ + elink_bits_ * (elinks - 1), max_payload_);
}

int AutoencoderFrame::elinks_for_payload(int64_t payload_bits) const {
  if (payload_bits < 0) throw Error("link budget: negative payload " + std::to_string(payload_bits));
  for (int n = 1; n <= max_elinks_; ++n)
    if (payload_capacity(n) >= payload_bits) return n;
  throw Error("link budget: a payload of " + std::to_string(payload_bits) + " bits exceeds the frame's " +
              std::to_string(payload_capacity(max_elinks_)) + " bits");
}

int ClassicalFormats::best_choice_cells_for(int elinks) const {
  if (elinks < 1 || elinks > static_cast<int>(best_choice_cells.size()))
    throw Error("link budget: Best Choice is defined for 1.." + std::to_string(best_choice_cells.size()) +
                " e-links, not " + std::to_string(elinks));
  return best_choice_cells[elinks - 1];
}

int ClassicalFormats::elinks_for_bits(int64_t bits) const {
  const int64_t n = std::max<int64_t>(1, (bits + elink_bits - 1) / elink_bits);
  if (n > max_elinks)
    throw Error("link budget: " + std::to_string(bits) + " bits per BX need more than " + std::to_string(max_elinks) +
                " e-links");
  return static_cast<int>(n);
}

int ClassicalFormats::threshold_elinks(int kept) const {
  if (kept < 0 || kept > 48) throw Error("link budget: kept cells " + std::to_string(kept) + " outside 0..48");
  return elinks_for_bits(header_bits + map_bits + int64_t(kept) * threshold_cell_bits);
}

int ClassicalFormats::stc_elinks(int group) const {
  if (group != 4 && group != 16) throw Error("link budget: super trigger cells group 4 or 16 cells, not " + std::to_string(group));
  const int groups = 48 / group, position_bits = group == 4 ? 2 : 4;
  return elinks_for_bits(header_bits + int64_t(groups) * (stc_energy_bits + position_bits));
}

SystemBudget system_budget(const std::vector<ModuleGroup>& groups, int user_bits) {
  if (user_bits < 32) throw Error("link budget: an uplink needs at least 32 user bits per BX");
  const int per_uplink = user_bits / 32;
  SystemBudget s;
  for (const auto& g : groups) {
    if (g.modules < 0 || g.elinks_per_module < 0)
      throw Error("link budget: module group '" + g.name + "' has negative counts");
    s.modules += g.modules;
    s.elinks += g.modules * g.elinks_per_module;
    // A module's e-links stay on one uplink bundle per group.
    s.uplinks += (g.modules * g.elinks_per_module + per_uplink - 1) / per_uplink;
  }
  s.bandwidth_tbps = static_cast<double>(s.elinks) * 32.0 * kBunchCrossingRateHz / 1e12;
  return s;
}

std::string SystemBudget::to_text() const {
  char buf[200];
  std::snprintf(buf, sizeof buf, "%lld modules, %lld e-links, %lld lpGBT uplinks, %.2f Tb/s", static_cast<long long>(modules),
                static_cast<long long>(elinks), static_cast<long long>(uplinks), bandwidth_tbps);
  return buf;
}

}  // namespace ddaq
