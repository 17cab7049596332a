// Checkpoints: where training stands, written atomically and read back
// exactly (docs/cluster.md); the fingerprint that refuses a resume under
// another configuration or other data.
#include "checkpoint.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <cmath>
#include <fstream>
#include <iterator>
#include <mutex>

#include "ddaq/error.h"
#include "ddaq/files.h"
#include "ddaq/quant/layers.h"

namespace ddaq {

// Everything that fixes the trajectory; a checkpoint resumes only under the same.
std::string fingerprint(const EconTPipeline& pipeline, const std::string& train_file, int64_t file_events,
                        const TrainerOptions& o) {
  return nlohmann::json(
             {{"pipeline", nlohmann::json::parse(pipeline.description_json())},
              // Data by content identity: the same file under another
              // path (another working directory, a copy on a new
              // node) resumes; a changed file does not.
              {"train_data", file_identity(train_file)},
              {"train_events", file_events},
              {"epochs", o.epochs()},
              {"batch_size", o.batch_size()},
              {"learning_rate", o.learning_rate()},
              {"weight_decay", o.weight_decay()},
              {"bits_learning_rate", o.bits_learning_rate()},
              {"seed", o.seed()},
              {"loss", o.loss()},
              {"surrogate",
               o.surrogate().empty() || o.loss() != "surrogate" ? std::string() : file_identity(o.surrogate())},
              {"weights",
               {o.reconstruction_weight(), o.classification_weight(), o.elinks_budget(), o.link_weight(),
                o.ebops_weight(), o.power_weight()}},
              {"frozen", o.frozen()},
              {"budgets", {o.budgets(), o.budget_penalty(), o.budget_update_every(), o.finetune_fraction()}},
              {"validation", o.validation().empty() ? std::string() : file_identity(o.validation())},
              {"validation_events", o.validation_events()},
              {"patience", o.patience()},
              {"augmentation",
               {o.pileup_pool().empty() || o.pileup_mu() <= 0 ? std::string() : file_identity(o.pileup_pool()),
                o.pileup_mu(), o.pileup_mu_min(), o.noise()}},
              {"schedules",
               {o.qat_start_step(), o.prune_sparsity(), o.prune_start_step(), o.prune_end_step(), o.prune_every()}}})
      .dump();
}

std::vector<std::pair<std::string, torch::Tensor>> snapshot(const EconTPipeline& p) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& kv : p.named_state()) out.emplace_back(kv.first, kv.second.detach().clone());
  return out;
}

void restore(EconTPipeline& p, const std::vector<std::pair<std::string, torch::Tensor>>& state,
             const std::string& source) {
  torch::NoGradGuard no_grad;
  for (auto& kv : p.named_state()) {
    auto it = std::find_if(state.begin(), state.end(), [&](const auto& s) { return s.first == kv.first; });
    if (it == state.end() || !it->second.sizes().equals(kv.second.sizes()))
      throw Error(source + ": no tensor '" + kv.first + "' of the pipeline's shape (another architecture?)");
    kv.second.copy_(it->second);
  }
}

static torch::serialize::OutputArchive tensors_archive(
    const std::vector<std::pair<std::string, torch::Tensor>>& named) {
  torch::serialize::OutputArchive a;
  for (const auto& kv : named) a.write(kv.first, kv.second.detach().cpu(), /*is_buffer=*/true);
  return a;
}

static nlohmann::json position_json(const Position& p, const std::string& print) {
  return {{"format", "ddaq-checkpoint-1"},
          {"step", p.step},
          {"epoch", p.epoch},
          {"batch_in_epoch", p.batch_in_epoch},
          {"epoch_sums", p.epoch_sums},
          {"best_validation", std::isfinite(p.best_validation) ? nlohmann::json(p.best_validation) : nlohmann::json()},
          {"best_epoch", p.best_epoch},
          {"epochs_without_improvement", p.epochs_without_improvement},
          {"stop", p.stop},
          {"budgets", p.budgets},
          {"fixed_energy_pj", p.fixed_energy_pj},
          {"fingerprint", print}};
}

void write_checkpoint(const std::string& path, const EconTPipeline& pipeline, const FlatAdam& optimizer,
                      const Position& pos, const std::string& print,
                      const std::vector<std::pair<std::string, torch::Tensor>>& best) {
  std::string bytes;
  try {
    torch::serialize::OutputArchive a, opt;
    a.write("meta", c10::IValue(position_json(pos, print).dump()));
    std::vector<std::pair<std::string, torch::Tensor>> state;
    for (const auto& kv : pipeline.named_state()) state.emplace_back(kv.first, kv.second);
    torch::serialize::OutputArchive state_archive = tensors_archive(state);
    a.write("state", state_archive);
    if (!best.empty()) {
      torch::serialize::OutputArchive best_archive = tensors_archive(best);
      a.write("best", best_archive);
    }
    opt = tensors_archive(optimizer.state());
    a.write("optimizer", opt);
    a.write("rng", at::detail::getDefaultCPUGenerator().get_state(), /*is_buffer=*/true);
    a.save_to([&](const void* data, size_t n) {
      bytes.append(static_cast<const char*>(data), n);
      return n;
    });
  } catch (const c10::Error& e) {
    throw Error(path + ": cannot serialize checkpoint (" + e.what_without_backtrace() + ")");
  }
  write_file_atomic(path, bytes);  // temp file, fsync, rename: never half a checkpoint
}

