// Numeric command-line options: every one is checked before any work, with
// its range in the message (docs/reliability.md, "Numeric options").
#include <CLI/CLI.hpp>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <set>
#include <sstream>

#include "commands.h"

namespace ddaq {
namespace cli {
namespace {

std::string show(double v) {
  std::ostringstream s;
  s << v;
  return s.str();
}

}  // namespace

CLI::Validator number_in(double lo, double hi) {
  const std::string range = "[" + show(lo) + ", " + show(hi) + "]";
  return CLI::Validator(
      [lo, hi, range](std::string& text) -> std::string {
        char* end = nullptr;
        errno = 0;
        const double v = std::strtod(text.c_str(), &end);
        if (text.empty() || end != text.c_str() + text.size()) return "'" + text + "' is not a number";
        if (!std::isfinite(v)) return "'" + text + "' is not a finite number in " + range;
        if (v < lo || v > hi) return text + " is outside " + range;
        return "";
      },
      "NUMBER in " + range, "number_in");
}

CLI::Validator whole_number_in(int64_t lo, int64_t hi) {
  const std::string range = "[" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
  return CLI::Validator(
      [lo, hi, range](std::string& text) -> std::string {
        char* end = nullptr;
        errno = 0;
        const long long v = std::strtoll(text.c_str(), &end, 10);
        if (text.empty() || end != text.c_str() + text.size()) return "'" + text + "' is not a whole number";
        if (errno == ERANGE || v < lo || v > hi) return text + " is outside " + range;
        return "";
      },
      "INT in " + range, "whole_number_in");
}

CLI::Validator c_identifier() {
  static const std::set<std::string> keywords = {
      "alignas",  "alignof",  "and",      "asm",       "auto",     "bool",     "break",   "case",      "catch",
      "char",     "class",    "const",    "constexpr", "continue", "decltype", "default", "delete",    "do",
      "double",   "else",     "enum",     "explicit",  "export",   "extern",   "false",   "float",     "for",
      "friend",   "goto",     "if",       "inline",    "int",      "long",     "main",    "mutable",   "namespace",
      "new",      "noexcept", "not",      "nullptr",   "operator", "or",       "private", "protected", "public",
      "register", "return",   "short",    "signed",    "sizeof",   "static",   "struct",  "switch",    "template",
      "this",     "throw",    "true",     "try",       "typedef",  "typename", "union",   "unsigned",  "using",
      "virtual",  "void",     "volatile", "while"};
  return CLI::Validator(
      [](std::string& text) -> std::string {
        bool ok = !text.empty() && text.size() <= 64 && !std::isdigit(static_cast<unsigned char>(text[0]));
        for (char ch : text) ok = ok && (std::isalnum(static_cast<unsigned char>(ch)) || ch == '_');
        if (!ok)
          return "'" + text + "' is not a C identifier (letters, digits, _; not starting with a digit; at most 64)";
        if (keywords.count(text) || text.rfind("ap_", 0) == 0 || text.rfind("hls_", 0) == 0)
          return "'" + text + "' is a C++ keyword or a name the HLS headers use";
        return "";
      },
      "C identifier", "c_identifier");
}

CLI::Validator seed_number() { return whole_number_in(0, std::numeric_limits<int64_t>::max()); }

}  // namespace cli
}  // namespace ddaq
