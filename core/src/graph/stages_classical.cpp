// Stage types around the learned ones (stages.h): the classical ECON-T
// compressors, the module sum the frame carries, concatenation and dead cells.
#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>

#include "ddaq/core/baselines.h"
#include "ddaq/core/stages.h"
#include "ddaq/error.h"
#include "ddaq/surrogates/link_budget.h"

namespace ddaq {

// Referenced by the registry (graph.cpp), so these registrations are linked.
int ddaq_classical_stages_anchor = 0;

namespace {
std::string key_of(const Config& c, const std::string& key) { return c.source() + ": " + c.where() + "." + key; }

// Cells sent: `cells`, or what `elinks` e-links hold (`for_elinks`); exactly one given.
int cells_option(const Config& c, int min_elinks, const std::function<int(int)>& for_elinks) {
  if (c.has("elinks") == c.has("cells")) throw Error(key_of(c, "elinks") + ": give elinks or cells (one of them)");
  if (c.has("cells")) return static_cast<int>(c.integer("cells", 48, 1, 48));
  return for_elinks(static_cast<int>(c.integer("elinks", 2, min_elinks, 13)));
}
}  // namespace

ClassicalCompressorStage::ClassicalCompressorStage(const StageSpec& spec, const Graph&)
    : ModuleStage(spec.name), none_(std::make_shared<torch::nn::Module>()) {
  charges_ = spec.read("charges");
  cells_name_ = spec.write("cells");
}

void ClassicalCompressorStage::forward(NamedTensors& flow) {
  const torch::Tensor x = flow.get(charges_);
  if (x.dim() != 2 || x.size(1) != 48)
    throw Error("stage '" + name() + "': expects charges [N, 48], got " + c10::str(x.sizes()));
  const torch::Tensor cpu = x.detach().to(torch::kCPU, torch::kFloat).contiguous();
  torch::Tensor y = torch::empty_like(cpu);
  compress(cpu.data_ptr<float>(), cpu.size(0), y.data_ptr<float>());
  y = y.to(x.device(), x.scalar_type());
  // The sent cells keep their charges: x times the sent mask carries the
  // gradient to them (equal to y in value).
  flow.set(cells_name_, passes_gradient() ? x * (y != 0).to(x.scalar_type()) : y);
}

BestChoiceStage::BestChoiceStage(const StageSpec& spec, const Graph& built) : ClassicalCompressorStage(spec, built) {
  cells_ = cells_option(spec.options, 1, [](int e) { return ClassicalFormats().best_choice_cells_for(e); });
}

void BestChoiceStage::compress(const float* calq, int64_t rows, float* out) const {
  best_choice(calq, rows, cells_, out);
}

ThresholdCellsStage::ThresholdCellsStage(const StageSpec& spec, const Graph& built)
    : ClassicalCompressorStage(spec, built) {
  const Config& c = spec.options;
  threshold_ = static_cast<float>(c.number("threshold", 0.0, 0.0, 1e6));
  // As evaluation's threshold rows: the cells beside the header and the map.
  cells_ = cells_option(c, 2, [](int e) {
    const ClassicalFormats f;
    return std::min(48, (f.elink_bits * e - f.header_bits - f.map_bits) / f.threshold_cell_bits);
  });
}

void ThresholdCellsStage::compress(const float* calq, int64_t rows, float* out) const {
  threshold_truncated(calq, rows, threshold_, cells_, out);
}

SuperTriggerCellsStage::SuperTriggerCellsStage(const StageSpec& spec, const Graph& built)
    : ClassicalCompressorStage(spec, built) {
  const Config& c = spec.options;
  group_ = static_cast<int>(c.integer("group", 4, 4, 16));
  if (group_ != 4 && group_ != 16)
    throw Error(key_of(c, "group") + ": " + std::to_string(group_) + " (expected 4 or 16)");
  cells_ = 48 / group_;
}

void SuperTriggerCellsStage::compress(const float* calq, int64_t rows, float* out) const {
  super_trigger_cells(calq, rows, group_, out);
}

DDAQ_REGISTER_STAGE("best_choice", BestChoiceStage);
DDAQ_REGISTER_STAGE("threshold_cells", ThresholdCellsStage);
DDAQ_REGISTER_STAGE("super_trigger_cells", SuperTriggerCellsStage);

ModuleSumStage::ModuleSumStage(const StageSpec& spec, const Graph&)
    : ModuleStage(spec.name), none_(std::make_shared<torch::nn::Module>()) {
  const Config& c = spec.options;
  bits_ = static_cast<int>(c.integer("bits", 9, 1, 32));
  integer_bits_ = static_cast<int>(c.integer("integer_bits", 4, 0, 32));
  if (integer_bits_ > bits_)
    throw Error(key_of(c, "integer_bits") + ": " + std::to_string(integer_bits_) + " is more than bits (" +
                std::to_string(bits_) + ")");
  charges_ = spec.read("charges");
  sum_ = spec.write("sum");
}

void ModuleSumStage::forward(NamedTensors& flow) {
  const torch::Tensor x = flow.get(charges_);
  const torch::Tensor v = torch::log2(1.0 + x.reshape({x.size(0), -1}).sum(1, true).clamp_min(0.0));
  // ufixed<bits, integer_bits>, TRN and SAT: floor onto the step, at most the largest code.
  const double step = std::ldexp(1.0, integer_bits_ - bits_);
  const double top = std::ldexp(1.0, integer_bits_) - step;
  const torch::Tensor q = (torch::floor(v / step) * step).clamp_max(top);
  flow.set(sum_, v + (q - v).detach());
}

ConcatStage::ConcatStage(const StageSpec& spec, const Graph&)
    : ModuleStage(spec.name), none_(std::make_shared<torch::nn::Module>()) {
  first_ = spec.read("first");
  second_ = spec.read("second");
  output_ = spec.write("output");
}

void ConcatStage::forward(NamedTensors& flow) {
  const torch::Tensor a = flow.get(first_), b = flow.get(second_);
  if (a.size(0) != b.size(0))
    throw Error("stage '" + name() + "': '" + first_ + "' and '" + second_ + "' hold different event counts");
  flow.set(output_, torch::cat({a.reshape({a.size(0), -1}), b.reshape({b.size(0), -1})}, 1));
}

DeadCellsStage::DeadCellsStage(const StageSpec& spec, const Graph& built)
    : ModuleStage(spec.name), holder_(std::make_shared<torch::nn::Module>()) {
  const Config& c = spec.options;
  in_ = spec.read("charges");
  out_ = spec.write("charges");
  const std::vector<int64_t> shape = built.probe_shape(in_);
  if (shape.empty()) throw Error(key_of(c, "reads") + ": the shape of '" + in_ + "' is not known here");
  const int64_t cells = shape.back();
  if (!c.has("cells") && !c.has("fraction")) throw Error(key_of(c, "cells") + ": give cells and/or fraction");
  std::vector<bool> dead(static_cast<size_t>(cells), false);
  for (int64_t i : c.integers("cells", {}, 0, cells - 1)) dead[static_cast<size_t>(i)] = true;
  const double fraction = c.number("fraction", 0.0, 0.0, 1.0);
  if (fraction > 0) {
    // Its own generator: the mask does not depend on what else the graph draws.
    auto gen =
        at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(c.integer("seed", 1, 0, int64_t(1) << 62)));
    const torch::Tensor order = torch::randperm(cells, gen, torch::kLong);
    const auto n = static_cast<int64_t>(std::llround(fraction * static_cast<double>(cells)));
    for (int64_t k = 0; k < n; ++k) dead[static_cast<size_t>(order[k].item<int64_t>())] = true;
  }
  std::vector<float> alive(static_cast<size_t>(cells), 1.0f);
  for (int64_t i = 0; i < cells; ++i)
    if (dead[static_cast<size_t>(i)]) {
      dead_.push_back(i);
      alive[static_cast<size_t>(i)] = 0.0f;
    }
  alive_ = holder_->register_buffer("alive", torch::tensor(alive));
}

void DeadCellsStage::forward(NamedTensors& flow) {
  const torch::Tensor x = flow.get(in_);
  flow.set(out_, x * alive_.to(x.scalar_type()));
}

DDAQ_REGISTER_STAGE("dead_cells", DeadCellsStage);
DDAQ_REGISTER_STAGE("module_sum", ModuleSumStage);
DDAQ_REGISTER_STAGE("concat", ConcatStage);

}  // namespace ddaq
