// The learned EMD surrogate: model, training, evaluation. The one
// translation unit of surrogates/ that includes <torch/torch.h>.
#include <torch/torch.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <sstream>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <numeric>

#include "ddaq/error.h"
#include "ddaq/files.h"
#include "ddaq/quant/layers.h"
#include "ddaq/surrogates/emd.h"
#include "ddaq/surrogates/emd_surrogate.h"

namespace ddaq {
namespace {

// Scales u = d/|d|_1 (entries ~1/cells) to order-one MLP inputs.
constexpr double kInputScale = 8.0;

struct NetImpl : torch::nn::Module {
  int64_t cells, directions;
  torch::Tensor permutation;  // [directions * cells] cell order along each direction
  torch::Tensor gaps;         // [directions, cells - 1] distances between consecutive projections
  torch::nn::Sequential mlp;

  explicit NetImpl(const EmdSurrogateOptions& o) {
    cells = static_cast<int64_t>(o.points().size());
    directions = o.directions();
    if (cells < 2) throw Error("emd surrogate: needs at least 2 cell positions");
    if (directions < 1) throw Error("emd surrogate: directions must be >= 1");
    if (!(o.unit() > 0)) throw Error("emd surrogate: unit must be positive");
    std::vector<int64_t> perm;
    std::vector<float> gap;
    std::vector<int64_t> order(static_cast<size_t>(cells));
    for (int64_t k = 0; k < directions; ++k) {
      const double angle = M_PI * static_cast<double>(k) / static_cast<double>(directions);
      const double cx = std::cos(angle), cy = std::sin(angle);
      std::vector<double> t(static_cast<size_t>(cells));
      for (int64_t c = 0; c < cells; ++c) t[c] = (o.points()[c][0] * cx + o.points()[c][1] * cy) / o.unit();
      std::iota(order.begin(), order.end(), 0);
      std::stable_sort(order.begin(), order.end(), [&](int64_t l, int64_t r) { return t[l] < t[r]; });
      perm.insert(perm.end(), order.begin(), order.end());
      for (int64_t c = 0; c + 1 < cells; ++c) gap.push_back(static_cast<float>(t[order[c + 1]] - t[order[c]]));
    }
    permutation = register_buffer("permutation", torch::tensor(perm, torch::kLong));
    gaps = register_buffer("gaps", torch::tensor(gap).reshape({directions, cells - 1}));
    torch::manual_seed(o.seed());
    int64_t in = cells + directions + 1;
    for (int64_t h : o.hidden()) {
      if (h < 1) throw Error("emd surrogate: hidden sizes must be >= 1");
      mlp->push_back(torch::nn::Linear(in, h));
      mlp->push_back(torch::nn::SiLU());
      in = h;
    }
    mlp->push_back(torch::nn::Linear(in, 1));
    register_module("mlp", mlp);
  }

  torch::Tensor forward(const torch::Tensor& a, const torch::Tensor& b) {
    if (a.dim() != 2 || a.size(1) != cells || b.sizes() != a.sizes())
      throw Error("emd surrogate: expected a and b of shape [N, " + std::to_string(cells) + "]");
    const torch::Tensor d = a / a.sum(1, true) - b / b.sum(1, true);
    const torch::Tensor l1 = d.abs().sum(1, true).clamp_min(1e-12);
    const torch::Tensor u = d / l1;
    const int64_t n = u.size(0);
    const torch::Tensor along = u.index_select(1, permutation).view({n, directions, cells});
    const torch::Tensor sliced = (along.cumsum(2).narrow(2, 0, cells - 1).abs() * gaps).sum(2);  // [N, K]
    const torch::Tensor lower = std::get<0>(sliced.max(1, true));                                 // [N, 1]
    const torch::Tensor common = torch::cat({sliced, lower}, 1);
    const torch::Tensor z = 0.5 * (mlp->forward(torch::cat({u * kInputScale, common}, 1)) +
                                   mlp->forward(torch::cat({-u * kInputScale, common}, 1)));
    return (l1 * lower * (1.0 + torch::softplus(z))).squeeze(1);
  }
};
TORCH_MODULE(Net);

double quantile(std::vector<double> v, double q) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  return v[static_cast<size_t>(q * static_cast<double>(v.size() - 1))];
}

EmdSurrogateReport::Row describe(const std::string& label, const std::vector<double>& rel) {
  EmdSurrogateReport::Row r;
  r.label = label;
  r.count = static_cast<int64_t>(rel.size());
  if (rel.empty()) return r;
  r.mean = std::accumulate(rel.begin(), rel.end(), 0.0) / static_cast<double>(rel.size());
  double var = 0;
  for (double x : rel) var += (x - r.mean) * (x - r.mean);
  r.std = std::sqrt(var / static_cast<double>(rel.size()));
  r.p05 = quantile(rel, 0.05);
  r.p50 = quantile(rel, 0.50);
  r.p95 = quantile(rel, 0.95);
  return r;
}

}  // namespace

