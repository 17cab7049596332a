// ddaq/core/loader.h: streaming, shuffled, shardable batches from an event file.
//
// Order: the file is cut into blocks of `block_rows` consecutive rows; each
// epoch permutes the blocks (seeded by seed and epoch) and shuffles rows
// within windows of `window_blocks` blocks. That global order does not depend
// on the number of ranks. Rank r of R takes positions r, r+R, r+2R, ... of it
// (truncated so every rank gets floor(N/R) rows), so the union of the i-th
// batches of R ranks with batch b is exactly the i-th batch of one rank with
// batch R*b: data-parallel runs see the same samples per step as a single
// process. Memory: one window (window_blocks * block_rows wafers).
// Every rank reads the whole file each epoch (HGCAL rows are 192 bytes; cheap next
// to training).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ddaq/core/events.h"
#include "ddaq/options.h"

namespace ddaq {

struct LoaderOptions {
  DDAQ_OPTION(int64_t, batch_size) = 256;
  DDAQ_OPTION(uint64_t, seed) = 1;
  DDAQ_OPTION(bool, shuffle) = true;
  DDAQ_OPTION(bool, drop_last) = false;
  DDAQ_OPTION(int, rank) = 0;
  DDAQ_OPTION(int, world_size) = 1;
  DDAQ_OPTION(int64_t, block_rows) = 1024;
  DDAQ_OPTION(int64_t, window_blocks) = 8;
  // Charges per event the file must hold (EventFileReader::kAnyCells: any).
  DDAQ_OPTION(int, cells) = kCellsPerWafer;

 public:
  void validate() const;
};

struct EventBatch {
  EventTable events;           // rows x cells charges, labels if the file has them
  std::vector<int64_t> index;  // row of each wafer in the file
  int64_t size() const { return events.size(); }
};

class EventLoader {
 public:
  EventLoader(const std::string& path, const LoaderOptions& options);
  ~EventLoader();

  // Starts epoch `epoch` (0, 1, ...): a new order when shuffling.
  void start_epoch(int64_t epoch);
  // Fills `batch`; false at the end of the epoch.
  bool next(EventBatch& batch);

  int64_t rows_per_rank() const;
  int64_t batches_per_epoch() const;
  int64_t file_size() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ddaq
