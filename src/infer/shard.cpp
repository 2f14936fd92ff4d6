#include "infer/shard.h"

#include <cerrno>
#include <cstdlib>

#include <nlohmann/json.hpp>

#include "dqe/errors.h"

namespace dqe {

std::string Shard::describe() const { return std::to_string(index) + "/" + std::to_string(count); }

Shard parse_shard(const std::string& text, const std::string& key) {
  Shard shard;
  if (text.empty()) {
    if (!key.empty()) throw ConfigError("--shard-key needs --shard K/N");
    return shard;
  }
  const std::string usage = "--shard \"" + text + "\" must be K/N with integers 0 <= K < N (e.g. 0/4 ... 3/4)";
  const size_t slash = text.find('/');
  if (slash == std::string::npos) throw ConfigError(usage);
  auto number = [&](const std::string& part) {
    char* end = nullptr;
    errno = 0;
    const long long v = std::strtoll(part.c_str(), &end, 10);
    if (part.empty() || *end != '\0' || errno != 0 || !(part[0] >= '0' && part[0] <= '9')) throw ConfigError(usage);
    return static_cast<int64_t>(v);
  };
  shard.index = number(text.substr(0, slash));
  shard.count = number(text.substr(slash + 1));
  if (shard.count < 1 || shard.index >= shard.count) throw ConfigError(usage);
  shard.key = key;
  return shard;
}

uint64_t fnv1a64(const std::string& bytes) {
  uint64_t h = 14695981039346656037ULL;
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  return h;
}

bool in_shard(const Shard& shard, const Record& record, const std::string& input) {
  if (shard.all()) return true;
  if (shard.key.empty())
    return static_cast<int64_t>((record.line - 1) % static_cast<size_t>(shard.count)) == shard.index;
  const auto j = nlohmann::json::parse(record.raw, nullptr, /*allow_exceptions=*/false);
  const auto it = j.is_object() ? j.find(shard.key) : j.end();
  if (it == j.end() || it->is_null())
    throw DataError(input + ":" + std::to_string(record.line) + ": missing field \"" + shard.key + "\" (--shard-key)");
  const std::string text = it->is_string() ? it->get<std::string>() : it->dump();
  return static_cast<int64_t>(fnv1a64(text) % static_cast<uint64_t>(shard.count)) == shard.index;
}

}  // namespace dqe
