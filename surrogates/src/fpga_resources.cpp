#include "ddaq/surrogates/fpga_resources.h"

#include <ceres/ceres.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "ddaq/error.h"
#include "ddaq/files.h"

namespace ddaq {
namespace {

constexpr size_t kTargets = static_cast<size_t>(ResourceTarget::kCount);

const std::vector<std::string>& feature_names(ResourceTarget t) {
  static const std::vector<std::string> logic{"intercept",   "in_act_bits",     "out_act_bits", "io_weight_bits",
                                              "multipliers", "multiplier_bits", "weight_kbits", "layers"};
  static const std::vector<std::string> latency{"intercept", "cycles_per_reuse", "layers"};
  static const std::vector<std::string> bram{"intercept", "words_36b", "layers"};
  static const std::vector<std::string> none{};
  switch (t) {
    case ResourceTarget::LUT:
    case ResourceTarget::FF: return logic;
    case ResourceTarget::LatencyCycles: return latency;
    case ResourceTarget::BRAM18K: return bram;
    default: return none;
  }
}

std::vector<double> features(const DesignSpec& d, ResourceTarget t) {
  double in_a = 0, out_a = 0, io_b = 0, mults = 0, mult_bits = 0, kbits = 0, cycles = 0, words = 0;
  for (const auto& l : d.layers) {
    const double nw = static_cast<double>(l.in * l.out);
    const double per_cycle = std::ceil(nw / static_cast<double>(l.reuse_factor));
    in_a += static_cast<double>(l.in) * l.act_bits;
    out_a += static_cast<double>(l.out) * l.act_bits;
    io_b += static_cast<double>(l.in + l.out) * l.weight_bits;
    mults += per_cycle;
    mult_bits += per_cycle * l.weight_bits;
    kbits += nw * l.weight_bits / 1000.0;
    cycles += std::min(static_cast<double>(l.reuse_factor), nw);
    words += std::ceil(per_cycle * l.weight_bits / 36.0);
  }
  const double layers = static_cast<double>(d.layers.size());
  switch (t) {
    case ResourceTarget::LUT:
    case ResourceTarget::FF: return {1.0, in_a, out_a, io_b, mults, mult_bits, kbits, layers};
    case ResourceTarget::LatencyCycles: return {1.0, cycles, layers};
    case ResourceTarget::BRAM18K: return {1.0, words, layers};
    default: return {};
  }
}

double dsp_rule(const DesignSpec& d) {
  double dsp = 0;
  for (const auto& l : d.layers)
    if (l.weight_bits >= 9) dsp += std::ceil(static_cast<double>(l.in * l.out) / static_cast<double>(l.reuse_factor));
  return dsp;
}

// (sum p_k f_k - y) / max(|y|, 1): linear in p, analytic Jacobian.
class RelativeLinearResidual : public ceres::CostFunction {
 public:
  RelativeLinearResidual(std::vector<double> f, double y) : f_(std::move(f)), y_(y), scale_(std::max(std::fabs(y), 1.0)) {
    set_num_residuals(1);
    mutable_parameter_block_sizes()->push_back(static_cast<int32_t>(f_.size()));
  }
  bool Evaluate(double const* const* p, double* residual, double** jacobians) const override {
    double s = 0;
    for (size_t k = 0; k < f_.size(); ++k) s += p[0][k] * f_[k];
    residual[0] = (s - y_) / scale_;
    if (jacobians && jacobians[0])
      for (size_t k = 0; k < f_.size(); ++k) jacobians[0][k] = f_[k] / scale_;
    return true;
  }

 private:
  std::vector<double> f_;
  double y_, scale_;
};

// CSV line split with double-quoted fields.
std::vector<std::string> split_csv(const std::string& line) {
  std::vector<std::string> out;
  std::string cur;
  bool quoted = false;
  for (size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quoted) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
        cur += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        cur += c;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      out.push_back(cur);
      cur.clear();
    } else if (c != '\r') {
      cur += c;
    }
  }
  out.push_back(cur);
  return out;
}

}  // namespace

const char* to_string(ResourceTarget t) {
  switch (t) {
    case ResourceTarget::LUT: return "LUT";
    case ResourceTarget::FF: return "FF";
    case ResourceTarget::DSP: return "DSP";
    case ResourceTarget::BRAM18K: return "BRAM18K";
    default: return "latency_cycles";
  }
}

