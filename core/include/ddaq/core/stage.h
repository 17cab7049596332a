// ddaq/core/stage.h: one stage of the differentiable DAQ graph.
//
// A pipeline is an ordered list of stages sharing one interface: each reads
// named tensors of a batch from the flow and adds its own (autograd kept),
// reports named cost terms of its current parameters (bits, e-links, EBOPs),
// and, when it is firmware, its integer description for the exporters.
// The ECON-T stages (pipeline.h): frontend -> encoder -> link_budget ->
// decoder -> classifier.
#pragma once
#include <ATen/core/Tensor.h>

#include <string>
#include <utility>
#include <vector>

#include "ddaq/quant/description.h"

namespace ddaq {

// Named tensors in insertion order: a batch flowing through the stages.
struct NamedTensors {
  std::vector<std::pair<std::string, at::Tensor>> named;
  bool has(const std::string& name) const;
  // Throws ddaq::Error naming a missing tensor.
  const at::Tensor& get(const std::string& name) const;
  void set(const std::string& name, const at::Tensor& value);  // adds or replaces
};

class Stage {
 public:
  virtual ~Stage() = default;
  // "frontend", "encoder", ...: also the prefix of its parameter names.
  virtual const std::string& name() const = 0;
  // Reads its inputs from `flow`, adds its outputs.
  virtual void forward(NamedTensors& flow) = 0;
  // Scalar cost terms of the current parameters (differentiable); none by default.
  virtual NamedTensors costs() const { return {}; }
  // Integer description of what goes to firmware; empty for float stages.
  virtual ModelDescription describe() const { return {}; }
  // Parameters and buffers (names without the stage prefix).
  virtual std::vector<std::pair<std::string, at::Tensor>> named_parameters() const = 0;
  virtual std::vector<std::pair<std::string, at::Tensor>> named_buffers() const = 0;
  // Training behaviour (smooth relaxations, observed ranges) on or off.
  virtual void train(bool on) = 0;
  virtual void to(const std::string& device) = 0;
};

}  // namespace ddaq
