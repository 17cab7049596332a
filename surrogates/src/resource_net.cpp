// The learned FPGA resource correction (per-layer additive readout).
#include <torch/torch.h>
#include <unistd.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <sstream>

#include "ddaq/error.h"
#include "ddaq/quant/layers.h"
#include "ddaq/files.h"
#include "ddaq/surrogates/resource_net.h"

namespace ddaq {
namespace {

// Fitted targets, in output order.
constexpr ResourceTarget kLearned[] = {ResourceTarget::LUT, ResourceTarget::FF, ResourceTarget::BRAM18K,
                                       ResourceTarget::LatencyCycles};
constexpr int64_t kOut = 4, kFeatures = 8;

std::vector<float> layer_features(const DesignSpec& d, size_t k) {
  const auto& l = d.layers[k];
  const double nw = static_cast<double>(l.in * l.out), r = static_cast<double>(l.reuse_factor);
  return {static_cast<float>(std::log2(static_cast<double>(l.in))), static_cast<float>(std::log2(static_cast<double>(l.out))),
          static_cast<float>(l.weight_bits / 8.0), static_cast<float>(l.act_bits / 16.0),
          static_cast<float>(std::log2(r)), static_cast<float>(std::log2(std::max(nw / r, 1.0))),
          k == 0 ? 1.0f : 0.0f, k + 1 == d.layers.size() ? 1.0f : 0.0f};
}

struct ReadoutImpl : torch::nn::Module {
  torch::nn::Sequential mlp;
  torch::Tensor bias;
  explicit ReadoutImpl(const std::vector<int64_t>& hidden) {
    int64_t in = kFeatures;
    for (int64_t h : hidden) {
      mlp->push_back(torch::nn::Linear(in, h));
      mlp->push_back(torch::nn::SiLU());
      in = h;
    }
    mlp->push_back(torch::nn::Linear(in, kOut));
    register_module("mlp", mlp);
    bias = register_parameter("bias", torch::zeros({kOut}));
  }
  // layer features [L, F], design index of each layer [L] -> [designs, kOut]
  torch::Tensor forward(const torch::Tensor& phi, const torch::Tensor& owner, int64_t designs) {
    const torch::Tensor per_layer = mlp->forward(phi);
    return torch::zeros({designs, kOut}).index_add(0, owner, per_layer) + bias;
  }
};
TORCH_MODULE(Readout);

struct Batch {
  torch::Tensor phi, owner;
  int64_t designs;
};

Batch make_batch(const std::vector<DesignSpec>& designs) {
  std::vector<float> phi;
  std::vector<int64_t> owner;
  for (size_t i = 0; i < designs.size(); ++i)
    for (size_t k = 0; k < designs[i].layers.size(); ++k) {
      const auto f = layer_features(designs[i], k);
      phi.insert(phi.end(), f.begin(), f.end());
      owner.push_back(static_cast<int64_t>(i));
    }
  return {torch::tensor(phi).reshape({-1, kFeatures}), torch::tensor(owner, torch::kLong),
          static_cast<int64_t>(designs.size())};
}

}  // namespace

struct LearnedResourceModel::Impl {
  LearnedResourceOptions options;
  AnalyticResourceModel analytic;
  Readout readout;
  // Bounds seen in the fit: layer features are clamped into [lo, hi] before
  // the readout and its summed correction into [residual_lo, residual_hi],
  // so a design far outside the data gets a bounded correction of the
  // analytic estimate (an unclamped MLP predicted BRAM 2.5e15 for 48->16).
  torch::Tensor feature_lo, feature_hi, residual_lo, residual_hi;
  explicit Impl(const LearnedResourceOptions& o) : options(o), readout(nullptr) {
    torch::manual_seed(o.seed());
    readout = Readout(o.hidden());
  }
};

LearnedResourceModel::LearnedResourceModel(const LearnedResourceOptions& options) : impl_(new Impl(options)) {}
LearnedResourceModel::~LearnedResourceModel() = default;
LearnedResourceModel::LearnedResourceModel(LearnedResourceModel&&) noexcept = default;
LearnedResourceModel& LearnedResourceModel::operator=(LearnedResourceModel&&) noexcept = default;
const AnalyticResourceModel& LearnedResourceModel::analytic() const { return impl_->analytic; }

void LearnedResourceModel::fit(const std::vector<DesignSpec>& designs, const std::vector<ResourceValues>& targets) {
  impl_->analytic.fit(designs, targets);
  const int64_t n = static_cast<int64_t>(designs.size());
  std::vector<float> residual(static_cast<size_t>(n * kOut), 0.0f), known(static_cast<size_t>(n * kOut), 0.0f);
  for (int64_t i = 0; i < n; ++i) {
    const ResourceValues base = impl_->analytic.predict(designs[i]);
    for (int64_t k = 0; k < kOut; ++k) {
      const size_t t = static_cast<size_t>(kLearned[k]);
      if (!std::isfinite(targets[i][t])) continue;
      residual[i * kOut + k] = static_cast<float>(std::log((targets[i][t] + 1.0) / (base[t] + 1.0)));
      known[i * kOut + k] = 1.0f;
    }
  }
  const torch::Tensor y = torch::tensor(residual).reshape({n, kOut}), mask = torch::tensor(known).reshape({n, kOut});
  const Batch b = make_batch(designs);
  impl_->feature_lo = std::get<0>(b.phi.min(0));
  impl_->feature_hi = std::get<0>(b.phi.max(0));
  const torch::Tensor big = torch::full_like(y, 1e30f);
  impl_->residual_lo = std::get<0>(torch::where(mask > 0, y, big).min(0));
  impl_->residual_hi = std::get<0>(torch::where(mask > 0, y, -big).max(0));
  // A target never known: no correction.
  impl_->residual_lo = torch::where(impl_->residual_lo > 1e29f, torch::zeros_like(impl_->residual_lo), impl_->residual_lo);
  impl_->residual_hi = torch::where(impl_->residual_hi < -1e29f, torch::zeros_like(impl_->residual_hi), impl_->residual_hi);
  torch::optim::AdamW opt(impl_->readout->parameters(),
                          torch::optim::AdamWOptions(impl_->options.learning_rate()).weight_decay(impl_->options.weight_decay()));
  impl_->readout->train();
  for (int epoch = 0; epoch < impl_->options.epochs(); ++epoch) {  // full batch: a few hundred designs
    opt.zero_grad();
    const torch::Tensor pred = impl_->readout->forward(b.phi, b.owner, b.designs);
    const torch::Tensor loss = ((pred - y).pow(2) * mask).sum() / mask.sum().clamp_min(1.0);
    loss.backward();
    opt.step();
  }
  impl_->readout->eval();
}

ResourceValues LearnedResourceModel::predict(const DesignSpec& design) const {
  ResourceValues v = impl_->analytic.predict(design);
  torch::NoGradGuard no_grad;
  const Batch b = make_batch({design});
  const torch::Tensor phi = torch::max(torch::min(b.phi, impl_->feature_hi), impl_->feature_lo);
  const torch::Tensor r =
      torch::max(torch::min(impl_->readout->forward(phi, b.owner, 1), impl_->residual_hi), impl_->residual_lo);
  const ResourceValues floor = physical_floor(design);
  for (int64_t k = 0; k < kOut; ++k) {
    const size_t t = static_cast<size_t>(kLearned[k]);
    v[t] = std::max(floor[t], (v[t] + 1.0) * std::exp(r[0][k].item<double>()) - 1.0);
  }
  return v;
}

void LearnedResourceModel::save(const std::string& path) const {
  std::ostringstream bytes;
  try {
    torch::serialize::OutputArchive archive;
    archive.write("format", c10::IValue(std::string("ddaq-resource-net-2")));
    archive.write("feature_lo", impl_->feature_lo);
    archive.write("feature_hi", impl_->feature_hi);
    archive.write("residual_lo", impl_->residual_lo);
    archive.write("residual_hi", impl_->residual_hi);
    archive.write("hidden", c10::IValue(nlohmann::json(impl_->options.hidden()).dump()));
    archive.write("analytic", c10::IValue(impl_->analytic.serialize()));
    for (const auto& p : impl_->readout->named_parameters()) archive.write(p.key(), p.value().detach());
    archive.save_to(bytes);
  } catch (const c10::Error& e) {
    throw Error(path + ": cannot write the resource model (" + e.what_without_backtrace() + ")");
  }
  write_file_atomic(path, bytes.str());
}

LearnedResourceModel LearnedResourceModel::load(const std::string& path) {
  if (::access(path.c_str(), R_OK) != 0) throw Error(path + ": cannot open (missing or unreadable)");
  torch::serialize::InputArchive archive;
  c10::IValue format, hidden, analytic;
  try {
    archive.load_from(path);
  } catch (const std::exception&) {
    throw Error(wrong_kind_message(path, "a learned resource model"));
  }
  if (!archive.try_read("format", format) || !archive.try_read("hidden", hidden) ||
      !archive.try_read("analytic", analytic) || !format.isString() ||
      format.toStringRef().rfind("ddaq-resource-net-", 0) != 0)
    throw Error(wrong_kind_message(path, "a learned resource model"));
  if (format.toStringRef() != "ddaq-resource-net-2")
    throw Error(path + ": a learned resource model from an earlier ddaq, without the ranges of its fit data (its "
                       "estimates are unbounded outside them): retrain it with 'ddaq surrogate resources train'");
  LearnedResourceModel m(LearnedResourceOptions().hidden(nlohmann::json::parse(hidden.toStringRef()).get<std::vector<int64_t>>()));
  m.impl_->analytic = AnalyticResourceModel::parse(analytic.toStringRef(), path + " (analytic part)");
  torch::NoGradGuard no_grad;
  for (auto& p : m.impl_->readout->named_parameters()) {
    torch::Tensor v;
    try {
      archive.read(p.key(), v);
    } catch (const c10::Error&) {
      throw Error(path + ": missing parameter '" + p.key() + "'");
    }
    p.value().copy_(v);
  }
  const std::pair<const char*, torch::Tensor*> bounds[] = {{"feature_lo", &m.impl_->feature_lo},
                                                           {"feature_hi", &m.impl_->feature_hi},
                                                           {"residual_lo", &m.impl_->residual_lo},
                                                           {"residual_hi", &m.impl_->residual_hi}};
  for (const auto& b : bounds) {
    try {
      archive.read(b.first, *b.second);
    } catch (const c10::Error&) {
      throw Error(path + ": missing '" + b.first + "'");
    }
  }
  m.impl_->readout->eval();
  return m;
}

CrossValidation cross_validate_learned(const std::vector<DesignSpec>& designs,
                                       const std::vector<ResourceValues>& targets, int folds, uint64_t seed,
                                       const LearnedResourceOptions& options) {
  return cross_validate(designs, targets, folds, seed,
                        [&](const std::vector<DesignSpec>& d, const std::vector<ResourceValues>& y) -> ResourcePredictor {
                          auto m = std::make_shared<LearnedResourceModel>(options);
                          m->fit(d, y);
                          return [m](const DesignSpec& x) { return m->predict(x); };
                        });
}

}  // namespace ddaq
