#!/usr/bin/env bash
# Plants deliberate one-line bugs, one at a time, rebuilds, runs the tests
# meant to catch each, and prints caught/missed. Every mutation must be caught.
#
#   bash scripts/mutations.sh            # all
#   bash scripts/mutations.sh emulator   # those whose name contains "emulator"
#
# Each mutation replaces one exact string in one source file (the file is
# restored afterwards, also on Ctrl-C); the build goes to build/ (or
# $DDAQ_BUILD_DIR). Takes about a minute per mutation with ccache warm.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${DDAQ_BUILD_DIR:-$root/build}"
filter="${1:-}"

# name | file | exact text | replacement | ctest -R regex
mutations=(
  "emulator-normalization-scale|core/src/export/emulator.cpp|std::ldexp(1.0f, exponent - 1)|std::ldexp(1.0f, exponent - 2)|python.firmware.emulator_library_equals_predict_bit_for_bit"
  "pipeline-normalization-float32-log2|core/src/graph/stages.cpp|return torch::ldexp(torch::ones_like(sum), exponent - 1).to(kept.scalar_type());|return torch::exp2(torch::floor(torch::log2(sum.to(torch::kFloat)))).to(kept.scalar_type());|front end: normalization"
  "qonnx-trailing-identity|quant/src/qonnx.cpp|      if (out == x) out = \"output\";|      if (out == x) out = x;\n  g.node(\"Identity\", \"output_identity\", {x}, \"output\");|python.firmware.hls4ml_flow"
  "qonnx-conv-without-dilations|quant/src/qonnx.cpp|GraphBuilder::attr(n, \"dilations\", std::vector<int64_t>{1, 1});|(void)0;|python.firmware.hls4ml_flow"
  "testbench-without-bound-inputs|core/src/export/export.cpp|for (auto& x : accumulator_bound_inputs(model)) inputs.push_back(std::move(x));|(void)0;|python.firmware.testbench_inputs_catch"
  "hls-accumulator-one-bit-narrow|quant/src/hls.cpp|<< l.accumulator_type.hls_type() <<|<< FixedPointType(l.accumulator_type.width - 1, l.accumulator_type.integer - 1, true).hls_type() <<|ddaq export writes QONNX and HLS|python.firmware.xilinx"
  "encoder-input-detached|core/src/graph/stages.cpp|  const torch::Tensor y = stack->forward(stack_input(x));|  const torch::Tensor y = stack->forward(stack_input(input_ == \"normalized\" ? x.detach() : x));|gradient table"
  "classifier-input-detached|core/src/graph/stages.cpp|  const torch::Tensor y = stack->forward(stack_input(x));|  const torch::Tensor y = stack->forward(stack_input(input_ == \"latent\" ? x.detach() : x));|gradient table"
  "link-payload-halved|core/src/graph/stages.cpp|? latent_q->bits().mean() * sent.sum()|? latent_q->bits().mean() * 0.5 * sent.sum()|gradient table"
  "elink-boundary-strict|surrogates/src/link_budget.cpp|    if (payload_capacity(n) >= payload_bits) return n;|    if (payload_capacity(n) > payload_bits) return n;|capacity boundary"
  "budget-projection-skipped|core/src/train/trainer.cpp|    if (has_projection() && !applied) project();|    (void)0;|link term"
  "fpga-projection-skipped|core/src/train/trainer.cpp|    if (!fpga_limits().empty()) pipeline_.fit_encoder_resources(fpga_limits());|    (void)0;|a LUT budget"
  "resource-floor-dropped|surrogates/src/fpga_resources.cpp|    v[k] = std::max(floor[k], s);|    v[k] = s;|outside the fit data"
  "learned-resource-features-unclamped|surrogates/src/resource_net.cpp|  const torch::Tensor phi = torch::max(torch::min(b.phi, impl_->feature_hi), impl_->feature_lo);|  const torch::Tensor phi = b.phi;|outside the fit data"
  "resource-model-not-monotone-in-bits|surrogates/src/fpga_resources.cpp|    mult_bits += per_cycle * l.weight_bits;|    mult_bits -= per_cycle * l.weight_bits;|monotone in bits"
  "lut-cost-without-gates|quant/src/layer_impls.h|    r.out = effective_mask(training).sum();|    r.out = mask.sum();|gradient table"
  "output-may-be-an-input|core/base/src/files.cpp|      if (o.exists && o.st.st_dev == st.st_dev && o.st.st_ino == st.st_ino)|      if (false)|reliability.outputs_never_destroy"
  "export-outputs-not-transactional|core/base/src/files.cpp|    if (g_transaction) {|    if (false) {|reliability.a_failed_export"
  "interrupt-without-checkpoint|core/src/train/trainer.cpp|          checkpoint();  // the step boundary|          (void)0;  // the step boundary|reliability.a_signal_stops"
  "resume-restores-parameters-only|core/src/train/checkpoint.cpp|    kv.second.copy_(it->second);|    if (kv.second.requires_grad()) kv.second.copy_(it->second);|reliability.a_signal_stops"
  "fingerprint-without-augmentation|core/src/train/checkpoint.cpp|o.pileup_mu(), o.pileup_mu_min(), o.noise()}},|0.0, 0.0, 0.0}},|reliability.checkpoints_know_files"
  "fingerprint-by-path|core/src/train/checkpoint.cpp|{\"train_data\", file_identity(train_file)}|{\"train_data\", train_file}|reliability.checkpoints_know_files"
  "empty-wafers-kept|core/src/train/trainer.cpp|    summary_.empty_wafers_skipped += drop_empty_wafers(batch);|    (void)0;|reliability.empty_wafers"
  "non-finite-loss-not-stopped|core/src/train/trainer.cpp|    if (!torch::isfinite(grad).all().item<bool>())|    if (false)|reliability.a_non_finite_loss"
  "csv-float32-range-unchecked|core/src/data/csv_import.cpp|        if (std::fabs(value) > static_cast<double>(std::numeric_limits<float>::max()))|        if (false)|reliability.csv_values"
  "numeric-option-nan-accepted|core/app/options.cpp|        if (!std::isfinite(v))|        if (false)|reliability.every_numeric_option"
  "run-folder-not-guarded|core/app/commands_run.cpp|    } else if (!marker.empty() && !overwrite) {|    } else if (false) {|reliability.run_folder_rules"
  "python-ctrl-c-ignored|python/src/module.cpp|              check_python_signals();|              (void)0;|python.bindings.surrogate_from_a_path"
  "python-libtorch-error-not-translated|python/src/module.cpp|      PyErr_SetString(error.ptr(), ddaq::first_line(e.what_without_backtrace()).c_str());|      throw;|python.bindings.errors_are_ddaq_errors"
  "run-id-of-siblings-unchecked|core/src/graph/pipeline.cpp|    if (!expected_id.empty() && id != expected_id)|    if (false)|reliability.run_files"
  "edited-pipeline-json-accepted|core/src/graph/pipeline.cpp|  if (!expected_id.empty() && p.run_id() != expected_id)|  if (false)|reliability.run_files"
  "geometry-cell-moved|core/data/hgcal_geometry.csv|1,6,4,0.0,-2.4168015,12|1,6,4,0.3,-2.4168015,12|three-fold symmetric"
  "abandoned-temporaries-kept|core/base/src/files.cpp|    remove_tree(entry.path().string());|    (void)0;|reliability.temporaries_of_killed"
  "hdf5-timestamps-back|core/src/data/events.cpp|    H5::DSetCreatPropList props = untimed_dataset();|    H5::DSetCreatPropList props;|reliability.the_main_job"
  "latent-gates-not-in-payload|core/src/graph/stages.cpp|  const torch::Tensor sent = output_unit_mask(encoder_->stack);|    const torch::Tensor sent = torch::ones({48});|latent gates"
  "classifier-reads-every-latent|quant/src/layers.cpp|  if (!kept_inputs.empty() && static_cast<int64_t>(kept_inputs.size()) != input_shape_[0]) {|  if (false) {|latent gates"
  "latent-projection-keeps-all|core/src/graph/pipeline_codesign.cpp|    layer->keep_strongest_units(k);|    (void)k;|latent gates"
  "per-element-truncation-skipped|quant/src/integer_reference.cpp|  if (l.channel_fractional.empty()) return x;|  return x;|per-element widths"
  "per-latent-hls-truncation-skipped|quant/src/hls.cpp|            if (!l.channel_fractional.empty()) {|            if (false) {|emitted projects"
  "per-latent-qonnx-truncation-skipped|quant/src/qonnx.cpp|        if (!l.channel_fractional.empty()) x = g.channel_truncation(x, l, p + \"_channel_quant\");|        (void)0;|python.qonnx"
  "per-latent-projection-ignores-budget|core/src/graph/pipeline_codesign.cpp|    (total(widths(m, sent)) <= budget ? b : a) = m;|    b = -64.0;|per-latent bits"
  "per-latent-leftover-bits-unused|core/src/graph/pipeline_codesign.cpp|    if (used + 1 <= budget && w[k] + 1 <= hi) {|    if (false) {|per-latent bits|leftover bits away"
  "energy-projection-keeps-units|core/src/graph/pipeline_codesign.cpp|  while (!limits.empty() && over() && drop_weakest_hidden_unit(impl_->encoder->stack)) ++removed;|  (void)0;|an EBOPs budget"
  "dsp-projection-skipped|core/src/graph/pipeline_codesign.cpp|  if (limits.count(\"dsp\")) {|  if (false) {|a DSP budget"
  "dsp-widths-not-pinned|core/src/graph/pipeline_codesign.cpp|    fit_encoder_energy({});  // freezes and pins every learned width|    (void)0;|a DSP budget"
  "energy-projection-skipped|core/src/train/trainer.cpp|    if (!energy_limits().empty()) pipeline_.fit_encoder_energy(energy_limits());|    (void)0;|an EBOPs budget"
  "latent-floor-not-set|core/src/train/trainer.cpp|pipeline_.keep_latents_that_fit(payload_limit());|(void)0;|keeps the latents that fit"
  "latent-floor-ignored|quant/src/layer_impls.h|    w_.min_kept = std::max<int64_t>(1, k);|    return;|never closes more latents|keeps the latents that fit"
  "graph-read-before-write-unchecked|core/src/graph/graph.cpp|      if (!writer.count(kv.second)) {|      if (false) {|graph errors"
  "graph-float-stage-not-saved|core/src/graph/pipeline.cpp|        for (const auto& p : s->named_parameters()) archive.write(archive_key(*s, p.first), p.second.detach());|        for (const auto& p : s->named_parameters()) if (s->name() != \"gain\") archive.write(archive_key(*s, p.first), p.second.detach());|registration alone"
  "float-stack-head-ignored|core/src/graph/stages.cpp|    y = torch::softmax(y, 1);|    y = y;|16x16 pixel detector"
  "link-budget-header-ignored|core/src/graph/stages.cpp|{\"links\", (p + header_bits_) / static_cast<double>(link_bits_)}|{\"links\", p / static_cast<double>(link_bits_)}|16x16 pixel detector"
  "objective-weight-ignored|core/src/train/trainer.cpp|        objective.add(o.name, o.weight, binary_cross_entropy_logits(|        objective.add(o.name, 1.0, binary_cross_entropy_logits(|objectives name the tensors"
  "objective-auc-of-first-logits|core/src/eval/evaluation.cpp|        const at::Tensor l = r.get(objective_output(o, \"logits\")).to(at::kDouble).contiguous();|        const at::Tensor l = r.get(\"logits\").to(at::kDouble).contiguous();|objectives name the tensors"
  "objective-tensor-unchecked|core/src/graph/graph.cpp|      if (!writer.count(tensor)) {|      if (false) {|objective errors"
  "module-sum-rounded|core/src/graph/stages_classical.cpp|(torch::floor(v / step) * step)|(torch::round(v / step) * step)|classical compressor stages"
  "best-choice-gradient-everywhere|core/src/graph/stages_classical.cpp|passes_gradient() ? x * (y != 0).to(x.scalar_type()) : y|passes_gradient() ? x * (y != 0).to(x.scalar_type()) + (x - x.detach()) : y|classical compressor stages"
  "overwrite-keeps-old-stacks|core/app/commands_run.cpp|        if (fs::path(f).extension() == \".qstack\") {|        if (false) {|run_folder_rules"
  "regression-term-dropped|core/src/train/trainer.cpp|        objective.add(o.name, o.weight, regression_mse(o, r));|        objective.add(o.name, 0.0, regression_mse(o, r));|a regression objective"
  "regression-broadcast|core/src/graph/pipeline.cpp|  return (p.reshape({-1}) - y.reshape({-1})).pow(2).mean();|  return (p - y).pow(2).mean();|a regression objective"
  "dead-cells-fraction-ignored|core/src/graph/stages_classical.cpp|  if (fraction > 0) {|  if (false) {|dead_cells"
  "python-stage-parameters-hidden|python/src/graph_bindings.cpp|    return named(module_, \"named_parameters\");|    return {};|graph_runs_any_section"
  "batchnorm-probe-in-training|core/src/graph/stages.cpp|      net_->eval();|      (void)0;|float_stack batchnorm"
  "detector-metric-in-file-units|core/src/graph/pipeline.cpp|  return g.metric(g.pitch());|  return g.metric(1.0);|pixel16.json trains through"
  "geometry-file-not-embedded|core/src/graph/graph.cpp|  spec.json = section.dump();|  (void)section;|pixel16.json trains through"
  "generic-links-as-econt|core/src/graph/pipeline_codesign.cpp|int64_t EconTPipeline::payload_capacity(int links) const { return impl_->link->payload_capacity(links); }|int64_t EconTPipeline::payload_capacity(int links) const { return AutoencoderFrame().payload_capacity(links); }|pixel16.json trains through"
  "layout-geometry-transposed|core/src/graph/layouts.cpp|    at[i] = {static_cast<int64_t>(cv), static_cast<int64_t>(cu)};|    at[i] = {static_cast<int64_t>(cu), static_cast<int64_t>(cv)};|layout geometry"
  "front-end-empty-position|core/src/data/front_end.cpp|grid[k] = grid_to_cell[k] < 0 ? 0.0f : |grid[k] = grid_to_cell[k] < 0 ? 1.0f : |layout geometry: a detector"
  "multiclass-loss-binary-labels|core/src/train/trainer.cpp|torch::nll_loss(torch::log_softmax(class_logits(o, r), 1), classes)|torch::nll_loss(torch::log_softmax(class_logits(o, r), 1), labels.to(torch::kLong))|a multi-class head"
  "multiclass-accuracy-least-probable|core/src/eval/evaluation.cpp|      correct += std::max_element(p, p + k) - p == t.label[i];|      correct += std::min_element(p, p + k) - p == t.label[i];|a multi-class head"
  "label-check-skipped-in-eval|core/src/eval/evaluation.cpp|  if (t.has_labels()) check_labels(|  if (false) check_labels(|a multi-class head"
  "allocation-ties-take-more-elinks|core/src/detector/allocation.cpp|(a.cost == b.cost && a.elinks < b.elinks)|(a.cost == b.cost && a.elinks > b.elinks)|allocation: the dynamic program"
  "allocation-ignores-what-it-spends|core/src/detector/allocation.cpp|        const Best& before = best[b - static_cast<size_t>(w)];|        const Best& before = best[b];|allocation: the dynamic program"
  "plan-flux-one-sinh|core/src/detector/occupancy.cpp|weight->second) * std::tanh(s.eta) * sh * sh / (s.z * s.z);|weight->second) * std::tanh(s.eta) * sh / (s.z * s.z);|occupancy model: layer distances"
  "plan-layer-z-inverted|core/src/detector/occupancy.cpp|r.push_back(std::sinh(e) / std::sinh(it->second));|r.push_back(std::sinh(it->second) / std::sinh(e));|occupancy model: layer distances"
  "plan-eta-first-neighbour|core/src/detector/occupancy.cpp|if (d == best) sum += e, ++n;|if (d == best && n == 0) sum += e, ++n;|occupancy model: layer distances"
  "plan-calibration-backwards|core/src/detector/occupancy.cpp|config.target_mean_occupancy ? lo : hi) = mid;|config.target_mean_occupancy ? hi : lo) = mid;|occupancy model: layer distances"
  "plan-duplicate-choices-kept|core/src/detector/plan.cpp|(d.elinks == c.elinks && d.emd == c.emd);|(false);|group tables: layer x eta ring"
  "plan-uplinks-rounded-down|core/src/detector/plan.cpp|  for (const auto& [key, e] : per_motherboard) uplinks += (e + per_uplink - 1) / per_uplink;|  for (const auto& [key, e] : per_motherboard) uplinks += e / per_uplink;|e-link tables judged"
  "plan-choice-beyond-elinks|core/src/detector/plan.cpp|    if (c.elinks <= elinks && std::isfinite(c.emd)|    if (std::isfinite(c.emd)|e-link tables judged"
  "plan-scaling-smallest-first|core/src/detector/plan.cpp|{ return rest[a] > rest[b]; });|{ return rest[a] < rest[b]; });|e-link tables judged"
  "remove-tree-follows-links|core/base/src/files.cpp|FTW_PHYS);  // children first|0);  // children first|remove_tree removes"
  "signal-handler-not-installed|core/base/src/interrupts.cpp|for (int sig : {SIGINT, SIGTERM, SIGHUP}) sigaction(sig, &action, nullptr);|(void)action;|a signal on a thread started before installation"
  "target-after-threshold|core/src/graph/stages.cpp|  flow.set(target_, calq / calq.sum(1, true).clamp_min(1e-6));|  flow.set(target_, kept / sum.clamp_min(1e-6));|the loss target is the wafer before the threshold"
  "fill-ignores-uplink-slack|core/src/detector/plan.cpp|const int64_t most = std::min(list[b].slack, room);|const int64_t most = room;|fill_uplinks spends"
  "uplink-budget-ignored|core/src/detector/budgets.cpp|count_uplinks(model, f.elinks, user_bits) <= uplinks) return f;|true) return f;|lpGBT uplink budget"
  "decoder-hidden-ignored|core/src/graph/pipeline.cpp|            {\"hidden\", o.decoder_hidden()},|            {\"hidden\", 0},|decoder size"
  "power-price-not-applied|core/src/detector/budgets.cpp|    for (auto& c : g.choices) c.emd += lambda * c.power_mw;|    for (auto& c : g.choices) (void)c;|power budget: the plan fits"
  "pileup-scale-not-applied|core/src/detector/occupancy.cpp|    for (int c = 0; c < kCellsPerWafer; ++c) out[c] += scale * p[c];|    for (int c = 0; c < kCellsPerWafer; ++c) out[c] += p[c];|occupancy model: pileup"
  "pileup-scale-includes-signal|core/src/detector/occupancy.cpp|    m.pileup_scale = (config.reference_mean_sum - signal_sum) / pileup_sum;|    m.pileup_scale = config.reference_mean_sum / m.mean_sum;|occupancy model: pileup"
  "plan-draws-without-pileup-scale|core/src/detector/plan.cpp|      draw_module_wafer(rng, s.mu, signal, pool, w, model.pileup_scale);|      draw_module_wafer(rng, s.mu, signal, pool, w);|group tables: layer x eta ring"
  "plan-csv-field-count-unchecked|core/app/commands_detector.cpp|    if (rows_.back().size() != columns_.size())|    if (rows_.back().size() < columns_.size())|detector plan and compare"
  "plan-csv-whole-unchecked|core/app/commands_detector.cpp|  const long v = std::strtol(t.c_str(), &end, 10);|  const long v = std::strtol(t.c_str(), &end, 10);\n  end = const_cast<char*>(t.c_str() + t.size());|detector plan and compare"
  "plan-csv-number-unchecked|core/app/commands_detector.cpp|  const double v = std::strtod(t.c_str(), &end);|  const double v = std::strtod(t.c_str(), &end);\n  end = const_cast<char*>(t.c_str() + t.size());|detector plan and compare"
  "layer-weight-not-applied|core/src/detector/occupancy.cpp|    s.flux = (weight == config.layer_weights.end() ? 1.0 : weight->second) * std::tanh(s.eta) * sh * sh / (s.z * s.z);|    s.flux = std::tanh(s.eta) * sh * sh / (s.z * s.z);|occupancy model: layer weights"
  "layer-weight-unknown-layer-accepted|core/src/detector/occupancy.cpp|    if (std::none_of(m.sites.begin(), m.sites.end(), [l = layer](const ModuleSite& s) { return s.layer == l; }))|    if (false)|occupancy model: layer weights"
  "layer-weight-duplicate-accepted|core/src/detector/occupancy.cpp|      if (!d.layer_weights.emplace(static_cast<int>(layer), w.number(key, 1.0, 1e-6, 1e6)).second)|      if ((d.layer_weights[static_cast<int>(layer)] = w.number(key, 1.0, 1e-6, 1e6)) < 0)|detector overlay: each wafer"
  "plan-csv-group-unbounded|core/app/commands_detector.cpp|static_cast<size_t>(g) >= a.rows())  // a plan has fewer groups than modules|false)|detector plan and compare"
  "mix-module-not-uniform|core/src/detector/occupancy.cpp|    const double mu = model.sites[rng.below(static_cast<uint64_t>(model.sites.size()))].mu;|    const double mu = model.sites[rng.below(static_cast<uint64_t>(model.sites.size())) / 2].mu;|detector mix overlay"
  "mix-stream-by-row|core/src/detector/occupancy.cpp|    Rng rng(seed, static_cast<uint64_t>(first_index + r));|    Rng rng(seed, static_cast<uint64_t>(r));|detector mix overlay"
  "mix-without-pileup-scale|core/src/detector/occupancy.cpp|    add_pileup(rng, mu, pool, scale, calq + r * kCellsPerWafer);|    add_pileup(rng, mu, pool, 1.0f, calq + r * kCellsPerWafer);|detector mix overlay"
  "mu-quantiles-band-one-wider|core/src/detector/occupancy.cpp|    if (rank >= lo * count && rank < hi * count) out.sites.push_back(model.sites[order[r]]);|    if (rank >= lo * count && rank <= hi * count) out.sites.push_back(model.sites[order[r]]);|detector overlay"
  "mu-quantiles-table-order|core/src/detector/occupancy.cpp|                   [&](size_t a, size_t b) { return model.sites[a].mu < model.sites[b].mu; });|                   [&](size_t a, size_t b) { return a < b; });|detector overlay"
  "overlay-command-mu-not-written|core/app/commands_detector_overlay.cpp|  overlay_detector_mix(model, pool, seed, 0, n, wafers.calq.data(), mu.data());|  overlay_detector_mix(model, pool, seed, 0, n, wafers.calq.data());|detector overlay: each wafer"
  "eval-group-choice-not-module|core/app/commands_detector_eval.cpp|    const auto& choice = modules[best][taken[best]++ % modules[best].size()];|    const auto& choice = modules[best][0];|detector plan and compare"
  "predict-bits-per-bx-as-econt|core/app/commands_run.cpp|static_cast<int64_t>(pipeline.link_bits()) * pipeline.elinks()|static_cast<int64_t>(32) * pipeline.elinks()|predict on a pixel graph"
  "power-bound-wrong-sign|core/src/detector/budgets.cpp|    double sum = -lambda * budget_mw - mu * static_cast<double>(budget_elinks);|    double sum = lambda * budget_mw - mu * static_cast<double>(budget_elinks);|power budget: the plan fits"
  "power-bound-not-maximized|core/src/detector/budgets.cpp|  return std::max({dual(0.0), dual(a), dual(b), fc, fd});|  return dual(0.0);|power budget: the plan fits"
  "power-fill-skipped|core/src/detector/budgets.cpp|  fit.modules_power_filled = fill_power(groups, model, fit.elinks, fit.chosen, budgets.power_w * 1000.0);|  fit.modules_power_filled = 0;|power budget: the plan fits"
  "power-fill-beyond-elinks|core/src/detector/budgets.cpp|      if (c.elinks != elinks[i] |      if (c.elinks > elinks[i] |power fill"
  "power-fill-by-gain-not-rate|core/src/detector/budgets.cpp|      const double rate = extra > 0 ? gain / extra : INFINITY;|      const double rate = extra > 0 ? gain : INFINITY;|power fill"
  "power-choice-from-priced-table|core/src/detector/budgets.cpp|    const AllocationChoice& chosen = groups[g].choices[static_cast<size_t>(c - p[g].choices.data())];|    const AllocationChoice& chosen = *c;|power budget: the plan fits"
  "compare-ignores-row-algorithm|core/app/commands_detector.cpp|  const TableScore l = score_choices(\"learned plan\", model, chosen, learned, user_bits);|  const TableScore l = score_table(\"learned plan\", model, groups, learned, user_bits);|under a power budget"
  "compare-budgets-not-echoed|core/app/commands_detector.cpp|    j.update(budgets);|    (void)budgets;|under a power budget"
  "clusters-label-ignored|core/src/data/clusters.cpp|      t.label[static_cast<size_t>(i)] = k - 1;|      t.label[static_cast<size_t>(i)] = 0;|clusters on any geometry"
  "floor-set-not-lifted|quant/src/layer_impls.h|    w_.gate_logits.index_copy_(0, top, w_.gate_logits.index_select(0, top).clamp_min(0.0));|    (void)top;|stay the same from step to step"
  "unit-floor-not-set|core/src/train/trainer.cpp|if (!unit_limits.empty()) pipeline_.keep_units_that_fit(unit_limits, fixed_energy_pj_);|(void)0;|keeps the filters"
  "energy-floor-off|core/src/graph/pipeline_codesign.cpp|  const bool energy = limits.count(\"ebops\") + limits.count(\"power_mw\") > 0;|  const bool energy = false;|a power budget.s push|budget.s floor keeps the filters"
  "energy-floor-rest-unscaled|core/src/graph/pipeline_codesign.cpp|fixed_energy_pj * ebops / full_ebops|fixed_energy_pj|a power budget.s push|budget.s floor keeps the filters"
  "harden-drops-every-unit|quant/src/layer_impls.h|    mask.copy_(effective_mask(false));|    mask.mul_((gate_logits > 0).to(mask.dtype()));|all closed keeps the strongest"
  "silent-units-not-raised|core/src/train/trainer.cpp|    if (!o_.resume() && o_.raise_silent_units()) summary_.raised_units = raise_silent_units();|    if (false) summary_.raised_units = raise_silent_units();|every latent firing"
  "silent-units-not-raised-after-projection|core/src/train/trainer.cpp|      if (o_.raise_silent_units()) summary_.raised_after_projection = raise_silent_units();|      if (false) summary_.raised_after_projection = raise_silent_units();|projection that narrows"
  "silent-units-configured-step|quant/src/layers.cpp|      const auto f = layers_[i + 1]->output_quantizer()->group_fractional_bits();|      const std::vector<int> f(1, layers_[i + 1]->output_quantizer()->options().type().fractional());|learned ReLU width counts|projection that narrows"
  "silent-units-bias-unchanged|quant/src/layers.cpp|        if (!layers_[i]->add_to_bias(delta)) break;|        break;|raise_silent_units: silent units|every latent firing"
  "silent-units-closed-gates-raised|quant/src/layers.cpp|      const torch::Tensor sent = kept.to(torch::kDouble) > 0;|      const torch::Tensor sent = kept.to(torch::kDouble) > -1;|raise_silent_units: silent units"
  "silent-units-frozen-raised|core/src/graph/pipeline_codesign.cpp|  int64_t raised = is_frozen(impl_->encoder->name()) ? 0 : impl_->encoder->stack->raise_silent_units(grid);|  int64_t raised = impl_->encoder->stack->raise_silent_units(grid);|frozen stages keep"
  "energy-projection-cuts-every-weight|core/src/graph/pipeline_codesign.cpp|    widest->set_fractional_bits(torch::where(finest, fr - 1, fr), /*freeze_range=*/true);|    widest->set_fractional_bits(torch::where(can, fr - 1, fr), /*freeze_range=*/true);|power projection"
  "bits-not-clamped-after-step|core/src/train/trainer.cpp|    pipeline_.clamp_bits_to_limits();|    (void)0;|inside its limits"
  "fractional-elinks-staircase|surrogates/src/link_budget_torch.cpp|    n = n + (last ? segment.clamp_min(0.0) : segment.clamp(0.0, 1.0));|    n = n + at::sigmoid((segment - 1.0) * 16.0) * (last ? 1.0 : 1.0);|fractional e-links"
  "end-projection-checkpointed|core/src/train/trainer.cpp|    if (has_projection() && !applied) project();|    if (has_projection() && !applied) { project(); checkpoint(); }|budgeted_resume_is_exact"
  "validation-keeps-unprojected-epochs|core/src/train/trainer.cpp|      if (has_projection() && pos_.step <= projection_step_) {|      if (false) {|link term"
  "sweep-best-choice-wrong-row|core/src/eval/pareto.cpp|    if (get(b, \"elinks\") == r.elinks) bc = get(b, \"emd_mean\");|    if (get(b, \"elinks\") == r.elinks + 1) bc = get(b, \"emd_mean\");|sweep: a budget grid"
  "sweep-budgets-not-passed|core/src/eval/sweep.cpp|  for (const auto& kv : p.budgets) {|  for (const auto& kv : std::vector<std::pair<std::string, std::string>>{}) {|sweep: a budget grid"
  "sweep-resume-reruns-done-points|core/src/eval/sweep.cpp|    if (evaluated(pts[i]))|    if (false)|sweep: a budget grid"
  "sweep-failure-hidden|core/src/eval/sweep.cpp|      o.status = \"failed\";|      o.status = \"ok\";|sweep: a budget grid"
  "accumulator-one-bit-narrow|quant/src/bounds.cpp|return FixedPointType(integer + frac, integer, true);|return FixedPointType(integer + frac - 1, integer - 1, true);|accumulator ranges equal brute force"
)

