// ddaq/core/config.h: the project's one configuration format, JSON.
//
// A Config is a view on one JSON object of a file. Every error names the file
// and the dotted key ("quick.json: data.events: expected an integer >= 0"),
// and reject_unknown() turns typos into errors instead of silent defaults.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace ddaq {

class Config {
 public:
  // Throws ddaq::Error for unreadable files and JSON syntax errors (with line).
  static Config load(const std::string& path);
  static Config parse(const std::string& json_text, const std::string& source);

  bool has(const std::string& key) const;
  // A nested object; an absent key gives an empty object.
  Config section(const std::string& key) const;

  int64_t integer(const std::string& key, int64_t fallback, int64_t min = INT64_MIN,
                  int64_t max = INT64_MAX) const;
  double number(const std::string& key, double fallback, double min = -1e308, double max = 1e308) const;
  std::string string(const std::string& key, const std::string& fallback) const;
  bool boolean(const std::string& key, bool fallback) const;

  // An array of objects ("graph.stages"): each a Config whose where() is
  // "key[i]"; an absent key gives none.
  std::vector<Config> list(const std::string& key) const;
  // An array of integers, each in [min, max]; absent: `fallback`.
  std::vector<int64_t> integers(const std::string& key, const std::vector<int64_t>& fallback, int64_t min = INT64_MIN,
                                int64_t max = INT64_MAX) const;
  // An array of strings; absent: `fallback`.
  std::vector<std::string> strings(const std::string& key, const std::vector<std::string>& fallback) const;
  // The keys of this object (sorted: the JSON library orders them).
  std::vector<std::string> keys() const;
  // A config from a JSON object held elsewhere (a run's saved graph).
  static Config from_json_text(const std::string& json_text, const std::string& source, const std::string& where);

  // Throws if the object holds a key not in `known`.
  void reject_unknown(const std::vector<std::string>& known) const;

  // Dotted path of this object inside the file ("" for the root).
  const std::string& where() const { return where_; }
  const std::string& source() const { return source_; }
  std::string dump() const;  // this object as JSON text

 private:
  struct Node;
  std::shared_ptr<const Node> node_;
  std::string source_, where_;
  [[noreturn]] void fail(const std::string& key, const std::string& what) const;
};

}  // namespace ddaq
