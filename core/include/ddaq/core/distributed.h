// ddaq/core/distributed.h: data-parallel training over processes (c10d).
//
// One process per rank; every rank holds the whole model, reads its shard of
// the data (EventLoader's rank/world_size) and, after backward, the ranks
// average their gradients with an all-reduce. LibTorch's own c10d does the
// communication: ProcessGroupGloo on CPU, ProcessGroupNCCL for CUDA tensors
// when ddaq is built against a LibTorch with NCCL (upstream CUDA builds).
//
// Rendezvous comes from the launcher's environment (first match wins):
//   torchrun   TORCHELASTIC_RUN_ID + RANK/WORLD_SIZE/LOCAL_RANK/MASTER_*; the
//              agent owns the TCP store, ranks join as clients under
//              "/worker/attempt_<TORCHELASTIC_RESTART_COUNT>"
//   env        RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT (LOCAL_RANK optional;
//              on a loopback MASTER_ADDR it defaults to RANK)
//   slurm      SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID; MASTER_ADDR (may be
//              left out on one node), MASTER_PORT (default 29500)
//   openmpi    OMPI_COMM_WORLD_RANK/SIZE/LOCAL_RANK; MASTER_ADDR as slurm
// With none of them (or world size 1) training runs in one process.
#pragma once
#include <ATen/core/Tensor.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace ddaq {

struct DistributedEnvironment {
  std::string launcher = "none";  // "none", "torchrun", "env", "slurm", "openmpi"
  int rank = 0, world_size = 1, local_rank = 0;
  bool local_rank_known = false;  // from the launcher (or rank, on a loopback launch)
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  int restart_count = 0;  // torchrun's TORCHELASTIC_RESTART_COUNT

  // Reads the variables above. `launcher`: "auto" (first match), "none", or
  // one of the names to insist on. Inconsistent or missing values throw
  // ddaq::Error naming the variable.
  static DistributedEnvironment detect(const std::string& launcher = "auto");
  bool distributed() const { return world_size > 1; }
  std::string to_text() const;
};

// A process group joined by every rank; collectives block until all ranks
// take part, and throw ddaq::Error (naming the operation and this rank) when
// a peer exits or the timeout passes, so a dead rank never hangs the others.
class Communicator {
 public:
  // Joins the group (rank 0 serves the store unless under torchrun).
  // `device`: "cpu" (Gloo) or "cuda[:N]" (NCCL when available, else Gloo).
  // Sets SIGPIPE to ignored for the process, so a write to a dead peer's
  // socket becomes the error above rather than killing this rank silently.
  static std::unique_ptr<Communicator> connect(const DistributedEnvironment& env, const std::string& device = "cpu",
                                               std::chrono::seconds timeout = std::chrono::seconds(120));
  ~Communicator();

  int rank() const;
  int world_size() const;
  std::string backend() const;

  // Copies rank `root`'s values into every rank's tensors (in place).
  void broadcast(const std::vector<at::Tensor>& tensors, int root = 0);
  // Replaces each gradient by its mean over ranks. Tensors are packed into
  // buckets of at most `bucket_bytes` per collective.
  void average(const std::vector<at::Tensor>& tensors, size_t bucket_bytes = size_t(8) << 20);
  // The same for one contiguous tensor, started now and finished by calling
  // the returned function (which throws like average()): work done in
  // between (loading the next batch) overlaps the communication.
  std::function<void()> start_average(const at::Tensor& flat);
  // Element-wise maximum over ranks (in place), e.g. observed ranges.
  void maximum(const std::vector<at::Tensor>& tensors);
  // Sum over ranks of plain numbers (metrics).
  std::vector<double> sum(const std::vector<double>& values);
  void barrier();

 private:
  struct Impl;
  explicit Communicator(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace ddaq
