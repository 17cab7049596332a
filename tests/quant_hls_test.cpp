// The emitted HLS project builds with g++ and ddaq's ap_fixed subset, and its
// testbench reproduces the integer reference bit for bit on 10,200 inputs.
#include <torch/torch.h>

#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>

#include "ddaq/error.h"
#include "ddaq/quant/hls.h"
#include "ddaq/quant/integer_reference.h"
#include "quant_test_models.h"
#include "test_support.h"

namespace {

std::vector<std::vector<double>> random_inputs(const ddaq::ModelDescription& model, int64_t n) {
  const int64_t in = ddaq::elements(model.front().input_shape);
  torch::Tensor x = torch::randn({n, in}, torch::kDouble) * 3;
  if (!model.front().output_type.is_signed) x = x.abs();
  x = x.contiguous();
  std::vector<std::vector<double>> out;
  for (int64_t i = 0; i < n; ++i) out.emplace_back(x[i].data_ptr<double>(), x[i].data_ptr<double>() + in);
  return out;
}

}  // namespace

DOCTEST_TEST_SUITE("hls export") {
  DOCTEST_TEST_CASE("emitted projects compile with g++ and match the integer reference bit for bit") {
    torch::manual_seed(3);
    auto models = ddaq_test::export_test_models();
    ddaq_test::TempDir dir;
    int64_t samples = 0;
    for (size_t k = 0; k < models.size(); ++k) {
      models[k]->eval();
      const ddaq::ModelDescription model = models[k]->describe();
      const std::string prj = dir.file("prj" + std::to_string(k));
      // The ECON-T encoder (model 1) as io_stream, the others io_parallel.
      ddaq::write_hls_project(model, prj,
                              ddaq::HlsOptions().name("model" + std::to_string(k)).io(k == 1 ? "stream" : "parallel"),
                              random_inputs(model, 3400));
      for (const char* f : {"firmware/defines.h", "firmware/parameters.h", "firmware/weights/w1.h", "build_prj.tcl",
                            "README.md", "tb_data/tb_input_features.dat"})
        DOCTEST_CHECK(ddaq_test::exists(prj + "/" + f));
      const std::string name = "model" + std::to_string(k);
      if (k == 1) DOCTEST_CHECK(ddaq_test::read_text(prj + "/firmware/" + name + ".h").find("hls::stream<input_t>&") != std::string::npos);
      const std::string cmd = "cd '" + prj + "' && g++ -std=c++17 -O1 -Ifirmware/ap_types -o tb " + name + "_test.cpp firmware/" +
                              name + ".cpp > build.log 2>&1 && ./tb > tb.log 2>&1";
      const int status = std::system(cmd.c_str());
      DOCTEST_INFO(ddaq_test::read_text(prj + "/build.log") << ddaq_test::read_text(prj + "/tb.log"));
      DOCTEST_CHECK(status == 0);
      DOCTEST_CHECK(ddaq_test::read_text(prj + "/tb.log").find("3400 samples, 0 mismatching outputs") != std::string::npos);
      samples += 3400;
    }
    DOCTEST_CHECK(samples >= 10000);
  }

  DOCTEST_TEST_CASE("bad requests: clear errors and no partial project") {
    auto models = ddaq_test::export_test_models();
    models[0]->eval();
    const ddaq::ModelDescription model = models[0]->describe();
    ddaq_test::TempDir dir;
    DOCTEST_CHECK_THROWS_WITH_AS(ddaq::write_hls_project(model, dir.file("a"), ddaq::HlsOptions().reuse_factor(7), {}),
                                 doctest::Contains("reuse factor 7 does not divide"), ddaq::Error);
    DOCTEST_CHECK_THROWS_WITH_AS(ddaq::write_hls_project(model, dir.file("a"), ddaq::HlsOptions().io("axi"), {}),
                                 "hls export: io 'axi' (expected parallel or stream)", ddaq::Error);
    DOCTEST_CHECK_THROWS_AS(ddaq::write_hls_project(model, dir.file("a"), ddaq::HlsOptions().name("9bad"), {}), ddaq::Error);
    DOCTEST_CHECK_THROWS_AS(ddaq::write_hls_project(model, dir.file("a"), ddaq::HlsOptions(), {{1.0, 2.0}}), ddaq::Error);
    DOCTEST_CHECK_THROWS_AS(ddaq::write_hls_project(model, "/proc/ddaq-no/prj", ddaq::HlsOptions(), {}), ddaq::Error);
    DOCTEST_CHECK(dir.entries().empty());  // nothing half-written
    ddaq_test::write_text(dir.file("occupied"), "x");
    DOCTEST_CHECK_THROWS_WITH_AS(ddaq::write_hls_project(model, dir.file("occupied"), ddaq::HlsOptions(), {}),
                                 doctest::Contains("exists and is not an empty folder"), ddaq::Error);
  }

  DOCTEST_TEST_CASE("replace: a project ddaq wrote is replaced whole / any other folder is left alone") {
    auto models = ddaq_test::export_test_models();
    models[0]->eval();
    const ddaq::ModelDescription model = models[0]->describe();
    ddaq_test::TempDir dir;
    const std::string prj = dir.file("prj");
    ddaq::write_hls_project(model, prj, ddaq::HlsOptions().name("first"), {});
    ddaq_test::write_text(prj + "/notes.txt", "left by a user");
    DOCTEST_CHECK_THROWS_WITH_AS(ddaq::write_hls_project(model, prj, ddaq::HlsOptions().name("second"), {}),
                                 doctest::Contains("exists and is not an empty folder"), ddaq::Error);
    ddaq::write_hls_project(model, prj, ddaq::HlsOptions().name("second").replace(true), {});
    DOCTEST_CHECK(ddaq_test::exists(prj + "/firmware/second.cpp"));
    DOCTEST_CHECK(!ddaq_test::exists(prj + "/firmware/first.cpp"));  // the old project is gone, not merged
    DOCTEST_CHECK(!ddaq_test::exists(prj + "/notes.txt"));
    DOCTEST_CHECK(dir.entries() == std::vector<std::string>{"prj"});  // no temporary or old folder left
    // A folder that is not a ddaq project is never replaced.
    std::filesystem::create_directories(dir.file("mine"));
    ddaq_test::write_text(dir.file("mine/data.txt"), "keep");
    DOCTEST_CHECK_THROWS_WITH_AS(ddaq::write_hls_project(model, dir.file("mine"), ddaq::HlsOptions().replace(true), {}),
                                 doctest::Contains("is not an HLS project written by ddaq"), ddaq::Error);
    DOCTEST_CHECK(ddaq_test::read_text(dir.file("mine/data.txt")) == "keep");
    // A failed replacement leaves the old project as it was.
    DOCTEST_CHECK_THROWS_AS(ddaq::write_hls_project(model, prj, ddaq::HlsOptions().name("9bad").replace(true), {}),
                            ddaq::Error);
    DOCTEST_CHECK(ddaq_test::exists(prj + "/firmware/second.cpp"));
  }
}