# The restored file gets a new mtime, so the build recompiles it (the mutated
# object would otherwise look up to date).
restore() {
  if [ -n "${current:-}" ] && [ -f "$current.mutation-orig" ]; then
    mv -f "$current.mutation-orig" "$current"
    touch "$current"
  fi
  current=""
}
trap restore EXIT INT TERM

caught=0
missed=0
for m in "${mutations[@]}"; do
  IFS='|' read -r name file text replacement tests <<<"$m"
  [[ -n "$filter" && "$name" != *"$filter"* ]] && continue
  current="$root/$file"
  cp -p "$current" "$current.mutation-orig"
  /usr/bin/python3 - "$current" "$text" "$replacement" <<'PY'
import sys
path, text, repl = sys.argv[1], sys.argv[2], sys.argv[3].replace("\\n", "\n")
s = open(path).read()
if s.count(text) != 1:
    sys.exit(f"mutations: '{text}' found {s.count(text)} times in {path} (expected once): update scripts/mutations.sh")
open(path, "w").write(s.replace(text, repl))
PY
  if ! cmake --build "$build" -j "${DDAQ_JOBS:-2}" >/tmp/ddaq-mutation-build.log 2>&1; then
    echo "mutation $name: caught (does not build)"
    caught=$((caught + 1))
  elif (cd "$build" && ctest -R "$tests" >/tmp/ddaq-mutation-test.log 2>&1); then
    # A test that skipped here (no ../shared, no fwkit) caught nothing.
    if grep -q "Skipped\|No tests were found" /tmp/ddaq-mutation-test.log; then
      echo "mutation $name: NOT CHECKED (tests '$tests' skipped or absent here)"
    else
      echo "mutation $name: MISSED (tests '$tests' pass)"
    fi
    missed=$((missed + 1))
  else
    echo "mutation $name: caught"
    caught=$((caught + 1))
  fi
  restore
done
cmake --build "$build" -j "${DDAQ_JOBS:-2}" >/dev/null 2>&1 || true  # back to the real code
echo "mutations: $caught caught, $missed missed or not checked"
[ "$missed" -eq 0 ]