// ---------------------------------------------------------------- options

std::string EmdSurrogateOptions::to_json() const {
  nlohmann::json pts = nlohmann::json::array();
  for (const auto& p : points_) pts.push_back(nlohmann::json::array({p[0], p[1]}));
  return nlohmann::json({{"points", pts},
                         {"unit", unit_},
                         {"directions", directions_},
                         {"hidden", hidden_},
                         {"seed", seed_}})
      .dump();
}

EmdSurrogateOptions EmdSurrogateOptions::from_json(const std::string& text) {
  EmdSurrogateOptions o;
  try {
    const auto j = nlohmann::json::parse(text);
    std::vector<std::array<double, 2>> pts;
    for (const auto& p : j.at("points")) pts.push_back({p.at(0).get<double>(), p.at(1).get<double>()});
    o.points(pts)
        .unit(j.at("unit").get<double>())
        .directions(j.at("directions").get<int>())
        .hidden(j.at("hidden").get<std::vector<int64_t>>())
        .seed(j.at("seed").get<uint64_t>());
  } catch (const nlohmann::json::exception& e) {
    throw Error(std::string("emd surrogate: bad options record: ") + e.what());
  }
  return o;
}

// ---------------------------------------------------------------- model

struct EmdSurrogate::Impl {
  EmdSurrogateOptions options;
  Net net;
  explicit Impl(const EmdSurrogateOptions& o) : options(o), net(o) {}
};

EmdSurrogate::EmdSurrogate(const EmdSurrogateOptions& options) : impl_(new Impl(options)) {}
EmdSurrogate::~EmdSurrogate() = default;
EmdSurrogate::EmdSurrogate(EmdSurrogate&&) noexcept = default;
EmdSurrogate& EmdSurrogate::operator=(EmdSurrogate&&) noexcept = default;

const EmdSurrogateOptions& EmdSurrogate::options() const { return impl_->options; }

at::Tensor EmdSurrogate::forward(const at::Tensor& a, const at::Tensor& b) const { return impl_->net->forward(a, b); }

void EmdSurrogate::predict(const float* a, const float* b, int64_t rows, double* out) const {
  torch::NoGradGuard no_grad;
  const bool was_training = impl_->net->is_training();
  impl_->net->eval();
  const int64_t cells = impl_->net->cells;
  const torch::Device device = impl_->net->parameters().front().device();
  // On a CPU small blocks keep the [block, directions, cells] intermediates
  // in cache; a GPU wants large batches.
  const int64_t block = device.is_cpu() ? 1024 : 65536;
  for (int64_t first = 0; first < rows; first += block) {
    const int64_t n = std::min(block, rows - first);
    const auto ta = torch::from_blob(const_cast<float*>(a + first * cells), {n, cells}, torch::kFloat).to(device);
    const auto tb = torch::from_blob(const_cast<float*>(b + first * cells), {n, cells}, torch::kFloat).to(device);
    const auto pred = impl_->net->forward(ta, tb).to(torch::kCPU, torch::kDouble).contiguous();
    std::copy(pred.data_ptr<double>(), pred.data_ptr<double>() + n, out + first);
  }
  impl_->net->train(was_training);
}

int64_t EmdSurrogate::parameter_count() const {
  int64_t n = 0;
  for (const auto& p : impl_->net->parameters()) n += p.numel();
  return n;
}

