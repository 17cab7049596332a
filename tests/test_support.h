// Helpers shared by ddaq's tests.
#pragma once
#include <string>
#include <vector>

namespace ddaq_test {

// A fresh empty folder under /tmp, removed when the object dies.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }
  // Names of the entries in the folder (to check nothing is left behind).
  std::vector<std::string> entries() const;

 private:
  std::string path_;
};

void write_text(const std::string& path, const std::string& text);
std::string read_text(const std::string& path);
bool exists(const std::string& path);

struct CommandResult {
  int exit_code = -1;
  std::string out, err;
};
// Runs the ddaq executable with `args` (shell-quoted by the caller).
CommandResult run_ddaq(const std::string& args);

// A CSV with the CALQ_0..CALQ_47 header and the given rows.
std::string calq_csv(const std::vector<std::vector<double>>& rows);

}  // namespace ddaq_test
