// Rendezvous from launcher environments (no processes: the variables only).
#include <csignal>
#include <cstdlib>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "ddaq/core/distributed.h"
#include "ddaq/error.h"
#include "test_support.h"

namespace {

const std::vector<std::string> kVariables = {
    "RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_RUN_ID",
    "TORCHELASTIC_RESTART_COUNT", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID", "SLURM_NNODES",
    "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_SIZE"};

// Sets exactly `vars` among the launcher variables for one scope.
struct Environment {
  explicit Environment(const std::vector<std::pair<std::string, std::string>>& vars) {
    for (const auto& v : kVariables) ::unsetenv(v.c_str());
    for (const auto& kv : vars) ::setenv(kv.first.c_str(), kv.second.c_str(), 1);
  }
  ~Environment() {
    for (const auto& v : kVariables) ::unsetenv(v.c_str());
  }
};

}  // namespace

DOCTEST_TEST_SUITE("core distributed environment") {
  DOCTEST_TEST_CASE("no launcher: one process") {
    Environment e({});
    const auto d = ddaq::DistributedEnvironment::detect();
    DOCTEST_CHECK(d.launcher == "none");
    DOCTEST_CHECK(!d.distributed());
  }

  DOCTEST_TEST_CASE("env: RANK WORLD_SIZE MASTER_ADDR MASTER_PORT") {
    Environment e({{"RANK", "1"}, {"WORLD_SIZE", "4"}, {"LOCAL_RANK", "1"}, {"MASTER_ADDR", "node7"}, {"MASTER_PORT", "1234"}});
    const auto d = ddaq::DistributedEnvironment::detect();
    DOCTEST_CHECK(d.launcher == "env");
    DOCTEST_CHECK(d.rank == 1);
    DOCTEST_CHECK(d.world_size == 4);
    DOCTEST_CHECK(d.local_rank == 1);
    DOCTEST_CHECK(d.master_addr == "node7");
    DOCTEST_CHECK(d.master_port == 1234);
    DOCTEST_CHECK(d.distributed());
    DOCTEST_CHECK(d.local_rank_known);
  }

  DOCTEST_TEST_CASE("env without LOCAL_RANK: the rank on loopback / unknown across hosts") {
    {
      Environment e({{"RANK", "1"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "127.0.0.1"}, {"MASTER_PORT", "1234"}});
      const auto d = ddaq::DistributedEnvironment::detect();
      DOCTEST_CHECK(d.local_rank == 1);
      DOCTEST_CHECK(d.local_rank_known);
    }
    Environment e({{"RANK", "1"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "node7"}, {"MASTER_PORT", "1234"}});
    DOCTEST_CHECK(!ddaq::DistributedEnvironment::detect().local_rank_known);
  }

  DOCTEST_TEST_CASE("torchrun: the agent's variables win and its restart count is kept") {
    Environment e({{"TORCHELASTIC_RUN_ID", "x"}, {"TORCHELASTIC_RESTART_COUNT", "2"}, {"RANK", "0"}, {"WORLD_SIZE", "2"},
                   {"MASTER_ADDR", "127.0.0.1"}, {"MASTER_PORT", "29500"}, {"SLURM_PROCID", "5"}, {"SLURM_NTASKS", "8"}});
    const auto d = ddaq::DistributedEnvironment::detect();
    DOCTEST_CHECK(d.launcher == "torchrun");
    DOCTEST_CHECK(d.restart_count == 2);
    DOCTEST_CHECK(d.world_size == 2);
  }

  DOCTEST_TEST_CASE("slurm: one node defaults to loopback / several nodes need MASTER_ADDR") {
    {
      Environment e({{"SLURM_PROCID", "3"}, {"SLURM_NTASKS", "4"}, {"SLURM_LOCALID", "3"}, {"SLURM_NNODES", "1"}});
      const auto d = ddaq::DistributedEnvironment::detect();
      DOCTEST_CHECK(d.launcher == "slurm");
      DOCTEST_CHECK(d.rank == 3);
      DOCTEST_CHECK(d.local_rank == 3);
      DOCTEST_CHECK(d.master_addr == "127.0.0.1");
      DOCTEST_CHECK(d.master_port == 29500);
    }
    Environment e({{"SLURM_PROCID", "3"}, {"SLURM_NTASKS", "4"}, {"SLURM_NNODES", "2"}});
    DOCTEST_CHECK_THROWS_WITH_AS(ddaq::DistributedEnvironment::detect(), doctest::Contains("MASTER_ADDR"), ddaq::Error);
  }

  DOCTEST_TEST_CASE("openmpi: OMPI_COMM_WORLD variables") {
    Environment e({{"OMPI_COMM_WORLD_RANK", "1"}, {"OMPI_COMM_WORLD_SIZE", "2"}, {"OMPI_COMM_WORLD_LOCAL_RANK", "1"},
                   {"OMPI_COMM_WORLD_LOCAL_SIZE", "2"}, {"MASTER_PORT", "4000"}});
    const auto d = ddaq::DistributedEnvironment::detect();
    DOCTEST_CHECK(d.launcher == "openmpi");
    DOCTEST_CHECK(d.rank == 1);
    DOCTEST_CHECK(d.master_addr == "127.0.0.1");
    DOCTEST_CHECK(d.master_port == 4000);
  }

  DOCTEST_TEST_CASE("bad values and requests are one-line errors naming the variable") {
    {
      Environment e({{"RANK", "2"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"}, {"MASTER_PORT", "1"}});
      DOCTEST_CHECK_THROWS_WITH_AS(ddaq::DistributedEnvironment::detect(), doctest::Contains("RANK='2'"), ddaq::Error);
    }
    {
      Environment e({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"}, {"MASTER_PORT", "port"}});
      DOCTEST_CHECK_THROWS_WITH_AS(ddaq::DistributedEnvironment::detect(), doctest::Contains("MASTER_PORT='port'"),
                                   ddaq::Error);
    }
    {
      Environment e({{"RANK", "0"}, {"WORLD_SIZE", "2"}});
      DOCTEST_CHECK_THROWS_WITH_AS(ddaq::DistributedEnvironment::detect(), doctest::Contains("MASTER_ADDR"), ddaq::Error);
    }
    Environment e({});
    DOCTEST_CHECK_THROWS_WITH_AS(ddaq::DistributedEnvironment::detect("slurm"), doctest::Contains("slurm launch needs environment variable SLURM_NTASKS"),
                                 ddaq::Error);
    DOCTEST_CHECK_THROWS_WITH_AS(ddaq::DistributedEnvironment::detect("mpi"), doctest::Contains("launcher 'mpi'"),
                                 ddaq::Error);
    DOCTEST_CHECK(ddaq::DistributedEnvironment::detect("none").world_size == 1);
  }

  DOCTEST_TEST_CASE("joining a group makes a dead peer's socket an error instead of a silent SIGPIPE death") {
    // Gloo writes to peers' sockets; with SIGPIPE at its default a rank
    // whose peer was just killed died with signal 13 before it could report
    // (seen once in CI). A one-rank group exercises the same connect path.
    std::signal(SIGPIPE, SIG_DFL);
    ddaq::DistributedEnvironment env;
    env.launcher = "env";
    env.master_port = 0;  // the store binds any free port
    auto group = ddaq::Communicator::connect(env, "cpu", std::chrono::seconds(20));
    DOCTEST_CHECK(group->world_size() == 1);
    DOCTEST_CHECK(group->sum({2.0, 3.0}) == std::vector<double>{2.0, 3.0});
    struct sigaction now {};
    ::sigaction(SIGPIPE, nullptr, &now);
    const bool ignored = now.sa_handler == SIG_IGN;
    DOCTEST_CHECK(ignored);
  }
}
