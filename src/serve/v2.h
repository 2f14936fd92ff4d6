// KServe's Open Inference Protocol (v2, REST) as dqe speaks it: an infer request's named
// input tensors become JSONL lines of the fields `dqe score` reads (so that both routes parse
// records the same way), and predictions become FP64/BYTES/BOOL output tensors.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "dqe/jsonl_reader.h"
#include "infer/detect.h"
#include "model/heads/task_head.h"

namespace dqe::service {

// A request the server answers with `status` and {"error": what()}.
class BadRequest : public std::runtime_error {
 public:
  BadRequest(int status, const std::string& what) : std::runtime_error(what), status_(status) {}
  int status() const { return status_; }

 private:
  int status_;
};

// Which inputs a model takes, by the field names it reads.
struct V2Inputs {
  std::vector<std::string> bytes;  // query, the text fields, query_id, id, the route field
  std::string features, attributes;  // BYTES holding a JSON object each (empty: not taken)
  std::string image;                 // FP32 or FP64 [N, D] (empty: not taken)
  std::vector<std::string> required;  // the query and the first text field (and the route field)
};
V2Inputs v2_inputs(const FieldMap& fields, const std::string& route_field);

struct V2Request {
  std::string id;  // echoed in the response; may be empty
  std::vector<std::string> lines;  // one JSON object line a row
  bool probs = false, pred = false;
  bool suspect = false;  // suspect and suspect_reasons
};

// Parses an infer request body. Throws BadRequest (400) naming the input for a body that is not
// a JSON object, an unknown or repeated input, a datatype or shape the input cannot have,
// inputs of different lengths, a missing required input, an unknown output; 413 for more than
// max_rows rows. `outputs` may ask for score, pred, probs, suspect, suspect_reasons; parameters
// {"probs": true, "pred": true, "detect": true} ask too.
V2Request parse_v2_request(std::string_view body, const V2Inputs& inputs, int64_t max_rows);

// The response body: model_name, model_version, id, and the outputs asked for.
nlohmann::ordered_json v2_response(const std::string& model, const std::string& version, const V2Request& request,
                                   const Predictions& predictions, const TaskSpec& spec,
                                   const std::vector<std::vector<std::string>>& suspect_reasons);

// The model metadata's "inputs" and "outputs".
nlohmann::ordered_json v2_model_metadata(const std::string& model, const std::string& version, const V2Inputs& inputs,
                                         const TaskSpec& spec, bool detect);

}  // namespace dqe::service
