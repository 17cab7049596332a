// ddaq/core/files.h: writing outputs so that nothing is ever half-written.
#pragma once
#include <string>

namespace ddaq {

// Writes `content` to "<path>.tmp-<pid>", fsyncs, renames over `path`.
// Throws ddaq::Error naming the path on failure (no partial file remains).
void write_file_atomic(const std::string& path, const std::string& content);

// Removes "<path>.tmp-*" left by a writer that was killed mid-write.
void remove_stale_temporaries(const std::string& path);

// Creates `path` and missing parents; throws ddaq::Error if that fails or a
// non-folder is in the way.
void make_directories(const std::string& path);

}  // namespace ddaq
