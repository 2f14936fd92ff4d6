#include "io/side_fields.h"

#include <cmath>

namespace dqe {
namespace {

std::string in_quotes(const std::string& s) { return "\"" + s + "\""; }

}  // namespace

std::string read_side_fields(const nlohmann::json& object, const FieldMap& fields, Record& out) {
  out.features.clear();
  out.attributes.clear();
  out.image.clear();
  if (!fields.features.empty()) {
    const auto it = object.find(fields.features);
    if (it != object.end() && !it->is_null()) {
      if (!it->is_object()) return "field " + in_quotes(fields.features) + " must be an object of numbers, got " + it->type_name();
      for (const auto& [name, value] : it->items()) {
        if (value.is_null()) continue;  // absent
        if (!value.is_number())
          return "feature " + in_quotes(name) + " in " + in_quotes(fields.features) + " must be a number, got " + value.type_name();
        out.features.emplace_back(name, value.get<double>());
      }
    }
  }
  if (!fields.attributes.empty()) {
    const auto it = object.find(fields.attributes);
    if (it != object.end() && !it->is_null()) {
      if (!it->is_object())
        return "field " + in_quotes(fields.attributes) + " must be an object of strings, got " + it->type_name();
      for (const auto& [name, value] : it->items()) {
        if (value.is_null()) continue;
        if (!value.is_string())
          return "attribute " + in_quotes(name) + " in " + in_quotes(fields.attributes) + " must be a string, got " +
                 value.type_name();
        out.attributes.emplace_back(name, value.get<std::string>());
      }
    }
  }
  if (!fields.image.empty()) {
    const auto it = object.find(fields.image);
    if (it != object.end() && !it->is_null()) {
      if (!it->is_array() || it->empty())
        return "field " + in_quotes(fields.image) + " must be a non-empty array of numbers, got " +
               (it->is_array() ? std::string("an empty array") : std::string(it->type_name()));
      out.image.reserve(it->size());
      for (size_t i = 0; i < it->size(); ++i) {
        const auto& v = (*it)[i];
        if (!v.is_number())
          return "field " + in_quotes(fields.image) + "[" + std::to_string(i) + "] must be a number, got " + v.type_name();
        const double x = v.get<double>();
        const auto f = static_cast<float>(x);
        if (!std::isfinite(f))
          return "field " + in_quotes(fields.image) + "[" + std::to_string(i) + "] is not a finite float";
        out.image.push_back(f);
      }
    }
  }
  return "";
}

}  // namespace dqe
