#include "model/model_dir.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include <fcntl.h>
#include <unistd.h>

#include "data/log_inputs.h"
#include "dqe/errors.h"
#include "io/output.h"
#include "io/remove_tree.h"
#include "io/safetensors.h"
#include "model/peft/adalora.h"
#include "model/peft/bottleneck.h"
#include "model/peft/peft.h"
#include "model/quantize.h"

namespace dqe {
namespace fs = std::filesystem;



std::string resolve_model_dir(const std::string& path) {
  if (path.empty()) throw ConfigError("no model given");
  if (!fs::exists(path)) throw ModelError(path + ": no such model directory");
  if (!fs::is_directory(path)) throw ModelError(path + ": is not a directory");
  auto is_model = [](const std::string& dir) { return fs::exists(fs::path(dir) / "config.json") || is_adapter_dir(dir); };
  if (is_model(path)) return path;
  for (const char* sub : {"best", "last"}) {
    const std::string candidate = (fs::path(path) / sub).string();
    recover_checkpoint(candidate);
    if (is_model(candidate)) return candidate;
  }
  throw ModelError(path + ": not a model directory (no config.json, and no best/ or last/ checkpoint)");
}

namespace {

// Where an adapter's base is: --base when given; else the directory dqe loaded it from when it
// made the adapter; else base_model_name_or_path, relative to the adapter's directory (as PEFT
// adapters saved beside their base name it) and then to the current one.
std::string find_base(const std::string& adapter_dir, const std::string& base, const std::string& recorded_dir,
                      const std::string& base_flag) {
  std::string found;
  if (!base_flag.empty()) {
    if (!fs::is_directory(base_flag)) throw ModelError("--base " + base_flag + ": no such model directory");
    found = resolve_model_dir(base_flag);
  } else {
    std::vector<std::string> candidates;
    if (!recorded_dir.empty()) candidates.push_back(recorded_dir);
    if (!base.empty()) {
      if (fs::path(base).is_absolute()) {
        candidates.push_back(base);
      } else {
        candidates.push_back((fs::path(adapter_dir) / base).lexically_normal().string());
        candidates.push_back(base);
      }
    }
    for (const auto& c : candidates) {
      if (fs::is_directory(c)) {
        found = resolve_model_dir(c);
        break;
      }
    }
    if (found.empty() && base.empty())
      throw ModelError(adapter_dir + ": the adapter does not name its base model (base_model_name_or_path); give it "
                       "with --base DIR");
    if (found.empty())
      throw ModelError(adapter_dir + ": its base model " + base + " is missing" +
                       (recorded_dir.empty() || recorded_dir == base ? "" : " (it was at " + recorded_dir + ")") +
                       "; point to it with --base DIR");
  }
  if (is_adapter_dir(found))
    throw ModelError(adapter_dir + ": its base " + found + " is itself an adapter; merge that one first (dqe export --merge)");
  return found;
}

// An adapter directory's spec, and its base directory found from it.
struct AdapterSpec {
  ModelSpec spec;
  std::string base_dir;
  bool own_config = false;  // config.json in the adapter's directory (dqe wrote it)
};

// A bottleneck adapter's directory (dqe's own layout: its config.json is always there).
AdapterSpec bottleneck_adapter_spec(const std::string& dir, const nlohmann::json& adapter_config,
                                    const std::string& config_path, const std::string& base_flag) {
  BottleneckSpec bottleneck = bottleneck_spec_from_adapter_config(adapter_config, config_path);
  AdapterSpec a;
  a.own_config = true;
  a.spec = load_model_spec(dir);
  if (bottleneck.size > a.spec.bert.hidden_size)
    throw ModelError(config_path + ": adapter_size " + std::to_string(bottleneck.size) + " exceeds the hidden size " +
                     std::to_string(a.spec.bert.hidden_size));
  if (a.spec.bottleneck) {
    if (bottleneck.base.empty()) bottleneck.base = a.spec.bottleneck->base;
    bottleneck.base_dir = a.spec.bottleneck->base_dir;
    bottleneck.base_hash = a.spec.bottleneck->base_hash;
  }
  a.base_dir = find_base(dir, bottleneck.base, bottleneck.base_dir, base_flag);
  a.spec.lora.reset();
  a.spec.bottleneck = bottleneck;
  return a;
}

AdapterSpec adapter_spec(const std::string& dir, const std::string& base_flag) {
  const std::string config_path = (fs::path(dir) / kAdapterConfigFile).string();
  const nlohmann::json adapter_config = read_json_file(config_path);
  const auto peft_type = adapter_config.is_object() ? adapter_config.find("peft_type") : adapter_config.end();
  if (peft_type != adapter_config.end() && *peft_type == "BOTTLENECK")
    return bottleneck_adapter_spec(dir, adapter_config, config_path, base_flag);
  LoraSpec lora = lora_spec_from_adapter_config(adapter_config, config_path);
  AdapterSpec a;
  a.own_config = fs::exists(fs::path(dir) / "config.json");
  if (a.own_config) {
    a.spec = load_model_spec(dir);
    if (a.spec.lora) {
      if (lora.base.empty()) lora.base = a.spec.lora->base;
      lora.base_dir = a.spec.lora->base_dir;
      lora.base_hash = a.spec.lora->base_hash;
    }
  }
  a.base_dir = find_base(dir, lora.base, lora.base_dir, base_flag);
  if (!a.own_config) {
    a.spec = load_model_spec(a.base_dir);
    a.spec.mlm_encoder = false;  // the adapter brings the task head
  }
  a.spec.lora = lora;
  return a;
}

// For an adapter dqe did not write (no config.json of its own): the task its head implies when
// the base's config says another number of labels (one output: regression).
void fit_task_to_head(TaskSpec& task, const std::map<std::string, torch::Tensor>& adapter_weights) {
  const auto it = adapter_weights.find(std::string(kPeftPrefix) + "classifier.weight");
  if (it == adapter_weights.end() || it->second.dim() != 2 || it->second.size(0) == task.num_outputs()) return;
  const int64_t outputs = it->second.size(0);
  if (outputs == 1) {
    task.task = Task::kRegression;
    task.labels.clear();
  } else {
    task.task = Task::kClassification;
    task.labels.clear();
    for (int64_t i = 0; i < outputs; ++i) task.labels.push_back("LABEL_" + std::to_string(i));
  }
}

}  // namespace

ModelSpec model_spec_of(const std::string& path, const std::string& base) {
  const std::string dir = resolve_model_dir(path);
  return is_adapter_dir(dir) ? adapter_spec(dir, base).spec : load_model_spec(dir);
}

LoadedModel load_model(const std::string& path, const LoadOptions& options) {
  LoadedModel m;
  m.dir = resolve_model_dir(path);
  const bool adapter = is_adapter_dir(m.dir);
  bool own_config = true;
  if (adapter) {
    AdapterSpec a = adapter_spec(m.dir, options.base);
    m.spec = std::move(a.spec);
    m.base_dir = a.base_dir;
    own_config = a.own_config;
  } else {
    m.spec = load_model_spec(m.dir);
  }
  if (options.merge_adapter && m.spec.bottleneck)
    throw ModelError(m.dir + ": bottleneck adapters are nonlinear and cannot be merged into their base's weights");
  if (m.spec.mlm_encoder && !options.allow_new_head)
    throw ModelError(m.dir + ": is a pretrained encoder (dqe pretrain) without a task head; fine-tune it first: "
                     "dqe train --init " + path + " ...");
  std::map<std::string, torch::Tensor> adapter_weights;
  const std::string adapter_file = (fs::path(m.dir) / kAdapterWeightsFile).string();
  if (adapter) {
    if (!fs::exists(adapter_file))
      throw ModelError(m.dir + ": no " + kAdapterWeightsFile + " in the adapter directory" +
                       (fs::exists(fs::path(m.dir) / "adapter_model.bin")
                            ? " (adapter_model.bin, PyTorch's pickle format, is not read: save with safe_serialization=True)"
                            : ""));
    adapter_weights = load_safetensors(adapter_file);
    if (m.spec.lora) {
      m.spec.lora->modules = adapted_modules(adapter_weights, m.spec.bert.num_hidden_layers, adapter_file);
      // AdaLoRA's updates are saved pruned to their rank pattern; the model holds them at init_r.
      if (m.spec.lora->adalora) expand_by_rank_pattern(adapter_weights, *m.spec.lora->adalora, adapter_file);
      if (!own_config) fit_task_to_head(m.spec.task, adapter_weights);
      if (options.lora) m.spec.lora->dropout = options.lora->dropout;
    }
  } else if (options.bottleneck) {
    // New bottleneck adapters of this model: the model is their base.
    m.spec.bottleneck = *options.bottleneck;
    m.spec.bottleneck->base = path;
    m.spec.bottleneck->base_dir = fs::absolute(m.dir).lexically_normal().string();
    m.base_dir = m.dir;
  } else if (options.lora) {
    // A new adapter of this model: the model is its base.
    m.spec.lora = *options.lora;
    m.spec.lora->base = path;
    m.spec.lora->base_dir = fs::absolute(m.dir).lexically_normal().string();
    m.base_dir = m.dir;
  }
  if (options.task) {
    m.spec.task = *options.task;
    m.spec.mlm_encoder = false;
  }
  if (options.min_type_vocab) m.spec.bert.type_vocab_size = std::max(m.spec.bert.type_vocab_size, *options.min_type_vocab);
  // An adapter that PEFT wrote has no tokenizer: its base's is the one.
  const std::string tokenizer_dir = adapter && !has_tokenizer(m.dir) ? m.base_dir : m.dir;
  m.tokenizer = load_tokenizer(tokenizer_dir, m.spec.task.lower_case);
  const std::string weights = (fs::path(adapter ? m.base_dir : m.dir) / "model.safetensors").string();
  if (!fs::exists(weights))
    throw ModelError((adapter ? m.base_dir : m.dir) + ": no model.safetensors in the model directory");
  if (m.tokenizer->vocab_size() > m.spec.bert.vocab_size)
    throw ModelError(tokenizer_dir + ": tokenizer has " + std::to_string(m.tokenizer->vocab_size()) +
                     " tokens but the model's vocab_size is " + std::to_string(m.spec.bert.vocab_size));
  // Side inputs saved with the model are kept (a fine-tuned model's statistics); those the
  // task asks for and the directory lacks are fitted on the training records.
  const bool saved_lexical = fs::exists(fs::path(m.dir) / LexicalInput::kFile);
  const bool fit_log = options.fit_records && !has_log_inputs(m.dir) && has_side_fields(*options.fit_records);
  if (options.fit_records && ((m.spec.task.lexical_features && !saved_lexical) || fit_log))
    m.featurizer = std::make_shared<const Featurizer>(Featurizer::fit(m.spec.task, m.tokenizer, *options.fit_records));
  else
    m.featurizer = std::make_shared<const Featurizer>(Featurizer::load(m.dir, m.spec.task, m.tokenizer));
  m.spec.task.fields = m.featurizer->task().fields;
  m.model = SequenceModel(m.spec.bert, m.spec.task.num_outputs(), m.featurizer->side_dims(), m.spec.lora,
                          m.spec.task.fusion);
  if (m.spec.bottleneck) add_bottleneck_adapters(m.model, m.spec.bert, *m.spec.bottleneck);
  init_weights(m.model, m.spec.bert);
  // An adapter's heads come from its own file; the base's, when it has them, are overwritten.
  std::map<std::string, torch::Tensor> stored = load_safetensors(weights);
  m.int8 = int8_entries(stored);
  m.report = load_weights(m.model, dequantize_weights(std::move(stored), weights), weights,
                          options.allow_new_head || adapter);
  // The base an adapter (LoRA or bottleneck) records.
  std::string* base_hash = m.spec.lora ? &m.spec.lora->base_hash : m.spec.bottleneck ? &m.spec.bottleneck->base_hash : nullptr;
  std::string* base_dir = m.spec.lora ? &m.spec.lora->base_dir : m.spec.bottleneck ? &m.spec.bottleneck->base_dir : nullptr;
  if (base_hash) {
    const std::string hash = encoder_weights_hash(m.model);
    if (adapter && !base_hash->empty() && hash != *base_hash)
      throw ModelError(m.dir + ": its base " + m.base_dir + " has other weights than the adapter was trained on (hash " +
                       hash + ", recorded " + *base_hash + "); point to its base with --base DIR");
    // Saved again, the adapter records where its base is now (a moved one too) and, for an
    // adapter from elsewhere, the weights of the base it was first used with.
    *base_hash = hash;
    *base_dir = fs::absolute(m.base_dir).lexically_normal().string();
  }
  std::vector<std::string> loaded_here;  // what the adapter's file brought
  if (adapter) loaded_here = load_adapter_tensors(m.model, adapter_weights, adapter_file, options.allow_new_head);
  for (const auto& p : m.model->role_parameters())
    if (p.role == Role::kAdapter || p.role == Role::kBottleneck)
      loaded_here.push_back(p.name);  // from the file, or new (B or up at zero)
  auto& missing = m.report.missing;
  missing.erase(std::remove_if(missing.begin(), missing.end(),
                               [&](const std::string& name) {
                                 return std::find(loaded_here.begin(), loaded_here.end(), name) != loaded_here.end();
                               }),
                missing.end());
  if (adapter && !options.allow_new_head) {
    for (const auto& p : m.model->role_parameters()) {
      if (std::find(missing.begin(), missing.end(), p.name) == missing.end()) continue;
      if (p.role == Role::kSequenceHead)
        throw ModelError(m.dir + ": has no classifier head (neither the adapter nor its base " + m.base_dir + ")");
      if (p.role == Role::kSideHead)
        throw ModelError(m.dir + ": the config asks for the side input \"" + p.name.substr(0, p.name.find('.')) +
                         "\" but the adapter lacks its weights");
    }
  }
  if (options.merge_adapter && m.spec.lora) {
    merge_lora(m.model);
    m.spec.lora.reset();
  }
  const std::string reference = (fs::path(m.dir) / "score_reference.json").string();
  if (fs::exists(reference)) m.score_reference = ScoreReference::from_json(read_json_file(reference), reference);
  return m;
}


void write_model_files(const std::string& dir, const ModelSpec& spec, SequenceModel& model, const Featurizer& featurizer,
                       const std::vector<std::pair<std::string, torch::Tensor>>& extra_weights,
                       const ScoreReference* reference) {
  if (spec.lora.has_value() != static_cast<bool>(model->lora))
    throw ModelError(dir + ": the model's LoRA updates and its spec disagree (a bug)");
  if (spec.bottleneck.has_value() != static_cast<bool>(model->bottleneck))
    throw ModelError(dir + ": the model's bottleneck adapters and its spec disagree (a bug)");
  const Tokenizer& tokenizer = featurizer.tokenizer();
  write_file_atomic((fs::path(dir) / "config.json").string(), to_json(spec).dump(2) + "\n");
  nlohmann::ordered_json tok_cfg = {{"do_lower_case", spec.task.lower_case},
                                    {"model_max_length", spec.task.max_len},
                                    {"tokenizer_class", tokenizer.kind() == "wordpiece" ? "BertTokenizer" : "dqe"}};
  write_file_atomic((fs::path(dir) / "tokenizer_config.json").string(), tok_cfg.dump(2) + "\n");
  tokenizer.save(dir);
  if (spec.lora) {
    // PEFT's layout: the updates and the heads; the base's weights stay where they are.
    write_file_atomic((fs::path(dir) / kAdapterConfigFile).string(),
                      adapter_config_json(*spec.lora, modules_to_save(model)).dump(2) + "\n");
    save_safetensors((fs::path(dir) / kAdapterWeightsFile).string(),
                     spec.lora->adalora ? resize_by_rank_pattern(adapter_tensors(model), *spec.lora->adalora)
                                        : adapter_tensors(model));
  } else if (spec.bottleneck) {
    // dqe's layout of a bottleneck adapter: PEFT's file names, its own peft_type.
    write_file_atomic((fs::path(dir) / kAdapterConfigFile).string(),
                      bottleneck_config_json(*spec.bottleneck, spec.bert.hidden_act, modules_to_save(model)).dump(2) + "\n");
    save_safetensors((fs::path(dir) / kAdapterWeightsFile).string(), adapter_tensors(model));
  } else {
    std::vector<std::pair<std::string, torch::Tensor>> weights = checkpoint_weights(model, spec.mlm_encoder);
    weights.insert(weights.end(), extra_weights.begin(), extra_weights.end());
    save_safetensors((fs::path(dir) / "model.safetensors").string(), weights);
  }
  featurizer.save(dir);
  if (reference)
    write_file_atomic((fs::path(dir) / "score_reference.json").string(), reference->to_json().dump(2) + "\n");
}



void save_checkpoint(const std::string& dir, const ModelSpec& spec, SequenceModel& model, const Featurizer& featurizer,
                     const ScoreReference* reference) {
  write_checkpoint(dir, [&](const std::string& tmp) { write_model_files(tmp, spec, model, featurizer, {}, reference); });
}


}  // namespace dqe
