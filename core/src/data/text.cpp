#include "text.h"

#include <cerrno>
#include <cstdlib>

namespace ddaq {
namespace text {

std::vector<std::string> split(const std::string& line, char sep) {
  std::vector<std::string> out;
  std::string::size_type start = 0;
  std::string::size_type end = line.size();
  if (end > 0 && line[end - 1] == '\r') --end;
  for (;;) {
    const auto pos = line.find(sep, start);
    if (pos == std::string::npos || pos >= end) {
      out.push_back(line.substr(start, end - start));
      return out;
    }
    out.push_back(line.substr(start, pos - start));
    start = pos + 1;
  }
}

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return {};
  const auto e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

bool parse_double(const std::string& field, double& value) {
  const std::string t = trim(field);
  if (t.empty()) return false;
  char* end = nullptr;
  errno = 0;
  value = std::strtod(t.c_str(), &end);
  // Underflow (1e-320) is a number: strtod already rounded it (to a denormal
  // or 0). Overflow gives +-inf, which callers check for range.
  return end == t.c_str() + t.size();
}

bool parse_int(const std::string& field, long long& value) {
  const std::string t = trim(field);
  if (t.empty()) return false;
  char* end = nullptr;
  errno = 0;
  value = std::strtoll(t.c_str(), &end, 10);
  return end == t.c_str() + t.size() && errno != ERANGE;
}

std::string quote(const std::string& field) {
  std::string t = field.size() > 40 ? field.substr(0, 37) + "..." : field;
  return "'" + t + "'";
}

}  // namespace text
}  // namespace ddaq
