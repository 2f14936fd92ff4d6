#include "dqe/model_info.h"

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>

#include "base/format.h"
#include "data/log_inputs.h"
#include "deploy/deploy.h"
#include "dqe/errors.h"
#include "infer/detect.h"
#include "infer/predictor.h"
#include "io/json_file.h"
#include "model/model_dir.h"

namespace dqe {
namespace fs = std::filesystem;

void InfoConfig::validate() const {
  check_knobs(*this);
  if (model.empty()) throw ConfigError("dqe info needs a model: dqe info MODEL (or --model MODEL)");
}

namespace {

using ojson = nlohmann::ordered_json;

// A safetensors file's tensors by stored dtype, from its header alone (no weights are read):
// {"F32": {"tensors": n, "elements": e}, ...}, the elements summed, and the file's bytes.
struct StoredWeights {
  std::map<std::string, std::pair<int64_t, int64_t>> by_dtype;  // tensors, elements
  int64_t elements = 0;
  int64_t bytes = 0;
};

StoredWeights stored_weights(const std::string& path) {
  StoredWeights w;
  std::ifstream in(path, std::ios::binary);
  uint64_t n = 0;
  if (!in.read(reinterpret_cast<char*>(&n), 8) || n > (uint64_t{1} << 27))
    throw ModelError(path + ": not a safetensors file (its header length is unreadable)");
  std::string text(n, '\0');
  if (!in.read(text.data(), static_cast<std::streamsize>(n))) throw ModelError(path + ": truncated safetensors header");
  const nlohmann::json header = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!header.is_object()) throw ModelError(path + ": its safetensors header is not a JSON object");
  for (const auto& [name, t] : header.items()) {
    if (name == "__metadata__" || !t.is_object() || !t.contains("dtype") || !t.contains("shape")) continue;
    int64_t count = 1;
    for (const auto& d : t["shape"]) count *= d.get<int64_t>();
    auto& slot = w.by_dtype[t["dtype"].get<std::string>()];
    ++slot.first;
    slot.second += count;
    w.elements += count;
  }
  std::error_code ec;
  w.bytes = static_cast<int64_t>(fs::file_size(path, ec));
  return w;
}

ojson weights_json(const std::string& path) {
  const StoredWeights w = stored_weights(path);
  ojson j = {{"file", fs::path(path).filename().string()}, {"bytes", w.bytes}, {"elements", w.elements}};
  ojson dtypes = ojson::object();
  for (const auto& [dtype, counts] : w.by_dtype) dtypes[dtype] = {{"tensors", counts.first}, {"elements", counts.second}};
  j["dtypes"] = dtypes;
  return j;
}

// The run's record of the model, when it is a checkpoint of a dqe run: its dev metric.
ojson training_record(const std::string& dir) {
  const fs::path state = fs::path(dir) / "trainer_state.json";
  if (!fs::exists(state)) return nullptr;
  const nlohmann::json s = read_json_file(state.string());
  ojson j = ojson::object();
  for (const char* key : {"metric_name", "best_metric", "best_step", "step", "total_steps"})
    if (s.contains(key)) j[key] = s[key];
  return j;
}

}  // namespace

