// A new stage type, written, registered and used in a graph: the example
// of docs/extending.md, compiled into the tests (core_graph_test.cpp trains
// it). It needs no edit anywhere else: this file and its one registration
// line.
#include <torch/torch.h>

#include "ddaq/core/stages.h"

namespace example {

// "channel_gain": a learnable gain per cell, applied to the charges before
// zero suppression (e.g. an uncalibrated front end whose calibration the
// co-design learns). Reads "charges", writes "calibrated".
// Options: cells (default: the graph input's size), initial (default 1.0).
class ChannelGainStage : public ddaq::ModuleStage {
 public:
  static std::vector<std::string> reads() { return {"charges"}; }
  static std::vector<std::string> writes() { return {"calibrated"}; }
  static std::vector<std::string> option_keys() { return {"cells", "initial"}; }

  ChannelGainStage(const ddaq::StageSpec& spec, const ddaq::Graph& built)
      : ddaq::ModuleStage(spec.name), holder_(std::make_shared<torch::nn::Module>()), in_(spec.read("charges")),
        out_(spec.write("calibrated")) {
    const int64_t cells = spec.options.integer("cells", built.spec().input_shape.back(), 1, 1 << 20);
    gain = holder_->register_parameter("gain", torch::full({cells}, spec.options.number("initial", 1.0, 0.0, 100.0)));
  }
  void forward(ddaq::NamedTensors& flow) override { flow.set(out_, flow.get(in_) * gain); }
  torch::Tensor gain;

 protected:
  torch::nn::Module& module() const override { return *holder_; }

 private:
  std::shared_ptr<torch::nn::Module> holder_;
  std::string in_, out_;
};

DDAQ_REGISTER_STAGE("channel_gain", ChannelGainStage);

}  // namespace example
