#include "model/model_spec.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <type_traits>
#include <utility>
#include <vector>

#include "base/format.h"
#include "dqe/errors.h"
#include "model/heads/task_head.h"

namespace dqe {
namespace fs = std::filesystem;

void BertConfig::validate(const std::string& origin) const {
  auto fail = [&](const std::string& what) { throw ModelError(origin + ": " + what); };
  if (vocab_size <= 0) fail("vocab_size must be > 0");
  if (hidden_size <= 0) fail("hidden_size must be > 0");
  if (num_hidden_layers <= 0) fail("num_hidden_layers must be > 0");
  if (num_attention_heads <= 0 || hidden_size % num_attention_heads != 0)
    fail("hidden_size " + std::to_string(hidden_size) + " is not divisible by num_attention_heads " +
         std::to_string(num_attention_heads));
  if (intermediate_size <= 0) fail("intermediate_size must be > 0");
  if (max_position_embeddings <= 0) fail("max_position_embeddings must be > 0");
  if (type_vocab_size <= 0) fail("type_vocab_size must be > 0");
  if (pad_token_id < 0 || pad_token_id >= vocab_size) fail("pad_token_id out of range");
  if (hidden_act != "gelu" && hidden_act != "gelu_new" && hidden_act != "gelu_pytorch_tanh" &&
      hidden_act != "relu")
    fail("unsupported hidden_act \"" + hidden_act + "\"");
  // LayerNorm's eps guards a division: Hugging Face models use 1e-12 to 1e-5; one near the
  // activations' variance flattens them, a negative one gives NaN.
  if (!(layer_norm_eps > 0 && layer_norm_eps <= 0.1))
    fail("layer_norm_eps must be > 0 and at most 0.1 (Hugging Face's BERT uses 1e-12), got " +
         format_significant(layer_norm_eps));
  if (!(hidden_dropout_prob >= 0 && hidden_dropout_prob < 1) ||
      !(attention_probs_dropout_prob >= 0 && attention_probs_dropout_prob < 1))
    fail("hidden_dropout_prob and attention_probs_dropout_prob must be in [0, 1)");
  // Sizes beyond these would exhaust memory long before they made sense.
  if (vocab_size > 10'000'000 || hidden_size > 65536 || num_hidden_layers > 1000 ||
      intermediate_size > 1'000'000 || max_position_embeddings > 1'000'000)
    fail("model sizes are implausibly large");
}





ModelSpec model_spec_from_json(const nlohmann::json& j, const std::string& origin) {
  if (!j.is_object()) throw ModelError(origin + ": expected a JSON object");
  if (json_depth(j) > kMaxJsonDepth) throw ModelError(origin + ": JSON nested too deeply");
  ModelSpec spec;
  BertConfig& b = spec.bert;
  read_key(j, "vocab_size", b.vocab_size, origin);
  read_key(j, "hidden_size", b.hidden_size, origin);
  read_key(j, "num_hidden_layers", b.num_hidden_layers, origin);
  read_key(j, "num_attention_heads", b.num_attention_heads, origin);
  read_key(j, "intermediate_size", b.intermediate_size, origin);
  read_key(j, "hidden_act", b.hidden_act, origin);
  read_key(j, "hidden_dropout_prob", b.hidden_dropout_prob, origin);
  read_key(j, "attention_probs_dropout_prob", b.attention_probs_dropout_prob, origin);
  read_key(j, "max_position_embeddings", b.max_position_embeddings, origin);
  read_key(j, "type_vocab_size", b.type_vocab_size, origin);
  read_key(j, "layer_norm_eps", b.layer_norm_eps, origin);
  read_key(j, "initializer_range", b.initializer_range, origin);
  read_key(j, "pad_token_id", b.pad_token_id, origin);
  if (j.contains("classifier_dropout") && j["classifier_dropout"].is_number())
    b.classifier_dropout = j["classifier_dropout"].get<double>();
  b.validate(origin);

  TaskSpec& t = spec.task;
  t.max_len = std::min<int64_t>(512, b.max_position_embeddings);
  // Hugging Face head description: id2label (classification) or problem_type.
  std::vector<std::string> hf_labels;
  if (j.contains("id2label") && j["id2label"].is_object()) {
    const auto& m = j["id2label"];
    hf_labels.resize(m.size());
    for (auto it = m.begin(); it != m.end(); ++it) {
      size_t id = 0;
      try {
        id = std::stoul(it.key());
      } catch (const std::exception&) {
        throw ModelError(origin + ": id2label key \"" + it.key() + "\" is not an integer");
      }
      if (id >= hf_labels.size() || it.key() != std::to_string(id) || !it->is_string())
        throw ModelError(origin + ": id2label is not a dense map of ids to names");
      hf_labels[id] = it->get<std::string>();
    }
  }
  std::string problem_type;
  read_key(j, "problem_type", problem_type, origin);
  int64_t num_labels = static_cast<int64_t>(hf_labels.size());
  read_key(j, "num_labels", num_labels, origin);
  if (problem_type == "regression" || num_labels == 1) {
    t.task = Task::kRegression;
  } else {
    t.task = Task::kClassification;
    t.labels = hf_labels;
  }

  auto dq = j.find("dqe");
  if (dq != j.end() && !dq->is_object() && !dq->is_null())
    throw ModelError(origin + ": \"dqe\" must be an object (dqe's own settings: task, label scaling, inputs), got " +
                     dq->type_name());
  if (dq != j.end() && dq->is_object()) {
    spec.has_dqe_section = true;
    std::string task = task_name(t.task);
    read_key(*dq, "task", task, origin);
    try {
      t.task = parse_task(task);
    } catch (const ConfigError&) {
      throw ModelError(origin + ": unknown task \"" + task + "\"");
    }
    t.labels.clear();
    read_key(*dq, "labels", t.labels, origin);
    read_key(*dq, "label_mean", t.label_mean, origin);
    read_key(*dq, "label_std", t.label_std, origin);
    if (t.task == Task::kRegression) {
      double mean = std::numeric_limits<double>::quiet_NaN();
      read_key(*dq, "training_mean", mean, origin);
      // A checkpoint written before the key existed: its label_mean is the training mean, unless
      // an export folded the scaling into the head (mean 0, std 1 then say nothing).
      if (std::isnan(mean) && !dq->contains("training_mean") && !(t.label_mean == 0 && t.label_std == 1))
        mean = t.label_mean;
      if (!std::isnan(mean)) t.training_mean = mean;
    }
    read_key(*dq, "max_len", t.max_len, origin);
    read_key(*dq, "lower_case", t.lower_case, origin);
    read_key(*dq, "match_types", t.match_types, origin);
    read_key(*dq, "lexical_features", t.lexical_features, origin);
    read_key(*dq, "query_field", t.fields.query, origin);
    read_key(*dq, "text_fields", t.fields.text, origin);
    read_key(*dq, "label_field", t.fields.label, origin);
    read_key(*dq, "query_id_field", t.fields.query_id, origin);
    read_key(*dq, "id_field", t.fields.id, origin);
    read_key(*dq, "features_field", t.fields.features, origin);
    read_key(*dq, "attributes_field", t.fields.attributes, origin);
    read_key(*dq, "image_field", t.fields.image, origin);
    std::string fusion = fusion_name(t.fusion);
    read_key(*dq, "fusion", fusion, origin);
    try {
      t.fusion = parse_fusion(fusion);
    } catch (const ConfigError&) {
      throw ModelError(origin + ": unknown fusion \"" + fusion + "\"");
    }
    std::string objective;
    read_key(*dq, "objective", objective, origin);
    if (!objective.empty() && objective != "mlm") throw ModelError(origin + ": unknown objective \"" + objective + "\"");
    spec.mlm_encoder = objective == "mlm";
    if (auto adapter = dq->find("adapter"); adapter != dq->end() && !adapter->is_null()) {
      if (!adapter->is_object()) throw ModelError(origin + ": \"dqe\".\"adapter\" must be an object");
      std::string peft_type = "LORA";  // written before dqe had other kinds
      read_key(*adapter, "peft_type", peft_type, origin);
      const AdapterKind* kind = adapter_kind_of_peft_type(peft_type);
      if (!kind)
        throw ModelError(origin + ": \"dqe\".\"adapter\" has peft_type \"" + peft_type + "\", which dqe does not read (" +
                         known_peft_types() + ")");
      spec.adapter = kind->make();
      read_key(*adapter, "base", spec.adapter->base.path, origin);
      read_key(*adapter, "base_dir", spec.adapter->base.dir, origin);
      read_key(*adapter, "base_weights_hash", spec.adapter->base.hash, origin);
    }
  }
  if (t.task == Task::kClassification && t.labels.size() < 2)
    throw ModelError(origin + ": a classification model needs at least 2 labels");
  if (!(t.label_std > 0)) throw ModelError(origin + ": label_std must be > 0");
  if (t.match_types && b.type_vocab_size < 4)
    throw ModelError(origin + ": match_types needs type_vocab_size >= 4");
  if (t.max_len < 3 || t.max_len > b.max_position_embeddings)
    throw ModelError(origin + ": max_len must be between 3 and max_position_embeddings");
  return spec;
}






ModelSpec load_model_spec(const std::string& dir) {
  const std::string path = (fs::path(dir) / "config.json").string();
  if (!fs::exists(path)) throw ModelError(dir + ": not a model directory (no config.json)");
  ModelSpec spec = model_spec_from_json(read_json_file(path), path);
  if (!spec.has_dqe_section) {
    // A plain Hugging Face directory: the tokenizer config says how inputs are built.
    const std::string tok_path = (fs::path(dir) / "tokenizer_config.json").string();
    if (fs::exists(tok_path)) {
      nlohmann::json tok = read_json_file(tok_path);
      read_key(tok, "do_lower_case", spec.task.lower_case, tok_path);
      int64_t model_max = 0;
      if (tok.contains("model_max_length") && tok["model_max_length"].is_number_integer())
        model_max = tok["model_max_length"].get<int64_t>();
      if (model_max >= 3) spec.task.max_len = std::min(model_max, spec.bert.max_position_embeddings);
    }
  }
  return spec;
}

nlohmann::ordered_json to_json(const ModelSpec& spec) {
  const BertConfig& b = spec.bert;
  const TaskSpec& t = spec.task;
  nlohmann::ordered_json j;
  j["architectures"] = {spec.mlm_encoder ? "BertForMaskedLM" : "BertForSequenceClassification"};
  j["model_type"] = "bert";
  j["vocab_size"] = b.vocab_size;
  j["hidden_size"] = b.hidden_size;
  j["num_hidden_layers"] = b.num_hidden_layers;
  j["num_attention_heads"] = b.num_attention_heads;
  j["intermediate_size"] = b.intermediate_size;
  j["hidden_act"] = b.hidden_act;
  j["hidden_dropout_prob"] = b.hidden_dropout_prob;
  j["attention_probs_dropout_prob"] = b.attention_probs_dropout_prob;
  j["max_position_embeddings"] = b.max_position_embeddings;
  j["type_vocab_size"] = b.type_vocab_size;
  j["layer_norm_eps"] = b.layer_norm_eps;
  j["initializer_range"] = b.initializer_range;
  j["pad_token_id"] = b.pad_token_id;
  if (b.classifier_dropout) j["classifier_dropout"] = *b.classifier_dropout;
  // Keys Hugging Face reads to rebuild the head.
  task_head(t.task).write_hf_keys(t, j);
  nlohmann::ordered_json d;
  if (spec.mlm_encoder) d["objective"] = "mlm";
  d["task"] = task_name(t.task);
  d["labels"] = t.labels;
  d["label_mean"] = t.label_mean;
  d["label_std"] = t.label_std;
  if (t.training_mean) d["training_mean"] = *t.training_mean;
  d["max_len"] = t.max_len;
  d["lower_case"] = t.lower_case;
  d["match_types"] = t.match_types;
  d["lexical_features"] = t.lexical_features;
  d["query_field"] = t.fields.query;
  d["text_fields"] = t.fields.text;
  d["label_field"] = t.fields.label;
  d["query_id_field"] = t.fields.query_id;
  d["id_field"] = t.fields.id;
  d["features_field"] = t.fields.features;
  d["attributes_field"] = t.fields.attributes;
  d["image_field"] = t.fields.image;
  d["fusion"] = fusion_name(t.fusion);
  if (spec.adapter) {
    // The adapter's own settings are in adapter_config.json; here is what dqe adds: its kind,
    // where the base was and what its weights were.
    d["adapter"] = {{"peft_type", spec.adapter->peft_type()},
                    {"base", spec.adapter->base.path},
                    {"base_dir", spec.adapter->base.dir},
                    {"base_weights_hash", spec.adapter->base.hash}};
  }
  j["dqe"] = d;
  return j;
}

}  // namespace dqe
