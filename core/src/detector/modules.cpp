// HGCAL's module table (detector.h).
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "ddaq/core/detector.h"
#include "ddaq/error.h"

namespace ddaq {

namespace {
constexpr const char* kHeader =
    "layer,u,v,density,mod_type,motherboard,cassette,econt_elinks_pu,econt_elinks_signal,econd_elinks,eta,phi";

int whole(const std::string& field, const std::string& at, const char* name) {
  char* end = nullptr;
  const long v = std::strtol(field.c_str(), &end, 10);
  if (field.empty() || *end != '\0') throw Error(at + name + " '" + field + "' is not a whole number");
  return static_cast<int>(v);
}
double real(const std::string& field, const std::string& at, const char* name) {
  char* end = nullptr;
  const double v = std::strtod(field.c_str(), &end);
  if (field.empty() || *end != '\0' || !std::isfinite(v)) throw Error(at + name + " '" + field + "' is not a number");
  return v;
}
}  // namespace

ModuleTable ModuleTable::load(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error(path + ": cannot open the module table (missing or unreadable)");
  std::stringstream text;
  text << in.rdbuf();
  return parse(text.str(), path);
}

ModuleTable ModuleTable::parse(const std::string& csv, const std::string& source) {
  ModuleTable t;
  std::istringstream in(csv);
  std::string line;
  int number = 0;
  bool header = false;
  while (std::getline(in, line)) {
    ++number;
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    if (line.empty()) continue;
    const std::string at = source + ":" + std::to_string(number) + ": ";
    if (!header) {
      if (line != kHeader) throw Error(at + "expected the header \"" + kHeader + "\"");
      header = true;
      continue;
    }
    std::vector<std::string> f;
    std::istringstream row(line);
    std::string field;
    while (std::getline(row, field, ',')) f.push_back(field);
    if (line.back() == ',') f.push_back("");  // an empty last field (phi)
    if (f.size() != 12) throw Error(at + "expected 12 fields, got " + std::to_string(f.size()));
    ModuleRecord m;
    m.layer = whole(f[0], at, "layer");
    m.u = whole(f[1], at, "u");
    m.v = whole(f[2], at, "v");
    if (f[3] != "HD" && f[3] != "LD") throw Error(at + "density '" + f[3] + "' (expected HD or LD)");
    m.high_density = f[3] == "HD";
    m.mod_type = f[4];
    m.motherboard = whole(f[5], at, "motherboard");
    m.cassette = whole(f[6], at, "cassette");
    m.elinks_pu = whole(f[7], at, "econt_elinks_pu");
    m.elinks_signal = whole(f[8], at, "econt_elinks_signal");
    m.econd_elinks = whole(f[9], at, "econd_elinks");
    for (int e : {m.elinks_pu, m.elinks_signal})
      if (e < 0 || e > 13) throw Error(at + "ECON-T e-links " + std::to_string(e) + " outside 0..13");
    if (f[10].empty() != f[11].empty()) throw Error(at + "eta and phi are both given or both empty");
    m.has_eta_phi = !f[10].empty();
    if (m.has_eta_phi) {
      m.eta = real(f[10], at, "eta");
      m.phi = real(f[11], at, "phi");
    }
    t.modules_.push_back(m);
  }
  if (!header) throw Error(source + ": empty module table (expected the header \"" + std::string(kHeader) + "\")");
  return t;
}

int64_t ModuleTable::total_elinks_pu() const {
  int64_t n = 0;
  for (const ModuleRecord& m : modules_) n += m.elinks_pu;
  return n;
}

int64_t ModuleTable::total_elinks_signal() const {
  int64_t n = 0;
  for (const ModuleRecord& m : modules_) n += m.elinks_signal;
  return n;
}

}  // namespace ddaq
