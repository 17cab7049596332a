#include "test_support.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "ddaq/files.h"

namespace ddaq_test {

TempDir::TempDir() {
  char tmpl[] = "/tmp/ddaq-test-XXXXXX";
  if (!::mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
  path_ = tmpl;
}

TempDir::~TempDir() {
  ddaq::remove_tree(path_);  // not std::filesystem::remove_all (ddaq/files.h says why)
}

std::vector<std::string> TempDir::entries() const {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(path_)) out.push_back(e.path().filename().string());
  return out;
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

bool exists(const std::string& path) { return std::filesystem::exists(path); }

CommandResult run_ddaq(const std::string& args) {
  TempDir capture;
  const std::string out = capture.file("out"), err = capture.file("err");
  const std::string cmd = std::string("DDAQ_PROGRESS=off '") + DDAQ_EXECUTABLE + "' " + args + " >'" + out + "' 2>'" +
                          err + "' </dev/null";
  const int status = std::system(cmd.c_str());
  CommandResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = read_text(out);
  r.err = read_text(err);
  return r;
}

std::string calq_csv(const std::vector<std::vector<double>>& rows) {
  std::ostringstream s;
  for (int i = 0; i < 48; ++i) s << (i ? "," : "") << "CALQ_" << i;
  s << "\n";
  for (const auto& r : rows) {
    for (size_t i = 0; i < r.size(); ++i) s << (i ? "," : "") << r[i];
    s << "\n";
  }
  return s.str();
}

}  // namespace ddaq_test