ojson describe_model(const InfoConfig& config) {
  config.validate();
  ojson info = ojson::object();
  if (fs::is_directory(config.model)) {
    const std::vector<std::string> members = ensemble_members(config.model);
    if (members.size() > 1) {
      info["model"] = config.model;
      info["kind"] = "ensemble of " + std::to_string(members.size()) + " models (their scores are averaged)";
      info["members"] = members;
      info["exports_to"] = {{"dqe", "no: export writes one model; distil the ensemble into one (dqe train --teacher)"},
                            {"hf", "no: as for dqe"}};
      return info;
    }
  }
  const std::string dir = resolve_model_dir(config.model);
  info["model"] = dir;
  const ModelSpec spec = model_spec_of(dir, config.base);
  const BertConfig& b = spec.bert;
  const TaskSpec& t = spec.task;
  const bool adapter_dir = fs::exists(fs::path(dir) / "adapter_model.safetensors");
  const std::string weights_file = (fs::path(dir) / (adapter_dir ? "adapter_model.safetensors" : "model.safetensors")).string();

  if (spec.mlm_encoder) {
    info["kind"] = "pretrained encoder (masked language model, no task head): fine-tune it with dqe train --init " + dir;
  } else if (spec.adapter) {
    info["kind"] = spec.adapter->kind() + " adapter (" + spec.adapter->describe() + ")";
  } else {
    info["kind"] = spec.has_dqe_section ? "model (dqe)" : "model (Hugging Face, no dqe section)";
  }
  ojson task = {{"task", task_name(t.task)}};
  if (!t.labels.empty()) task["labels"] = t.labels;
  if (t.training_mean) task["training_mean"] = *t.training_mean;
  info["task"] = task;
  info["encoder"] = {{"layers", b.num_hidden_layers},       {"hidden", b.hidden_size},
                     {"heads", b.num_attention_heads},      {"intermediate", b.intermediate_size},
                     {"vocab", b.vocab_size},               {"max_len", t.max_len},
                     {"max_positions", b.max_position_embeddings}};
  if (fs::exists(weights_file)) info["weights"] = weights_json(weights_file);

  if (spec.mlm_encoder) {
    info["exports_to"] = {{"dqe", "no: fine-tune it first"}, {"hf", "no: fine-tune it first"}};
    info["trained"] = training_record(dir);
    return info;
  }
  LoadOptions lo;
  lo.base = config.base;
  const LoadedModel m = load_model(dir, lo);
  // Loaded, an adapter knows the modules its weights name.
  if (m.spec.adapter) info["kind"] = m.spec.adapter->kind() + " adapter (" + m.spec.adapter->describe() + ")";
  if (!m.base_dir.empty()) {
    info["base"] = m.base_dir;
    const fs::path base_weights = fs::path(m.base_dir) / "model.safetensors";
    if (fs::exists(base_weights)) info["base_weights"] = weights_json(base_weights.string());
  }
  ojson inputs = {{"query_field", t.fields.query}, {"text_fields", t.fields.text}, {"tokenizer", m.tokenizer->kind()},
                  {"match_types", t.match_types}, {"lexical_features", t.lexical_features}};
  const std::string side = describe_log_inputs(m.featurizer->side_inputs());
  inputs["side_inputs"] = side.empty() ? "none" : side;
  if (!side.empty()) inputs["fusion"] = fusion_name(t.fusion);
  info["inputs"] = inputs;

  ojson carries = ojson::object();
  if (const auto detection = load_detection_stats(dir))
    carries["detection_statistics"] = "yes (thresholds for " + format_significant(100 * detection->calibration.fpr) +
                                      "% false positives on dev; score --detect)";
  else
    carries["detection_statistics"] = "no (score --detect cannot run)";
  carries["drift_reference"] = m.score_reference ? "yes (" + std::to_string(m.score_reference->fractions.size()) +
                                                       " bins of the dev scores; score's drift check)"
                                                 : "no (score cannot check drift)";
  info["carries"] = carries;
  info["trained"] = training_record(dir);
  const std::string hf = hf_incompatibility(m);
  info["exports_to"] = {
      {"dqe", std::string("yes (--dtype fp32, bf16 or int8") + (spec.adapter ? "; --merge for a plain model)" : ")")},
      {"hf", hf.empty() ? "yes (dqe export --format hf)" : "no: " + hf}};
  return info;
}

namespace {

std::string value_text(const ojson& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number_float()) return format_significant(v.get<double>(), 6);
  if (v.is_array()) {
    std::string out;
    for (const auto& x : v) out += (out.empty() ? "" : ", ") + value_text(x);
    return out;
  }
  return v.dump();
}

// 1.234 MB, 5.78 kB, 512 bytes.
std::string size_text(int64_t bytes) {
  const auto b = static_cast<double>(bytes);
  if (b >= 1e9) return format_significant(b / 1e9, 4) + " GB";
  if (b >= 1e6) return format_significant(b / 1e6, 4) + " MB";
  if (b >= 1e3) return format_significant(b / 1e3, 3) + " kB";
  return std::to_string(bytes) + " bytes";
}

