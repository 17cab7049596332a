#include "ddaq/interrupts.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <thread>

#include "ddaq/error.h"
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

// The handler only writes the signal's number into a pipe (async-signal-safe);
// the waiting thread reads it and acts as ordinary code.
int g_pipe[2] = {-1, -1};

void on_signal(int sig) {
  const int saved = errno;
  const unsigned char byte = static_cast<unsigned char>(sig);
  [[maybe_unused]] const ssize_t n = ::write(g_pipe[1], &byte, 1);
  errno = saved;
}

void wait_for_signals() {
  // The one thread that never blocks them: a signal meant for the process
  // lands here unless it lands on a thread that started before
  // install_interrupt_handling; the handler serves both.
  const sigset_t set = handled_signals();
  pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
  for (;;) {
    unsigned char byte = 0;
    const ssize_t n = ::read(g_pipe[0], &byte, 1);
    if (n != 1) {
      if (n < 0 && errno == EINTR) continue;
      return;
    }
    const int sig = byte;
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
  if (::pipe2(g_pipe, O_CLOEXEC) != 0)
    throw Error(std::string("cannot create the signal pipe: ") + std::strerror(errno));
  // A handler, not only a blocked set: libraries may start threads before
  // main() (LibTorch 2.x wheels start a thread pool while loading), and those
  // threads do not block the signals, so the default action (the end of the
  // process, no checkpoint) would hit whichever of them the kernel picks.
  struct sigaction action {};
  action.sa_handler = on_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) sigaction(sig, &action, nullptr);
  // Threads started from here on leave the signals to the waiting thread, so
  // their system calls are not interrupted.
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