ResourceTable read_resource_csv(const std::string& path, bool need_targets) {
  std::ifstream in(path);
  if (!in) throw Error(path + ": cannot open (missing or unreadable)");
  ResourceTable t;
  std::string line;
  if (!std::getline(in, line) || line.empty()) throw Error(path + ":1: empty file (expected a header)");
  t.header = split_csv(line);
  auto column = [&](const std::string& name, bool required) -> int {
    const auto it = std::find(t.header.begin(), t.header.end(), name);
    if (it == t.header.end()) {
      if (required) throw Error(path + ":1: missing column '" + name + "'");
      return -1;
    }
    return static_cast<int>(it - t.header.begin());
  };
  const int c_id = column("model_id", false), c_dims = column("layer_dims", true), c_wb = column("weight_bits", true),
            c_ab = column("act_bits", false), c_rf = column("reuse_factor", true), c_strategy = column("strategy", true);
  const char* target_columns[kTargets] = {"LUT", "FF", "DSP", "BRAM18K", "latency_cycles_best"};
  int c_target[kTargets];
  for (size_t k = 0; k < kTargets; ++k) c_target[k] = column(target_columns[k], need_targets);
  int line_no = 1;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const auto f = split_csv(line);
    auto fail = [&](const std::string& col, const std::string& what) -> void {
      throw Error(path + ":" + std::to_string(line_no) + ": " + col + ": " + what);
    };
    if (f.size() != t.header.size())
      fail("row", "has " + std::to_string(f.size()) + " fields, the header has " + std::to_string(t.header.size()));
    auto number = [&](int c, const std::string& name, bool positive) {
      char* end = nullptr;
      const double v = std::strtod(f[c].c_str(), &end);
      if (f[c].empty() || end != f[c].c_str() + f[c].size() || !std::isfinite(v))
        fail(name, "not a number: '" + f[c] + "'");
      if (positive ? !(v > 0) : v < 0) fail(name, "out of range: '" + f[c] + "'");
      return v;
    };
    DesignSpec d;
    d.id = c_id >= 0 ? f[c_id] : std::to_string(line_no);
    d.group = f[c_dims];
    std::vector<int64_t> dims;
    for (const auto& part : split_csv([&] {
           std::string s = f[c_dims];
           std::replace(s.begin(), s.end(), '-', ',');
           return s;
         }())) {
      char* end = nullptr;
      const long long v = std::strtoll(part.c_str(), &end, 10);
      if (part.empty() || end != part.c_str() + part.size() || v <= 0)
        fail("layer_dims", "expected sizes like 80-24-120, got '" + f[c_dims] + "'");
      dims.push_back(v);
    }
    if (dims.size() < 2) fail("layer_dims", "needs at least two sizes, got '" + f[c_dims] + "'");
    const double wb = number(c_wb, "weight_bits", true);
    const double ab = (c_ab >= 0 && !f[c_ab].empty()) ? number(c_ab, "act_bits", true) : 16.0;
    const double rf = number(c_rf, "reuse_factor", true);
    if (rf != std::floor(rf)) fail("reuse_factor", "not an integer: '" + f[c_rf] + "'");
    for (size_t k = 0; k + 1 < dims.size(); ++k)
      d.layers.push_back({dims[k], dims[k + 1], wb, ab, static_cast<int64_t>(rf)});
    d.resource_strategy = f[c_strategy].rfind("resource", 0) == 0 || f[c_strategy].rfind("Resource", 0) == 0;
    ResourceValues y;
    for (size_t k = 0; k < kTargets; ++k)
      y[k] = (c_target[k] >= 0 && !f[c_target[k]].empty()) ? number(c_target[k], target_columns[k], false) : NAN;
    t.designs.push_back(d);
    t.targets.push_back(y);
    t.rows.push_back(f);
    t.lines.push_back(line_no);
  }
  if (t.designs.empty()) throw Error(path + ": no data rows");
  return t;
}

// The domain's ranges by name, for the text format.
static std::vector<std::pair<std::string, std::array<double, 2>*>> domain_ranges(FitDomain& d) {
  return {{"inputs", &d.in},          {"outputs", &d.out},
          {"weight_bits", &d.weight_bits}, {"act_bits", &d.act_bits},
          {"reuse_factor", &d.reuse_factor}, {"layers", &d.layers}};
}

namespace embedded {
extern const char* const fpga_resources_txt;
}

const AnalyticResourceModel& AnalyticResourceModel::shipped() {
  static const AnalyticResourceModel m = parse(embedded::fpga_resources_txt, "built-in fpga_resources.txt");
  return m;
}

