// Internal text helpers shared by the parsers of core/.
#pragma once
#include <string>
#include <vector>

namespace ddaq {
namespace text {

// Splits on `sep`, keeping empty fields; strips a trailing '\r'.
std::vector<std::string> split(const std::string& line, char sep);
std::string trim(const std::string& s);
// Whole-field numeric parses; false when anything but the number is present.
bool parse_double(const std::string& field, double& value);
bool parse_int(const std::string& field, long long& value);
// A field shortened for error messages.
std::string quote(const std::string& field);

}  // namespace text
}  // namespace ddaq
