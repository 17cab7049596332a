// ddaq/core/csv_import.h: CALQ CSV files (like CMS HGCAL's) -> an event file.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace ddaq {

class Progress;

struct CsvImportSummary {
  std::vector<int64_t> events_per_file;
  int64_t events = 0;
};

// Reads each CSV (a header naming CALQ_0..CALQ_47 once each, in any order,
// then one wafer per line) and writes `output` (see events.h). `labels` is
// empty (no /label), one value for all files, or one per file.
// Every malformed input throws ddaq::Error "<file>:<line>: <what>" and leaves
// no output file: wrong column count, non-numeric, negative or non-finite
// charge, an empty file or one without events, an unreadable path.
CsvImportSummary import_calq_csv(const std::vector<std::string>& inputs, const std::string& output,
                                 const std::vector<int32_t>& labels = {},
                                 Progress* progress = nullptr);

}  // namespace ddaq
