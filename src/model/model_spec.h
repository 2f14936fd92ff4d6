// What config.json holds: BertConfig carries Hugging Face's keys; TaskSpec is dqe's own "dqe"
// section of the same file (what the head predicts and how inputs are built), with the record of
// an adapter's kind and base, so that a checkpoint directory describes itself completely.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/checks.h"
#include "base/json_depth.h"
#include "data/task_spec.h"
#include "io/json_file.h"
#include "model/bert_config.h"
#include "model/peft/adapter.h"

namespace dqe {

// Everything config.json holds.
struct ModelSpec {
  BertConfig bert;
  TaskSpec task;
  // Whether the file had a "dqe" section (false for a plain Hugging Face directory).
  bool has_dqe_section = false;
  // Written by `dqe pretrain`: an encoder with a masked-language-model head ("cls.*") and no
  // task head yet. Saved as "objective": "mlm"; TaskSpec then only says how inputs are built.
  bool mlm_encoder = false;
  // An adapter's directory (model/peft/): the weights are the adapter's (adapter_config.json
  // and adapter_model.safetensors) on top of its base's. config.json records its kind and base
  // in the "dqe" section ("adapter"); its settings come from adapter_config.json.
  AdapterSpecPtr adapter;
};

// The position ids left to the text: max_position_embeddings less those the adapter takes
// (prefix tuning's virtual tokens). max_len is at most this.
inline int64_t text_positions(const ModelSpec& spec) {
  return spec.bert.max_position_embeddings - (spec.adapter ? spec.adapter->positions_taken() : 0);
}

// Reads DIR/config.json (and, for a Hugging Face directory, DIR/tokenizer_config.json for
// do_lower_case and model_max_length). Throws ModelError/IoError naming the file.
ModelSpec load_model_spec(const std::string& dir);
nlohmann::ordered_json to_json(const ModelSpec& spec);
ModelSpec model_spec_from_json(const nlohmann::json& j, const std::string& origin);

}  // namespace dqe
