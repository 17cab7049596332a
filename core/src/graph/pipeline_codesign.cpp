// The ECON-T pipeline's co-design operations: exact latent widths and
// e-links, projections onto e-link, FPGA and energy budgets, the
// relaxed-phase floors, silent units (pipeline.h states the contracts).
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>

#include "ddaq/core/pipeline.h"
#include "ddaq/core/stages.h"
#include "ddaq/error.h"
#include "ddaq/quant/layers.h"
#include "ddaq/surrogates/energy.h"
#include "ddaq/surrogates/fpga_resources.h"
#include "ddaq/surrogates/link_budget.h"
#include "pipeline_impl.h"

namespace ddaq {

namespace {
// Removes the weakest unit of the hidden layer with the most units left
// (the last weighted layer makes the latents and is never pruned); false
// when no unit can go.
bool drop_weakest_hidden_unit(const QuantizedStack& encoder) {
  std::vector<std::shared_ptr<QLayerImpl>> hidden;
  for (const auto& l : encoder->layers())
    if (l->kept_units() > 0) hidden.push_back(l);
  if (!hidden.empty()) hidden.pop_back();
  std::shared_ptr<QLayerImpl> widest;
  for (const auto& l : hidden)
    if (!widest || l->kept_units() > widest->kept_units()) widest = l;
  return widest && widest->drop_weakest_unit();
}
}  // namespace

int EconTPipeline::latent_bits() const {
  return impl_->encoder->stack->layers().back()->output_quantizer()->export_type().width;
}

namespace {
// Each latent's integer width as export rounds it (integer bits of the
// range + rounded fractional bits; the fixed width without learned bits),
// sent or not: [n] doubles on the CPU.
torch::Tensor latent_width_per_unit(const FixedPointQuantizer& q, int64_t n, int fixed_width) {
  if (!q->options().learnable()) return torch::full({n}, static_cast<double>(fixed_width), torch::kDouble);
  return q->bits().detach().to(torch::kCPU, torch::kDouble).round().clamp_min(0).expand({1, n}).flatten().contiguous();
}
}  // namespace

std::vector<int> EconTPipeline::latent_widths() const {
  const auto q = impl_->encoder->stack->layers().back()->output_quantizer();
  const int64_t n = impl_->options.latent();
  std::vector<int> out(static_cast<size_t>(n));
  const torch::Tensor w = latent_width_per_unit(q, n, latent_bits());
  for (int64_t k = 0; k < n; ++k) out[k] = static_cast<int>(w.data_ptr<double>()[k]);
  // Latents whose gates are closed are not sent.
  std::vector<char> sent(static_cast<size_t>(n), 0);
  for (int64_t k : transmitted_latents()) sent[static_cast<size_t>(k)] = 1;
  for (int64_t k = 0; k < n; ++k)
    if (!sent[static_cast<size_t>(k)]) out[static_cast<size_t>(k)] = 0;
  return out;
}

std::vector<int64_t> EconTPipeline::transmitted_latents() const {
  std::vector<int64_t> kept;
  if (impl_->options.learn_latent_gates())
    kept = last_weighted_layer(impl_->encoder->stack)->kept_unit_indices();
  else
    for (int64_t k = 0; k < impl_->options.latent(); ++k) kept.push_back(k);
  return kept;
}

int64_t EconTPipeline::payload_bits() const {
  int64_t sum = 0;
  for (int w : latent_widths()) sum += w;
  return sum;
}

void EconTPipeline::fit_latent_payload(int64_t max_payload_bits) {
  auto q = impl_->encoder->stack->layers().back()->output_quantizer();
  const bool gates = impl_->options.learn_latent_gates();
  if (!q->options().learnable() && !gates)
    throw Error("pipeline: the latent bits are fixed and there are no latent gates; nothing to fit to a payload");
  int64_t n = impl_->options.latent();
  if (gates) last_weighted_layer(impl_->encoder->stack)->set_min_kept_units(1);  // the projection decides now
  if (gates) {
    // The latents the gates keep; then the weakest go while even the
    // narrowest width (1 bit learned, else the fixed width) does not fit.
    // How many latents: with a fixed width, as many as fit (more latents
    // inside the budget cost nothing); with learned bits, those the gates
    // keep open, within [budget / 16, budget] (widths 1..16). The strongest
    // gates (largest logits) are the ones kept.
    const auto layer = last_weighted_layer(impl_->encoder->stack);
    const int64_t budget = std::max<int64_t>(1, max_payload_bits);
    const int64_t k = q->options().learnable()
                          ? std::min(budget, std::max((budget + 15) / 16, layer->kept_units()))
                          : budget / latent_bits();
    layer->keep_strongest_units(k);
    n = layer->kept_units();
    if (!q->options().learnable()) return;
  }
  if (q->options().granularity() != Granularity::PerTensor) {
    fit_latent_widths(max_payload_bits);
    return;
  }
  // One width for all latents (the exported latent type): the widest that
  // fits. Also upwards: finer latent steps cost no e-links inside the budget
  // (the Lagrangian's relaxation may have stopped below the capacity).
  const int64_t width = std::min<int64_t>(16, std::max<int64_t>(0, max_payload_bits) / n);
  const double integer = q->integer_bits().detach().to(torch::kCPU, torch::kDouble).max().item<double>();
  const torch::Tensor f = torch::full(q->bits().sizes(), static_cast<double>(width) - integer, torch::kDouble);
  q->set_fractional_bits(f, /*freeze_range=*/true);
  impl_->pinned_latent_fractional = f;
}

void EconTPipeline::fit_latent_widths(int64_t max_payload_bits) {
  auto q = impl_->encoder->stack->layers().back()->output_quantizer();
  const auto layer = last_weighted_layer(impl_->encoder->stack);
  const QuantizerOptions& o = q->options();
  const double integer = q->integer_bits().detach().to(torch::kCPU, torch::kDouble).max().item<double>();
  // Widths a sent latent may take: fractional bits within the limits, at
  // least 1 bit, at most 16.
  const double lo = std::max(1.0, integer + o.min_fractional());
  const double hi = std::min(16.0, integer + o.max_fractional());
  const torch::Tensor learned = (integer + q->learned_fractional_bits().to(torch::kCPU, torch::kDouble)).flatten();
  // The learned widths, all shifted by one offset d and rounded, keep their
  // differences; the smallest d whose widths fit is taken (d < 0 widens:
  // spare capacity costs no e-link), then bits left over go one each by
  // largest remainder.
  auto widths = [&](double d, const std::vector<int64_t>& sent) {
    std::vector<double> w(static_cast<size_t>(learned.numel()), 0.0);
    for (int64_t k : sent) w[k] = std::min(hi, std::max(lo, std::round(learned[k].item<double>() - d)));
    return w;
  };
  auto total = [](const std::vector<double>& w) { return std::accumulate(w.begin(), w.end(), 0.0); };
  std::vector<int64_t> sent = transmitted_latents();
  const double budget = static_cast<double>(std::max<int64_t>(0, max_payload_bits));
  while (total(widths(1e9, sent)) > budget) {  // even the narrowest widths do not fit
    if (!impl_->options.learn_latent_gates() || sent.size() <= 1)
      throw Error("pipeline: " + std::to_string(sent.size()) + " latents of at least " +
                  std::to_string(static_cast<int>(lo)) + " bits do not fit a payload of " +
                  std::to_string(max_payload_bits) + " bits");
    layer->keep_strongest_units(static_cast<int64_t>(sent.size()) - 1);
    sent = transmitted_latents();
  }
  double a = -64.0, b = 64.0;  // total(widths(b)) fits; bisect to the smallest fitting offset
  for (int it = 0; it < 60; ++it) {
    const double m = 0.5 * (a + b);
    (total(widths(m, sent)) <= budget ? b : a) = m;
  }
  std::vector<double> w = widths(b, sent);
  // Bits left over (rounding ties): one more to the latents whose learned
  // widths were cut the most (largest remainder), while they fit.
  std::vector<int64_t> order = sent;
  std::stable_sort(order.begin(), order.end(), [&](int64_t i, int64_t j) {
    return learned[i].item<double>() - b - w[i] > learned[j].item<double>() - b - w[j];
  });
  double used = total(w);
  for (int64_t k : order)
    if (used + 1 <= budget && w[k] + 1 <= hi) {
      w[k] += 1;
      used += 1;
    }
  torch::Tensor f = torch::full({learned.numel()}, static_cast<double>(o.min_fractional()), torch::kDouble);
  for (int64_t k : sent) f[k] = w[k] - integer;
  f = f.view(q->bits().sizes());
  q->set_fractional_bits(f, /*freeze_range=*/true);
  impl_->pinned_latent_fractional = f;
}

void EconTPipeline::pin_latent_bits() {
  if (!impl_->pinned_latent_fractional.defined()) return;
  impl_->encoder->stack->layers().back()->output_quantizer()->set_fractional_bits(impl_->pinned_latent_fractional, true);
}

int EconTPipeline::fit_encoder_resources(const std::map<std::string, double>& limits) {
  for (const auto& l : impl_->encoder->stack->layers()) {
    l->harden_gates();  // keeps the floor's units (keep_units_that_fit) too
    l->set_min_kept_units(1);
  }
  const AnalyticResourceModel& m = AnalyticResourceModel::shipped();
  auto over = [&] {
    const ResourceValues r = m.predict(design_from(encoder_description(), 1));
    for (const auto& kv : limits) {
      if (kv.first == "lut" && r[static_cast<size_t>(ResourceTarget::LUT)] > kv.second) return true;
      if (kv.first == "ff" && r[static_cast<size_t>(ResourceTarget::FF)] > kv.second) return true;
      if (kv.first == "dsp" && r[static_cast<size_t>(ResourceTarget::DSP)] > kv.second) return true;
    }
    return false;
  };
  int removed = 0;
  if (limits.count("dsp")) {
    // DSPs come from layers whose weights have 9 bits or more: learned
    // weight widths that wide go to 8 bits, layer by layer, while the limit
    // is exceeded; then every learned width is frozen and pinned (as the
    // energy projection does), so the fine-tune cannot widen them again.
    torch::NoGradGuard no_grad;
    while (over()) {
      FixedPointQuantizer widest{nullptr};
      for (const auto& l : impl_->encoder->stack->layers()) {
        const FixedPointQuantizer w = l->weight_quantizer();
        if (w && w->options().learnable() && w->export_type().width >= 9 &&
            (!widest || w->export_type().width > widest->export_type().width))
          widest = w;
      }
      if (!widest) break;
      // The exported type takes the largest integer and the largest
      // fractional bits over the groups: fractional bits <= 8 - max integer.
      const torch::Tensor f = (widest->bits() - widest->integer_bits()).round();
      widest->set_fractional_bits(torch::min(f, 8.0 - widest->integer_bits().max()), /*freeze_range=*/true);
      ++removed;
    }
    fit_encoder_energy({});  // freezes and pins every learned width
  }
  while (over() && drop_weakest_hidden_unit(impl_->encoder->stack)) ++removed;
  return removed;
}

int EconTPipeline::fit_encoder_energy(const std::map<std::string, double>& limits) {
  torch::NoGradGuard no_grad;
  std::vector<FixedPointQuantizer> learned;
  const auto layers = impl_->encoder->stack->layers();
  if (layers.front()->output_quantizer()->options().learnable()) learned.push_back(layers.front()->output_quantizer());
  for (const auto& l : layers) {
    const FixedPointQuantizer w = l->weight_quantizer();
    if (w && w->options().learnable()) learned.push_back(w);
  }
  auto over = [&] {
    const ModelDescription d = encoder_description();
    double ebops = 0;
    for (const auto& l : d) ebops += l.ebops;
    const double power = estimate_energy(d).power_mw;
    for (const auto& kv : limits)
      if ((kv.first == "ebops" && ebops > kv.second) || (kv.first == "power_mw" && power > kv.second)) return true;
    return false;
  };
  // Rounded fractional bits as the forward pass uses them.
  auto fractional = [](const FixedPointQuantizer& q) { return (q->bits() - q->integer_bits()).round(); };
  // No limits: only the pins of the current widths (a resumed run). Nothing
  // is described then: describing a stack observes its weights, which would
  // move ranges the run being continued had frozen.
  for (auto q : learned)
    if (limits.empty()) q->set_range_frozen(true);
  int removed = 0;
  // Per quantizer, its elements that can still lose a fractional bit.
  auto narrowable = [&](const FixedPointQuantizer& q) {
    const double narrowest = q->options().type().is_signed ? 2 : 1;
    return fractional(q) > narrowest - q->integer_bits();
  };
  while (!limits.empty() && over()) {
    // The quantizer whose exported type is widest (the energy model charges
    // that width on every multiply and accumulator).
    FixedPointQuantizer widest{nullptr};
    int widest_bits = 0;
    for (const auto& q : learned) {
      const int w = q->export_type().width;
      if (narrowable(q).any().item<bool>() && w > widest_bits) widest = q, widest_bits = w;
    }
    if (!widest) break;
    // Only its elements with the most fractional bits lose one (all of them
    // for one shared width): the exported width is the largest integer bits
    // plus the largest fractional bits, so this narrows the type by a bit
    // at the cost of the fewest weights. Cutting every element instead
    // zeroed most weights of a per-weight layer whose type one outlier made
    // 22 bits wide (measured: a real-data power budget at half died at the projection).
    const torch::Tensor fr = fractional(widest), can = narrowable(widest);
    const torch::Tensor finest = can & (fr >= fr.masked_select(can).max());
    widest->set_fractional_bits(torch::where(finest, fr - 1, fr), /*freeze_range=*/true);
    ++removed;
  }
  // Widths alone did not reach the limit (fixed weights, a low limit):
  // hidden units go too, the weakest of the layer with the most (as in
  // fit_encoder_resources; the latent layer is never pruned). Units only
  // after widths: power is not monotone in the widths (narrower widths
  // change ranges and zero weights), so no cheaper order is known to work.
  while (!limits.empty() && over() && drop_weakest_hidden_unit(impl_->encoder->stack)) ++removed;
  impl_->pinned_encoder_bits.clear();
  for (auto q : learned) {
    const torch::Tensor f = fractional(q).detach().clone();
    q->set_fractional_bits(f, /*freeze_range=*/true);
    impl_->pinned_encoder_bits.emplace_back(q, f);
  }
  return removed;
}

void EconTPipeline::pin_encoder_bits() {
  for (auto& qf : impl_->pinned_encoder_bits) qf.first->set_fractional_bits(qf.second, true);
}

int64_t EconTPipeline::raise_silent_units(const at::Tensor& calq, const std::vector<std::string>& frozen) {
  auto is_frozen = [&](const std::string& stage) {
    return std::find(frozen.begin(), frozen.end(), stage) != frozen.end();
  };
  const torch::Tensor x = checked_input(impl_->graph.spec(), calq);
  torch::NoGradGuard no_grad;
  // The stages before the encoder, as exported (hard zero suppression).
  auto flow_before = [&](const Stage* stop) {
    NamedTensors flow;
    flow.set(impl_->graph.spec().input, x);
    for (Stage* s : impl_->graph.stages()) {
      if (s == stop) break;
      const bool was = dynamic_cast<ModuleStage*>(s) ? dynamic_cast<ModuleStage*>(s)->training() : true;
      s->train(false);
      s->forward(flow);
      s->train(was);
    }
    return flow;
  };
  const NamedTensors flow = flow_before(impl_->encoder);
  const torch::Tensor grid = impl_->encoder->stack_input(flow.get(impl_->encoder->input_name()));
  int64_t raised = is_frozen(impl_->encoder->name()) ? 0 : impl_->encoder->stack->raise_silent_units(grid);
  const bool enc_was = impl_->encoder->stack->is_training();
  impl_->encoder->stack->eval();
  const torch::Tensor latent = impl_->encoder->stack->forward(grid).reshape({calq.size(0), -1});
  impl_->encoder->stack->train(enc_was);
  const bool classifier_on_latent =
      impl_->classifier && impl_->classifier->input_name() == impl_->encoder->output_name();
  if (classifier_on_latent && !is_frozen(impl_->classifier->name()))
    raised += impl_->classifier->stack->raise_silent_units(latent);
  // Every other quantized stack (e.g. references beside the encoder), in
  // graph order, on what the stages before it make of these events.
  for (Stage* s : impl_->graph.stages()) {
    auto* q = dynamic_cast<QuantizedStackStage*>(s);
    if (!q || q == impl_->encoder || (q == impl_->classifier && classifier_on_latent) || is_frozen(q->name())) continue;
    raised += q->stack->raise_silent_units(q->stack_input(flow_before(q).get(q->input_name())));
  }
  return raised;
}

void EconTPipeline::keep_latents_that_fit(int64_t max_payload_bits) {
  if (!impl_->options.learn_latent_gates()) return;
  const auto q = impl_->encoder->stack->layers().back()->output_quantizer();
  const auto layer = last_weighted_layer(impl_->encoder->stack);
  const int64_t n = impl_->options.latent();
  // Current integer widths (as the exact payload counts them), in the order
  // of the gate logits, strongest first: the longest prefix that fits.
  const torch::Tensor width = latent_width_per_unit(q, n, latent_bits());
  const torch::Tensor logits = layer->named_parameters(false)["gate_logits"].detach().to(torch::kCPU);
  const torch::Tensor order = std::get<1>(logits.sort(0, /*descending=*/true));
  const torch::Tensor used = width.index_select(0, order).cumsum(0);
  const int64_t fit = (used <= static_cast<double>(max_payload_bits)).sum().item<int64_t>();
  layer->set_min_kept_units(fit);
}

void EconTPipeline::keep_units_that_fit(const std::map<std::string, double>& limits, double fixed_energy_pj) {
  torch::NoGradGuard no_grad;
  std::vector<std::shared_ptr<QLayerImpl>> weighted;
  for (const auto& l : impl_->encoder->stack->layers())
    if (l->unit_mask().defined()) weighted.push_back(l);
  const auto shapes = impl_->encoder->stack->resource_shapes();
  const size_t n = shapes.size();
  if (weighted.size() != n || n < 2) return;
  // The design with every hidden unit the mask keeps and the latents sent
  // now, as dense-equivalent layers (inputs per unit from the shapes).
  std::vector<double> per_unit(n), units(n), count(n), weight_bits(n), act_bits(n);
  double share = 1.0;
  for (size_t i = 0; i < n; ++i) {
    units[i] = static_cast<double>(weighted[i]->unit_mask().numel());
    per_unit[i] = shapes[i].in.item<double>() / share;
    share = shapes[i].kept_share.item<double>();
    weight_bits[i] = shapes[i].weight_bits.item<double>();
    act_bits[i] = shapes[i].act_bits.item<double>();
    count[i] = i + 1 < n ? units[i] : shapes[i].out.item<double>();
  }
  // Energy budgets: each layer's relaxed EBOPs per open unit at the current
  // widths; a layer's EBOPs scale with its units and its kept inputs (as
  // the exact description counts them).
  const bool energy = limits.count("ebops") + limits.count("power_mw") > 0;
  std::vector<double> ebops_per_unit(n, 0.0);
  if (energy) {
    torch::Tensor bits;
    size_t i = 0;
    for (const auto& l : impl_->encoder->stack->layers()) {
      if (bits.defined() && l->unit_mask().defined() && i < n)
        ebops_per_unit[i++] = l->ebops(bits).item<double>() / std::max(1e-6, l->unit_mask().sum().item<double>());
      bits = l->output_quantizer()->bits();
    }
  }
  auto ebops_of = [&] {
    double ebops = 0;
    for (size_t i = 0; i < n; ++i) ebops += ebops_per_unit[i] * count[i] * (i > 0 ? count[i - 1] / units[i - 1] : 1.0);
    return ebops;
  };
  const double full_ebops = std::max(1e-9, ebops_of());
  const AnalyticResourceModel& m = AnalyticResourceModel::shipped();
  auto over = [&] {
    if (energy) {
      const double ebops = ebops_of();
      // The rest of the estimate (mostly one add per multiply) shrinks with
      // the multiplies: kept at the full design's value it was so
      // conservative that the floor let the gates collapse anyway.
      const EnergyModel e;
      const double power =
          (ebops * e.mult_pj_per_bit_product + fixed_energy_pj * ebops / full_ebops) * (e.inference_rate_hz * 1e-9);
      if ((limits.count("ebops") && ebops > limits.at("ebops")) ||
          (limits.count("power_mw") && power > limits.at("power_mw")))
        return true;
    }
    if (!limits.count("lut") && !limits.count("ff")) return false;
    DesignSpec d;
    for (size_t i = 0; i < n; ++i) {
      const double in = per_unit[i] * (i > 0 ? count[i - 1] / units[i - 1] : 1.0);
      d.layers.push_back({static_cast<int64_t>(std::llround(in)), static_cast<int64_t>(count[i]), weight_bits[i],
                          act_bits[i], 1});
    }
    const ResourceValues r = m.predict(d);
    return (limits.count("lut") && r[static_cast<size_t>(ResourceTarget::LUT)] > limits.at("lut")) ||
           (limits.count("ff") && r[static_cast<size_t>(ResourceTarget::FF)] > limits.at("ff"));
  };
  // The projection's order: a unit of the widest hidden layer at a time.
  while (over()) {
    size_t widest = n;
    for (size_t i = 0; i + 1 < n; ++i)
      if (count[i] > 1 && (widest == n || count[i] > count[widest])) widest = i;
    if (widest == n) break;
    count[widest] -= 1;
  }
  for (size_t i = 0; i + 1 < n; ++i) weighted[i]->set_min_kept_units(static_cast<int64_t>(count[i]));
}

void EconTPipeline::clamp_bits_to_limits() {
  for (Stage* stage : impl_->graph.stages())
    if (const auto* s = dynamic_cast<QuantizedStackStage*>(stage))
      for (const auto& m : s->stack->modules())
        if (const auto q = std::dynamic_pointer_cast<FixedPointQuantizerImpl>(m)) q->clamp_to_limits();
}

void EconTPipeline::pin_encoder_gates() {
  for (const auto& l : impl_->encoder->stack->layers()) l->harden_gates();
}

int EconTPipeline::elinks() const { return impl_->link->links_for_payload(payload_bits()); }
int EconTPipeline::link_bits() const { return impl_->link->link_bits(); }
int64_t EconTPipeline::payload_capacity(int links) const { return impl_->link->payload_capacity(links); }

}  // namespace ddaq
