// ddaq/core/events.h: event files (HDF5), the currency between every ddaq step.
//
// Format (h5py reads it as is):
//   /calq   float32 [N, C]   charges in the source's units (CALQ for HGCAL),
//                            column = cell of the detector's geometry: C = 48
//                            HGCAL trigger cells (tc of the wafer geometry)
//                            unless a graph's `geometry` says otherwise
//   /label  int32   [N]      optional class label (1 = electron, 0 = jet by
//                            convention of `ddaq data synth`)
//   root attributes          format = "ddaq-events-1", ddaq_version, creator
//                            (the command), provenance (JSON text: sources,
//                            seeds, generator parameters), and numeric ones
//                            such as seed.
// Files are written to a temporary name beside the target and renamed on
// commit(), so a failed or interrupted write never leaves a partial file.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "ddaq/core/geometry.h"

namespace ddaq {

// Events held in memory, row-major.
struct EventTable {
  std::vector<float> calq;     // size() * cells
  std::vector<int32_t> label;  // empty, or size()
  int cells = kCellsPerWafer;  // charges per event
  int64_t size() const { return static_cast<int64_t>(calq.size()) / cells; }
  bool has_labels() const { return !label.empty(); }
};

class EventFileWriter {
 public:
  // Opens "<path>.tmp-<pid>" for writing events of `cells` charges. Throws
  // ddaq::Error if the folder is not writable.
  EventFileWriter(const std::string& path, bool with_labels, int cells = kCellsPerWafer);
  ~EventFileWriter();  // without commit(): removes the temporary file
  EventFileWriter(const EventFileWriter&) = delete;
  EventFileWriter& operator=(const EventFileWriter&) = delete;

  // Appends `rows` events (rows x cells charges; labels ignored unless the
  // file has labels, then required).
  void append(const float* calq, const int32_t* labels, int64_t rows);
  void append(const EventTable& table);

  void set_attribute(const std::string& name, const std::string& value);
  void set_attribute(const std::string& name, int64_t value);
  void set_attribute(const std::string& name, double value);

  // An extra float32 dataset (e.g. a latent [N, L] or a score [N]) written
  // whole; shape = {rows} or {rows, cols}.
  void add_dataset(const std::string& name, const std::vector<float>& values, const std::vector<int64_t>& shape);

  // Closes and atomically renames to the final path.
  void commit();
  int64_t rows_written() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

class EventFileReader {
 public:
  // Every column count, for readers that take any detector.
  static constexpr int kAnyCells = 0;
  // Throws ddaq::Error naming the file when it is missing, not HDF5, or has
  // no /calq of shape [N, cells] (any column count for kAnyCells). The
  // default is HGCAL's 48: steps built on the wafer (synth, overlay,
  // classical formats, the surrogate) refuse other detectors by name.
  explicit EventFileReader(const std::string& path, int cells = kCellsPerWafer);
  ~EventFileReader();
  EventFileReader(EventFileReader&&) noexcept;
  EventFileReader& operator=(EventFileReader&&) noexcept;

  const std::string& path() const;
  int64_t size() const;
  bool has_labels() const;
  int cells() const;  // columns of /calq
  // Reads rows [first, first + count) into calq (count x cells) and, when
  // `labels` is non-null and the file has labels, into labels (count).
  void read(int64_t first, int64_t count, float* calq, int32_t* labels) const;
  EventTable read_all() const;

  // String attributes of the root group (numeric ones rendered as text).
  std::map<std::string, std::string> attributes() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Labels are classes 0..classes-1 (binary by default: 0 jet, 1 electron);
// any other would silently become a wrong target and an AUC of NaN. Throws
// naming the file and row (rows[r], or r when rows is null).
void check_labels(const std::string& file, const int32_t* labels, const int64_t* rows, int64_t n, int classes = 2);

// Per-event results (EMD values, scores): named 1-D float64 datasets plus
// string attributes, written atomically like event files.
void write_results_file(const std::string& path,
                        const std::vector<std::pair<std::string, std::vector<double>>>& datasets,
                        const std::map<std::string, std::string>& attributes = {});
// Reads one 1-D dataset of a results file as float64.
std::vector<double> read_results_dataset(const std::string& path, const std::string& name);

}  // namespace ddaq
