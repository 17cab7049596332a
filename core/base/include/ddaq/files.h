// ddaq/files.h: writing outputs so that nothing is ever half-written,
// clobbered or written where it must not be (docs/reliability.md, "Outputs").
//
// The rules every command follows:
//  - an output is written to "<target>.tmp-<pid>" beside it and renamed into
//    place when finished: a failure or a signal leaves the old file (or none);
//  - an output that is a symlink is written through: its target is replaced,
//    the link stays;
//  - an output that exists and is not a regular file (folder, FIFO, device,
//    socket) is refused;
//  - an output that is one of the command's inputs (same device and inode),
//    or two outputs that are one file, are refused before any work.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace ddaq {

// The file an output path writes: `path` itself, or the target of the
// symlink(s) it names. Throws ddaq::Error naming the path when it exists and
// is not a regular file, or when its symlinks loop.
std::string resolve_output(const std::string& path);

// The rules above for one command, checked before it does any work. Inputs
// that do not exist are ignored here (their readers report them).
void check_outputs(const std::vector<std::string>& inputs, const std::vector<std::string>& outputs);

// Writes `content` to the resolved `path` through a temporary, fsyncs and
// renames it into place (now, or at the commit of the active
// OutputTransaction). Throws ddaq::Error naming the path on failure; no
// partial file remains.
void write_file_atomic(const std::string& path, const std::string& content);

// Moves a finished temporary file or folder over `target` now, or, inside an
// OutputTransaction, at its commit. `swap` does the move (default: rename).
void move_into_place(const std::string& temporary, const std::string& target,
                     const std::function<void()>& swap = nullptr);

// All outputs finished inside one transaction move into place together at
// commit(); destroyed without commit() (an exception), it removes them and
// none of the command's outputs appear. One transaction at a time.
class OutputTransaction {
 public:
  OutputTransaction();
  ~OutputTransaction();
  OutputTransaction(const OutputTransaction&) = delete;
  OutputTransaction& operator=(const OutputTransaction&) = delete;
  void commit();
};

// Temporaries being written; removed by remove_tracked_temporaries() when a
// signal ends the process (core/interrupts.h).
void track_temporary(const std::string& path);
void untrack_temporary(const std::string& path);
void remove_tracked_temporaries();

// Removes "<path>.tmp-*" left by a writer that was killed mid-write.
void remove_stale_temporaries(const std::string& path);

// Removes "<target>.tmp-<pid>" files and folders abandoned by a killed
// process (SIGKILL leaves them): the pid is not running here and the entry
// has not changed for 10 minutes (a writer on another node of a shared file
// system keeps its temporary fresh). Every writer calls it first.
void remove_abandoned_temporaries(const std::string& target);

// Removes `path` and, for a folder, everything under it; symlinks are removed,
// never followed. Never throws (callers are cleaning up); returns whether
// nothing is left at `path`. Why not std::filesystem::remove_all: PyTorch's
// wheels (2.5 and later) export a statically linked copy of libstdc++'s
// filesystem code, a process that loads that LibTorch may call it, and
// remove_all crashed there (pytorch/pytorch#133437, docs/gpu.md).
bool remove_tree(const std::string& path) noexcept;

// Creates `path` and missing parents; throws ddaq::Error if that fails or a
// non-folder is in the way.
void make_directories(const std::string& path);

// A file's identity by content, for checkpoints: size plus a hash of its
// first and last MiB ("size:hash"). The same file copied elsewhere, or named
// by another path, has the same identity. Throws ddaq::Error if unreadable.
std::string file_identity(const std::string& path);

// 64-bit FNV-1a of `n` bytes, continuing from `h` (file identities, run ids).
constexpr uint64_t kFnvOffset = 1469598103934665603ull;
uint64_t fnv1a(const void* data, size_t n, uint64_t h = kFnvOffset);

}  // namespace ddaq
