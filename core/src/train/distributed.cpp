// Data-parallel plumbing over LibTorch's c10d: rendezvous from the launcher's
// environment, Gloo (CPU) or NCCL (CUDA) process groups, bucketed averaging.
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO 1  // ProcessGroupGloo.hpp is empty without it
#endif
#include "ddaq/core/distributed.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef DDAQ_HAVE_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <csignal>
#include <cstdlib>
#include <sstream>

#include "ddaq/error.h"

namespace ddaq {

namespace {

const char* env(const char* name) {
  const char* v = std::getenv(name);
  return v && *v ? v : nullptr;
}

int env_int(const char* name, int fallback, int lo, int hi) {
  const char* v = env(name);
  if (!v) return fallback;
  char* end = nullptr;
  const long x = std::strtol(v, &end, 10);
  if (*end != '\0' || x < lo || x > hi)
    throw Error(std::string("distributed: environment ") + name + "='" + v + "' is not an integer in [" +
                std::to_string(lo) + ", " + std::to_string(hi) + "]");
  return static_cast<int>(x);
}

int env_required_int(const char* name, int lo, int hi, const std::string& launcher) {
  if (!env(name)) throw Error(std::string("distributed: ") + launcher + " launch needs environment variable " + name);
  return env_int(name, 0, lo, hi);
}

// One node (every rank local) may leave MASTER_ADDR out; several may not.
std::string master_address(bool single_node, const std::string& launcher) {
  if (const char* a = env("MASTER_ADDR")) return a;
  if (single_node) return "127.0.0.1";
  throw Error("distributed: " + launcher + " launch over several nodes needs MASTER_ADDR (rank 0's host)");
}

constexpr int kMaxRanks = 1 << 20;

// Rank, world size and local rank from one launcher's variable names.
void read_ranks(DistributedEnvironment& e, const char* launcher, const char* size_var, const char* rank_var,
                const char* local_var) {
  e.launcher = launcher;
  e.world_size = env_required_int(size_var, 1, kMaxRanks, e.launcher);
  e.rank = env_required_int(rank_var, 0, e.world_size - 1, e.launcher);
  e.local_rank = env_int(local_var, 0, 0, kMaxRanks);
  e.local_rank_known = env(local_var) != nullptr;
}

}  // namespace

DistributedEnvironment DistributedEnvironment::detect(const std::string& launcher) {
  static const char* kNames[] = {"auto", "none", "torchrun", "env", "slurm", "openmpi"};
  bool known = false;
  for (const char* n : kNames) known = known || launcher == n;
  if (!known)
    throw Error("distributed: launcher '" + launcher + "' (expected auto, none, torchrun, env, slurm or openmpi)");
  DistributedEnvironment e;
  if (launcher == "none") return e;
  auto pick = [&](const char* name, bool present) { return launcher == name || (launcher == "auto" && present); };
  if (pick("torchrun", env("TORCHELASTIC_RUN_ID") != nullptr)) {
    read_ranks(e, "torchrun", "WORLD_SIZE", "RANK", "LOCAL_RANK");
    e.restart_count = env_int("TORCHELASTIC_RESTART_COUNT", 0, 0, kMaxRanks);
    if (!env("MASTER_ADDR")) throw Error("distributed: torchrun launch needs MASTER_ADDR");
    e.master_addr = env("MASTER_ADDR");
    e.master_port = env_required_int("MASTER_PORT", 1, 65535, e.launcher);
  } else if (pick("env", env("RANK") && env("WORLD_SIZE"))) {
    read_ranks(e, "env", "WORLD_SIZE", "RANK", "LOCAL_RANK");
    if (e.world_size > 1) {
      if (!env("MASTER_ADDR")) throw Error("distributed: env launch needs MASTER_ADDR (rank 0's host)");
      e.master_addr = env("MASTER_ADDR");
      e.master_port = env_required_int("MASTER_PORT", 1, 65535, e.launcher);
      if (!e.local_rank_known && (e.master_addr == "127.0.0.1" || e.master_addr == "localhost")) {
        e.local_rank = e.rank;  // every rank on this machine
        e.local_rank_known = true;
      }
    }
  } else if (pick("slurm", env("SLURM_PROCID") && env("SLURM_NTASKS"))) {
    read_ranks(e, "slurm", "SLURM_NTASKS", "SLURM_PROCID", "SLURM_LOCALID");
    if (e.world_size > 1) {
      e.master_addr = master_address(env_int("SLURM_NNODES", 1, 1, kMaxRanks) == 1, e.launcher);
      e.master_port = env_int("MASTER_PORT", 29500, 1, 65535);
    }
  } else if (pick("openmpi", env("OMPI_COMM_WORLD_RANK") && env("OMPI_COMM_WORLD_SIZE"))) {
    read_ranks(e, "openmpi", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_LOCAL_RANK");
    if (e.world_size > 1) {
      const int local = env_int("OMPI_COMM_WORLD_LOCAL_SIZE", 0, 0, kMaxRanks);
      e.master_addr = master_address(local == e.world_size, e.launcher);
      e.master_port = env_int("MASTER_PORT", 29500, 1, 65535);
    }
  } else if (launcher != "auto") {
    throw Error("distributed: launcher '" + launcher + "' requested but its environment variables are not set");
  }
  return e;
}

std::string DistributedEnvironment::to_text() const {
  std::ostringstream s;
  s << "rank " << rank << " of " << world_size << " (local rank " << local_rank << ", launcher " << launcher;
  if (world_size > 1) s << ", store " << master_addr << ":" << master_port;
  s << ")";
  return s.str();
}

struct Communicator::Impl {
  DistributedEnvironment env;
  std::string backend;
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> gloo;
#ifdef DDAQ_HAVE_NCCL
  c10::intrusive_ptr<c10d::ProcessGroupNCCL> nccl;
#endif
  at::Device device{at::kCPU};

  // Any failure of a collective becomes one clear line.
  [[noreturn]] void fail(const char* what, const std::exception& e) const {
    std::string why = e.what();
    why = why.substr(0, why.find('\n'));
    throw Error("distributed: rank " + std::to_string(env.rank) + " of " + std::to_string(env.world_size) + ": " + what +
                " failed (a peer rank exited, or none answered in time): " + why);
  }
  template <class F>
  c10::intrusive_ptr<c10d::Work> start(const char* what, F&& collective) {
    try {
      return collective();
    } catch (const std::exception& e) {
      fail(what, e);
    }
  }
  void wait(const char* what, const c10::intrusive_ptr<c10d::Work>& work) {
    try {
      work->wait();
    } catch (const std::exception& e) {
      fail(what, e);
    }
  }
  // Runs one collective and waits.
  template <class F>
  void run(const char* what, F&& collective) {
    wait(what, start(what, std::forward<F>(collective)));
  }
  template <class Options>
  c10::intrusive_ptr<c10d::Work> allreduce(std::vector<at::Tensor>& t, const Options& o) {
#ifdef DDAQ_HAVE_NCCL
    if (nccl) return nccl->allreduce(t, o);
#endif
    return gloo->allreduce(t, o);
  }
  c10::intrusive_ptr<c10d::Work> broadcast(std::vector<at::Tensor>& t, const c10d::BroadcastOptions& o) {
#ifdef DDAQ_HAVE_NCCL
    if (nccl) return nccl->broadcast(t, o);
#endif
    return gloo->broadcast(t, o);
  }
};

Communicator::Communicator(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Communicator::~Communicator() = default;

std::unique_ptr<Communicator> Communicator::connect(const DistributedEnvironment& env, const std::string& device,
                                                    std::chrono::seconds timeout) {
  // A peer that dies mid-collective closes its sockets; Gloo's next write to
  // one raises SIGPIPE, whose default action kills this rank silently (exit
  // -13, seen in CI) before Gloo can report it. Ignored, the write fails with
  // EPIPE and the collective throws the one-line error below. (Python ignores
  // SIGPIPE at start-up, which is why torch.distributed never shows this.)
  std::signal(SIGPIPE, SIG_IGN);
  auto impl = std::make_unique<Impl>();
  impl->env = env;
  try {
    impl->device = at::Device(device);
  } catch (const c10::Error&) {
    throw Error("distributed: device '" + device + "' (expected cpu or cuda[:N])");
  }
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(timeout);
  try {
    c10d::TCPStoreOptions so;
    so.port = static_cast<uint16_t>(env.master_port);
    so.timeout = ms;
    // Under torchrun the agent already serves the store: every rank is a client.
    so.isServer = env.launcher != "torchrun" && env.rank == 0;
    so.numWorkers = env.launcher == "torchrun" ? c10::nullopt : c10::optional<std::size_t>(env.world_size);
    // Every rank counts itself in (the server waits for all): not under torchrun.
    so.waitWorkers = env.launcher != "torchrun";
    c10::intrusive_ptr<c10d::Store> store = c10::make_intrusive<c10d::TCPStore>(env.master_addr, so);
    if (env.launcher == "torchrun")
      store = c10::make_intrusive<c10d::PrefixStore>("/worker/attempt_" + std::to_string(env.restart_count), store);
    impl->store = store;
  } catch (const std::exception& e) {
    std::string why = e.what();
    throw Error("distributed: rank " + std::to_string(env.rank) + ": cannot reach the store at " + env.master_addr + ":" +
                std::to_string(env.master_port) + ": " + why.substr(0, why.find('\n')));
  }
  try {
#ifdef DDAQ_HAVE_NCCL
    if (impl->device.is_cuda()) {
      auto o = c10d::ProcessGroupNCCL::Options::create();
      o->timeout = ms;
      impl->nccl = c10::make_intrusive<c10d::ProcessGroupNCCL>(impl->store, env.rank, env.world_size, o);
      impl->backend = "nccl";
    }
#endif
    if (impl->backend.empty()) {
      auto o = c10d::ProcessGroupGloo::Options::create(ms);
      // Loopback rendezvous: bind loopback (a container's hostname may not resolve).
      if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME"))
        o->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
      else if (env.master_addr == "127.0.0.1" || env.master_addr == "localhost")
        o->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
      else
        o->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
      o->threads = 1;
      impl->gloo = c10::make_intrusive<c10d::ProcessGroupGloo>(impl->store, env.rank, env.world_size, o);
      impl->backend = "gloo";
    }
  } catch (const std::exception& e) {
    std::string why = e.what();
    throw Error("distributed: rank " + std::to_string(env.rank) + ": cannot form the process group of " +
                std::to_string(env.world_size) + ": " + why.substr(0, why.find('\n')));
  }
  return std::unique_ptr<Communicator>(new Communicator(std::move(impl)));
}

int Communicator::rank() const { return impl_->env.rank; }
int Communicator::world_size() const { return impl_->env.world_size; }
std::string Communicator::backend() const { return impl_->backend; }

void Communicator::broadcast(const std::vector<at::Tensor>& tensors, int root) {
  at::NoGradGuard no_grad;
  for (const at::Tensor& t : tensors) {
    std::vector<at::Tensor> one = {t.is_contiguous() ? t : t.contiguous()};
    c10d::BroadcastOptions o;
    o.rootRank = root;
    impl_->run("broadcast", [&] { return impl_->broadcast(one, o); });
    if (!t.is_same(one[0])) t.copy_(one[0]);
  }
}

void Communicator::average(const std::vector<at::Tensor>& tensors, size_t bucket_bytes) {
  at::NoGradGuard no_grad;
  const double scale = 1.0 / impl_->env.world_size;
  // Buckets of same-dtype tensors, flattened into one buffer per collective.
  size_t i = 0;
  while (i < tensors.size()) {
    std::vector<at::Tensor> group;
    size_t bytes = 0;
    const auto dtype = tensors[i].scalar_type();
    while (i < tensors.size() && tensors[i].scalar_type() == dtype &&
           (group.empty() || bytes + tensors[i].nbytes() <= bucket_bytes)) {
      bytes += tensors[i].nbytes();
      group.push_back(tensors[i++]);
    }
    std::vector<at::Tensor> flat;
    for (const at::Tensor& t : group) flat.push_back(t.reshape({-1}));
    std::vector<at::Tensor> buffer = {at::cat(flat)};
    c10d::AllreduceOptions o;
    o.reduceOp = c10d::ReduceOp::SUM;
    impl_->run("gradient all-reduce", [&] { return impl_->allreduce(buffer, o); });
    buffer[0].mul_(scale);
    int64_t offset = 0;
    for (const at::Tensor& t : group) {
      t.copy_(buffer[0].narrow(0, offset, t.numel()).view_as(t));
      offset += t.numel();
    }
  }
}

std::function<void()> Communicator::start_average(const at::Tensor& flat) {
  if (!flat.is_contiguous()) throw Error("distributed: start_average needs a contiguous tensor");
  auto buffer = std::make_shared<std::vector<at::Tensor>>(1, flat);
  c10d::AllreduceOptions o;
  o.reduceOp = c10d::ReduceOp::SUM;
  const c10::intrusive_ptr<c10d::Work> work =
      impl_->start("gradient all-reduce", [&] { return impl_->allreduce(*buffer, o); });
  Impl* impl = impl_.get();
  const double scale = 1.0 / impl_->env.world_size;
  return [impl, work, buffer, scale] {
    impl->wait("gradient all-reduce", work);
    at::NoGradGuard no_grad;
    (*buffer)[0].mul_(scale);
  };
}

void Communicator::maximum(const std::vector<at::Tensor>& tensors) {
  at::NoGradGuard no_grad;
  for (const at::Tensor& t : tensors) {
    std::vector<at::Tensor> one = {t.contiguous()};
    c10d::AllreduceOptions o;
    o.reduceOp = c10d::ReduceOp::MAX;
    impl_->run("maximum all-reduce", [&] { return impl_->allreduce(one, o); });
    if (!t.is_same(one[0])) t.copy_(one[0]);
  }
}

std::vector<double> Communicator::sum(const std::vector<double>& values) {
  if (values.empty()) return {};
  std::vector<at::Tensor> one = {
      at::tensor(at::ArrayRef<double>(values), at::TensorOptions().dtype(at::kDouble)).to(impl_->device)};
  c10d::AllreduceOptions o;
  o.reduceOp = c10d::ReduceOp::SUM;
  impl_->run("metrics all-reduce", [&] { return impl_->allreduce(one, o); });
  const at::Tensor r = one[0].cpu();
  return std::vector<double>(r.data_ptr<double>(), r.data_ptr<double>() + r.numel());
}

void Communicator::barrier() {
  // A one-element all-reduce: behaves the same on Gloo and NCCL.
  std::vector<at::Tensor> one = {at::zeros({1}, at::TensorOptions().device(impl_->device))};
  c10d::AllreduceOptions o;
  impl_->run("barrier", [&] { return impl_->allreduce(one, o); });
}

}  // namespace ddaq
