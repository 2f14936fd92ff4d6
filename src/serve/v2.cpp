#include "serve/v2.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "base/json_depth.h"
#include "data/task_spec.h"

namespace dqe::service {

namespace {

using json = nlohmann::json;

bool contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

// The shape's first dimension, checking that the shape is a list of non-negative integers
// whose product is the data's length (data flattened row-major).
int64_t rows_of(const json& input, const std::string& name, size_t rank, size_t data_size) {
  const json* shape = input.contains("shape") ? &input.at("shape") : nullptr;
  if (!shape || !shape->is_array() || shape->size() != rank)
    throw BadRequest(400, "input \"" + name + "\": shape must be a list of " + std::to_string(rank) +
                              (rank == 1 ? " integer, [N]" : " integers, [N, D]"));
  uint64_t product = 1;
  for (const json& d : *shape) {
    if (!d.is_number_unsigned() || d.get<uint64_t>() > (uint64_t{1} << 31))
      throw BadRequest(400, "input \"" + name + "\": shape must hold non-negative integers");
    product *= d.get<uint64_t>();
  }
  if (product != data_size)
    throw BadRequest(400, "input \"" + name + "\": shape " + shape->dump() + " holds " + std::to_string(product) +
                              " values but data has " + std::to_string(data_size));
  return shape->at(0).get<int64_t>();
}

// The data flattened row-major (v2 allows nested lists).
void flatten(const json& data, std::vector<const json*>& out) {
  if (data.is_array())
    for (const json& d : data) flatten(d, out);
  else
    out.push_back(&data);
}

bool parameter(const json& request, const char* key, const std::string& what) {
  if (!request.contains("parameters")) return false;
  const json& p = request.at("parameters");
  if (!p.is_object()) throw BadRequest(400, "parameters must be an object");
  if (!p.contains(key)) return false;
  if (!p.at(key).is_boolean()) throw BadRequest(400, "parameters." + std::string(key) + " must be true or false (" + what + ")");
  return p.at(key).get<bool>();
}

}  // namespace

V2Inputs v2_inputs(const FieldMap& fields, const std::string& route_field) {
  V2Inputs in;
  in.bytes.push_back(fields.query);
  for (const auto& t : fields.text) in.bytes.push_back(t);
  for (const auto* f : {&fields.query_id, &fields.id, &route_field})
    if (!f->empty() && !contains(in.bytes, *f)) in.bytes.push_back(*f);
  in.features = fields.features;
  in.attributes = fields.attributes;
  in.image = fields.image;
  in.required = {fields.query, fields.text.front()};
  if (!route_field.empty()) in.required.push_back(route_field);
  return in;
}

V2Request parse_v2_request(std::string_view body, const V2Inputs& inputs, int64_t max_rows) {
  if (json_text_depth(body) > kMaxJsonDepth)
    throw BadRequest(400, "the body nests deeper than " + std::to_string(kMaxJsonDepth) + " levels");
  json request = json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
  if (request.is_discarded()) throw BadRequest(400, "the body is not JSON");
  if (!request.is_object()) throw BadRequest(400, "the body must be a JSON object with \"inputs\"");
  V2Request out;
  if (request.contains("id")) {
    if (!request.at("id").is_string()) throw BadRequest(400, "id must be a string");
    out.id = request.at("id").get<std::string>();
  }
  if (!request.contains("inputs") || !request.at("inputs").is_array() || request.at("inputs").empty())
    throw BadRequest(400, "\"inputs\" must be a non-empty list of tensors");
  std::vector<json> rows;
  int64_t n = -1;
  std::set<std::string> seen;
  std::string first_name;
  for (const json& input : request.at("inputs")) {
    if (!input.is_object() || !input.contains("name") || !input.at("name").is_string())
      throw BadRequest(400, "each input must be an object with a \"name\"");
    const std::string name = input.at("name").get<std::string>();
    if (!seen.insert(name).second) throw BadRequest(400, "input \"" + name + "\" is given twice");
    const std::string type = input.contains("datatype") && input.at("datatype").is_string()
                                 ? input.at("datatype").get<std::string>()
                                 : "";
    if (!input.contains("data")) throw BadRequest(400, "input \"" + name + "\" has no \"data\"");
    std::vector<const json*> data;
    flatten(input.at("data"), data);
    const bool text = contains(inputs.bytes, name) || name == inputs.features || name == inputs.attributes;
    const bool image = !inputs.image.empty() && name == inputs.image;
    if (!text && !image) {
      std::string known;
      for (const auto& b : inputs.bytes) known += (known.empty() ? "" : ", ") + b;
      for (const auto* s : {&inputs.features, &inputs.attributes, &inputs.image})
        if (!s->empty()) known += ", " + *s;
      throw BadRequest(400, "unknown input \"" + name + "\" (the model takes: " + known + ")");
    }
    int64_t count = 0;
    size_t width = 1;
    if (text) {
      if (type != "BYTES") throw BadRequest(400, "input \"" + name + "\" must have datatype BYTES, not \"" + type + "\"");
      count = rows_of(input, name, 1, data.size());
    } else {
      if (type != "FP32" && type != "FP64")
        throw BadRequest(400, "input \"" + name + "\" must have datatype FP32 or FP64, not \"" + type + "\"");
      count = rows_of(input, name, 2, data.size());
      width = count == 0 ? 0 : data.size() / static_cast<size_t>(count);
    }
    if (count > max_rows)
      throw BadRequest(413, "input \"" + name + "\" has " + std::to_string(count) + " rows; the server takes at most " +
                                std::to_string(max_rows) + " a request (--max-lines)");
    if (n < 0) {
      n = count;
      first_name = name;
      rows.assign(static_cast<size_t>(n), json::object());
    } else if (count != n) {
      throw BadRequest(400, "input \"" + name + "\" has " + std::to_string(count) + " rows but \"" + first_name +
                                "\" has " + std::to_string(n));
    }
    for (int64_t r = 0; r < n; ++r) {
      json& row = rows[static_cast<size_t>(r)];
      if (image) {
        json vec = json::array();
        for (size_t k = 0; k < width; ++k) {
          const json& v = *data[static_cast<size_t>(r) * width + k];
          if (!v.is_number()) throw BadRequest(400, "input \"" + name + "\": data must be numbers");
          vec.push_back(v);
        }
        row[name] = std::move(vec);
        continue;
      }
      const json& v = *data[static_cast<size_t>(r)];
      if (!v.is_string()) throw BadRequest(400, "input \"" + name + "\": BYTES data must be strings");
      if (name == inputs.features || name == inputs.attributes) {
        const std::string& object = v.get_ref<const std::string&>();
        json parsed = json::parse(object, nullptr, /*allow_exceptions=*/false);
        if (parsed.is_discarded() || !parsed.is_object() || json_depth(parsed) > kMaxJsonDepth)
          throw BadRequest(400, "input \"" + name + "\" row " + std::to_string(r) + ": must hold a JSON object");
        row[name] = std::move(parsed);
      } else {
        row[name] = v;
      }
    }
  }
  for (const auto& r : inputs.required)
    if (!seen.count(r)) throw BadRequest(400, "input \"" + r + "\" is required");
  out.probs = parameter(request, "probs", "add the class probabilities");
  out.pred = parameter(request, "pred", "add the predicted class");
  out.suspect = parameter(request, "detect", "add suspect and suspect_reasons");
  if (request.contains("outputs")) {
    const json& outs = request.at("outputs");
    if (!outs.is_array()) throw BadRequest(400, "\"outputs\" must be a list");
    for (const json& o : outs) {
      if (!o.is_object() || !o.contains("name") || !o.at("name").is_string())
        throw BadRequest(400, "each output must be an object with a \"name\"");
      const std::string name = o.at("name").get<std::string>();
      if (name == "probs") out.probs = true;
      else if (name == "pred") out.pred = true;
      else if (name == "suspect" || name == "suspect_reasons") out.suspect = true;
      else if (name != "score")
        throw BadRequest(400, "unknown output \"" + name + "\" (score, pred, probs, suspect, suspect_reasons)");
    }
  }
  out.lines.reserve(rows.size());
  for (const json& row : rows) out.lines.push_back(row.dump(-1, ' ', false, json::error_handler_t::strict));
  return out;
}

nlohmann::ordered_json v2_response(const std::string& model, const std::string& version, const V2Request& request,
                                   const Predictions& p, const TaskSpec& spec,
                                   const std::vector<std::vector<std::string>>& suspect_reasons) {
  using ojson = nlohmann::ordered_json;
  const size_t n = p.scores.size();
  ojson response = {{"model_name", model}, {"model_version", version}};
  if (!request.id.empty()) response["id"] = request.id;
  ojson outputs = ojson::array();
  outputs.push_back({{"name", "score"}, {"datatype", "FP64"}, {"shape", {n}}, {"data", p.scores}});
  const TaskHead& head = task_head(spec.task);
  if (request.pred || request.probs) {
    ojson preds = ojson::array(), probs = ojson::array();
    size_t width = 0;
    std::vector<std::pair<std::string, std::string>> added;
    for (size_t i = 0; i < n; ++i) {
      added.clear();
      head.line_fields(p, i, spec, request.pred, request.probs, added);
      for (const auto& [key, text] : added) {
        ojson value = ojson::parse(text);
        if (key == "pred") preds.push_back(value.is_string() ? value.get<std::string>() : value.dump());
        if (key == "probs" && value.is_object()) {
          width = value.size();
          for (const auto& item : value.items()) probs.push_back(item.value());
        } else if (key == "probs" && value.is_array()) {
          width = value.size();
          for (const auto& item : value) probs.push_back(item);
        }
      }
    }
    if (request.pred && preds.size() == n)
      outputs.push_back({{"name", "pred"}, {"datatype", "BYTES"}, {"shape", {n}}, {"data", preds}});
    if (request.probs && width > 0)
      outputs.push_back({{"name", "probs"}, {"datatype", "FP64"}, {"shape", {n, width}}, {"data", probs}});
  }
  if (request.suspect) {
    ojson flags = ojson::array(), reasons = ojson::array();
    for (const auto& r : suspect_reasons) {
      flags.push_back(!r.empty());
      reasons.push_back(ojson(r).dump());
    }
    outputs.push_back({{"name", "suspect"}, {"datatype", "BOOL"}, {"shape", {n}}, {"data", flags}});
    outputs.push_back({{"name", "suspect_reasons"}, {"datatype", "BYTES"}, {"shape", {n}}, {"data", reasons}});
  }
  response["outputs"] = std::move(outputs);
  return response;
}

nlohmann::ordered_json v2_model_metadata(const std::string& model, const std::string& version, const V2Inputs& inputs,
                                         const TaskSpec& spec, bool detect) {
  using ojson = nlohmann::ordered_json;
  ojson in = ojson::array();
  for (const auto& b : inputs.bytes) in.push_back({{"name", b}, {"datatype", "BYTES"}, {"shape", {-1}}});
  for (const auto* s : {&inputs.features, &inputs.attributes})
    if (!s->empty()) in.push_back({{"name", *s}, {"datatype", "BYTES"}, {"shape", {-1}}});
  if (!inputs.image.empty()) in.push_back({{"name", inputs.image}, {"datatype", "FP32"}, {"shape", {-1, -1}}});
  ojson out = ojson::array();
  out.push_back({{"name", "score"}, {"datatype", "FP64"}, {"shape", {-1}}});
  if (!task_head(spec.task).class_names(spec).empty()) {
    out.push_back({{"name", "pred"}, {"datatype", "BYTES"}, {"shape", {-1}}});
    out.push_back({{"name", "probs"}, {"datatype", "FP64"}, {"shape", {-1, -1}}});
  }
  if (detect) {
    out.push_back({{"name", "suspect"}, {"datatype", "BOOL"}, {"shape", {-1}}});
    out.push_back({{"name", "suspect_reasons"}, {"datatype", "BYTES"}, {"shape", {-1}}});
  }
  return {{"name", model}, {"versions", {version}}, {"platform", "dqe_libtorch"}, {"inputs", in}, {"outputs", out}};
}

}  // namespace dqe::service
