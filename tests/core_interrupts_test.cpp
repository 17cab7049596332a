// Signals reaching threads that libraries start before main() (LibTorch 2.x
// wheels start a thread pool while loading): they must be handled, not end
// the process with the default action. Each case runs in a forked child,
// because installation is for the whole process.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "ddaq/interrupts.h"

namespace {

// In a child: a thread started before install_interrupt_handling (signals not
// blocked there) sends itself SIGTERM; with `cooperative` the child then
// waits for the request and exits 0 if it saw SIGTERM. Returns the wait status.
int status_of_child(bool cooperative) {
  const pid_t pid = fork();
  DOCTEST_REQUIRE(pid >= 0);
  if (pid == 0) {
    for (int sig : {SIGINT, SIGTERM, SIGHUP}) ::signal(sig, SIG_DFL);  // not doctest's handlers: a fresh process
    const int null = ::open("/dev/null", O_WRONLY);
    ::dup2(null, 2);
    std::atomic<bool> go{false};
    std::thread early([&go] {
      while (!go.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      ::raise(SIGTERM);  // directed at this thread, which does not block it
    });
    ddaq::install_interrupt_handling("test");
    ddaq::CooperativeInterrupts* scope = cooperative ? new ddaq::CooperativeInterrupts : nullptr;
    go.store(true);
    early.join();
    for (int i = 0; i < 5000 && ddaq::interrupt_requested() == 0; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    if (!cooperative) std::this_thread::sleep_for(std::chrono::seconds(5));  // end_now ends us first
    delete scope;
    ::_exit(ddaq::interrupt_requested() == SIGTERM ? 0 : 3);
  }
  int status = 0;
  DOCTEST_REQUIRE(waitpid(pid, &status, 0) == pid);
  return status;
}

}  // namespace

DOCTEST_TEST_CASE("a signal on a thread started before installation becomes a checkpoint request") {
  const int status = status_of_child(true);
  DOCTEST_CHECK_FALSE(WIFSIGNALED(status));  // the default action would end the child with SIGTERM
  DOCTEST_REQUIRE(WIFEXITED(status));
  DOCTEST_CHECK(WEXITSTATUS(status) == 0);
}

DOCTEST_TEST_CASE("a signal on a thread started before installation ends a command with status 128 + signal") {
  const int status = status_of_child(false);
  DOCTEST_CHECK_FALSE(WIFSIGNALED(status));
  DOCTEST_REQUIRE(WIFEXITED(status));
  DOCTEST_CHECK(WEXITSTATUS(status) == 128 + SIGTERM);
}