void EmdSurrogate::to(const std::string& device) {
  torch::Device d(torch::kCPU);
  try {
    d = torch::Device(device);
  } catch (const c10::Error&) {
    throw Error("emd surrogate: device '" + device + "' (expected cpu, cuda or cuda:N)");
  }
  if (d.is_cuda() && !torch::cuda::is_available())
    throw Error("emd surrogate: device '" + device + "' requested but this LibTorch sees no CUDA device");
  impl_->net->to(d);
}

std::string EmdSurrogate::device() const { return impl_->net->parameters().front().device().str(); }
void EmdSurrogate::train_mode(bool on) { impl_->net->train(on); }
std::vector<at::Tensor> EmdSurrogate::parameters() const { return impl_->net->parameters(); }

void EmdSurrogate::save(const std::string& path) const {
  std::ostringstream bytes;
  try {
    torch::serialize::OutputArchive archive;
    archive.write("format", c10::IValue(std::string("ddaq-emd-surrogate-1")));
    archive.write("options", c10::IValue(impl_->options.to_json()));
    for (const auto& p : impl_->net->named_parameters()) archive.write(p.key(), p.value().detach().cpu());
    archive.save_to(bytes);
  } catch (const c10::Error& e) {
    throw Error(path + ": cannot write the surrogate (" + e.what_without_backtrace() + ")");
  }
  write_file_atomic(path, bytes.str());
}

EmdSurrogate EmdSurrogate::load(const std::string& path) {
  if (::access(path.c_str(), R_OK) != 0) throw Error(path + ": cannot open (missing or unreadable)");
  torch::serialize::InputArchive archive;
  c10::IValue format, options;
  try {
    archive.load_from(path);
  } catch (const std::exception&) {
    throw Error(wrong_kind_message(path, "an EMD surrogate"));
  }
  if (!archive.try_read("format", format) || !archive.try_read("options", options) || !format.isString() ||
      format.toStringRef() != "ddaq-emd-surrogate-1")
    throw Error(wrong_kind_message(path, "an EMD surrogate"));
  EmdSurrogate model(EmdSurrogateOptions::from_json(options.toStringRef()));
  torch::NoGradGuard no_grad;
  for (auto& p : model.impl_->net->named_parameters()) {
    torch::Tensor value;
    try {
      archive.read(p.key(), value);
    } catch (const c10::Error&) {
      throw Error(path + ": missing parameter '" + p.key() + "'");
    }
    if (value.sizes() != p.value().sizes()) throw Error(path + ": parameter '" + p.key() + "' has the wrong shape");
    p.value().copy_(value);
  }
  return model;
}

// ---------------------------------------------------------------- training

std::string EmdSurrogateTrainSummary::to_text() const {
  char buf[256];
  std::snprintf(buf, sizeof buf, "epochs %d, best epoch %d, validation mean squared log ratio %.3g (rms %.4f), %.1f s",
                epochs_run, best_epoch, best_validation_loss, std::sqrt(best_validation_loss), seconds);
  return buf;
}

