// econt_quant_study: the ECON-T encoder trained in float, in fixed 6-bit,
// and with learned bits, on event files; quality by exact EMD on held-out
// wafers, hardware cost by EBOPs. A study driver (links core and
// surrogates), not library code; docs/quantization.md quotes its output.
//
// Usage: econt_quant_study TRAIN.h5... --test TEST.h5... [--surrogate FILE]
//        [--epochs E] [--max-train N] [--seed S] [--lambda L]
#include <torch/torch.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "ddaq/core/events.h"
#include "ddaq/core/layouts.h"
#include "ddaq/core/wafer_metric.h"
#include "ddaq/error.h"
#include "ddaq/quant/layers.h"
#include "ddaq/surrogates/emd.h"
#include "ddaq/surrogates/emd_surrogate.h"
#include "ddaq/surrogates/energy.h"
#include "ddaq/surrogates/link_budget.h"

using ddaq::FixedPointType;
using ddaq::Overflow;
using ddaq::QuantizerOptions;
using ddaq::Rounding;

namespace {

struct Variant {
  std::string name;
  QuantizerOptions input, weight, hidden, latent;
  double ebops_weight = 0.0;  // lambda for the EBOPs term (learned bits only)
};

torch::Tensor load(const std::vector<std::string>& files, int64_t max_rows) {
  std::vector<float> all;
  for (const auto& f : files) {
    const ddaq::EventFileReader r(f);
    const int64_t n = std::min(max_rows, r.size());
    std::vector<float> calq(static_cast<size_t>(n) * 48);
    r.read(0, n, calq.data(), nullptr);
    all.insert(all.end(), calq.begin(), calq.end());
  }
  return torch::tensor(all).reshape({-1, 48});
}

// ECON-T input normalization: divide by 2^floor(log2(sum)), so inputs lie in [0, 2).
torch::Tensor normalize(const torch::Tensor& x) {
  const torch::Tensor s = x.sum(1, true).clamp_min(1.0);
  return x / torch::exp2(torch::floor(torch::log2(s)));
}

struct DecoderImpl : torch::nn::Module {
  torch::nn::Linear dense{nullptr};
  torch::nn::ConvTranspose2d up{nullptr};
  torch::nn::Conv2d out{nullptr};
  DecoderImpl() {
    dense = register_module("dense", torch::nn::Linear(16, 128));
    up = register_module("up", torch::nn::ConvTranspose2d(
                                   torch::nn::ConvTranspose2dOptions(8, 8, 3).stride(2).padding(1).output_padding(1)));
    out = register_module("out", torch::nn::Conv2d(torch::nn::Conv2dOptions(8, 1, 3).padding(1)));
  }
  torch::Tensor forward(const torch::Tensor& latent, const ddaq::CellLayout& layout) {
    torch::Tensor h = torch::relu(dense->forward(latent)).view({-1, 8, 4, 4});
    h = torch::relu(up->forward(h));
    return torch::softmax(layout.to_cells(out->forward(h)), 1);  // unit-sum wafer
  }
};
TORCH_MODULE(Decoder);

}  // namespace