DOCTEST_TEST_SUITE("hls export") {
  DOCTEST_TEST_CASE("quantized stacks save and load exactly / ddaq export writes QONNX and HLS with estimates") {
    auto models = ddaq_test::export_test_models();
    ddaq_test::TempDir dir;
    std::filesystem::create_directories(dir.file("run"));
    ddaq::save_quantized_stack(models[1], dir.file("run/encoder.qstack"));
    ddaq::QuantizedStack loaded = ddaq::load_quantized_stack(dir.file("run/encoder.qstack"));
    models[1]->eval();
    const auto a = models[1]->describe(), b = loaded->describe();
    DOCTEST_REQUIRE(a.size() == b.size());
    for (size_t k = 0; k < a.size(); ++k) {
      DOCTEST_CHECK(a[k].weight_raw == b[k].weight_raw);
      DOCTEST_CHECK(a[k].bias_raw == b[k].bias_raw);
      DOCTEST_CHECK(a[k].output_type == b[k].output_type);
    }
    DOCTEST_CHECK(loaded->spec() == models[1]->spec());
    auto r = ddaq_test::run_ddaq("export " + dir.file("run") + " --qonnx " + dir.file("enc.onnx") + " --hls " +
                                 dir.file("hls") + " --tb-samples 200");
    DOCTEST_INFO(r.err);
    DOCTEST_REQUIRE(r.exit_code == 0);
    DOCTEST_CHECK(ddaq_test::exists(dir.file("enc.onnx")));
    DOCTEST_CHECK(ddaq_test::exists(dir.file("hls/firmware/encoder.cpp")));
    DOCTEST_CHECK(r.out.find("encoder estimates: LUT") != std::string::npos);
    DOCTEST_CHECK(r.out.find("pJ per inference") != std::string::npos);
    const std::string cmd = "cd '" + dir.file("hls") +
                            "' && g++ -std=c++17 -O1 -Ifirmware/ap_types -o tb encoder_test.cpp firmware/encoder.cpp "
                            "> build.log 2>&1 && ./tb > tb.log 2>&1";
    DOCTEST_CHECK(std::system(cmd.c_str()) == 0);
    // 200 uniform inputs (this run has no event data) plus the accumulator-bound ones.
    const std::string tb = ddaq_test::read_text(dir.file("hls/tb.log"));
    DOCTEST_CHECK(tb.find(", 0 mismatching outputs") != std::string::npos);
    DOCTEST_CHECK(r.out.find("(200 uniform over the input type") != std::string::npos);
    const size_t at = tb.find("testbench: ");
    DOCTEST_REQUIRE(at != std::string::npos);
    DOCTEST_CHECK(std::stol(tb.substr(at + 11)) > 200);
    // Errors: one line, nothing written.
    r = ddaq_test::run_ddaq("export " + dir.file("run") + " --part classifier --qonnx " + dir.file("c.onnx"));
    DOCTEST_CHECK(r.exit_code != 0);
    DOCTEST_CHECK(r.err.find("export: part 'classifier': " + dir.file("run") +
                             " has no classifier.qstack (its parts: encoder, or all)") != std::string::npos);
    r = ddaq_test::run_ddaq("export " + dir.file("run") + " --hls " + dir.file("hls2") + " --reuse-factor 5");
    DOCTEST_CHECK(r.exit_code != 0);
    DOCTEST_CHECK(r.err.find("does not divide") != std::string::npos);
    DOCTEST_CHECK_FALSE(ddaq_test::exists(dir.file("hls2")));
    r = ddaq_test::run_ddaq("export " + dir.file("run"));
    DOCTEST_CHECK(r.err.find("give --qonnx FILE, --hls DIR and/or --emulator DIR") != std::string::npos);
    ddaq_test::write_text(dir.file("run/bad.qstack"), "junk");
    DOCTEST_CHECK_THROWS_AS(ddaq::load_quantized_stack(dir.file("run/bad.qstack")), ddaq::Error);
  }
}
