// Reading the side fields of a line (data/log_inputs.h): kept apart so that the JSONL reader does not
// need the model's headers.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "dqe/jsonl_reader.h"

namespace dqe {

// Reads the side fields of a parsed line into out.features, out.attributes and out.image.
// Returns the problem ("field \"features\" ...") or "" when they are well formed: features an
// object of numbers (null: absent), attributes an object of strings (null: absent), image a
// non-empty array of finite numbers. A field named "" in fields is not read.
std::string read_side_fields(const nlohmann::json& object, const FieldMap& fields, Record& out);

}  // namespace dqe