static std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open checkpoint (missing or unreadable)");
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

static std::vector<std::pair<std::string, torch::Tensor>> read_tensors(torch::serialize::InputArchive& a) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const std::string& key : a.keys()) {
    torch::Tensor t;
    a.read(key, t, /*is_buffer=*/true);
    out.emplace_back(key, t);
  }
  return out;
}

LoadedCheckpoint load_checkpoint(const std::string& path, FlatAdam* optimizer) {
  const std::string bytes = read_bytes(path);
  LoadedCheckpoint c;
  try {
    torch::serialize::InputArchive a;
    a.load_from(bytes.data(), bytes.size());
    c10::IValue meta;
    a.read("meta", meta);
    c.meta = nlohmann::json::parse(meta.toStringRef());
    if (c.meta.value("format", "") != "ddaq-checkpoint-1") throw Error(path + ": not a ddaq checkpoint (format)");
    torch::serialize::InputArchive state;
    a.read("state", state);
    c.state = read_tensors(state);
    torch::serialize::InputArchive best;
    if (a.try_read("best", best)) c.best = read_tensors(best);
    if (optimizer) {
      torch::serialize::InputArchive opt;
      a.read("optimizer", opt);
      optimizer->load_state(read_tensors(opt), path);
      torch::Tensor rng;
      a.read("rng", rng, /*is_buffer=*/true);
      auto gen = at::detail::getDefaultCPUGenerator();
      std::lock_guard<std::mutex> lock(gen.mutex());
      gen.set_state(rng);
    }
  } catch (const Error&) {
    throw;
  } catch (const nlohmann::json::exception&) {
    throw Error(path + ": not a ddaq checkpoint (meta)");
  } catch (const std::exception&) {
    const std::string kind = ddaq_archive_kind(path);
    throw Error(path + (kind.rfind("a ddaq", 0) != 0 || kind == "a ddaq training checkpoint"
                            ? ": not a readable ddaq checkpoint (damaged, truncated or not ddaq's)"
                            : ": is " + kind + ", not a training checkpoint"));
  }
  return c;
}

// The first top-level key whose value differs, for a one-line error.
std::string first_difference(const std::string& a, const std::string& b) {
  const auto ja = nlohmann::json::parse(a), jb = nlohmann::json::parse(b);
  for (const auto& kv : ja.items())
    if (!jb.contains(kv.key()) || jb[kv.key()] != kv.value())
      return kv.key() + " (checkpoint " + kv.value().dump() + ", now " +
             (jb.contains(kv.key()) ? jb[kv.key()].dump() : std::string("absent")) + ")";
  return "?";
}

// Keeps only metrics lines up to `step`: a run killed after an epoch line but
// before its checkpoint must not get that line twice.
void truncate_metrics(const std::string& path, int64_t step) {
  std::ifstream in(path);
  if (!in) return;
  std::string line, kept;
  while (std::getline(in, line)) {
    try {
      if (nlohmann::json::parse(line).value("steps", int64_t(0)) > step) continue;
    } catch (const nlohmann::json::exception&) {
      continue;  // a torn last line
    }
    kept += line + "\n";
  }
  write_file_atomic(path, kept);
}

// Where a checkpoint says training stood.
Position position_from(const nlohmann::json& meta) {
  Position pos;
  pos.step = meta.at("step");
  pos.epoch = meta.at("epoch");
  pos.batch_in_epoch = meta.at("batch_in_epoch");
  pos.epoch_sums = meta.at("epoch_sums").get<std::map<std::string, double>>();
  pos.best_validation = meta.at("best_validation").is_null() ? INFINITY : meta.at("best_validation").get<double>();
  pos.best_epoch = meta.at("best_epoch");
  pos.epochs_without_improvement = meta.at("epochs_without_improvement");
  pos.stop = meta.at("stop");
  return pos;
}

CheckpointContents read_checkpoint(const std::string& path) {
  const LoadedCheckpoint c = load_checkpoint(path, nullptr);
  CheckpointContents out;
  out.step = c.meta.value("step", int64_t(0));
  out.epoch = c.meta.value("epoch", 0);
  out.batch_in_epoch = c.meta.value("batch_in_epoch", int64_t(0));
  out.fingerprint = c.meta.value("fingerprint", "");
  out.state = c.state;
  return out;
}

}  // namespace ddaq
