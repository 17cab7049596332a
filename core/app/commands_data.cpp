#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "ddaq/core/cell_geometry.h"
#include "ddaq/core/clusters.h"
#include "ddaq/core/csv_import.h"
#include "ddaq/core/events.h"
#include "ddaq/core/overlay.h"
#include "ddaq/core/progress.h"
#include "ddaq/core/random.h"
#include "ddaq/core/statistics.h"
#include "ddaq/core/synth.h"
#include "ddaq/error.h"
#include "ddaq/files.h"

namespace ddaq {
namespace cli {

void add_data_commands(CLI::App& app) {
  CLI::App* data = app.add_subcommand(
      "data", "Make, import and inspect event files (HDF5: calq [N,cells], label [N]; HGCAL: 48 cells)");
  data->callback([data] {
    if (data->get_subcommands().empty())
      throw CLI::ValidationError("data: a command is required: import, synth, overlay, split, slice or stats");
  });

  {
    auto inputs = std::make_shared<std::vector<std::string>>();
    auto output = std::make_shared<std::string>();
    auto labels = std::make_shared<std::vector<int32_t>>();
    CLI::App* c = data->add_subcommand("import", "Import CALQ_0..CALQ_47 CSV files into one event file");
    c->add_option("files", *inputs, "CSV files (header CALQ_0..CALQ_47, one wafer per line)")->required();
    c->add_option("-o,--output", *output, "output event file (.h5)")->required();
    c->add_option("--label", *labels, "class label: once for all files, or once per file (1 electron, 0 jet)")
        ->check(whole_number_in(0, 1));
    c->callback([=] {
      check_outputs(*inputs, {*output});
      Progress progress("import", 0);
      const CsvImportSummary s = import_calq_csv(*inputs, *output, *labels, &progress);
      progress.set_total(s.events);
      progress.finish();
      std::printf("wrote %s: %lld events from %zu file(s)\n", output->c_str(), static_cast<long long>(s.events),
                  inputs->size());
    });
  }
  {
    auto options = std::make_shared<SynthOptions>();
    auto output = std::make_shared<std::string>();
    auto events = std::make_shared<int64_t>(10000);
    auto seed = std::make_shared<uint64_t>(1);
    auto pileup = std::make_shared<double>(0.0);
    auto electron_fraction = std::make_shared<double>(0.5);
    CLI::App* c = data->add_subcommand("synth", "Generate labelled HGCAL-like wafers on the real 48-cell geometry");
    c->add_option("-o,--output", *output, "output event file (.h5)")->required();
    c->add_option("--events", *events, "number of wafers")->capture_default_str()->check(whole_number_in(1, int64_t(1) << 40));
    c->add_option("--seed", *seed, "random seed (same seed, same events, bit for bit)")->capture_default_str()->check(seed_number());
    c->add_option("--pileup", *pileup, "mean number of pileup wafers added to each wafer")->capture_default_str()->check(number_in(0, 1000));
    c->add_option("--electron-fraction", *electron_fraction, "fraction of electron-like (label 1) wafers")
        ->capture_default_str()
        ->check(number_in(0, 1));
    c->callback([=] {
      options->events(*events).seed(*seed).pileup_mu(*pileup).electron_fraction(*electron_fraction);
      options->validate();
      check_outputs({}, {*output});
      {
        Progress progress("synth", *events);
        synthesize_to_file(*options, *output, &progress);
        progress.finish();
      }
      std::printf("wrote %s: %lld events (seed %llu, pileup %g)\n", output->c_str(), static_cast<long long>(*events),
                  static_cast<unsigned long long>(*seed), *pileup);
    });
  }
  {
    auto geometry = std::make_shared<std::string>();
    auto output = std::make_shared<std::string>();
    auto events = std::make_shared<int64_t>(10000);
    auto seed = std::make_shared<uint64_t>(1);
    auto two = std::make_shared<double>(0.5);
    auto three = std::make_shared<double>(0.0);
    CLI::App* c = data->add_subcommand(
        "clusters",
        "Generate Gaussian clusters on any detector's cells (a cell,x,y geometry file; label: clusters - 1)");
    c->add_option("--geometry", *geometry, "cell geometry CSV (header cell,x,y)")->required();
    c->add_option("-o,--output", *output, "output event file (.h5)")->required();
    c->add_option("--events", *events, "number of events")
        ->capture_default_str()
        ->check(whole_number_in(1, int64_t(1) << 40));
    c->add_option("--seed", *seed, "random seed (same seed, same events, bit for bit)")
        ->capture_default_str()
        ->check(seed_number());
    c->add_option("--two-cluster-fraction", *two, "fraction of events with two clusters (label 1)")
        ->capture_default_str()
        ->check(number_in(0, 1));
    c->add_option("--three-cluster-fraction", *three, "fraction of events with three clusters (label 2)")
        ->capture_default_str()
        ->check(number_in(0, 1));
    c->callback([=] {
      const ClusterOptions options =
          ClusterOptions().events(*events).seed(*seed).two_cluster_fraction(*two).three_cluster_fraction(*three);
      options.validate();
      check_outputs({*geometry}, {*output});
      const CellGeometry cells = CellGeometry::load(*geometry);
      const EventTable t = synthesize_clusters(options, cells);
      EventFileWriter w(*output, true, t.cells);
      w.append(t);
      w.set_attribute("creator", std::string("ddaq data clusters"));
      w.set_attribute("seed", static_cast<int64_t>(*seed));
      nlohmann::json provenance = nlohmann::json::parse(options.to_json());
      provenance["geometry"] = *geometry;
      w.set_attribute("provenance", provenance.dump());
      w.commit();
      std::printf("wrote %s: %lld events of %d cells (seed %llu)\n", output->c_str(), static_cast<long long>(*events),
                  t.cells, static_cast<unsigned long long>(*seed));
    });
  }
  {
    auto input = std::make_shared<std::string>();
    auto pool = std::make_shared<std::string>();
    auto output = std::make_shared<std::string>();
    auto mu = std::make_shared<double>(0.0);
    auto seed = std::make_shared<uint64_t>(1);
    CLI::App* c = data->add_subcommand("overlay", "Add k ~ Poisson(mu) pool wafers to each wafer (pileup)");
    c->add_option("input", *input, "signal event file")->required();
    c->add_option("--pool", *pool, "pileup pool event file (read whole)")->required();
    c->add_option("--mu", *mu, "mean number of pileup wafers per wafer")->required()->check(number_in(0, 1000));
    c->add_option("--seed", *seed, "random seed")->capture_default_str()->check(seed_number());
    c->add_option("-o,--output", *output, "output event file (.h5)")->required();
    c->callback([=] {
      const OverlayOptions options = OverlayOptions().mu(*mu).seed(*seed);
      options.validate();
      check_outputs({*input, *pool}, {*output});
      const int64_t n = EventFileReader(*input).size();
      {
        Progress progress("overlay", n);
        overlay_file(options, *input, *pool, *output, &progress);
        progress.finish();
      }
      std::printf("wrote %s: %lld events (mu %g, seed %llu)\n", output->c_str(), static_cast<long long>(n), *mu,
                  static_cast<unsigned long long>(*seed));
    });
  }
  {
    auto input = std::make_shared<std::string>();
    auto train = std::make_shared<std::string>();
    auto test = std::make_shared<std::string>();
    auto fraction = std::make_shared<double>(0.2);
    auto seed = std::make_shared<uint64_t>(1);
    CLI::App* c = data->add_subcommand("split", "Random train/test split of an event file (rows shuffled by seed)");
    c->add_option("input", *input, "event file")->required();
    c->add_option("--train", *train, "output for the training rows")->required();
    c->add_option("--test", *test, "output for the test rows")->required();
    c->add_option("--test-fraction", *fraction, "fraction of rows for --test")->capture_default_str()->check(
        number_in(0.0, 1.0));
    c->add_option("--seed", *seed, "shuffle seed")->capture_default_str()->check(seed_number());
    c->callback([=] {
      check_outputs({*input}, {*train, *test});
      const EventFileReader in(*input, EventFileReader::kAnyCells);
      const EventTable all = in.read_all();
      const int64_t cells = all.cells;
      const int64_t n = all.size();
      std::vector<int64_t> order(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i) order[i] = i;
      Rng rng(*seed, 0);
      for (int64_t i = n - 1; i > 0; --i) std::swap(order[i], order[rng.below(static_cast<uint64_t>(i + 1))]);
      const int64_t n_test = static_cast<int64_t>(*fraction * static_cast<double>(n) + 0.5);
      if (n_test == 0 || n_test == n) throw Error(*input + ": a split of " + std::to_string(n) + " rows at fraction " +
                                                   std::to_string(*fraction) + " leaves one side empty");
      auto write = [&](const std::string& path, int64_t first, int64_t count, const char* part) {
        EventTable t;
        t.cells = all.cells;
        for (int64_t k = first; k < first + count; ++k) {
          const int64_t r = order[k];
          t.calq.insert(t.calq.end(), all.calq.begin() + r * cells, all.calq.begin() + (r + 1) * cells);
          if (all.has_labels()) t.label.push_back(all.label[r]);
        }
        EventFileWriter w(path, all.has_labels(), all.cells);
        w.append(t);
        w.set_attribute("creator", std::string("ddaq data split"));
        w.set_attribute("provenance", nlohmann::json({{"creator", "ddaq data split"}, {"input", *input}, {"part", part},
                                                      {"seed", *seed}, {"test_fraction", *fraction}})
                                          .dump());
        w.commit();
      };
      write(*test, 0, n_test, "test");
      write(*train, n_test, n - n_test, "train");
      std::printf("wrote %s (%lld rows) and %s (%lld rows)\n", train->c_str(), static_cast<long long>(n - n_test),
                  test->c_str(), static_cast<long long>(n_test));
    });
  }
  {
    auto input = std::make_shared<std::string>();
    auto output = std::make_shared<std::string>();
    auto start = std::make_shared<int64_t>(0);
    auto stop = std::make_shared<int64_t>(-1);
    auto label = std::make_shared<int>(-1);
    CLI::App* c = data->add_subcommand("slice", "Copy rows [start, stop) of an event file (train/test splits)");
    c->add_option("input", *input, "event file")->required();
    c->add_option("--start", *start, "first row")->capture_default_str()->check(whole_number_in(0, int64_t(1) << 50));
    c->add_option("--stop", *stop, "one past the last row (-1: the end)")
        ->capture_default_str()
        ->check(whole_number_in(-1, int64_t(1) << 50));
    c->add_option("--label", *label, "keep only the rows with this label (e.g. 0: jets, for a pileup pool)")
        ->check(whole_number_in(0, 1));
    c->add_option("-o,--output", *output, "output event file (.h5)")->required();
    c->callback([=] {
      check_outputs({*input}, {*output});
      const EventFileReader in(*input, EventFileReader::kAnyCells);
      const int64_t cells = in.cells();
      const int64_t end = *stop < 0 ? in.size() : std::min(*stop, in.size());
      if (*start >= end)
        throw Error(*input + ": empty slice [" + std::to_string(*start) + ", " + std::to_string(end) + ")");
      if (*label >= 0 && !in.has_labels()) throw Error(*input + ": --label needs a file with labels");
      EventTable t;
      t.cells = in.cells();
      t.calq.resize(static_cast<size_t>((end - *start) * cells));
      if (in.has_labels()) t.label.resize(static_cast<size_t>(end - *start));
      in.read(*start, end - *start, t.calq.data(), in.has_labels() ? t.label.data() : nullptr);
      if (*label >= 0) {  // compact the kept rows in place
        int64_t kept = 0;
        for (int64_t r = 0; r < t.size(); ++r) {
          if (t.label[r] != *label) continue;
          std::copy(t.calq.begin() + r * cells, t.calq.begin() + (r + 1) * cells, t.calq.begin() + kept * cells);
          t.label[kept++] = t.label[r];
        }
        if (kept == 0) throw Error(*input + ": no rows with label " + std::to_string(*label) + " in the slice");
        t.calq.resize(static_cast<size_t>(kept * cells));
        t.label.resize(static_cast<size_t>(kept));
      }
      EventFileWriter writer(*output, in.has_labels(), in.cells());
      writer.append(t);
      const auto attrs = in.attributes();
      writer.set_attribute("creator", std::string("ddaq data slice"));
      nlohmann::json provenance = {{"creator", "ddaq data slice"}, {"input", *input}, {"start", *start}, {"stop", end}};
      if (*label >= 0) provenance["label"] = *label;
      if (attrs.count("provenance"))
        provenance["input_provenance"] = nlohmann::json::parse(attrs.at("provenance"), nullptr, false);
      writer.set_attribute("provenance", provenance.dump());
      writer.commit();
      std::printf("wrote %s: %lld rows from rows %lld..%lld of %s\n", output->c_str(), static_cast<long long>(t.size()),
                  static_cast<long long>(*start), static_cast<long long>(end), input->c_str());
    });
  }
  {
    auto input = std::make_shared<std::string>();
    auto json = std::make_shared<bool>(false);
    CLI::App* c = data->add_subcommand("stats", "Occupancy, wafer-sum and label summary of an event file");
    c->add_option("file", *input, "event file")->required();
    c->add_flag("--json", *json, "print JSON instead of text");
    c->callback([=] {
      const EventStatistics s = compute_statistics(*input);
      std::cout << (*json ? s.to_json() + "\n" : s.to_text());
    });
  }
}

}  // namespace cli
}  // namespace ddaq
