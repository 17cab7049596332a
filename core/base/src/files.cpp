#include "ddaq/files.h"

#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <set>
#include <system_error>

#include "ddaq/error.h"

namespace ddaq {
namespace fs = std::filesystem;

namespace {

const char* kind_of(const struct stat& st) {
  if (S_ISDIR(st.st_mode)) return "a folder";
  if (S_ISFIFO(st.st_mode)) return "a FIFO";
  if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) return "a device";
  if (S_ISSOCK(st.st_mode)) return "a socket";
  return "not a regular file";
}

// Transaction and temporaries: shared with the signal thread.
std::mutex g_mutex;
std::set<std::string> g_temporaries;
struct Pending {
  std::string temporary;
  std::function<void()> swap;
};
std::vector<Pending>* g_transaction = nullptr;

void remove_path(const std::string& p) { remove_tree(p); }

int remove_entry(const char* path, const struct stat*, int, struct FTW*) {
  ::remove(path);  // what cannot be removed is seen by the caller's final check
  return 0;
}

}  // namespace

std::string resolve_output(const std::string& path) {
  if (path.empty()) throw Error("an output path is empty");
  std::string p = path;
  for (int hops = 0;; ++hops) {
    struct stat st;
    if (::lstat(p.c_str(), &st) != 0) return p;  // does not exist: written as named
    if (S_ISREG(st.st_mode)) return p;
    if (!S_ISLNK(st.st_mode))
      throw Error(path + ": is " + kind_of(st) + ", not a regular file; ddaq writes outputs only to regular files");
    if (hops >= 40) throw Error(path + ": too many levels of symlinks");
    const fs::path target = fs::read_symlink(p);
    p = (target.is_absolute() ? target : fs::path(p).parent_path() / target).lexically_normal().string();
  }
}

void check_outputs(const std::vector<std::string>& inputs, const std::vector<std::string>& outputs) {
  struct Seen {
    std::string as_given, resolved;
    bool exists;
    struct stat st;
  };
  std::vector<Seen> outs;
  for (const std::string& o : outputs) {
    if (o.empty()) continue;
    Seen s{o, resolve_output(o), false, {}};
    s.exists = ::stat(s.resolved.c_str(), &s.st) == 0;
    std::error_code ec;
    const fs::path canonical = fs::weakly_canonical(s.resolved, ec);
    if (!ec) s.resolved = canonical.string();
    for (const Seen& other : outs) {
      const bool same =
          (s.exists && other.exists && s.st.st_dev == other.st.st_dev && s.st.st_ino == other.st.st_ino) ||
          s.resolved == other.resolved;
      if (same) throw Error(o + ": names the same file as the output " + other.as_given + "; give two different files");
    }
    outs.push_back(s);
  }
  for (const std::string& in : inputs) {
    struct stat st;
    if (in.empty() || ::stat(in.c_str(), &st) != 0) continue;
    for (const Seen& o : outs)
      if (o.exists && o.st.st_dev == st.st_dev && o.st.st_ino == st.st_ino)
        throw Error(o.as_given + ": is the input " + in +
                    "; writing it would destroy the input (choose another output)");
  }
}

void move_into_place(const std::string& temporary, const std::string& target, const std::function<void()>& swap) {
  auto move = swap ? swap : [temporary, target] {
    if (std::rename(temporary.c_str(), target.c_str()) != 0) {
      const std::string why = std::strerror(errno);
      std::remove(temporary.c_str());
      throw Error(target + ": cannot move the finished file into place: " + why);
    }
  };
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    if (g_transaction) {
      g_transaction->push_back({temporary, move});
      return;  // stays tracked until the commit
    }
  }
  move();
  untrack_temporary(temporary);
}

OutputTransaction::OutputTransaction() {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (g_transaction) throw std::logic_error("OutputTransaction: one at a time");
  g_transaction = new std::vector<Pending>();
}

OutputTransaction::~OutputTransaction() {
  std::vector<Pending>* pending = nullptr;
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    std::swap(pending, g_transaction);
  }
  if (!pending) return;
  for (const Pending& p : *pending) {
    remove_path(p.temporary);
    untrack_temporary(p.temporary);
  }
  delete pending;
}

void OutputTransaction::commit() {
  std::vector<Pending>* pending = nullptr;
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    std::swap(pending, g_transaction);
  }
  if (!pending) return;
  std::unique_ptr<std::vector<Pending>> owned(pending);
  for (size_t i = 0; i < owned->size(); ++i) {
    try {
      (*owned)[i].swap();
    } catch (...) {
      for (size_t k = i; k < owned->size(); ++k) remove_path((*owned)[k].temporary);
      for (const Pending& p : *owned) untrack_temporary(p.temporary);
      throw;
    }
  }
  for (const Pending& p : *owned) untrack_temporary(p.temporary);
}