DesignSpec design_from(const ModelDescription& model, int64_t reuse_factor) {
  DesignSpec d;
  d.id = "model";
  for (const LayerDescription& l : model) {
    int64_t in = 0, out = 0;
    if (l.kind == LayerKind::Dense) {
      out = l.weight_shape[0];
      in = l.weight_shape[1];
    } else if (l.kind == LayerKind::Conv2d) {
      out = l.weight_shape[0];
      in = l.weight_shape[1] * l.weight_shape[2] * l.weight_shape[3];
    } else if (l.kind == LayerKind::ConvTranspose2d) {
      out = l.weight_shape[1];
      in = l.weight_shape[0] * l.weight_shape[2] * l.weight_shape[3];
    } else {
      continue;
    }
    d.layers.push_back({in, out, static_cast<double>(l.weight_type.width), static_cast<double>(l.input_type.width),
                        reuse_factor});
  }
  return d;
}

void FitDomain::include(const DesignSpec& d) {
  auto widen = [&](std::array<double, 2>& r, double v) {
    if (r[1] == 0) r = {v, v};  // empty (every feature is > 0)
    r[0] = std::min(r[0], v), r[1] = std::max(r[1], v);
  };
  for (const auto& l : d.layers) {
    widen(in, static_cast<double>(l.in));
    widen(out, static_cast<double>(l.out));
    widen(weight_bits, l.weight_bits);
    widen(act_bits, l.act_bits);
    widen(reuse_factor, static_cast<double>(l.reuse_factor));
  }
  widen(layers, static_cast<double>(d.layers.size()));
}

std::vector<std::string> FitDomain::outside(const DesignSpec& d) const {
  std::vector<std::string> why;
  if (!known()) return why;
  auto check = [&](const char* what, const std::array<double, 2>& r, double v, const std::string& where) {
    if (v >= r[0] && v <= r[1]) return;
    char buf[200];
    std::snprintf(buf, sizeof buf, "%s %g %s the fit range %g..%g%s", what, v, v < r[0] ? "below" : "above", r[0], r[1],
                  where.c_str());
    why.push_back(buf);
  };
  check("layers", layers, static_cast<double>(d.layers.size()), "");
  for (size_t k = 0; k < d.layers.size(); ++k) {
    const auto& l = d.layers[k];
    const std::string where = " (layer " + std::to_string(k + 1) + ")";
    check("inputs", in, static_cast<double>(l.in), where);
    check("outputs", out, static_cast<double>(l.out), where);
    check("weight bits", weight_bits, l.weight_bits, where);
    check("activation bits", act_bits, l.act_bits, where);
    check("reuse factor", reuse_factor, static_cast<double>(l.reuse_factor), where);
  }
  return why;
}

ResourceValues physical_floor(const DesignSpec& d) {
  ResourceValues f{};
  f[static_cast<size_t>(ResourceTarget::LatencyCycles)] = static_cast<double>(d.layers.size());
  return f;
}

std::string AnalyticResourceModel::range_warning(const DesignSpec& design) const {
  const auto why = domain_.outside(design);
  if (why.empty()) return "";
  std::string s = "outside the fit data (estimate extrapolated, clamped at the physical floor): ";
  for (size_t i = 0; i < why.size(); ++i) s += (i ? "; " : "") + why[i];
  return s;
}

AnalyticResourceModel::AnalyticResourceModel() {
  for (size_t k = 0; k < kTargets; ++k)
    for (const auto& n : feature_names(static_cast<ResourceTarget>(k))) params_[k][n] = 0.0;
}

ResourceValues AnalyticResourceModel::predict(const DesignSpec& d) const {
  ResourceValues v{};
  const ResourceValues floor = physical_floor(d);
  for (size_t k = 0; k < kTargets; ++k) {
    const auto t = static_cast<ResourceTarget>(k);
    if (t == ResourceTarget::DSP) {
      v[k] = dsp_rule(d);
      continue;
    }
    const auto f = features(d, t);
    const auto& names = feature_names(t);
    double s = 0;
    for (size_t i = 0; i < f.size(); ++i) s += params_[k].at(names[i]) * f[i];
    v[k] = std::max(floor[k], s);
  }
  return v;
}

