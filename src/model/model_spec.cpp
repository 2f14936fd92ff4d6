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
  // Sizes beyond these would exhaust memory long before they made sense.
  if (vocab_size > 10'000'000 || hidden_size > 65536 || num_hidden_layers > 1000 ||
      intermediate_size > 1'000'000 || max_position_embeddings > 1'000'000)
    fail("model sizes are implausibly large");
}




namespace {

template <typename T>
void read_key(const nlohmann::json& j, const char* key, T& out, const std::string& origin) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return;
  // nlohmann converts 1e300 to an integer with an out-of-range (undefined) cast: refuse it.
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

}  // namespace

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
      std::string peft_type;
      read_key(*adapter, "peft_type", peft_type, origin);
      if (peft_type == "BOTTLENECK") {
        BottleneckSpec& bottleneck = spec.bottleneck.emplace();
        read_key(*adapter, "base", bottleneck.base, origin);
        read_key(*adapter, "base_dir", bottleneck.base_dir, origin);
        read_key(*adapter, "base_weights_hash", bottleneck.base_hash, origin);
      } else {
        LoraSpec& lora = spec.lora.emplace();
        read_key(*adapter, "base", lora.base, origin);
        read_key(*adapter, "base_dir", lora.base_dir, origin);
        read_key(*adapter, "base_weights_hash", lora.base_hash, origin);
      }
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


double LoraSpec::scaling() const {
  // PEFT's SVDLinear scales by lora_alpha / (ranknum + 1e-5), ranknum its initial rank.
  if (adalora) return alpha / (static_cast<double>(adalora->init_r) + 1e-5);
  return rslora ? alpha / std::sqrt(static_cast<double>(r)) : alpha / static_cast<double>(r);
}

namespace {

// AdaLoRA's keys of adapter_config.json (PEFT's AdaLoraConfig); r becomes init_r.
void read_adalora_keys(const nlohmann::json& j, LoraSpec& s, const std::string& origin) {
  AdaLoraSpec& a = s.adalora.emplace();
  read_key(j, "init_r", a.init_r, origin);
  read_key(j, "target_r", a.target_r, origin);
  read_key(j, "tinit", a.tinit, origin);
  read_key(j, "tfinal", a.tfinal, origin);
  read_key(j, "deltaT", a.delta_t, origin);
  read_key(j, "beta1", a.beta1, origin);
  read_key(j, "beta2", a.beta2, origin);
  read_key(j, "orth_reg_weight", a.orth_reg_weight, origin);
  read_key(j, "total_step", a.total_step, origin);
  if (a.init_r < 1 || a.init_r > 65536) throw ModelError(origin + ": init_r must be between 1 and 65536");
  s.r = a.init_r;
  auto it = j.find("rank_pattern");
  if (it == j.end() || it->is_null()) return;
  if (!it->is_object()) throw ModelError(origin + ": rank_pattern must map module names to lists of booleans");
  const std::string suffix = ".lora_E";
  for (auto m = it->begin(); m != it->end(); ++m) {
    std::string module = m.key();
    // PEFT's keys are the lora_E parameters' names ("bert.encoder.layer.0.attention.self.query.lora_E").
    if (module.size() > suffix.size() && module.compare(module.size() - suffix.size(), suffix.size(), suffix) == 0)
      module.resize(module.size() - suffix.size());
    if (!m->is_array()) throw ModelError(origin + ": rank_pattern \"" + m.key() + "\" must be a list of booleans");
    std::vector<bool> keep;
    for (const auto& b : *m) {
      if (!b.is_boolean()) throw ModelError(origin + ": rank_pattern \"" + m.key() + "\" must be a list of booleans");
      keep.push_back(b.get<bool>());
    }
    if (static_cast<int64_t>(keep.size()) != a.init_r)
      throw ModelError(origin + ": rank_pattern \"" + m.key() + "\" has " + std::to_string(keep.size()) +
                       " entries but init_r is " + std::to_string(a.init_r));
    a.rank_pattern[module] = std::move(keep);
  }
}

}  // namespace

