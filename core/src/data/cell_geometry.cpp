#include "ddaq/core/cell_geometry.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>
#include <utility>

#include "ddaq/error.h"

namespace ddaq {

CellGeometry CellGeometry::load(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error(path + ": cannot open cell geometry (missing or unreadable)");
  std::stringstream text;
  text << in.rdbuf();
  return parse(text.str(), path);
}

CellGeometry CellGeometry::parse(const std::string& csv, const std::string& source) {
  CellGeometry g;
  std::istringstream in(csv);
  std::string line;
  int number = 0;
  bool header = false;
  std::map<std::pair<double, double>, int> seen;
  while (std::getline(in, line)) {
    ++number;
    const std::string at = source + ":" + std::to_string(number) + ": ";
    const auto hash = line.find('#');
    if (hash != std::string::npos) line.erase(hash);
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    if (line.empty()) continue;
    if (!header) {
      if (line != "cell,x,y") throw Error(at + "expected the header \"cell,x,y\", got \"" + line + "\"");
      header = true;
      continue;
    }
    std::istringstream row(line);
    std::string f[3], extra;
    for (auto& field : f)
      if (!std::getline(row, field, ',')) throw Error(at + "expected three fields: cell,x,y");
    if (std::getline(row, extra, ',')) throw Error(at + "expected three fields: cell,x,y");
    double v[3];
    for (int k = 0; k < 3; ++k) {
      char* end = nullptr;
      v[k] = std::strtod(f[k].c_str(), &end);
      if (f[k].empty() || *end != '\0' || !std::isfinite(v[k]))
        throw Error(at + "'" + f[k] + "' is not a finite number");
    }
    if (v[0] != g.size())
      throw Error(at + "cell " + f[0] + " out of order (expected " + std::to_string(g.size()) + ")");
    const auto key = std::make_pair(v[1], v[2]);
    if (seen.count(key))
      throw Error(at + "cell " + f[0] + " has the position of cell " + std::to_string(seen[key]));
    seen[key] = g.size();
    g.positions_.push_back({v[1], v[2]});
  }
  if (!header) throw Error(source + ": empty cell geometry (expected the header \"cell,x,y\")");
  if (g.size() < 2) throw Error(source + ": a cell geometry needs at least 2 cells");
  return g;
}

CellGeometry CellGeometry::from_positions(const std::vector<std::array<double, 2>>& positions,
                                          const std::string& source) {
  std::string csv = "cell,x,y\n";
  char row[96];
  for (size_t i = 0; i < positions.size(); ++i) {
    std::snprintf(row, sizeof row, "%zu,%.17g,%.17g\n", i, positions[i][0], positions[i][1]);
    csv += row;
  }
  return parse(csv, source);
}

double CellGeometry::pitch() const {
  double best = INFINITY;
  for (size_t i = 0; i < positions_.size(); ++i)
    for (size_t j = i + 1; j < positions_.size(); ++j)
      best = std::min(best, std::hypot(positions_[i][0] - positions_[j][0], positions_[i][1] - positions_[j][1]));
  return best;
}

GroundMetric CellGeometry::metric(double unit) const {
  if (!(unit > 0.0) || !std::isfinite(unit)) throw Error("cell geometry: metric unit must be positive and finite");
  return GroundMetric::euclidean(positions_, unit);
}

}  // namespace ddaq
