#include "ddaq/core/loader.h"

#include <algorithm>
#include <numeric>

#include "ddaq/error.h"
#include "ddaq/core/random.h"

namespace ddaq {

void LoaderOptions::validate() const {
  if (batch_size_ <= 0) throw Error("loader: batch_size must be positive");
  if (world_size_ <= 0) throw Error("loader: world_size must be positive");
  if (rank_ < 0 || rank_ >= world_size_)
    throw Error("loader: rank " + std::to_string(rank_) + " outside 0.." + std::to_string(world_size_ - 1));
  if (block_rows_ <= 0 || window_blocks_ <= 0) throw Error("loader: block_rows and window_blocks must be positive");
}

namespace {
// Fisher-Yates with the project's portable generator.
template <class T>
void shuffle(std::vector<T>& v, Rng& rng) {
  for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[rng.below(i)]);
}
}  // namespace

struct EventLoader::Impl {
  EventFileReader reader;
  LoaderOptions o;
  int64_t n = 0, per_rank = 0;
  // Epoch state.
  int64_t epoch = 0;
  std::vector<int64_t> blocks;  // block order of this epoch
  size_t next_block = 0;
  EventTable window;            // rows of the current window, shuffled
  std::vector<int64_t> window_index;
  int64_t window_pos = 0;       // next position inside the window
  int64_t global_pos = 0;       // position in the epoch's global order of window_pos
  int64_t emitted = 0;          // rows given to this rank this epoch
  Rng rng{0};

  Impl(const std::string& path, const LoaderOptions& options) : reader(path, options.cells()), o(options) {}

  void load_window() {
    const int64_t cells = reader.cells();
    window.cells = reader.cells();
    window.calq.clear();
    window.label.clear();
    window_index.clear();
    std::vector<int64_t> idx;
    EventTable raw;
    raw.cells = reader.cells();
    for (int64_t b = 0; b < o.window_blocks() && next_block < blocks.size(); ++b, ++next_block) {
      const int64_t first = blocks[next_block] * o.block_rows();
      const int64_t count = std::min(o.block_rows(), n - first);
      const size_t old = raw.calq.size() / cells;
      raw.calq.resize((old + count) * cells);
      if (reader.has_labels()) raw.label.resize(old + count);
      reader.read(first, count, raw.calq.data() + old * cells, reader.has_labels() ? raw.label.data() + old : nullptr);
      for (int64_t r = 0; r < count; ++r) idx.push_back(first + r);
    }
    std::vector<size_t> order(idx.size());
    std::iota(order.begin(), order.end(), 0);
    if (o.shuffle()) shuffle(order, rng);
    window.calq.resize(raw.calq.size());
    if (reader.has_labels()) window.label.resize(order.size());
    window_index.resize(order.size());
    for (size_t k = 0; k < order.size(); ++k) {
      std::copy_n(raw.calq.data() + order[k] * cells, cells, window.calq.data() + k * cells);
      if (reader.has_labels()) window.label[k] = raw.label[order[k]];
      window_index[k] = idx[order[k]];
    }
    window_pos = 0;
  }
};

EventLoader::EventLoader(const std::string& path, const LoaderOptions& options) : impl_(new Impl(path, options)) {
  options.validate();
  impl_->n = impl_->reader.size();
  impl_->per_rank = impl_->n / options.world_size();
  start_epoch(0);
}

EventLoader::~EventLoader() = default;

void EventLoader::start_epoch(int64_t epoch) {
  Impl& s = *impl_;
  s.epoch = epoch;
  const int64_t nblocks = (s.n + s.o.block_rows() - 1) / s.o.block_rows();
  s.blocks.resize(static_cast<size_t>(nblocks));
  std::iota(s.blocks.begin(), s.blocks.end(), 0);
  s.rng = Rng(s.o.seed(), static_cast<uint64_t>(epoch));
  if (s.o.shuffle()) shuffle(s.blocks, s.rng);
  s.next_block = 0;
  s.window = EventTable{};
  s.window_index.clear();
  s.window_pos = 0;
  s.global_pos = 0;
  s.emitted = 0;
}

bool EventLoader::next(EventBatch& batch) {
  Impl& s = *impl_;
  const int64_t remaining = s.per_rank - s.emitted;
  int64_t want = std::min(s.o.batch_size(), remaining);
  if (want <= 0 || (s.o.drop_last() && want < s.o.batch_size())) return false;
  const int64_t cells = s.reader.cells();
  batch.events.cells = s.reader.cells();
  batch.events.calq.resize(static_cast<size_t>(want) * cells);
  batch.events.label.resize(s.reader.has_labels() ? static_cast<size_t>(want) : 0);
  batch.index.resize(static_cast<size_t>(want));
  for (int64_t k = 0; k < want;) {
    if (s.window_pos >= static_cast<int64_t>(s.window_index.size())) {
      s.load_window();
      if (s.window_index.empty()) throw Error(s.reader.path() + ": loader ran out of rows (file changed?)");
    }
    // This rank owns global positions p with p % world_size == rank.
    if (s.global_pos % s.o.world_size() == s.o.rank()) {
      std::copy_n(s.window.calq.data() + s.window_pos * cells, cells, batch.events.calq.data() + k * cells);
      if (s.reader.has_labels()) batch.events.label[k] = s.window.label[s.window_pos];
      batch.index[k] = s.window_index[s.window_pos];
      ++k;
    }
    ++s.window_pos;
    ++s.global_pos;
  }
  s.emitted += want;
  return true;
}

int64_t EventLoader::rows_per_rank() const { return impl_->per_rank; }
int64_t EventLoader::batches_per_epoch() const {
  const int64_t b = impl_->o.batch_size();
  return impl_->o.drop_last() ? impl_->per_rank / b : (impl_->per_rank + b - 1) / b;
}
int64_t EventLoader::file_size() const { return impl_->n; }

}  // namespace ddaq
