// ddaq/interrupts.h: SIGINT, SIGTERM and SIGHUP in the command line
// (docs/reliability.md, "Signals").
//
// A signal ends a command with one line on stderr, exit status 128 + signal,
// and no temporaries left (files.h tracks them). Inside a
// CooperativeInterrupts scope (training), the first signal only sets a flag:
// the trainer writes a checkpoint at the next step boundary and stops (the
// run continues with --resume); a second signal ends the process at once.
//
// Handling is done by a thread that waits for the signals, so the cleanup
// runs as ordinary code: a handler only passes the signal's number to it
// through a pipe. Threads started after installation block the signals;
// threads that libraries start before main() (LibTorch 2.x wheels do) may
// receive them, and the handler serves them too.
#pragma once
#include <exception>
#include <string>
#include <utility>

namespace ddaq {

// Installs the handler, blocks the signals in this thread (and the threads it
// starts later) and starts the waiting thread. Call first in main().
// `program` prefixes the message ("ddaq: interrupted by SIGTERM").
void install_interrupt_handling(const std::string& program);

// The signal a cooperative scope received (0: none).
int interrupt_requested();
std::string signal_name(int signal);

// While one exists, the first signal is a request polled with
// interrupt_requested() rather than the end of the process.
class CooperativeInterrupts {
 public:
  CooperativeInterrupts();
  ~CooperativeInterrupts();
  CooperativeInterrupts(const CooperativeInterrupts&) = delete;
  CooperativeInterrupts& operator=(const CooperativeInterrupts&) = delete;
};

// Thrown by code that stopped because of interrupt_requested(); the command
// line prints its message and exits with 128 + signal().
class Interrupted : public std::exception {
 public:
  Interrupted(int signal, std::string message) : signal_(signal), message_(std::move(message)) {}
  const char* what() const noexcept override { return message_.c_str(); }
  int signal() const { return signal_; }

 private:
  int signal_;
  std::string message_;
};

}  // namespace ddaq
