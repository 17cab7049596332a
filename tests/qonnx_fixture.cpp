// qonnx_fixture DIR: writes QONNX models of quantized stacks with inputs and
// the integer reference's outputs (.npy), for tests/python/test_qonnx.py.
#include <torch/torch.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "ddaq/error.h"
#include "ddaq/quant/integer_reference.h"
#include "ddaq/quant/layers.h"
#include "ddaq/quant/qonnx.h"

using ddaq::FixedPointType;
using ddaq::Overflow;
using ddaq::Rounding;

namespace {

// .npy version 1.0, little-endian float64, C order.
void write_npy(const std::string& path, const std::vector<double>& data, const std::vector<int64_t>& shape) {
  std::string dims;
  for (int64_t d : shape) dims += std::to_string(d) + ",";
  std::string header = "{'descr': '<f8', 'fortran_order': False, 'shape': (" + dims + "), }";
  while ((10 + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::ofstream out(path, std::ios::binary);
  out.write("\x93NUMPY\x01\x00", 8);
  const uint16_t len = static_cast<uint16_t>(header.size());
  out.write(reinterpret_cast<const char*>(&len), 2);
  out << header;
  out.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size() * sizeof(double)));
}

FixedPointType sat(int w, int i, bool s, Rounding r) { return FixedPointType(w, i, s, r, Overflow::SAT); }

std::vector<ddaq::QuantizedStack> models() {
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
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: qonnx_fixture DIR\n");
    return 2;
  }
  try {
    const std::string dir = argv[1];
    auto stacks = models();
    for (size_t k = 0; k < stacks.size(); ++k) {
      stacks[k]->eval();
      const ddaq::ModelDescription model = stacks[k]->describe();
      ddaq::write_qonnx(model, dir + "/model" + std::to_string(k) + ".onnx",
                        ddaq::QonnxOptions().metadata({{"ddaq_version", "test"}, {"layout", "none"}}));
      const ddaq::IntegerReference reference(model);
      const int64_t n = 3400, in = ddaq::elements(model.front().input_shape), outs = ddaq::elements(model.back().output_shape);
      torch::Tensor x = torch::randn({n, in}, torch::kDouble) * 3;
      if (!model.front().output_type.is_signed) x = x.abs();  // unsigned inputs: exercise them
      x = x.contiguous();
      std::vector<double> inputs(x.data_ptr<double>(), x.data_ptr<double>() + n * in), expected;
      for (int64_t i = 0; i < n; ++i) {
        const auto y = reference.run(std::vector<double>(inputs.begin() + i * in, inputs.begin() + (i + 1) * in));
        expected.insert(expected.end(), y.begin(), y.end());
      }
      std::vector<int64_t> shape{n};
      shape.insert(shape.end(), model.front().input_shape.begin(), model.front().input_shape.end());
      write_npy(dir + "/inputs" + std::to_string(k) + ".npy", inputs, shape);
      write_npy(dir + "/expected" + std::to_string(k) + ".npy", expected, {n, outs});
    }
    std::printf("%zu models\n", stacks.size());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "qonnx_fixture: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
