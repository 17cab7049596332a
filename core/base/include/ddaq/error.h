// ddaq/error.h: the one exception type ddaq throws for bad input.
#pragma once
#include <stdexcept>
#include <string>

namespace ddaq {

// Thrown for anything a user can fix (bad file, field, value). The message is
// one line that names the file, field or value; the command line prints it
// as "ddaq: error: <message>" and exits non-zero.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The first line of an exception's message: LibTorch appends its C++ stack
// to what(); users get the line that says what went wrong.
inline std::string first_line(const char* what) {
  std::string s(what ? what : "");
  const auto nl = s.find('\n');
  return nl == std::string::npos ? s : s.substr(0, nl);
}

}  // namespace ddaq