int main(int argc, char** argv) {
  try {
    std::vector<std::string> train_files, test_files;
    std::string surrogate_path = "surrogates/models/emd_surrogate.pt";
    int epochs = 8;
    int64_t max_train = 20000, max_test = 5000;
    uint64_t seed = 1;
    double lambda = 2e-6;
    for (int k = 1; k < argc; ++k) {
      const std::string a = argv[k];
      auto value = [&]() -> std::string {
        if (k + 1 >= argc) throw ddaq::Error(a + ": missing value");
        return argv[++k];
      };
      if (a == "--test") {
        while (k + 1 < argc && std::strncmp(argv[k + 1], "--", 2) != 0) test_files.push_back(argv[++k]);
      } else if (a == "--surrogate") {
        surrogate_path = value();
      } else if (a == "--epochs") {
        epochs = std::stoi(value());
      } else if (a == "--max-train") {
        max_train = std::stoll(value());
      } else if (a == "--seed") {
        seed = std::stoull(value());
      } else if (a == "--lambda") {
        lambda = std::stod(value());
      } else {
        train_files.push_back(a);
      }
    }
    if (train_files.empty() || test_files.empty()) throw ddaq::Error("usage: econt_quant_study TRAIN.h5... --test TEST.h5...");
    at::set_num_threads(1);
    const torch::Tensor train = load(train_files, max_train), test = load(test_files, max_test);
    const ddaq::EmdSurrogate surrogate = ddaq::EmdSurrogate::load(surrogate_path);
    for (auto& p : surrogate.parameters()) p.requires_grad_(false);
    const ddaq::CellLayout layout = ddaq::CellLayout::image8x8();
    ddaq::ExactEmd exact(ddaq::trigger_cell_metric());

    const FixedPointType wide(24, 8, true, Rounding::RND_CONV, Overflow::SAT);
    const FixedPointType wide_u(24, 8, false, Rounding::RND_CONV, Overflow::SAT);
    std::vector<Variant> variants = {
        {"float (24-bit everywhere)", QuantizerOptions(wide_u), QuantizerOptions(wide), QuantizerOptions(wide_u),
         QuantizerOptions(wide_u)},
        {"fixed: weights 6 bits, inputs 10, hidden 8, latent 7",
         QuantizerOptions(FixedPointType(10, 3, false, Rounding::RND, Overflow::SAT)),
         QuantizerOptions(FixedPointType(6, 1, true, Rounding::RND_CONV, Overflow::SAT)),
         QuantizerOptions(FixedPointType(8, 3, false, Rounding::RND, Overflow::SAT)),
         QuantizerOptions(FixedPointType(7, 3, false, Rounding::RND, Overflow::SAT))},
        {"learned bits (per weight, start 6) + EBOPs term",
         QuantizerOptions(FixedPointType(10, 3, false, Rounding::RND, Overflow::SAT)),
         QuantizerOptions(FixedPointType(6, 1, true, Rounding::RND_CONV, Overflow::SAT))
             .learnable(true)
             .granularity(ddaq::Granularity::PerElement),
         QuantizerOptions(FixedPointType(8, 3, false, Rounding::RND, Overflow::SAT)).learnable(true),
         QuantizerOptions(FixedPointType(7, 3, false, Rounding::RND, Overflow::SAT)), lambda},
    };
    std::printf("train %lld wafers (%zu files), test %lld wafers, %d epochs, seed %llu\n",
                static_cast<long long>(train.size(0)), train_files.size(), static_cast<long long>(test.size(0)), epochs,
                static_cast<unsigned long long>(seed));
    std::printf("%-52s %10s %10s %12s %10s\n", "variant", "EMD mean", "EMD median", "EBOPs", "weights");
    for (const Variant& v : variants) {
      torch::manual_seed(seed);
      ddaq::QuantizedStack encoder(std::vector<int64_t>{1, 8, 8});
      encoder->input(v.input);
      encoder->conv(ddaq::QConvOptions(1, 8, 3).stride(2).padding(1).weight(v.weight).output(
          QuantizerOptions(FixedPointType(16, 6, true, Rounding::RND, Overflow::SAT))));
      encoder->relu(v.hidden);
      encoder->dense(ddaq::QLinearOptions(128, 16).weight(v.weight).output(
          QuantizerOptions(FixedPointType(16, 6, true, Rounding::RND, Overflow::SAT))));
      encoder->relu(v.latent);
      Decoder decoder;
      std::vector<torch::Tensor> params = encoder->parameters();
      for (auto& p : decoder->parameters()) params.push_back(p);
      torch::optim::Adam opt(params, 3e-3);
      const int64_t batch = 256, n = train.size(0);
      auto gen = at::detail::createCPUGenerator(seed);
      for (int epoch = 0; epoch < epochs; ++epoch) {
        encoder->train();
        const torch::Tensor perm = torch::randperm(n, gen, torch::kLong);
        for (int64_t s = 0; s + batch <= n; s += batch) {
          const torch::Tensor x = train.index_select(0, perm.narrow(0, s, batch));
          const torch::Tensor latent = encoder->forward(layout.to_grid(normalize(x)));
          const torch::Tensor y = decoder->forward(latent.reshape({batch, 16}), layout);
          torch::Tensor loss = surrogate.forward(x, y).mean();
          if (v.ebops_weight > 0) loss = loss + v.ebops_weight * encoder->ebops();
          opt.zero_grad();
          loss.backward();
          opt.step();
        }
      }
      encoder->eval();
      torch::NoGradGuard no_grad;
      const torch::Tensor y =
          decoder->forward(encoder->forward(layout.to_grid(normalize(test))).reshape({-1, 16}), layout).contiguous();
      const torch::Tensor xt = test.contiguous();
      std::vector<double> e;
      for (int64_t i = 0; i < test.size(0); ++i) {
        const double d = exact(xt[i].data_ptr<float>(), y[i].data_ptr<float>());
        if (std::isfinite(d)) e.push_back(d);
      }
      double mean = 0;
      for (double d : e) mean += d;
      mean /= static_cast<double>(e.size());
      std::sort(e.begin(), e.end());
      const ddaq::ModelDescription model = encoder->describe();
      double ebops = 0;
      int64_t nonzero = 0;
      for (const auto& l : model) {
        ebops += l.ebops;
        for (int64_t w : l.weight_raw) nonzero += w != 0;
      }
      std::string bits;
      for (const auto& l : model)
        if (l.kind == ddaq::LayerKind::Conv2d || l.kind == ddaq::LayerKind::Dense)
          bits += (bits.empty() ? "" : " ") + l.weight_type.hls_type();
      std::printf("%-52s %10.3f %10.3f %12.0f %10lld  %s\n", v.name.c_str(), mean, e[e.size() / 2], ebops,
                  static_cast<long long>(nonzero), bits.c_str());
      const int latent_bits = model.back().output_type.width;
      const ddaq::AutoencoderFrame frame;
      const std::string links = 16 * latent_bits <= frame.payload_capacity(frame.max_elinks())
                                    ? std::to_string(frame.elinks_for_latent(16, latent_bits)) + " e-links"
                                    : "does not fit the ECON-T frame";
      std::printf("    link: 16 x %d bits -> %s; energy (45 nm): %s\n", latent_bits, links.c_str(),
                  ddaq::estimate_energy(model).to_text().c_str());
      if (v.name.rfind("fixed", 0) == 0)  // the ECON-T ASIC: 2.4 nJ per inference, 95 mW
        std::printf("    ECON-T ASIC (65 nm): %s\n", ddaq::fit_technology_scale(model, 2.4, 95.0).to_text().c_str());
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "econt_quant_study: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
