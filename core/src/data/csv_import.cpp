#include "ddaq/core/csv_import.h"

#include <cmath>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>

#include "ddaq/error.h"
#include "ddaq/files.h"
#include "ddaq/core/events.h"
#include "ddaq/core/progress.h"
#include "text.h"

namespace ddaq {
namespace {

[[noreturn]] void fail(const std::string& file, int64_t line, const std::string& what) {
  throw Error(file + ":" + std::to_string(line) + ": " + what);
}

// Column index of each CALQ_<tc> in the header: header_to_tc[col] = tc.
std::vector<int> parse_header(const std::string& file, const std::string& line) {
  const auto fields = text::split(line, ',');
  if (fields.size() != kCellsPerWafer)
    fail(file, 1, "header has " + std::to_string(fields.size()) +
                      " columns, expected 48 named CALQ_0..CALQ_47");
  std::vector<int> header_to_tc(fields.size(), -1);
  std::vector<bool> seen(kCellsPerWafer, false);
  for (size_t col = 0; col < fields.size(); ++col) {
    const std::string name = text::trim(fields[col]);
    long long tc = -1;
    if (name.rfind("CALQ_", 0) != 0 || !text::parse_int(name.substr(5), tc) || tc < 0 ||
        tc >= kCellsPerWafer)
      fail(file, 1, "header column " + std::to_string(col + 1) + " is " + text::quote(name) +
                        ", expected CALQ_<0..47>");
    if (seen[tc]) fail(file, 1, "header names " + name + " twice");
    seen[tc] = true;
    header_to_tc[col] = static_cast<int>(tc);
  }
  return header_to_tc;
}

}  // namespace

CsvImportSummary import_calq_csv(const std::vector<std::string>& inputs, const std::string& output,
                                 const std::vector<int32_t>& labels, Progress* progress) {
  if (inputs.empty()) throw Error("data import: no input CSV file given");
  check_outputs(inputs, {output});
  if (!(labels.empty() || labels.size() == 1 || labels.size() == inputs.size()))
    throw Error("data import: " + std::to_string(labels.size()) + " labels for " +
                std::to_string(inputs.size()) + " files (give one label for all, or one per file)");
  const bool with_labels = !labels.empty();
  EventFileWriter writer(output, with_labels);

  constexpr int64_t kBlock = 8192;
  std::vector<float> calq;
  std::vector<int32_t> block_labels;
  calq.reserve(kBlock * kCellsPerWafer);
  CsvImportSummary summary;
  auto flush = [&] {
    writer.append(calq.data(), with_labels ? block_labels.data() : nullptr,
                  static_cast<int64_t>(calq.size()) / kCellsPerWafer);
    calq.clear();
    block_labels.clear();
  };

  for (size_t f = 0; f < inputs.size(); ++f) {
    const std::string& file = inputs[f];
    std::ifstream in(file);
    if (!in) throw Error(file + ": cannot open (missing or unreadable)");
    std::string line;
    if (!std::getline(in, line) || text::trim(line).empty())
      throw Error(file + ":1: empty file (expected a header CALQ_0..CALQ_47)");
    const std::vector<int> header_to_tc = parse_header(file, line);
    const int32_t label = labels.empty() ? 0 : labels[labels.size() == 1 ? 0 : f];
    int64_t line_no = 1, events = 0;
    float row[kCellsPerWafer];
    while (std::getline(in, line)) {
      ++line_no;
      if (text::trim(line).empty()) continue;  // tolerate blank lines (e.g. at the end)
      const auto fields = text::split(line, ',');
      if (fields.size() != header_to_tc.size())
        fail(file, line_no, "has " + std::to_string(fields.size()) + " columns, expected 48");
      for (size_t col = 0; col < fields.size(); ++col) {
        double value = 0.0;
        if (!text::parse_double(fields[col], value))
          fail(file, line_no, "column " + std::to_string(col + 1) + " is not a number: " +
                                  text::quote(fields[col]));
        if (std::isnan(value) || (std::isinf(value) && text::trim(fields[col]).find_first_of("iI") != std::string::npos))
          fail(file, line_no, "column " + std::to_string(col + 1) + " is not finite: " +
                                  text::quote(fields[col]));
        if (std::fabs(value) > static_cast<double>(std::numeric_limits<float>::max()))
          fail(file, line_no, "column " + std::to_string(col + 1) + " is " + text::quote(fields[col]) +
                                  ": outside float32's range (at most 3.4028235e38)");
        if (value < 0.0)
          fail(file, line_no, "column " + std::to_string(col + 1) + " is a negative charge: " +
                                  text::quote(fields[col]));
        // Round to nearest float32: values below its smallest denormal
        // (1.4e-45) become 0, denormals stay denormals.
        row[header_to_tc[col]] = static_cast<float>(value);
      }
      calq.insert(calq.end(), row, row + kCellsPerWafer);
      if (with_labels) block_labels.push_back(label);
      ++events;
      if (static_cast<int64_t>(calq.size()) >= kBlock * kCellsPerWafer) flush();
      if (progress) progress->advance(1);
    }
    if (in.bad()) throw Error(file + ": read error");
    if (events == 0) throw Error(file + ":" + std::to_string(line_no) + ": no events after the header");
    summary.events_per_file.push_back(events);
    summary.events += events;
  }
  flush();

  nlohmann::json provenance = {{"creator", "ddaq data import"}, {"sources", inputs},
                               {"events_per_source", summary.events_per_file}};
  if (with_labels) provenance["labels"] = labels;
  writer.set_attribute("creator", std::string("ddaq data import"));
  writer.set_attribute("provenance", provenance.dump());
  writer.commit();
  return summary;
}

}  // namespace ddaq