void track_temporary(const std::string& path) {
  std::lock_guard<std::mutex> lock(g_mutex);
  g_temporaries.insert(path);
}

void untrack_temporary(const std::string& path) {
  std::lock_guard<std::mutex> lock(g_mutex);
  g_temporaries.erase(path);
}

void remove_tracked_temporaries() {
  std::lock_guard<std::mutex> lock(g_mutex);
  for (const std::string& p : g_temporaries) remove_path(p);
  g_temporaries.clear();
}

void write_file_atomic(const std::string& path, const std::string& content) {
  const std::string target = resolve_output(path);
  remove_abandoned_temporaries(target);
  const std::string tmp = target + ".tmp-" + std::to_string(::getpid());
  track_temporary(tmp);
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) {
    untrack_temporary(tmp);
    throw Error(path + ": cannot create file: " + std::strerror(errno));
  }
  auto fail = [&](const std::string& why) {
    ::close(fd);
    std::remove(tmp.c_str());
    untrack_temporary(tmp);
    throw Error(path + ": write failed: " + why);
  };
  size_t written = 0;
  while (written < content.size()) {
    const ssize_t n = ::write(fd, content.data() + written, content.size() - written);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail(std::strerror(errno));
    }
    written += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) fail(std::strerror(errno));
  if (::close(fd) != 0) {
    std::remove(tmp.c_str());
    untrack_temporary(tmp);
    throw Error(path + ": write failed: " + std::strerror(errno));
  }
  move_into_place(tmp, target);
}

void remove_stale_temporaries(const std::string& path) {
  const fs::path p(path);
  const fs::path dir = p.has_parent_path() ? p.parent_path() : fs::path(".");
  const std::string prefix = p.filename().string() + ".tmp-";
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec))
    if (entry.path().filename().string().rfind(prefix, 0) == 0) fs::remove(entry.path(), ec);
}

void remove_abandoned_temporaries(const std::string& target) {
  const fs::path p(target);
  const fs::path dir = p.has_parent_path() ? p.parent_path() : fs::path(".");
  const std::string prefix = p.filename().string() + ".tmp-";
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind(prefix, 0) != 0) continue;
    char* end = nullptr;
    const long pid = std::strtol(name.c_str() + prefix.size(), &end, 10);
    if (pid <= 0 || *end != '\0' || pid == ::getpid()) continue;
    if (::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH) continue;  // alive (or not ours to judge)
    struct stat st;
    if (::lstat(entry.path().c_str(), &st) != 0 || std::time(nullptr) - st.st_mtime < 600) continue;
    remove_tree(entry.path().string());
  }
}

bool remove_tree(const std::string& path) noexcept {
  if (path.empty()) return true;
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) return true;
  if (S_ISDIR(st.st_mode))
    ::nftw(path.c_str(), remove_entry, 16, FTW_DEPTH | FTW_PHYS);  // children first, links not followed
  else
    ::remove(path.c_str());
  return ::lstat(path.c_str(), &st) != 0;
}

void make_directories(const std::string& path) {
  std::error_code ec;
  fs::create_directories(path, ec);
  if (ec || !fs::is_directory(path))
    throw Error(path + ": cannot create folder" + (ec ? ": " + ec.message() : " (a file is in the way)"));
}

uint64_t fnv1a(const void* data, size_t n, uint64_t h) {
  const auto* b = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 1099511628211ull;
  return h;
}

std::string file_identity(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open (missing or unreadable)");
  in.seekg(0, std::ios::end);
  const int64_t size = static_cast<int64_t>(in.tellg());
  constexpr int64_t kBlock = 1 << 20;
  uint64_t hash = kFnvOffset;
  std::vector<char> buf(static_cast<size_t>(kBlock));
  auto mix = [&](int64_t offset, int64_t count) {
    in.seekg(offset);
    in.read(buf.data(), count);
    if (in.gcount() != count) throw Error(path + ": read error");
    hash = fnv1a(buf.data(), static_cast<size_t>(count), hash);
  };
  mix(0, std::min(size, kBlock));
  if (size > kBlock) mix(std::max(kBlock, size - kBlock), size - std::max(kBlock, size - kBlock));
  char text[64];
  std::snprintf(text, sizeof text, "%lld:%016llx", static_cast<long long>(size), static_cast<unsigned long long>(hash));
  return text;
}

}  // namespace ddaq
