// ddaq: the command line. Errors end as one line on stderr and exit code 1
// (2 for usage errors); nothing ever aborts with a stack dump.
#include <malloc.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>
#include <string>

#include "commands.h"
#include "ddaq/core/version.h"
#include "ddaq/error.h"
#include "ddaq/interrupts.h"


int main(int argc, char** argv) {
  // Training allocates and frees the same large activation tensors every step;
  // glibc's default returns them to the kernel (mmap/munmap) and page faults
  // cost ~10% at batch 2048 (docs/benchmarks.md). Keep freed memory for reuse.
  mallopt(M_MMAP_THRESHOLD, 256 << 20);
  mallopt(M_TRIM_THRESHOLD, 512 << 20);
  try {
    ddaq::install_interrupt_handling("ddaq");  // before any thread starts
  } catch (const std::exception& e) {          // e.g. no file descriptor left for its pipe
    std::fprintf(stderr, "ddaq: error: %s\n", ddaq::first_line(e.what()).c_str());
    return 1;
  }
  CLI::App app{"ddaq: differentiable full-DAQ optimization (front end -> compression -> links -> trigger)", "ddaq"};
  app.set_version_flag("--version", std::string("ddaq ") + ddaq::version());
  app.callback([&app] {
    if (app.get_subcommands().empty())
      throw CLI::ValidationError(
          "a command is required: data, detector, emd, eval, export, predict, run, surrogate, sweep or train");
  });
  ddaq::cli::add_data_commands(app);
  ddaq::cli::add_detector_commands(app);
  ddaq::cli::add_emd_command(app);
  ddaq::cli::add_export_command(app);
  ddaq::cli::add_graph_command(app);
  ddaq::cli::add_run_command(app);
  ddaq::cli::add_surrogate_commands(app);
  ddaq::cli::add_sweep_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "ddaq: error: %s (see --help)\n", e.what());
    return 2;
  } catch (const ddaq::Interrupted& e) {
    std::fprintf(stderr, "ddaq: %s\n", e.what());
    return 128 + e.signal();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ddaq: error: %s\n", ddaq::first_line(e.what()).c_str());
    return 1;
  } catch (...) {
    std::fprintf(stderr, "ddaq: error: unknown failure\n");
    return 1;
  }
  return 0;
}
