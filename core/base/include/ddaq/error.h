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

}  // namespace ddaq
