#include "quant_test_models.h"

#include <torch/torch.h>

using ddaq::FixedPointType;
using ddaq::Overflow;
using ddaq::Rounding;

namespace ddaq_test {
namespace {
FixedPointType sat(int w, int i, bool s, Rounding r) { return FixedPointType(w, i, s, r, Overflow::SAT); }

}  // namespace

std::vector<ddaq::QuantizedStack> export_test_models() {
  std::vector<ddaq::QuantizedStack> out;
  torch::manual_seed(7);
  {  // dense -> relu -> dense, pruned hidden units, learned per-element weight bits
    ddaq::QuantizedStack s(std::vector<int64_t>{20});
    s->input(sat(10, 4, true, Rounding::RND_CONV));
    s->dense(ddaq::QLinearOptions(20, 12)
                 .weight(ddaq::QuantizerOptions(sat(6, 1, true, Rounding::RND_CONV)).learnable(true)
                             .granularity(ddaq::Granularity::PerElement))
                 .output(sat(14, 6, true, Rounding::TRN)));
    s->relu(sat(8, 4, false, Rounding::TRN));
    s->dense(ddaq::QLinearOptions(12, 5).output(FixedPointType(12, 5, true, Rounding::RND_CONV, Overflow::SAT_SYM)));
    s->train();
    s->forward(torch::randn({64, 20}) * 3);
    s->prune_to(0.25);
    out.push_back(s);
  }
  {  // the ECON-T encoder shape: conv 3x3 stride 2 (BatchNorm folded) -> relu -> dense
    ddaq::QuantizedStack s(std::vector<int64_t>{1, 8, 8});
    s->input(sat(10, 3, false, Rounding::TRN));
    s->conv(ddaq::QConvOptions(1, 8, 3).stride(2).padding(1).batchnorm(true).output(sat(16, 6, true, Rounding::TRN)));
    s->relu(sat(8, 3, false, Rounding::RND_CONV));
    s->dense(ddaq::QLinearOptions(128, 16).output(sat(16, 6, true, Rounding::TRN)));
    s->relu(sat(7, 3, false, Rounding::TRN));
    s->train();
    for (int k = 0; k < 3; ++k) s->forward(torch::rand({64, 1, 8, 8}) * 2);
    s->prune_to(0.25);
    out.push_back(s);
  }
  {  // decoder-like: conv-transpose with output padding
    ddaq::QuantizedStack s(std::vector<int64_t>{4, 3, 3});
    s->input(sat(9, 3, true, Rounding::RND_CONV));
    s->conv(ddaq::QConvOptions(4, 2, 3).stride(2).padding(1).output_padding(1).transposed(true)
                .output(sat(14, 5, true, Rounding::RND_CONV)));
    s->relu(sat(10, 4, false, Rounding::TRN));
    out.push_back(s);
  }
  {  // per-latent widths: shared integer bits, a truncation per element, one element of width 0
    ddaq::QuantizedStack s(std::vector<int64_t>{10});
    s->input(sat(9, 3, false, Rounding::TRN));
    s->dense(ddaq::QLinearOptions(10, 8).output(sat(16, 6, true, Rounding::TRN)));
    s->relu(ddaq::QuantizerOptions(sat(6, 3, false, Rounding::TRN))
                .learnable(true)
                .granularity(ddaq::Granularity::PerChannel)
                .shared_integer_bits(true)
                .min_fractional(-4)
                .max_fractional(4));
    s->train();
    s->forward(torch::rand({64, 10}) * 6);
    s->layers().back()->output_quantizer()->set_fractional_bits(
        torch::tensor({4.0, 3.0, 2.0, 1.0, 0.0, -1.0, -9.0, 2.4}).view({1, 8}), /*freeze_range=*/true);
    out.push_back(s);
  }
  return out;
}


}  // namespace ddaq_test
