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
#include "quant_test_models.h"


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

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: qonnx_fixture DIR\n");
    return 2;
  }
  try {
    const std::string dir = argv[1];
    auto stacks = ddaq_test::export_test_models();
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