EmdSurrogateTrainSummary train_emd_surrogate(EmdSurrogate& model, const EmdPairs& all_pairs,
                                             const EmdSurrogateTrainOptions& o,
                                             const std::function<void(int, double, double)>& on_epoch) {
  const auto t0 = std::chrono::steady_clock::now();
  const EmdPairs pairs = all_pairs.usable();
  const int64_t n = pairs.size(), cells = pairs.cells;
  if (n < 10) throw Error("emd surrogate: need at least 10 usable pairs, have " + std::to_string(n));
  if (o.batch_size() < 1 || o.epochs() < 1) throw Error("emd surrogate: epochs and batch_size must be >= 1");
  if (!(o.validation_fraction() > 0 && o.validation_fraction() < 1))
    throw Error("emd surrogate: validation_fraction must be in (0, 1)");
  const auto a = torch::from_blob(const_cast<float*>(pairs.a.data()), {n, cells}, torch::kFloat).clone();
  const auto b = torch::from_blob(const_cast<float*>(pairs.b.data()), {n, cells}, torch::kFloat).clone();
  const auto y = torch::tensor(pairs.emd, torch::kDouble).to(torch::kFloat);
  auto gen = at::detail::createCPUGenerator(o.seed());
  const auto order = torch::randperm(n, gen, torch::kLong);
  const int64_t n_valid = std::max<int64_t>(1, static_cast<int64_t>(o.validation_fraction() * n));
  const auto valid_idx = order.narrow(0, 0, n_valid), train_idx = order.narrow(0, n_valid, n - n_valid);
  const auto va = a.index_select(0, valid_idx), vb = b.index_select(0, valid_idx), vy = y.index_select(0, valid_idx);

  std::vector<torch::Tensor> params = model.parameters();
  torch::optim::AdamW optimizer(params, torch::optim::AdamWOptions(o.learning_rate()).weight_decay(o.weight_decay()));
  const int64_t n_train = train_idx.size(0);
  const int64_t steps_per_epoch = (n_train + o.batch_size() - 1) / o.batch_size();
  const int64_t total_steps = steps_per_epoch * o.epochs();
  auto loss_of = [](const torch::Tensor& pred, const torch::Tensor& truth) {
    return (torch::log(pred) - torch::log(truth)).pow(2).mean();
  };
  EmdSurrogateTrainSummary summary;
  summary.best_validation_loss = INFINITY;
  std::vector<torch::Tensor> best;
  int64_t step = 0;
  int since_best = 0;
  for (int epoch = 1; epoch <= o.epochs(); ++epoch) {
    model.train_mode(true);
    const auto perm = train_idx.index_select(0, torch::randperm(n_train, gen, torch::kLong));
    double train_loss = 0;
    for (int64_t s = 0; s < steps_per_epoch; ++s, ++step) {
      const double lr = o.learning_rate() * 0.5 * (1.0 + std::cos(M_PI * static_cast<double>(step) / total_steps));
      for (auto& group : optimizer.param_groups()) static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
      const auto idx = perm.narrow(0, s * o.batch_size(), std::min(o.batch_size(), n_train - s * o.batch_size()));
      optimizer.zero_grad();
      const auto loss = loss_of(model.forward(a.index_select(0, idx), b.index_select(0, idx)), y.index_select(0, idx));
      loss.backward();
      optimizer.step();
      train_loss += loss.item<double>() * static_cast<double>(idx.size(0));
    }
    train_loss /= static_cast<double>(n_train);
    double valid_loss;
    {
      torch::NoGradGuard no_grad;
      model.train_mode(false);
      valid_loss = loss_of(model.forward(va, vb), vy).item<double>();
    }
    if (on_epoch) on_epoch(epoch, train_loss, valid_loss);
    summary.epochs_run = epoch;
    if (valid_loss < summary.best_validation_loss) {
      summary.best_validation_loss = valid_loss;
      summary.best_epoch = epoch;
      best.clear();
      for (const auto& p : params) best.push_back(p.detach().clone());
      since_best = 0;
    } else if (++since_best >= o.patience()) {
      break;
    }
  }
  {
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < params.size(); ++i) params[i].copy_(best[i]);
  }
  model.train_mode(false);
  summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return summary;
}

// ---------------------------------------------------------------- evaluation

