#include "ddaq/interrupts.h"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <thread>

#include "ddaq/files.h"

namespace ddaq {
namespace {

std::atomic<int> g_requested{0};
std::atomic<int> g_cooperative{0};
std::string g_program = "ddaq";

sigset_t handled_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  return set;
}

[[noreturn]] void end_now(int sig) {
  remove_tracked_temporaries();
  std::fprintf(stderr, "\n%s: interrupted by %s; nothing half-written was left\n", g_program.c_str(),
               signal_name(sig).c_str());
  std::fflush(stderr);
  ::_exit(128 + sig);
}

void wait_for_signals() {
  const sigset_t set = handled_signals();
  for (;;) {
    int sig = 0;
    if (sigwait(&set, &sig) != 0) continue;
    if (g_cooperative.load() > 0 && g_requested.load() == 0) {
      g_requested.store(sig);
      std::fprintf(stderr, "\n%s: %s received: stopping at the next step with a checkpoint (again to stop now)\n",
                   g_program.c_str(), signal_name(sig).c_str());
      continue;
    }
    end_now(sig);
  }
}

}  // namespace

void install_interrupt_handling(const std::string& program) {
  static bool installed = false;
  if (installed) return;
  installed = true;
  g_program = program;
  const sigset_t set = handled_signals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::thread(wait_for_signals).detach();
}

int interrupt_requested() { return g_requested.load(); }

std::string signal_name(int sig) {
  switch (sig) {
    case SIGINT:
      return "SIGINT";
    case SIGTERM:
      return "SIGTERM";
    case SIGHUP:
      return "SIGHUP";
    default:
      return "signal " + std::to_string(sig);
  }
}

CooperativeInterrupts::CooperativeInterrupts() { g_cooperative.fetch_add(1); }
CooperativeInterrupts::~CooperativeInterrupts() { g_cooperative.fetch_sub(1); }

}  // namespace ddaq