// 11.2M, 27,650.
std::string count_text(int64_t n) {
  if (n >= 1000000) return format_significant(static_cast<double>(n) / 1e6, 4) + "M";
  std::string digits = std::to_string(n);
  for (int i = static_cast<int>(digits.size()) - 3; i > 0; i -= 3) digits.insert(static_cast<size_t>(i), ",");
  return digits;
}

std::string weights_text(const ojson& w) {
  std::string out = w["file"].get<std::string>() + ", " + size_text(w["bytes"].get<int64_t>()) + ", " +
                    count_text(w["elements"].get<int64_t>()) + " values (";
  bool first = true;
  for (const auto& [dtype, d] : w["dtypes"].items()) {
    out += (first ? "" : ", ") + dtype + " " + std::to_string(d["tensors"].get<int64_t>()) + " tensors";
    first = false;
  }
  return out + ")";
}

}  // namespace

std::string format_model_info(const ojson& info) {
  std::string out;
  auto line = [&](const std::string& key, const std::string& value) { out += key + ": " + value + "\n"; };
  line("model", info["model"].get<std::string>());
  line("kind", info["kind"].get<std::string>());
  if (info.contains("members")) line("members", value_text(info["members"]));
  if (info.contains("base")) line("base", info["base"].get<std::string>());
  if (info.contains("task")) {
    const ojson& t = info["task"];
    std::string task = t["task"].get<std::string>();
    if (t.contains("labels")) task += " (labels: " + value_text(t["labels"]) + ")";
    if (t.contains("training_mean")) task += " (training mean " + value_text(t["training_mean"]) + ")";
    line("task", task);
  }
  if (info.contains("encoder")) {
    const ojson& e = info["encoder"];
    line("encoder", std::to_string(e["layers"].get<int64_t>()) + " layers x " + std::to_string(e["hidden"].get<int64_t>()) +
                        " hidden x " + std::to_string(e["heads"].get<int64_t>()) + " heads, vocabulary " +
                        std::to_string(e["vocab"].get<int64_t>()) + ", max length " +
                        std::to_string(e["max_len"].get<int64_t>()));
  }
  if (info.contains("weights")) line("weights", weights_text(info["weights"]));
  if (info.contains("base_weights")) line("base weights", weights_text(info["base_weights"]));
  if (info.contains("inputs")) {
    const ojson& i = info["inputs"];
    std::string inputs = "query \"" + i["query_field"].get<std::string>() + "\", text " + value_text(i["text_fields"]) +
                         "; " + i["tokenizer"].get<std::string>() + " tokenizer; match types " +
                         (i["match_types"].get<bool>() ? "on" : "off") + "; lexical features " +
                         (i["lexical_features"].get<bool>() ? "on" : "off") + "; side inputs: " +
                         i["side_inputs"].get<std::string>();
    if (i.contains("fusion")) inputs += " (fusion " + i["fusion"].get<std::string>() + ")";
    line("inputs", inputs);
  }
  if (info.contains("carries"))
    for (const auto& [key, value] : info["carries"].items())
      line(key == "detection_statistics" ? "detection statistics" : "drift reference", value.get<std::string>());
  if (info.contains("trained")) {
    const ojson& r = info["trained"];
    if (r.is_object() && r.contains("best_metric") && !r["best_metric"].is_null())
      line("at training", "best dev " + value_text(r["metric_name"]) + " " + value_text(r["best_metric"]) + " at step " +
                              value_text(r["best_step"]) + " (of " + value_text(r["total_steps"]) + ")");
    else if (info.contains("task"))
      line("at training", "not recorded (not a checkpoint of a dqe run)");
  }
  for (const auto& [format, value] : info["exports_to"].items())
    line(format == "hf" ? "exports to Hugging Face" : "exports to dqe", value.get<std::string>());
  return out;
}

}  // namespace dqe