EmdSurrogateReport evaluate_emd_surrogate(const EmdSurrogate& model, const EmdPairs& all_pairs,
                                          const GroundMetric& metric) {
  const EmdPairs pairs = all_pairs.usable();
  const int64_t n = pairs.size(), cells = pairs.cells;
  if (n == 0) throw Error("emd surrogate: no usable pairs to evaluate");
  std::vector<double> pred(static_cast<size_t>(n));
  model.predict(pairs.a.data(), pairs.b.data(), n, pred.data());  // warm-up
  const auto t0 = std::chrono::steady_clock::now();
  model.predict(pairs.a.data(), pairs.b.data(), n, pred.data());
  const double t_model = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::vector<double> exact(static_cast<size_t>(n));
  const int threads = at::get_num_threads();
  const auto t1 = std::chrono::steady_clock::now();
  emd_exact_rows(metric, pairs.a.data(), pairs.b.data(), n, exact.data(), threads);
  const double t_exact = std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();

  std::vector<double> rel(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) rel[i] = (pred[i] - pairs.emd[i]) / pairs.emd[i];
  EmdSurrogateReport r;
  r.all = describe("all", rel);
  const double levels[7] = {0.01, 0.05, 0.16, 0.50, 0.84, 0.95, 0.99};
  for (int k = 0; k < 7; ++k) r.percentiles[k] = quantile(rel, levels[k]);
  auto group = [&](const std::vector<double>& edges, const std::function<double(int64_t)>& key, const char* name) {
    std::vector<EmdSurrogateReport::Row> rows;
    for (size_t e = 0; e + 1 < edges.size(); ++e) {
      std::vector<double> sel;
      for (int64_t i = 0; i < n; ++i) {
        const double v = key(i);
        if (v >= edges[e] && v < edges[e + 1]) sel.push_back(rel[i]);
      }
      char label[64];
      std::snprintf(label, sizeof label, "%s [%g, %g)", name, edges[e], edges[e + 1]);
      rows.push_back(describe(label, sel));
    }
    return rows;
  };
  r.by_emd = group({0, 0.5, 1, 2, 4, 8, 1e9}, [&](int64_t i) { return pairs.emd[i]; }, "emd");
  r.by_occupancy = group(
      {1, 2, 5, 10, 20, 35, 49},
      [&](int64_t i) {
        int occ = 0;
        for (int64_t c = 0; c < cells; ++c) occ += pairs.a[i * cells + c] > 0;
        return static_cast<double>(occ);
      },
      "occupancy");
  for (int k = 0; k <= static_cast<int>(ReconstructionKind::Given); ++k) {
    std::vector<double> sel;
    for (int64_t i = 0; i < n; ++i)
      if (pairs.kind[i] == k) sel.push_back(rel[i]);
    if (!sel.empty()) r.by_kind.push_back(describe(to_string(static_cast<ReconstructionKind>(k)), sel));
  }
  r.parameters = model.parameter_count();
  r.surrogate_us_per_pair = 1e6 * t_model / static_cast<double>(n);
  r.exact_us_per_pair = 1e6 * t_exact / static_cast<double>(n);
  r.threads = threads;
  r.device = model.device();
  return r;
}

std::string EmdSurrogateReport::to_text() const {
  std::string s;
  char buf[256];
  auto row = [&](const Row& r) {
    std::snprintf(buf, sizeof buf, "  %-24s %8lld  mean %+.4f  std %.4f  p5 %+.4f  p50 %+.4f  p95 %+.4f\n",
                  r.label.c_str(), static_cast<long long>(r.count), r.mean, r.std, r.p05, r.p50, r.p95);
    s += buf;
  };
  s += "relative error (pred - true) / true\n";
  row(all);
  std::snprintf(buf, sizeof buf, "  percentiles 1/5/16/50/84/95/99%%: %+.4f %+.4f %+.4f %+.4f %+.4f %+.4f %+.4f\n",
                percentiles[0], percentiles[1], percentiles[2], percentiles[3], percentiles[4], percentiles[5],
                percentiles[6]);
  s += buf;
  s += "by exact EMD (sensor-cell pitch units)\n";
  for (const auto& r : by_emd) row(r);
  s += "by occupancy of the input wafer\n";
  for (const auto& r : by_occupancy) row(r);
  s += "by kind of reconstruction\n";
  for (const auto& r : by_kind) row(r);
  std::snprintf(buf, sizeof buf,
                "parameters %lld; surrogate on %s %.3f us/pair, exact on %d thread(s) %.3f us/pair, ratio %.1fx\n",
                static_cast<long long>(parameters), device.c_str(), surrogate_us_per_pair, threads,
                exact_us_per_pair, exact_us_per_pair / surrogate_us_per_pair);
  s += buf;
  return s;
}

std::string EmdSurrogateReport::to_json() const {
  auto row = [](const Row& r) {
    return nlohmann::json{{"label", r.label}, {"count", r.count}, {"mean", r.mean}, {"std", r.std},
                          {"p05", r.p05},     {"p50", r.p50},     {"p95", r.p95}};
  };
  nlohmann::json j{{"all", row(all)},
                   {"percentiles_1_5_16_50_84_95_99", percentiles},
                   {"parameters", parameters},
                   {"threads", threads},
                   {"device", device},
                   {"surrogate_us_per_pair", surrogate_us_per_pair},
                   {"exact_us_per_pair", exact_us_per_pair}};
  for (const auto& r : by_emd) j["by_emd"].push_back(row(r));
  for (const auto& r : by_occupancy) j["by_occupancy"].push_back(row(r));
  for (const auto& r : by_kind) j["by_kind"].push_back(row(r));
  return j.dump(2);
}

}  // namespace ddaq
