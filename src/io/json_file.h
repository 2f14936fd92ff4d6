// Reading JSON files (configs, model and trainer state, statistics) with bounds on size and
// nesting, so that a huge, endless or hostile file is refused with its name.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

namespace dqe {

// JSON files larger than this are refused unread: a 1 GB or endless --config is a mistake, not
// a configuration.
constexpr int64_t kMaxJsonFileBytes = int64_t{256} << 20;

// Reads a whole JSON file; throws IoError (missing, unreadable, or larger than
// kMaxJsonFileBytes) or ModelError (invalid or nested deeper than kMaxJsonDepth) naming it.
nlohmann::json read_json_file(const std::string& path);

}  // namespace dqe
