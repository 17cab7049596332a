// `ddaq surrogate emd train|eval`: the learned EMD surrogate.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <fstream>
#include <memory>

#include "commands.h"
#include "ddaq/core/baselines.h"
#include "ddaq/core/events.h"
#include "ddaq/files.h"
#include "ddaq/core/progress.h"
#include "ddaq/core/wafer_metric.h"
#include "ddaq/error.h"
#include "ddaq/surrogates/emd_surrogate.h"
#include "ddaq/surrogates/fpga_resources.h"
#include "ddaq/surrogates/resource_net.h"

namespace ddaq {
namespace cli {
namespace {

struct PairSource {
  std::vector<std::string> files;
  std::vector<std::string> given;  // "WAFERS.h5:RECONSTRUCTIONS.h5"
  std::string rows = ":";
  int64_t max_wafers = 20000;
  uint64_t seed = 1;
  int threads = 0;
};

void add_source_options(CLI::App* c, PairSource& s) {
  c->add_option("--data", s.files, "event files whose wafers are paired with generated reconstructions");
  c->add_option("--pairs", s.given,
                "WAFERS.h5:RECONSTRUCTIONS.h5: two event files whose rows pair up (e.g. autoencoder outputs)");
  c->add_option("--rows", s.rows, "row range START:STOP used from every file (hold events out)")->capture_default_str();
  c->add_option("--max-wafers", s.max_wafers, "at most this many wafers per file (from the start of the range)")
      ->capture_default_str()
      ->check(whole_number_in(1, int64_t(1) << 40));
  c->add_option("--seed", s.seed, "seed of the reconstructions")->capture_default_str()->check(seed_number());
  c->add_option("--threads", s.threads, "threads for the exact labels (0: all cores)")
      ->capture_default_str()
      ->check(whole_number_in(0, 1024));
}

// The files a pair source reads (for the output rules).
std::vector<std::string> source_inputs(const PairSource& s) {
  std::vector<std::string> in = s.files;
  for (const std::string& g : s.given) {
    const auto colon = g.find(':');
    in.push_back(g.substr(0, colon));
    if (colon != std::string::npos) in.push_back(g.substr(colon + 1));
  }
  return in;
}

std::pair<int64_t, int64_t> parse_rows(const std::string& text, int64_t size) {
  const auto colon = text.find(':');
  if (colon == std::string::npos) throw Error("--rows '" + text + "': expected START:STOP (either may be empty)");
  auto number = [&](const std::string& part, int64_t fallback) -> int64_t {
    if (part.empty()) return fallback;
    try {
      size_t used = 0;
      const long long v = std::stoll(part, &used);
      if (used != part.size() || v < 0) throw 0;
      return std::min<int64_t>(v, size);
    } catch (...) {
      throw Error("--rows '" + text + "': '" + part + "' is not a row number");
    }
  };
  const int64_t start = number(text.substr(0, colon), 0), stop = number(text.substr(colon + 1), size);
  return {start, std::max(start, stop)};
}

EmdPairs load_pairs(const PairSource& s, const GroundMetric& metric) {
  if (s.files.empty() && s.given.empty()) throw Error("surrogate emd: give --data and/or --pairs");
  EmdPairs all;
  all.cells = metric.size();
  auto append = [&](const EmdPairs& p) {
    all.a.insert(all.a.end(), p.a.begin(), p.a.end());
    all.b.insert(all.b.end(), p.b.begin(), p.b.end());
    all.emd.insert(all.emd.end(), p.emd.begin(), p.emd.end());
    all.kind.insert(all.kind.end(), p.kind.begin(), p.kind.end());
  };
  // The rows of one file selected by --rows and --max-wafers.
  auto read_rows = [&](const std::string& file, int64_t min_rows, int64_t& first) {
    const EventFileReader reader(file);
    const auto range = parse_rows(s.rows, reader.size());
    const int64_t n = std::min(s.max_wafers, range.second - range.first);
    if (n < min_rows) throw Error(file + ": fewer than " + std::to_string(min_rows) + " wafers in rows " + s.rows);
    std::vector<float> calq(static_cast<size_t>(n) * kCellsPerWafer);
    reader.read(range.first, n, calq.data(), nullptr);
    first = range.first;
    return calq;
  };
  // Generated reconstructions include ECON-T super trigger cells (2x2, 4x4).
  const EmdPairOptions generated = EmdPairOptions().threads(s.threads).super_cell_groups(
      {super_cell_groups(4), super_cell_groups(16)});
  for (size_t f = 0; f < s.files.size(); ++f) {
    int64_t first = 0;
    const std::vector<float> calq = read_rows(s.files[f], 2, first);
    const int64_t n = static_cast<int64_t>(calq.size()) / kCellsPerWafer;
    append(make_emd_pairs(metric, calq.data(), n, EmdPairOptions(generated).seed(s.seed + 1000003 * f)));
    std::fprintf(stderr, "pairs: %lld from %s (rows %lld..%lld)\n", static_cast<long long>(n), s.files[f].c_str(),
                 static_cast<long long>(first), static_cast<long long>(first + n));
  }
  for (const std::string& spec : s.given) {
    const size_t colon = spec.rfind(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 == spec.size())
      throw Error("--pairs '" + spec + "': expected WAFERS.h5:RECONSTRUCTIONS.h5");
    const std::string wafers_file = spec.substr(0, colon), reco_file = spec.substr(colon + 1);
    if (EventFileReader(wafers_file).size() != EventFileReader(reco_file).size())
      throw Error("--pairs '" + spec + "': the two files hold different numbers of rows");
    int64_t first = 0;
    const std::vector<float> a = read_rows(wafers_file, 1, first), b = read_rows(reco_file, 1, first);
    const int64_t n = static_cast<int64_t>(a.size()) / kCellsPerWafer;
    append(make_given_emd_pairs(metric, a.data(), b.data(), n, s.threads));
    std::fprintf(stderr, "pairs: %lld given by %s (rows %lld..%lld)\n", static_cast<long long>(n), spec.c_str(),
                 static_cast<long long>(first), static_cast<long long>(first + n));
  }
  return all;
}

void read_designs(const std::vector<std::string>& files, std::vector<DesignSpec>& designs,
                  std::vector<ResourceValues>& targets) {
  for (const auto& f : files) {
    const ResourceTable t = read_resource_csv(f, true);
    designs.insert(designs.end(), t.designs.begin(), t.designs.end());
    targets.insert(targets.end(), t.targets.begin(), t.targets.end());
  }
}

// An analytic model file starts with its text header; anything else is a
// learned model archive. `domain` gets the fit region (for range warnings).
ResourcePredictor load_resource_model(const std::string& path, FitDomain& domain) {
  std::ifstream in(path);
  if (!in) throw Error(path + ": cannot open (missing or unreadable)");
  std::string first;
  std::getline(in, first);
  if (first.rfind("# ddaq analytic", 0) == 0) {
    const AnalyticResourceModel m = AnalyticResourceModel::load(path);
    domain = m.domain();
    return [m](const DesignSpec& d) { return m.predict(d); };
  }
  auto m = std::make_shared<LearnedResourceModel>(LearnedResourceModel::load(path));
  domain = m->analytic().domain();
  return [m](const DesignSpec& d) { return m->predict(d); };
}

EmdSurrogateOptions hgcal_surrogate_options() {
  CellCentres centres;
  for (const TriggerCell& c : WaferGeometry::hgcal().cells()) centres.push_back({c.x_cm, c.y_cm});
  return EmdSurrogateOptions().points(centres).unit(kSensorCellPitchCm);
}

}  // namespace

void add_surrogate_commands(CLI::App& app) {
  CLI::App* surrogate = app.add_subcommand("surrogate", "Learned and fitted surrogates of costs that are not differentiable");
  CLI::App* emd = surrogate->add_subcommand("emd", "The learned EMD surrogate (a differentiable loss)");
  CLI::App* resources = surrogate->add_subcommand("resources", "FPGA resources and latency of hls4ml dense networks");
  for (CLI::App* group : {surrogate, emd, resources})
    group->callback([group] {
      if (group->get_subcommands().empty())
        throw CLI::ValidationError(group->get_name() + ": a command is required (see --help)");
    });
  {
    auto source = std::make_shared<PairSource>();
    auto output = std::make_shared<std::string>();
    auto train = std::make_shared<EmdSurrogateTrainOptions>();
    auto epochs = std::make_shared<int>(train->epochs());
    auto batch = std::make_shared<int64_t>(train->batch_size());
    auto lr = std::make_shared<double>(train->learning_rate());
    auto hidden = std::make_shared<std::vector<int64_t>>(EmdSurrogateOptions().hidden());
    auto directions = std::make_shared<int>(EmdSurrogateOptions().directions());
    CLI::App* c = emd->add_subcommand("train", "Train a surrogate on exact-EMD-labelled pairs");
    add_source_options(c, *source);
    c->add_option("-o,--output", *output, "surrogate file to write")->required();
    c->add_option("--epochs", *epochs, "maximum epochs")->capture_default_str()->check(whole_number_in(1, 100000));
    c->add_option("--batch-size", *batch, "pairs per step")->capture_default_str()->check(whole_number_in(1, 1 << 20));
    c->add_option("--learning-rate", *lr, "AdamW peak learning rate (cosine decay)")
        ->capture_default_str()
        ->check(number_in(1e-12, 10.0));
    c->add_option("--hidden", *hidden, "hidden layer sizes")->capture_default_str()->check(whole_number_in(1, 4096));
    c->add_option("--directions", *directions, "sliced-EMD directions")
        ->capture_default_str()
        ->check(whole_number_in(1, 4096));
    c->callback([=] {
      check_outputs(source_inputs(*source), {*output});
      const GroundMetric metric = trigger_cell_metric();
      const EmdPairs pairs = load_pairs(*source, metric);
      EmdSurrogate model(hgcal_surrogate_options().hidden(*hidden).directions(*directions).seed(source->seed));
      std::fprintf(stderr, "training: %lld pairs, %lld parameters\n", static_cast<long long>(pairs.size()),
                   static_cast<long long>(model.parameter_count()));
      Progress progress("train", *epochs);
      const auto summary = train_emd_surrogate(
          model, pairs, EmdSurrogateTrainOptions().epochs(*epochs).batch_size(*batch).learning_rate(*lr).seed(source->seed),
          [&](int epoch, double train_loss, double valid_loss) {
            progress.advance(1);
            if (std::getenv("DDAQ_VERBOSE"))
              std::fprintf(stderr, "epoch %d train %.5f valid %.5f\n", epoch, train_loss, valid_loss);
          });
      progress.finish();
      model.save(*output);
      std::printf("wrote %s: %lld parameters; %s\n", output->c_str(), static_cast<long long>(model.parameter_count()),
                  summary.to_text().c_str());
    });
  }
  {
    auto source = std::make_shared<PairSource>();
    auto model_path = std::make_shared<std::string>();
    auto report_path = std::make_shared<std::string>();
    auto device = std::make_shared<std::string>("cpu");
    CLI::App* c = emd->add_subcommand("eval", "Relative error of a surrogate against the exact EMD");
    c->add_option("model", *model_path, "surrogate file")->required();
    add_source_options(c, *source);
    c->add_option("-o,--output", *report_path, "also write the report as JSON");
    c->add_option("--device", *device, "where the surrogate runs: cpu, cuda or cuda:N (the exact solver: CPU)")
        ->capture_default_str();
    c->callback([=] {
      std::vector<std::string> inputs = source_inputs(*source);
      inputs.push_back(*model_path);
      check_outputs(inputs, {*report_path});
      EmdSurrogate model = EmdSurrogate::load(*model_path);
      model.to(*device);
      const GroundMetric metric = trigger_cell_metric();
      const EmdPairs pairs = load_pairs(*source, metric);
      const EmdSurrogateReport report = evaluate_emd_surrogate(model, pairs, metric);
      if (!report_path->empty()) write_file_atomic(*report_path, report.to_json() + "\n");
      std::printf("%s", report.to_text().c_str());
    });
  }
  {
    auto files = std::make_shared<std::vector<std::string>>();
    auto output = std::make_shared<std::string>();
    auto folds = std::make_shared<int>(5);
    auto seed = std::make_shared<uint64_t>(1);
    CLI::App* c = resources->add_subcommand("fit", "Fit the analytic model with Ceres; report grouped cross-validation");
    c->add_option("--data", *files, "CSV files with the wa-hls4ml columns and targets")->required();
    c->add_option("-o,--output", *output, "model file (text)")->required();
    c->add_option("--folds", *folds, "cross-validation folds (0: skip)")->capture_default_str()->check(whole_number_in(0, 100));
    c->add_option("--seed", *seed, "fold assignment seed")->capture_default_str()->check(seed_number());
    c->callback([=] {
      check_outputs(*files, {*output});
      std::vector<DesignSpec> designs;
      std::vector<ResourceValues> targets;
      read_designs(*files, designs, targets);
      if (*folds > 0) std::printf("%s", cross_validate(designs, targets, *folds, *seed).to_text().c_str());
      AnalyticResourceModel model;
      model.fit(designs, targets);
      model.save(*output);
      std::printf("fitted on %zu designs:\n%swrote %s\n", designs.size(), model.to_text().c_str(), output->c_str());
    });
  }
  {
    auto files = std::make_shared<std::vector<std::string>>();
    auto output = std::make_shared<std::string>();
    auto folds = std::make_shared<int>(5);
    auto seed = std::make_shared<uint64_t>(1);
    auto epochs = std::make_shared<int>(LearnedResourceOptions().epochs());
    CLI::App* c = resources->add_subcommand(
        "train", "Train the learned correction (per-layer readout on the analytic model's residual)");
    c->add_option("--data", *files, "CSV files with the wa-hls4ml columns and targets")->required();
    c->add_option("-o,--output", *output, "model file (LibTorch archive)")->required();
    c->add_option("--folds", *folds, "cross-validation folds (0: skip)")->capture_default_str()->check(whole_number_in(0, 100));
    c->add_option("--seed", *seed, "fold assignment and initialization seed")->capture_default_str()->check(seed_number());
    c->add_option("--epochs", *epochs, "full-batch training epochs")->capture_default_str()->check(whole_number_in(1, 1000000));
    c->callback([=] {
      check_outputs(*files, {*output});
      std::vector<DesignSpec> designs;
      std::vector<ResourceValues> targets;
      read_designs(*files, designs, targets);
      const auto options = LearnedResourceOptions().epochs(*epochs).seed(*seed);
      if (*folds > 0) {
        std::printf("analytic model:\n%s", cross_validate(designs, targets, *folds, *seed).to_text().c_str());
        std::printf("learned model:\n%s",
                    cross_validate_learned(designs, targets, *folds, *seed, options).to_text().c_str());
      }
      LearnedResourceModel model(options);
      model.fit(designs, targets);
      model.save(*output);
      std::printf("trained on %zu designs; wrote %s\n", designs.size(), output->c_str());
    });
  }
  {
    auto model_path = std::make_shared<std::string>();
    auto data = std::make_shared<std::string>();
    auto output = std::make_shared<std::string>();
    CLI::App* c = resources->add_subcommand(
        "predict", "Add pred_LUT, pred_FF, pred_DSP, pred_BRAM18K, pred_latency_cycles and outside_fit_range");
    c->add_option("model", *model_path, "model file from 'fit' or 'train'")->required();
    c->add_option("--data", *data, "CSV with layer_dims, weight_bits, reuse_factor, strategy (act_bits optional)")
        ->required();
    c->add_option("-o,--output", *output, "output CSV")->required();
    c->callback([=] {
      check_outputs({*model_path, *data}, {*output});
      FitDomain domain;
      const ResourcePredictor predict = load_resource_model(*model_path, domain);
      const ResourceTable t = read_resource_csv(*data, false);
      auto field = [](const std::string& v) {
        if (v.find_first_of(",\"") == std::string::npos) return v;
        std::string q = "\"";
        for (char ch : v) q += ch == '"' ? std::string("\"\"") : std::string(1, ch);
        return q + "\"";
      };
      std::string out;
      for (size_t k = 0; k < t.header.size(); ++k) out += (k ? "," : "") + field(t.header[k]);
      out += ",pred_LUT,pred_FF,pred_DSP,pred_BRAM18K,pred_latency_cycles,outside_fit_range\n";
      char buf[160];
      size_t outside = 0;
      for (size_t r = 0; r < t.rows.size(); ++r) {
        for (size_t k = 0; k < t.rows[r].size(); ++k) out += (k ? "," : "") + field(t.rows[r][k]);
        const ResourceValues p = predict(t.designs[r]);
        std::snprintf(buf, sizeof buf, ",%.1f,%.1f,%.0f,%.2f,%.1f,", p[0], p[1], p[2], p[3], p[4]);
        std::string why;
        for (const auto& w : domain.outside(t.designs[r])) why += (why.empty() ? "" : "; ") + w;
        outside += !why.empty();
        out += buf + field(why) + "\n";
      }
      write_file_atomic(*output, out);
      std::printf("wrote %s: %zu rows\n", output->c_str(), t.rows.size());
      if (outside > 0)
        std::printf("warning: %zu of %zu rows outside the fit data's range (column outside_fit_range): their estimates "
                    "are extrapolated, clamped at the physical floor\n",
                    outside, t.rows.size());
    });
  }
}

}  // namespace cli
}  // namespace ddaq