LoraSpec lora_spec_from_adapter_config(const nlohmann::json& j, const std::string& origin) {
  if (!j.is_object()) throw ModelError(origin + ": expected a JSON object");
  if (json_depth(j) > kMaxJsonDepth) throw ModelError(origin + ": JSON nested too deeply");
  std::string peft_type, task_type, bias = "none";
  read_key(j, "peft_type", peft_type, origin);
  if (peft_type != "LORA" && peft_type != "ADALORA")
    throw ModelError(origin + ": peft_type \"" + peft_type + "\" is not supported (dqe reads LORA and ADALORA adapters)");
  read_key(j, "task_type", task_type, origin);
  if (!task_type.empty() && task_type != "SEQ_CLS")
    throw ModelError(origin + ": task_type \"" + task_type + "\" is not supported (dqe reads adapters of sequence "
                     "classifiers, SEQ_CLS)");
  LoraSpec s;
  read_key(j, "r", s.r, origin);
  read_key(j, "lora_alpha", s.alpha, origin);
  read_key(j, "lora_dropout", s.dropout, origin);
  read_key(j, "use_rslora", s.rslora, origin);
  read_key(j, "base_model_name_or_path", s.base, origin);
  if (s.r < 1 || s.r > 65536) throw ModelError(origin + ": r must be between 1 and 65536");
  if (!(s.alpha > 0 && std::isfinite(s.alpha))) throw ModelError(origin + ": lora_alpha must be a finite number > 0");
  if (!(s.dropout >= 0 && s.dropout < 1)) throw ModelError(origin + ": lora_dropout must be in [0, 1)");
  // LoRA variants whose computation differs from W x + scaling * B A x.
  read_key(j, "bias", bias, origin);
  if (bias != "none") throw ModelError(origin + ": bias \"" + bias + "\" is not supported (only \"none\": no trained biases)");
  for (const char* flag : {"fan_in_fan_out", "use_dora", "lora_bias"}) {
    bool on = false;
    read_key(j, flag, on, origin);
    if (on) throw ModelError(origin + ": " + flag + " is not supported");
  }
  if (peft_type == "ADALORA") read_adalora_keys(j, s, origin);
  for (const char* pattern : {"rank_pattern", "alpha_pattern"}) {
    if (s.adalora && std::string(pattern) == "rank_pattern") continue;  // AdaLoRA's own, read above
    auto it = j.find(pattern);
    if (it != j.end() && !it->is_null() && !(it->is_object() && it->empty()))
      throw ModelError(origin + ": " + pattern + " is not supported (one rank and alpha for every module)");
  }
  auto targets = j.find("target_modules");
  if (targets != j.end() && targets->is_string()) {
    s.target_modules = {targets->get<std::string>()};
  } else if (targets != j.end() && targets->is_array()) {
    for (const auto& t : *targets) {
      if (!t.is_string()) throw ModelError(origin + ": target_modules must hold names");
      s.target_modules.push_back(t.get<std::string>());
    }
  } else if (targets != j.end() && !targets->is_null()) {
    throw ModelError(origin + ": target_modules must be a name or a list of names");
  }
  return s;
}

nlohmann::json adapter_config_json(const LoraSpec& spec, const std::vector<std::string>& modules_to_save) {
  // Keys as PEFT's save_pretrained writes them for a LoRA sequence classifier (sorted, as it does).
  nlohmann::json j;
  j["base_model_name_or_path"] = spec.base;
  j["bias"] = "none";
  j["fan_in_fan_out"] = false;
  j["inference_mode"] = true;
  j["init_lora_weights"] = true;
  if (spec.alpha == std::floor(spec.alpha) && std::abs(spec.alpha) < 1e15) j["lora_alpha"] = static_cast<int64_t>(spec.alpha);
  else j["lora_alpha"] = spec.alpha;
  j["lora_dropout"] = spec.dropout;
  j["modules_to_save"] = modules_to_save;
  j["peft_type"] = spec.adalora ? "ADALORA" : "LORA";
  // AdaLoRA ignores r (init_r is its rank); PEFT's default keeps its loader from warning.
  j["r"] = spec.adalora ? int64_t{8} : spec.r;
  j["target_modules"] = spec.target_modules;
  j["task_type"] = "SEQ_CLS";
  j["use_rslora"] = spec.rslora;
  if (spec.adalora) {
    // AdaLoraConfig's keys; rank_pattern as save_pretrained leaves it (keys of the lora_E
    // parameters without the adapter's name), null before the first allocation.
    const AdaLoraSpec& a = *spec.adalora;
    j["init_r"] = a.init_r;
    j["target_r"] = a.target_r;
    j["tinit"] = a.tinit;
    j["tfinal"] = a.tfinal;
    j["deltaT"] = a.delta_t;
    j["beta1"] = a.beta1;
    j["beta2"] = a.beta2;
    j["orth_reg_weight"] = a.orth_reg_weight;
    j["total_step"] = a.total_step;
    nlohmann::json pattern = nullptr;
    for (const auto& [module, keep] : a.rank_pattern) pattern[module + ".lora_E"] = keep;
    j["rank_pattern"] = pattern;
  }
  return j;
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
  if (t.task == Task::kClassification) {
    nlohmann::ordered_json id2label, label2id;
    for (size_t i = 0; i < t.labels.size(); ++i) {
      id2label[std::to_string(i)] = t.labels[i];
      label2id[t.labels[i]] = i;
    }
    j["id2label"] = id2label;
    j["label2id"] = label2id;
    j["problem_type"] = "single_label_classification";
  } else {
    j["num_labels"] = 1;
    j["id2label"] = {{"0", "LABEL_0"}};
    j["label2id"] = {{"LABEL_0", 0}};
    if (t.task == Task::kRegression) j["problem_type"] = "regression";
  }
  nlohmann::ordered_json d;
  if (spec.mlm_encoder) d["objective"] = "mlm";
  d["task"] = task_name(t.task);
  d["labels"] = t.labels;
  d["label_mean"] = t.label_mean;
  d["label_std"] = t.label_std;
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
  if (spec.lora) {
    // The adapter's own settings are in adapter_config.json; here is what dqe adds: where the
    // base was and what its weights were.
    d["adapter"] = {{"peft_type", spec.lora->adalora ? "ADALORA" : "LORA"},
                    {"base", spec.lora->base},
                    {"base_dir", spec.lora->base_dir},
                    {"base_weights_hash", spec.lora->base_hash}};
  }
  if (spec.bottleneck) {
    // The size is in adapter_config.json, as LoRA's settings are.
    d["adapter"] = {{"peft_type", "BOTTLENECK"},
                    {"base", spec.bottleneck->base},
                    {"base_dir", spec.bottleneck->base_dir},
                    {"base_weights_hash", spec.bottleneck->base_hash}};
  }
  j["dqe"] = d;
  return j;
}

}  // namespace dqe
