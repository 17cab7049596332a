// `ddaq run CONFIG -o RUN`: ddaq's main job: data (events, pileup pool,
// overlay, statistics), then, when the configuration has a pipeline, training,
// evaluation against Best Choice, and export (QONNX + HLS) of the encoder.
// `ddaq train` and `ddaq eval` run those steps alone.
#include <ATen/ATen.h>
#include <c10/core/GradMode.h>  // c10::NoGradGuard: at:: lost the alias in LibTorch 2.x
#include <sched.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>

#include "commands.h"
#include "ddaq/core/cell_geometry.h"
#include "ddaq/core/clusters.h"
#include "ddaq/core/config.h"
#include "ddaq/core/distributed.h"
#include "ddaq/core/events.h"
#include "ddaq/core/export.h"
#include "ddaq/core/overlay.h"
#include "ddaq/core/pipeline.h"
#include "ddaq/core/progress.h"
#include "ddaq/core/statistics.h"
#include "ddaq/core/synth.h"
#include "ddaq/core/trainer.h"
#include "ddaq/core/version.h"
#include "ddaq/error.h"
#include "ddaq/files.h"

namespace ddaq {
namespace cli {
namespace {

struct DataPlan {
  std::string source;                 // "synth", "files" or "clusters"
  std::string train_file, test_file;  // source "files"
  std::string geometry;               // source "clusters": the cell geometry CSV
  int64_t train_events = 0, test_events = 0, pool_events = 0;
  double pileup_mu = 0;
  uint64_t seed = 1;
};

DataPlan read_data_plan(const Config& config) {
  const Config data = config.section("data");
  const std::string source = data.string("source", "synth");
  DataPlan p;
  p.source = source;
  if (source == "files") {
    data.reject_unknown({"source", "train", "test"});
    const std::string dir = [&] {
      const auto slash = config.source().find_last_of('/');
      return slash == std::string::npos ? std::string(".") : config.source().substr(0, slash);
    }();
    auto resolve = [&](const std::string& key) {
      const std::string f = data.string(key, "");
      if (f.empty()) throw Error(config.source() + ": data." + key + ": an event file is required with source \"files\"");
      return f[0] == '/' ? f : dir + "/" + f;
    };
    p.train_file = resolve("train");
    p.test_file = resolve("test");
    return p;
  }
  if (source == "clusters") {
    // Synthetic clusters on any detector's cells (clusters.h).
    data.reject_unknown({"source", "geometry", "train_events", "test_events", "seed"});
    const std::string g = data.string("geometry", "");
    if (g.empty())
      throw Error(config.source() + ": data.geometry: a cell geometry CSV is required with source \"clusters\"");
    const auto slash = config.source().find_last_of('/');
    p.geometry = g[0] == '/' || slash == std::string::npos ? g : config.source().substr(0, slash) + "/" + g;
    p.train_events = data.integer("train_events", 20000, 1, int64_t(1) << 40);
    p.test_events = data.integer("test_events", 5000, 1, int64_t(1) << 40);
    p.seed = static_cast<uint64_t>(data.integer("seed", 1, 0));
    return p;
  }
  data.reject_unknown({"source", "train_events", "test_events", "pool_events", "pileup_mu", "seed"});
  if (source != "synth")
    throw Error(config.source() + ": data.source: '" + source +
                "' not supported (use \"synth\", \"files\" or \"clusters\")");
  p.train_events = data.integer("train_events", 20000, 1, int64_t(1) << 40);
  p.test_events = data.integer("test_events", 5000, 1, int64_t(1) << 40);
  p.pool_events = data.integer("pool_events", 10000, 1, int64_t(1) << 40);
  p.pileup_mu = data.number("pileup_mu", 0.0, 0.0, 1000.0);
  p.seed = static_cast<uint64_t>(data.integer("seed", 1, 0));
  return p;
}

// Synthesizes `events` wafers at 0PU, then overlays the pool when mu > 0.
void make_events(const std::string& run, const std::string& name, int64_t events, uint64_t seed,
                 const DataPlan& plan) {
  const std::string clean = run + "/" + name + (plan.pileup_mu > 0 ? "_0pu.h5" : ".h5");
  {
    Progress progress("synth " + name, events);
    synthesize_to_file(SynthOptions().events(events).seed(seed), clean, &progress);
    progress.finish();
  }
  if (plan.pileup_mu > 0) {
    Progress progress("overlay " + name, events);
    overlay_file(OverlayOptions().mu(plan.pileup_mu).seed(seed), clean, run + "/pool.h5", run + "/" + name + ".h5",
                 &progress);
    progress.finish();
  }
}

std::string config_dir(const std::string& path) {
  const auto slash = path.find_last_of('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

}  // namespace

void check_top_level(const Config& config) {
  config.reject_unknown({"name", "description", "data", "pipeline", "graph", "training"});
}

Config with_budget_options(const Config& config, const std::vector<std::string>& specs) {
  if (specs.empty()) return config;
  nlohmann::json j = nlohmann::json::parse(config.dump());
  std::string given;
  for (const std::string& spec : specs) {
    const auto eq = spec.find('=');
    bool name_ok = eq != std::string::npos && eq > 0;
    for (size_t k = 0; name_ok && k < eq; ++k)
      name_ok = std::isalnum(static_cast<unsigned char>(spec[k])) || spec[k] == '_';
    if (!name_ok) throw Error("--budget '" + spec + "': expected NAME=VALUE (e.g. elinks=3)");
    nlohmann::json value;
    try {
      value = nlohmann::json::parse(spec.substr(eq + 1));
    } catch (const nlohmann::json::exception&) {
    }
    if (!value.is_number()) throw Error("--budget '" + spec + "': '" + spec.substr(eq + 1) + "' is not a number");
    j["training"]["budgets"][spec.substr(0, eq)] = value;
    given += " --budget " + spec;
  }
  // The source names the options in every error ("quick.json with --budget
  // elinks=99: training.budgets.elinks: ..."); its folder stays the file's.
  return Config::parse(j.dump(), config.source() + " with" + given);
}

// The data step: train.h5 and test.h5 in the run folder (with pileup when configured).
std::pair<std::string, std::string> prepare_data(const Config& config, const std::string& run) {
  const DataPlan plan = read_data_plan(config);
  make_directories(run);
  if (plan.source == "files") {
    for (const std::string& f : {plan.train_file, plan.test_file})
      EventFileReader check(f, EventFileReader::kAnyCells);  // clear error now
    return {plan.train_file, plan.test_file};
  }
  if (plan.source == "clusters") {
    const CellGeometry cells = CellGeometry::load(plan.geometry);
    for (const auto& part : {std::make_pair(std::string("train"), plan.train_events),
                             std::make_pair(std::string("test"), plan.test_events)}) {
      const ClusterOptions o =
          ClusterOptions().events(part.second).seed(part.first == "train" ? plan.seed : plan.seed + 1);
      const EventTable t = synthesize_clusters(o, cells);
      EventFileWriter w(run + "/" + part.first + ".h5", true, t.cells);
      w.append(t);
      w.set_attribute("creator", std::string("ddaq data clusters"));
      nlohmann::json provenance = nlohmann::json::parse(o.to_json());
      provenance["geometry"] = plan.geometry;
      w.set_attribute("provenance", provenance.dump());
      w.commit();
    }
    return {run + "/train.h5", run + "/test.h5"};
  }
  if (plan.pileup_mu > 0) {
    // The pool: jet-like wafers only, as in the HGCAL studies' overlay.
    Progress progress("synth pool", plan.pool_events);
    synthesize_to_file(SynthOptions().events(plan.pool_events).seed(plan.seed + 2).electron_fraction(0.0),
                       run + "/pool.h5", &progress);
    progress.finish();
  }
  make_events(run, "train", plan.train_events, plan.seed, plan);
  make_events(run, "test", plan.test_events, plan.seed + 1, plan);
  return {run + "/train.h5", run + "/test.h5"};
}

// The paths prepare_data() writes, without writing them (other ranks).
std::pair<std::string, std::string> prepare_data_paths(const Config& config, const std::string& run) {
  const DataPlan plan = read_data_plan(config);
  if (plan.source == "files") return {plan.train_file, plan.test_file};
  return {run + "/train.h5", run + "/test.h5"};
}

namespace {


// Data parallel on one machine: rank r on its own cores. Measured on 2 cores,
// 2 ranks: +15% events/s (the OS otherwise migrates compute and Gloo threads
// between cores). Only when this process may use enough CPUs: cores
// [local_rank * threads, (local_rank + 1) * threads) of its allowed set.
void pin_to_cores(int local_rank, int threads) {
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  if (sched_getaffinity(0, sizeof allowed, &allowed) != 0) return;
  std::vector<int> cpus;
  for (int c = 0; c < CPU_SETSIZE; ++c)
    if (CPU_ISSET(c, &allowed)) cpus.push_back(c);
  const size_t first = static_cast<size_t>(local_rank) * static_cast<size_t>(threads);
  if (first + static_cast<size_t>(threads) > cpus.size()) return;
  cpu_set_t mine;
  CPU_ZERO(&mine);
  for (int k = 0; k < threads; ++k) CPU_SET(cpus[first + static_cast<size_t>(k)], &mine);
  sched_setaffinity(0, sizeof mine, &mine);  // best effort: a refusal only costs speed
}

// The run-folder rules (docs/reliability.md, "Run folders"): a folder that
// holds a run is refused unless --resume continues it or --overwrite replaces
// it; a command that fails before its first checkpoint leaves nothing it
// wrote (a failure after one keeps the folder for --resume).
class RunFolderGuard {
 public:
  RunFolderGuard(const std::string& run, bool resume, bool overwrite, const std::string& command) : run_(run) {
    namespace fs = std::filesystem;
    std::error_code ec;
    existed_ = fs::exists(run, ec);
    if (existed_ && !fs::is_directory(run, ec)) throw Error(run + ": exists and is not a folder");
    if (existed_)
      for (const auto& e : fs::directory_iterator(run, ec)) before_.insert(e.path().filename().string());
    std::string marker;
    for (const char* f : kRunFiles)
      if (before_.count(f)) {
        marker = f;
        break;
      }
    if (resume) {
      if (!before_.count("checkpoint.pt"))
        throw Error(run + "/checkpoint.pt: no checkpoint to resume (" + command + " without --resume starts anew)");
    } else if (!marker.empty() && !overwrite) {
      throw Error(run + ": holds a run already (" + marker + "); --resume continues it, --overwrite replaces it");
    } else if (!marker.empty()) {
      for (const char* f : kRunFiles) {
        fs::remove(fs::path(run) / f, ec);
        before_.erase(f);
      }
      // A graph run's other quantized stacks (RUN/<stage>.qstack) go too:
      // `ddaq export --part all` takes every one it finds.
      for (const std::string& f : std::set<std::string>(before_))
        if (fs::path(f).extension() == ".qstack") {
          fs::remove(fs::path(run) / f, ec);
          before_.erase(f);
        }
    }
  }
  ~RunFolderGuard() {
    if (done_) return;
    namespace fs = std::filesystem;
    std::error_code ec;
    if (fs::exists(fs::path(run_) / "checkpoint.pt", ec)) return;  // resumable: keep
    if (!existed_) {
      remove_tree(run_);
      return;
    }
    std::vector<fs::path> created;
    for (const auto& e : fs::directory_iterator(run_, ec))
      if (!before_.count(e.path().filename().string())) created.push_back(e.path());
    for (const auto& p : created) remove_tree(p.string());
  }
  void done() { done_ = true; }

 private:
  // What makes a folder a run (ddaq writes them; --overwrite removes them).
  static constexpr const char* kRunFiles[] = {"checkpoint.pt", "pipeline.json", "metrics.jsonl", "report.json",
                                              "encoder.qstack", "classifier.qstack", "decoder.pt", "budgets.json",
                                              "eval.json", "report.txt"};
  std::string run_;
  bool existed_ = false, done_ = false;
  std::set<std::string> before_;
};

// The quantized stacks a run folder holds (<stage>.qstack), sorted.
std::vector<std::string> run_stack_files(const std::string& run) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(run, ec))
    if (e.path().extension() == ".qstack") out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

// A run folder's files plus `extra`: the inputs of a command that reads a run.
std::vector<std::string> run_inputs(const std::string& run, std::vector<std::string> extra) {
  for (const char* f : {"pipeline.json", "encoder.qstack", "classifier.qstack", "decoder.pt", "checkpoint.pt"})
    extra.push_back(run + "/" + f);
  for (const std::string& f : run_stack_files(run))
    if (f != "encoder.qstack" && f != "classifier.qstack") extra.push_back(run + "/" + f);
  return extra;
}

// What `ddaq train` adds to the config's training section.
struct TrainRequest {
  int64_t max_steps = -1, seed = -1, checkpoint_every = -1;
  std::string init, device, validation;
  std::vector<std::string> freeze;
  bool resume = false, overwrite = false;
};

// Trains the configured pipeline on `train_file` and saves it into `run`
// (rank 0 only when data parallel). The checkpoint is RUN/checkpoint.pt.
TrainSummary train_step(const Config& config, const std::string& config_path, const std::string& train_file,
                        const std::string& run, const TrainRequest& request, Communicator* comm = nullptr) {
  TrainerOptions to = TrainerOptions::from_config(config.section("training"), config_dir(config_path));
  if (request.max_steps >= 0) to.max_steps(request.max_steps);
  if (request.seed >= 0) to.seed(static_cast<uint64_t>(request.seed));
  if (request.checkpoint_every >= 0) to.checkpoint_every(request.checkpoint_every);
  if (!request.device.empty()) to.device(request.device);
  if (!request.validation.empty()) to.validation(request.validation);
  to.frozen(request.freeze).checkpoint(run + "/checkpoint.pt").resume(request.resume);
  const bool writer = !comm || comm->rank() == 0;
  if (writer) make_directories(run);
  // Start from a trained run (its architecture wins over the config's).
  EconTPipeline pipeline =
      request.init.empty() ? EconTPipeline::from_config(config, to.seed()) : EconTPipeline::load(request.init);
  TrainSummary summary;
  {
    Progress progress("train", 0, writer ? stderr : nullptr);
    summary = train_pipeline(pipeline, train_file, to, writer ? run + "/metrics.jsonl" : "", &progress, {}, comm);
    progress.finish();
  }
  if (writer) {
    pipeline.save(run);
    save_budgets(run, to.budgets());
  }
  return summary;
}

}  // namespace

void add_run_command(CLI::App& app) {
  {
    auto config_path = std::make_shared<std::string>();
    auto run_dir = std::make_shared<std::string>();
    CLI::App* c = app.add_subcommand("run", "Run ddaq's main job for a configuration (data -> train -> eval -> export)");
    c->add_option("config", *config_path, "configuration file (JSON), e.g. experiments/econt/quick.json")->required();
    c->add_option("-o,--output", *run_dir, "run folder to write (created if missing)")->required();
    auto overwrite = std::make_shared<bool>(false), resume = std::make_shared<bool>(false);
    c->add_flag("--overwrite", *overwrite, "replace the run in the folder (otherwise a folder holding a run is refused)");
    c->add_flag("--resume", *resume, "continue an interrupted run from RUN/checkpoint.pt (same config)")
        ->excludes("--overwrite");
    auto budgets = std::make_shared<std::vector<std::string>>();
    c->add_option("--budget", *budgets, "NAME=VALUE: set training.budgets.NAME (repeatable; e.g. elinks=3)");
    c->callback([=] {
      if (DistributedEnvironment::detect().distributed())
        throw Error("ddaq run is one process; launch 'ddaq train' for data-parallel training");
      const Config config = with_budget_options(Config::load(*config_path), *budgets);
      check_top_level(config);
      const std::string name = config.string("name", "unnamed");
      const std::string& run = *run_dir;
      RunFolderGuard guard(run, *resume, *overwrite, "ddaq run");
      const auto files = prepare_data(config, run);
      nlohmann::json report = {{"ddaq_version", version()}, {"config", *config_path}, {"name", name}};
      std::string text = "ddaq run '" + name + "' (" + *config_path + ")\n";
      for (const auto& split : {std::make_pair("train", files.first), std::make_pair("test", files.second)}) {
        const EventStatistics s = compute_statistics(split.second);
        report["data"][split.first] = nlohmann::json::parse(s.to_json());
        text += std::string("\n[") + split.first + ": " + split.second + "]\n" + s.to_text();
      }
      if (config.has("pipeline") || config.has("graph")) {
        TrainRequest request;
        request.resume = *resume;
        const TrainSummary summary = train_step(config, *config_path, files.first, run, request);
        text += "\n[training]\n" + summary.to_text() + "\n";
        EconTPipeline pipeline = EconTPipeline::load(run);
        EvaluationReport eval = evaluate_pipeline(pipeline, files.second);
        eval.check_budgets(load_budgets(run));
        if (!eval.budgets.empty()) report["budgets"] = nlohmann::json::parse(eval.to_json())["budgets"];
        write_file_atomic(run + "/eval.json", eval.to_json() + "\n");
        report["evaluation"] = nlohmann::json::parse(eval.to_json());
        text += "\n[evaluation on " + files.second + "]\n" + eval.to_text();
        // The run folder is this job's: a re-run replaces its own export.
        text += "\n[export]\n" + export_run(run, ExportOptions()
                                                      .qonnx(run + "/encoder.onnx")
                                                      .hls(run + "/hls_encoder")
                                                      .testbench_data(files.second)
                                                      .replace(true));
      } else {
        text += "\n(no pipeline section: data steps only)\n";
      }
      write_file_atomic(run + "/report.json", report.dump(2) + "\n");
      write_file_atomic(run + "/report.txt", text);
      guard.done();
      std::printf("%s\nwrote %s/report.txt and report.json\n", text.c_str(), run.c_str());
    });
  }
  {
    auto config_path = std::make_shared<std::string>();
    auto run_dir = std::make_shared<std::string>();
    auto data = std::make_shared<std::string>();
    auto request = std::make_shared<TrainRequest>();
    auto launcher = std::make_shared<std::string>("auto");
    auto timeout = std::make_shared<int>(300);
    auto pin = std::make_shared<std::string>("auto");
    CLI::App* c = app.add_subcommand(
        "train",
        "Train the configured pipeline end to end and save it as a run. Data parallel when started by torchrun, "
        "srun, mpirun or with RANK/WORLD_SIZE/MASTER_ADDR/MASTER_PORT set (training.batch_size is the global batch)");
    c->add_option("--init", request->init, "start from this run's trained pipeline");
    c->add_option("--freeze", request->freeze,
                  "stages kept fixed, by name (the ECON-T pipeline's: frontend, encoder, decoder, classifier)");
    c->add_option("config", *config_path, "configuration file (JSON)")->required();
    c->add_option("-o,--output", *run_dir, "run folder")->required();
    c->add_option("--data", *data, "training event file (default: made from the config's data section)");
    c->add_option("--seed", request->seed, "override training.seed")->check(seed_number());
    c->add_option("--max-steps", request->max_steps, "stop after this many steps (the schedule still spans the epochs)")
        ->check(whole_number_in(1, int64_t(1) << 50));
    c->add_flag("--resume", request->resume, "continue from RUN/checkpoint.pt (same config and data)");
    c->add_flag("--overwrite", request->overwrite, "replace the run in RUN (otherwise a folder holding a run is refused)")
        ->excludes("--resume");
    c->add_option("--checkpoint-every", request->checkpoint_every,
                  "also checkpoint every N steps (default: training.checkpoint_every; epoch ends always)")
        ->check(whole_number_in(1, int64_t(1) << 50));
    c->add_option("--device", request->device, "cpu, cuda or cuda:N (default training.device; under a launcher "
                                               "\"cuda\" means cuda:LOCAL_RANK)");
    c->add_option("--validation", request->validation, "validation event file (overrides training.validation)");
    auto budgets = std::make_shared<std::vector<std::string>>();
    c->add_option("--budget", *budgets, "NAME=VALUE: set training.budgets.NAME (repeatable; e.g. elinks=3)");
    c->add_option("--launcher", *launcher, "rendezvous from: auto, none, torchrun, env, slurm, openmpi")
        ->capture_default_str();
    c->add_option("--pin-cpus", *pin, "data parallel: auto (each rank on its own cores when there are enough) or off")
        ->capture_default_str()
        ->check(CLI::IsMember({"auto", "off"}));
    c->add_option("--dist-timeout", *timeout, "seconds a collective waits for the other ranks before failing")
        ->capture_default_str()
        ->check(CLI::Range(1, 86400));
    c->callback([=] {
      const Config config = with_budget_options(Config::load(*config_path), *budgets);
      check_top_level(config);
      const DistributedEnvironment env = DistributedEnvironment::detect(*launcher);
      // One device for the communicator and the trainer: --device, else
      // training.device; "cuda" under a launcher is the local rank's GPU.
      {
        // Its errors first, as train_step reports them; --freeze names its stages.
        const EconTPipeline built = EconTPipeline::from_config(config, 1);
        for (const std::string& name : request->freeze) {
          std::string names;
          bool found = false;
          for (const Stage* s : built.stages()) {
            names += (names.empty() ? "" : ", ") + s->name();
            found = found || s->name() == name;
          }
          if (!found)
            throw Error("--freeze: '" + name + "' is not a stage of " + *config_path + " (its stages: " + names + ")");
        }
      }
      const TrainerOptions configured = TrainerOptions::from_config(config.section("training"), config_dir(*config_path));
      TrainRequest r = *request;
      if (r.device.empty()) r.device = configured.device();
      if (env.distributed() && r.device == "cuda") r.device = "cuda:" + std::to_string(env.local_rank);
      std::unique_ptr<Communicator> comm;
      if (env.distributed() && env.local_rank_known && *pin == "auto") pin_to_cores(env.local_rank, configured.threads());
      if (env.distributed()) comm = Communicator::connect(env, r.device, std::chrono::seconds(*timeout));
      const bool writer = !comm || comm->rank() == 0;
      std::unique_ptr<RunFolderGuard> guard;
      if (writer) guard.reset(new RunFolderGuard(*run_dir, r.resume, r.overwrite, "ddaq train"));
      std::string train_file = *data;
      if (train_file.empty()) {
        // Rank 0 makes the data; the others wait and read the same files.
        if (writer) train_file = prepare_data(config, *run_dir).first;
        if (comm) comm->barrier();
        if (!writer) train_file = prepare_data_paths(config, *run_dir).first;
      }
      const TrainSummary s = train_step(config, *config_path, train_file, *run_dir, r, comm.get());
      if (guard) guard->done();
      if (writer) {
        std::string stacks;
        for (const std::string& f : run_stack_files(*run_dir)) stacks += f + ", ";
        std::printf("trained: %s\nwrote %s (pipeline.json, %sdecoder.pt, checkpoint.pt, metrics.jsonl)\n",
                    s.to_text().c_str(), run_dir->c_str(), stacks.c_str());
      }
    });
  }
  {
    auto run_dir = std::make_shared<std::string>();
    auto data = std::make_shared<std::string>();
    auto output = std::make_shared<std::string>();
    CLI::App* c = app.add_subcommand("predict", "Decoded wafers, transmitted latents and classifier scores of a run");
    c->add_option("run", *run_dir, "run folder from 'ddaq train'")->required();
    c->add_option("--data", *data, "event file")->required();
    c->add_option("-o,--output", *output,
                  "output event file: calq (decoded), latent (the transmitted latents), score; attrs elinks, bits_per_bx")
        ->required();
    c->callback([=] {
      check_outputs(run_inputs(*run_dir, {*data}), {*output});
      EconTPipeline pipeline = EconTPipeline::load(*run_dir);
      const EventFileReader in(*data, pipeline.cells());
      EventFileWriter out(*output, in.has_labels(), pipeline.cells());
      // The latents sent (a latent whose learned gate closed is not).
      const std::vector<int64_t> sent = pipeline.transmitted_latents();
      const at::Tensor sent_index = at::tensor(sent, at::kLong);
      const int64_t n = in.size(), latent = static_cast<int64_t>(sent.size());
      std::vector<float> latents, scores;
      constexpr int64_t kBlock = 8192;
      const int64_t cells = pipeline.cells();
      std::vector<float> calq(static_cast<size_t>(kBlock * cells));
      std::vector<int32_t> labels(kBlock);
      // More than two classes: a probability per class ([N, classes]).
      const int classes = label_classes(pipeline.objectives());
      const int64_t per_event = classes > 2 ? classes : 1;
      Progress progress("predict", n);
      for (int64_t first = 0; first < n; first += kBlock) {
        const int64_t rows = std::min(kBlock, n - first);
        in.read(first, rows, calq.data(), labels.data());
        c10::NoGradGuard no_grad;
        const at::Tensor x = at::from_blob(calq.data(), {rows, cells});
        const PipelineResult r = pipeline.forward(x);
        // The frame carries the module sum: decoded CALQ = unit-sum wafer x sum.
        const at::Tensor decoded = (r.get("reconstruction") * x.sum(1, true)).contiguous();
        // No classification in the graph: no scores.
        const at::Tensor lat = r.get("latent").index_select(1, sent_index).contiguous(),
                         score = !r.has("logits") ? at::zeros({0})
                                 : classes > 2    ? at::softmax(r.get("logits"), 1).contiguous()
                                                  : at::sigmoid(r.get("logits")).contiguous();
        for (const auto& t : {decoded, lat, score})
          if (!at::isfinite(t).all().item<bool>())
            throw Error(*data + ": rows " + std::to_string(first) + ".." + std::to_string(first + rows - 1) +
                        ": the run gives non-finite outputs (nothing written)");
        out.append(decoded.data_ptr<float>(), labels.data(), rows);
        latents.insert(latents.end(), lat.data_ptr<float>(), lat.data_ptr<float>() + rows * latent);
        if (score.numel() > 0)
          scores.insert(scores.end(), score.data_ptr<float>(), score.data_ptr<float>() + rows * per_event);
        progress.advance(rows);
      }
      progress.finish();
      out.add_dataset("latent", latents, {n, latent});
      if (!scores.empty() || n == 0)
        out.add_dataset("score", scores, per_event > 1 ? std::vector<int64_t>{n, per_event} : std::vector<int64_t>{n});
      out.set_attribute("creator", std::string("ddaq predict"));
      out.set_attribute("elinks", static_cast<int64_t>(pipeline.elinks()));
      out.set_attribute("bits_per_bx", static_cast<int64_t>(pipeline.link_bits()) * pipeline.elinks());
      if (latent != pipeline.options().latent())
        out.set_attribute("latent_units", nlohmann::json(sent).dump());  // which of the encoder's latents
      out.set_attribute("provenance", nlohmann::json({{"creator", "ddaq predict"}, {"run", *run_dir}, {"data", *data}}).dump());
      out.commit();
      std::printf("wrote %s: %lld events, latent %lld x %d bits, %d e-links\n", output->c_str(), static_cast<long long>(n),
                  static_cast<long long>(latent), pipeline.latent_bits(), pipeline.elinks());
    });
  }
  {
    auto run_dir = std::make_shared<std::string>();
    auto data = std::make_shared<std::string>();
    auto events = std::make_shared<int64_t>(20000);
    CLI::App* c = app.add_subcommand("eval", "Exact EMD, classifier AUC and Best Choice baselines of a run");
    c->add_option("run", *run_dir, "run folder from 'ddaq train'")->required();
    c->add_option("--data", *data, "event file")->required();
    c->add_option("--events", *events, "at most this many events")
        ->capture_default_str()
        ->check(whole_number_in(1, int64_t(1) << 50));
    c->callback([=] {
      EconTPipeline pipeline = EconTPipeline::load(*run_dir);
      EvaluationReport r = evaluate_pipeline(pipeline, *data, *events);
      r.check_budgets(load_budgets(*run_dir));
      write_file_atomic(*run_dir + "/eval.json", r.to_json() + "\n");
      std::printf("%swrote %s/eval.json\n", r.to_text().c_str(), run_dir->c_str());
    });
  }
}

}  // namespace cli
}  // namespace ddaq
