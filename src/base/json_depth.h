// How deeply JSON nests, measured before and after parsing: copying, printing or destroying a
// parsed value recurses once per level, so every JSON dqe reads (input lines, configs, model
// and trainer state, logs) is refused beyond kMaxJsonDepth. One check for all of them.
#pragma once

#include <string_view>

#include <nlohmann/json.hpp>

namespace dqe {

constexpr int kMaxJsonDepth = 64;

// Nesting depth of a JSON text (brackets outside strings), stopping early past limit.
int json_text_depth(std::string_view text, int limit = kMaxJsonDepth);
// Nesting depth of a parsed value, computed without recursion, stopping early past limit.
int json_depth(const nlohmann::json& value, int limit = kMaxJsonDepth);

}  // namespace dqe