void AnalyticResourceModel::fit(const std::vector<DesignSpec>& designs, const std::vector<ResourceValues>& targets) {
  domain_ = FitDomain();
  for (const auto& d : designs) domain_.include(d);
  for (size_t k = 0; k < kTargets; ++k) {
    const auto t = static_cast<ResourceTarget>(k);
    const auto& names = feature_names(t);
    if (names.empty()) continue;
    std::vector<double> p(names.size(), 0.0);
    std::vector<std::vector<double>> rows_f;
    std::vector<double> rows_y;
    for (size_t r = 0; r < designs.size(); ++r) {
      if (!std::isfinite(targets[r][k])) continue;
      rows_f.push_back(features(designs[r], t));
      rows_y.push_back(targets[r][k]);
    }
    if (rows_y.size() < names.size()) continue;  // too few rows: keep zeros
    // Two passes: plain least squares from zero (a convex problem: reaches
    // the optimum), then the Cauchy loss from there, so that a few odd
    // designs do not drag the fit.
    for (int pass = 0; pass < 2; ++pass) {
      ceres::Problem problem;
      for (size_t r = 0; r < rows_y.size(); ++r)
        problem.AddResidualBlock(new RelativeLinearResidual(rows_f[r], rows_y[r]),
                                 pass == 0 ? nullptr : new ceres::CauchyLoss(0.2), p.data());
      for (size_t i = 1; i < names.size(); ++i) problem.SetParameterLowerBound(p.data(), static_cast<int>(i), 0.0);
      ceres::Solver::Options options;
      options.max_num_iterations = 500;
      options.function_tolerance = 1e-12;
      options.gradient_tolerance = 1e-14;
      options.parameter_tolerance = 1e-12;
      options.linear_solver_type = ceres::DENSE_QR;
      options.logging_type = ceres::SILENT;
      options.num_threads = 1;  // reproducible
      ceres::Solver::Summary summary;
      ceres::Solve(options, &problem, &summary);
      if (!summary.IsSolutionUsable())
        throw Error(std::string("resource fit: ") + to_string(t) + ": Ceres failed: " + summary.message);
    }
    for (size_t i = 0; i < names.size(); ++i) params_[k][names[i]] = p[i];
  }
}

std::string AnalyticResourceModel::serialize() const {
  std::ostringstream out;
  out << "# ddaq analytic FPGA resource model (surrogates/include/ddaq/surrogates/fpga_resources.h)\n";
  out.precision(17);
  for (size_t k = 0; k < kTargets; ++k)
    for (const auto& kv : params_[k]) out << to_string(static_cast<ResourceTarget>(k)) << " " << kv.first << " " << kv.second << "\n";
  FitDomain domain = domain_;
  if (domain.known())
    for (const auto& r : domain_ranges(domain)) out << "domain " << r.first << " " << (*r.second)[0] << " " << (*r.second)[1] << "\n";
  return out.str();
}

void AnalyticResourceModel::save(const std::string& path) const { write_file_atomic(path, serialize()); }

AnalyticResourceModel AnalyticResourceModel::load(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error(path + ": cannot open (missing or unreadable)");
  std::stringstream text;
  text << in.rdbuf();
  return parse(text.str(), path);
}

AnalyticResourceModel AnalyticResourceModel::parse(const std::string& text, const std::string& source) {
  AnalyticResourceModel m;
  std::istringstream in(text);
  std::string line;
  int line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.empty() || line[0] == '#') continue;
    std::istringstream s(line);
    std::string target, name;
    double value;
    if (line.rfind("domain ", 0) == 0) {
      double hi;
      const auto ranges = domain_ranges(m.domain_);
      if (!(s >> target >> name >> value >> hi) || !(value <= hi) || !(value > 0))
        throw Error(source + ":" + std::to_string(line_no) + ": expected 'domain FEATURE MIN MAX' with 0 < MIN <= MAX");
      const auto found = std::find_if(ranges.begin(), ranges.end(), [&](const auto& r) { return r.first == name; });
      if (found == ranges.end())
        throw Error(source + ":" + std::to_string(line_no) + ": unknown domain feature '" + name + "'");
      *found->second = {value, hi};
      continue;
    }
    if (!(s >> target >> name >> value))
      throw Error(source + ":" + std::to_string(line_no) + ": expected 'TARGET NAME VALUE'");
    size_t k = 0;
    while (k < kTargets && target != to_string(static_cast<ResourceTarget>(k))) ++k;
    if (k == kTargets || !m.params_[k].count(name))
      throw Error(source + ":" + std::to_string(line_no) + ": unknown parameter '" + target + " " + name + "'");
    m.params_[k][name] = value;
  }
  return m;
}

std::string AnalyticResourceModel::to_text() const {
  std::ostringstream o;
  for (size_t k = 0; k < kTargets; ++k) {
    if (params_[k].empty()) continue;
    o << to_string(static_cast<ResourceTarget>(k)) << ":";
    for (const auto& kv : params_[k]) o << " " << kv.first << "=" << kv.second;
    o << "\n";
  }
  o << "DSP: Vivado rule (weights >= 9 bits: ceil(n_w / R) per layer)\n";
  return o.str();
}

