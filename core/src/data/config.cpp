#include "ddaq/core/config.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "ddaq/error.h"

namespace ddaq {

struct Config::Node {
  nlohmann::json json;
};

Config Config::load(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error(path + ": cannot open configuration (missing or unreadable)");
  std::stringstream text;
  text << in.rdbuf();
  return parse(text.str(), path);
}

Config Config::parse(const std::string& json_text, const std::string& source) {
  Config c;
  c.source_ = source;
  auto node = std::make_shared<Node>();
  try {
    node->json = nlohmann::json::parse(json_text, nullptr, true, /*ignore_comments=*/true);
  } catch (const nlohmann::json::parse_error& e) {
    // e.what() is "[json.exception.parse_error.101] parse error at line L, column C: ..."
    std::string what = e.what();
    const auto pos = what.find("] ");
    throw Error(source + ": invalid JSON: " + (pos == std::string::npos ? what : what.substr(pos + 2)));
  }
  if (!node->json.is_object()) throw Error(source + ": the configuration must be a JSON object");
  c.node_ = node;
  return c;
}

void Config::fail(const std::string& key, const std::string& what) const {
  throw Error(source_ + ": " + (where_.empty() ? key : where_ + "." + key) + ": " + what);
}

bool Config::has(const std::string& key) const { return node_->json.contains(key); }

Config Config::section(const std::string& key) const {
  Config c;
  c.source_ = source_;
  c.where_ = where_.empty() ? key : where_ + "." + key;
  auto node = std::make_shared<Node>();
  if (has(key)) {
    if (!node_->json.at(key).is_object()) fail(key, "expected an object");
    node->json = node_->json.at(key);
  } else {
    node->json = nlohmann::json::object();
  }
  c.node_ = node;
  return c;
}

int64_t Config::integer(const std::string& key, int64_t fallback, int64_t min, int64_t max) const {
  if (!has(key)) return fallback;
  const auto& v = node_->json.at(key);
  if (!v.is_number_integer()) fail(key, "expected an integer, got " + v.dump());
  const int64_t x = v.get<int64_t>();
  if (x < min || x > max)
    fail(key, std::to_string(x) + " is outside [" + std::to_string(min) + ", " + std::to_string(max) + "]");
  return x;
}

double Config::number(const std::string& key, double fallback, double min, double max) const {
  if (!has(key)) return fallback;
  const auto& v = node_->json.at(key);
  if (!v.is_number()) fail(key, "expected a number, got " + v.dump());
  const double x = v.get<double>();
  if (!(x >= min && x <= max)) fail(key, v.dump() + " is out of range");
  return x;
}

std::string Config::string(const std::string& key, const std::string& fallback) const {
  if (!has(key)) return fallback;
  const auto& v = node_->json.at(key);
  if (!v.is_string()) fail(key, "expected a string, got " + v.dump());
  return v.get<std::string>();
}

bool Config::boolean(const std::string& key, bool fallback) const {
  if (!has(key)) return fallback;
  const auto& v = node_->json.at(key);
  if (!v.is_boolean()) fail(key, "expected true or false, got " + v.dump());
  return v.get<bool>();
}

void Config::reject_unknown(const std::vector<std::string>& known) const {
  for (const auto& kv : node_->json.items()) {
    bool ok = false;
    for (const auto& k : known) ok = ok || k == kv.key();
    if (!ok) {
      std::string list;
      for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
      fail(kv.key(), "unknown key (known here: " + list + ")");
    }
  }
}

std::vector<Config> Config::list(const std::string& key) const {
  std::vector<Config> out;
  if (!has(key)) return out;
  const auto& v = node_->json.at(key);
  if (!v.is_array()) fail(key, "expected an array");
  for (size_t i = 0; i < v.size(); ++i) {
    const std::string at = key + "[" + std::to_string(i) + "]";
    if (!v[i].is_object()) fail(at, "expected an object, got " + v[i].dump());
    Config c;
    c.source_ = source_;
    c.where_ = where_.empty() ? at : where_ + "." + at;
    auto node = std::make_shared<Node>();
    node->json = v[i];
    c.node_ = node;
    out.push_back(c);
  }
  return out;
}

std::vector<int64_t> Config::integers(const std::string& key, const std::vector<int64_t>& fallback, int64_t min,
                                      int64_t max) const {
  if (!has(key)) return fallback;
  const auto& v = node_->json.at(key);
  if (!v.is_array() || v.empty()) fail(key, "expected a non-empty array of integers, got " + v.dump());
  std::vector<int64_t> out;
  for (const auto& e : v) {
    if (!e.is_number_integer()) fail(key, "expected integers, got " + e.dump());
    const int64_t x = e.get<int64_t>();
    if (x < min || x > max)
      fail(key, std::to_string(x) + " is outside [" + std::to_string(min) + ", " + std::to_string(max) + "]");
    out.push_back(x);
  }
  return out;
}

std::vector<std::string> Config::strings(const std::string& key, const std::vector<std::string>& fallback) const {
  if (!has(key)) return fallback;
  const auto& v = node_->json.at(key);
  if (!v.is_array() || v.empty()) fail(key, "expected a non-empty array of strings, got " + v.dump());
  std::vector<std::string> out;
  for (const auto& e : v) {
    if (!e.is_string()) fail(key, "expected strings, got " + e.dump());
    out.push_back(e.get<std::string>());
  }
  return out;
}

std::vector<std::string> Config::keys() const {
  std::vector<std::string> out;
  for (const auto& kv : node_->json.items()) out.push_back(kv.key());
  return out;
}

Config Config::from_json_text(const std::string& json_text, const std::string& source, const std::string& where) {
  Config c = parse(json_text, source);
  c.where_ = where;
  return c;
}

std::string Config::dump() const { return node_->json.dump(2); }

}  // namespace ddaq
