// Reading JSON files (configs, model and trainer state, statistics) with bounds on size and
// nesting, so that a huge, endless or hostile file is refused with its name.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <type_traits>

#include <nlohmann/json.hpp>

#include "dqe/errors.h"

namespace dqe {

// JSON files larger than this are refused unread: a 1 GB or endless --config is a mistake, not
// a configuration.
constexpr int64_t kMaxJsonFileBytes = int64_t{256} << 20;

// Reads a whole JSON file; throws IoError (missing, unreadable, or larger than
// kMaxJsonFileBytes) or ModelError (invalid or nested deeper than kMaxJsonDepth) naming it.
nlohmann::json read_json_file(const std::string& path);

// Sets out to j[key] when the key is there and not null; throws ModelError naming origin and the
// key for a value of another type, or an integer out of T's range (nlohmann would cast 1e300 to
// an integer with an undefined conversion).
template <typename T>
void read_key(const nlohmann::json& j, const char* key, T& out, const std::string& origin) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return;
  if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
    if (!it->is_number_integer() ||
        (it->is_number_unsigned() && it->get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<T>::max())) ||
        (!it->is_number_unsigned() && it->get<int64_t>() < static_cast<int64_t>(std::numeric_limits<T>::min())))
      throw ModelError(origin + ": key \"" + key + "\" must be an integer in range");
  }
  try {
    out = it->get<T>();
  } catch (const nlohmann::json::exception&) {
    throw ModelError(origin + ": key \"" + key + "\" has the wrong type");
  }
}

}  // namespace dqe