CrossValidation cross_validate(const std::vector<DesignSpec>& designs, const std::vector<ResourceValues>& targets,
                               int folds, uint64_t seed) {
  return cross_validate(designs, targets, folds, seed,
                        [](const std::vector<DesignSpec>& d, const std::vector<ResourceValues>& y) -> ResourcePredictor {
                          AnalyticResourceModel m;
                          m.fit(d, y);
                          return [m](const DesignSpec& x) { return m.predict(x); };
                        });
}

CrossValidation cross_validate(const std::vector<DesignSpec>& designs, const std::vector<ResourceValues>& targets,
                               int folds, uint64_t seed, const ResourceFitter& fit) {
  if (folds < 2) throw Error("cross-validation: need at least 2 folds");
  std::vector<std::string> groups;
  for (const auto& d : designs) groups.push_back(d.group);
  std::sort(groups.begin(), groups.end());
  groups.erase(std::unique(groups.begin(), groups.end()), groups.end());
  if (static_cast<int>(groups.size()) < folds) throw Error("cross-validation: fewer architectures than folds");
  // Deterministic shuffle of the architectures (splitmix-style LCG on the seed).
  uint64_t s = seed * 0x9e3779b97f4a7c15ULL + 1;
  for (size_t i = groups.size(); i > 1; --i) {
    s = s * 6364136223846793005ULL + 1442695040888963407ULL;
    std::swap(groups[i - 1], groups[(s >> 33) % i]);
  }
  std::map<std::string, int> fold_of;
  for (size_t i = 0; i < groups.size(); ++i) fold_of[groups[i]] = static_cast<int>(i % folds);
  std::vector<ResourceValues> pred(designs.size());
  for (int f = 0; f < folds; ++f) {
    std::vector<DesignSpec> train;
    std::vector<ResourceValues> train_y;
    for (size_t r = 0; r < designs.size(); ++r)
      if (fold_of[designs[r].group] != f) {
        train.push_back(designs[r]);
        train_y.push_back(targets[r]);
      }
    const ResourcePredictor predict = fit(train, train_y);
    for (size_t r = 0; r < designs.size(); ++r)
      if (fold_of[designs[r].group] == f) pred[r] = predict(designs[r]);
  }
  CrossValidation cv;
  cv.folds = folds;
  for (size_t k = 0; k < kTargets; ++k) {
    double smape = 0, mean = 0, ss_res = 0, ss_tot = 0;
    int64_t n = 0;
    for (size_t r = 0; r < designs.size(); ++r)
      if (std::isfinite(targets[r][k])) {
        mean += targets[r][k];
        ++n;
      }
    if (n == 0) continue;
    mean /= static_cast<double>(n);
    for (size_t r = 0; r < designs.size(); ++r) {
      const double y = targets[r][k], p = pred[r][k];
      if (!std::isfinite(y)) continue;
      const double denom = std::fabs(y) + std::fabs(p);
      smape += denom > 0 ? 2 * std::fabs(p - y) / denom : 0.0;
      ss_res += (p - y) * (p - y);
      ss_tot += (y - mean) * (y - mean);
    }
    cv.smape[k] = smape / static_cast<double>(n);
    cv.r2[k] = ss_tot > 0 ? 1 - ss_res / ss_tot : NAN;
    cv.count[k] = n;
  }
  return cv;
}

std::string CrossValidation::to_text() const {
  // rule4ml v2 (GNN) on the wa-hls4ml test set, domain-facts.md.
  const double rule4ml_smape[kTargets] = {14.4, 15.3, 103, 52, 13.7};
  const double rule4ml_r2[kTargets] = {0.64, 0.55, 0.18, 0.71, 0.79};
  std::ostringstream o;
  char buf[200];
  std::snprintf(buf, sizeof buf, "grouped %d-fold cross-validation (no architecture in train and test)\n", folds);
  o << buf << "target          rows   sMAPE      R^2   | rule4ml v2: sMAPE   R^2\n";
  for (size_t k = 0; k < kTargets; ++k) {
    std::snprintf(buf, sizeof buf, "%-14s %5lld  %6.1f%%  %7.3f   |          %6.1f%%  %5.2f\n",
                  to_string(static_cast<ResourceTarget>(k)), static_cast<long long>(count[k]), 100 * smape[k], r2[k],
                  rule4ml_smape[k], rule4ml_r2[k]);
    o << buf;
  }
  return o.str();
}

}  // namespace ddaq
