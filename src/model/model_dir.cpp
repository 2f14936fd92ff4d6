#include "model/model_dir.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include <fcntl.h>
#include <unistd.h>

#include "base/log.h"
#include "data/log_inputs.h"
#include "dqe/errors.h"
#include "io/output.h"
#include "io/remove_tree.h"
#include "io/safetensors.h"
#include "model/heads/task_head.h"
#include "model/int8.h"
#include "model/peft/adapter.h"

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
struct AdapterDirectory {
  ModelSpec spec;
  std::string base_dir;
  bool own_config = false;  // config.json in the adapter's directory (dqe wrote it)
  // The heads PEFT loads from the adapter's file: classifier and score (a sequence classifier's,
  // always saved) and those its modules_to_save names.
  std::vector<std::string> saved_heads = {"classifier", "score"};
};

// modules_to_save of adapter_config.json (null or a list of names) added to saved.
void read_modules_to_save(const nlohmann::json& config, const std::string& origin, std::vector<std::string>& saved) {
  const auto it = config.find("modules_to_save");
  if (it == config.end() || it->is_null()) return;
  if (!it->is_array()) throw ModelError(origin + ": modules_to_save must be a list of names");
  for (const auto& name : *it) {
    if (!name.is_string()) throw ModelError(origin + ": modules_to_save must be a list of names");
    const std::string module = name.get<std::string>();
    if (std::find(saved.begin(), saved.end(), module) == saved.end()) saved.push_back(module);
  }
}

// Refuses a head in the adapter's file (after read_tensors: "base_model.model.NAME.*", NAME not
// the encoder) that modules_to_save does not name: PEFT would not load it, so its scores would
// not be dqe's.
void check_saved_heads(const std::map<std::string, torch::Tensor>& tensors, const std::vector<std::string>& saved,
                       const std::string& origin) {
  for (const auto& [name, t] : tensors) {
    if (name.rfind(kPeftPrefix, 0) != 0) continue;
    const std::string inner = strip_peft_prefix(name);
    const std::string module = inner.substr(0, inner.find('.'));
    if (module == "bert" || std::find(saved.begin(), saved.end(), module) != saved.end()) continue;
    std::string names;
    for (const auto& s : saved) names += (names.empty() ? "" : ", ") + s;
    throw ModelError(origin + ": tensor \"" + name + "\" belongs to " + module + ", which " + kAdapterConfigFile +
                     "'s modules_to_save does not name (the heads PEFT loads: " + names + "): PEFT would leave it out");
  }
}

AdapterDirectory adapter_directory(const std::string& dir, const std::string& base_flag) {
  const std::string config_path = (fs::path(dir) / kAdapterConfigFile).string();
  const nlohmann::json config = read_json_file(config_path);
  AdapterSpecPtr adapter = read_adapter_config(config, config_path);
  AdapterDirectory a;
  read_modules_to_save(config, config_path, a.saved_heads);
  a.own_config = fs::exists(fs::path(dir) / "config.json");
  const AdapterKind* kind = adapter_kind_of_peft_type(adapter->peft_type());
  if (kind->dqe_only && !a.own_config)
    throw ModelError(dir + ": a " + adapter->peft_type() + " adapter (dqe's own kind) needs the config.json dqe wrote "
                     "beside it");
  if (a.own_config) {
    a.spec = load_model_spec(dir);
    if (a.spec.adapter) {
      // dqe's record of the adapter: where its base was, and what its weights were.
      if (a.spec.adapter->peft_type() != adapter->peft_type())
        throw ModelError(dir + ": config.json records a " + a.spec.adapter->peft_type() + " adapter but " +
                         kAdapterConfigFile + " holds a " + adapter->peft_type() + " one");
      // dqe records its base's hash with every adapter it writes: without it the base that
      // --base or a moved directory names could not be checked.
      if (a.spec.adapter->base.hash.empty())
        throw ModelError(dir + "/config.json: its record of the adapter (\"dqe\".\"adapter\") lacks base_weights_hash, "
                         "which dqe writes with every adapter, so its base cannot be checked; restore the file");
      if (adapter->base.path.empty()) adapter->base.path = a.spec.adapter->base.path;
      adapter->base.dir = a.spec.adapter->base.dir;
      adapter->base.hash = a.spec.adapter->base.hash;
    }
  }
  a.base_dir = find_base(dir, adapter->base.path, adapter->base.dir, base_flag);
  if (!a.own_config) {
    a.spec = load_model_spec(a.base_dir);
    a.spec.mlm_encoder = false;  // the adapter brings the task head
  }
  adapter->check_base(a.spec.bert, config_path);
  a.spec.adapter = std::move(adapter);
  // A prefix's virtual tokens take the first positions: an adapter from PEFT reads its pairs
  // cut to the rest; dqe wrote its max_len within them.
  if (!a.own_config) a.spec.task.max_len = std::min(a.spec.task.max_len, text_positions(a.spec));
  if (a.spec.task.max_len > text_positions(a.spec))
    throw ModelError(dir + ": max_len " + std::to_string(a.spec.task.max_len) + " exceeds the " +
                     std::to_string(text_positions(a.spec)) + " positions its adapter leaves to the text");
  return a;
}

// For an adapter dqe did not write (no config.json of its own): the task its head implies when
// the base's config says another number of labels (one output: regression).
void fit_task_to_head(TaskSpec& task, const std::map<std::string, torch::Tensor>& adapter_weights) {
  const auto it = adapter_weights.find(std::string(kPeftPrefix) + "classifier.weight");
  if (it == adapter_weights.end() || it->second.dim() != 2 || it->second.size(0) == task_head(task.task).num_outputs(task)) return;
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

// An adapter PEFT wrote records nothing of its base's weights: the one thing dqe can check is
// that a base with a head of its own has the adapter's number of outputs (PEFT refuses another,
// as a classifier's weights of another shape; a base without a head takes the adapter's).
void check_head_fits_base(const std::map<std::string, torch::Tensor>& adapter_weights,
                          const std::map<std::string, torch::Tensor>& base_weights, const std::string& dir,
                          const std::string& base_dir) {
  const auto own = adapter_weights.find(std::string(kPeftPrefix) + "classifier.weight");
  const auto base = base_weights.find("classifier.weight");
  if (own == adapter_weights.end() || base == base_weights.end() || own->second.dim() != 2 || base->second.dim() != 2 ||
      own->second.size(0) == base->second.size(0))
    return;
  auto outputs = [](int64_t n) { return n == 1 ? std::string("1 output (regression)") : std::to_string(n) + " outputs"; };
  throw ModelError(dir + ": its classifier has " + outputs(own->second.size(0)) + ", but its base " + base_dir +
                   " has a classifier of " + outputs(base->second.size(0)) +
                   ": PEFT refuses this pair too; is it the adapter's base? (--base DIR)");
}

}  // namespace

ModelSpec model_spec_of(const std::string& path, const std::string& base) {
  const std::string dir = resolve_model_dir(path);
  return is_adapter_dir(dir) ? adapter_directory(dir, base).spec : load_model_spec(dir);
}

LoadedModel load_model(const std::string& path, const LoadOptions& options) {
  LoadedModel m;
  m.dir = resolve_model_dir(path);
  const bool adapter = is_adapter_dir(m.dir);
  bool own_config = true;
  std::vector<std::string> saved_heads;
  if (adapter) {
    AdapterDirectory a = adapter_directory(m.dir, options.base);
    m.spec = std::move(a.spec);
    m.base_dir = a.base_dir;
    own_config = a.own_config;
    saved_heads = std::move(a.saved_heads);
  } else {
    m.spec = load_model_spec(m.dir);
    // config.json's record of an adapter belongs beside the adapter's own files.
    if (m.spec.adapter)
      throw ModelError(m.dir + "/config.json records a " + m.spec.adapter->peft_type() +
                       " adapter (\"dqe\".\"adapter\"), but the directory has no " + kAdapterConfigFile +
                       ": restore it, or remove the record to read the directory as a full model");
  }
  if (options.merge_adapter && m.spec.adapter && !m.spec.adapter->why_not_mergeable().empty())
    throw ModelError(m.dir + " " + m.spec.adapter->why_not_mergeable());
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
    m.spec.adapter->read_tensors(adapter_weights, m.spec.bert.num_hidden_layers, adapter_file);
    check_saved_heads(adapter_weights, saved_heads, adapter_file);
    if (!own_config) fit_task_to_head(m.spec.task, adapter_weights);
    if (options.adapter) m.spec.adapter->continue_with(*options.adapter);
  } else if (options.adapter) {
    // A new adapter of this model: the model is its base.
    m.spec.adapter = options.adapter;
    m.spec.adapter->base.path = path;
    m.spec.adapter->base.dir = fs::absolute(m.dir).lexically_normal().string();
    m.base_dir = m.dir;
    m.spec.task.max_len = std::min(m.spec.task.max_len, text_positions(m.spec));  // a prefix takes positions
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
  m.model = SequenceModel(m.spec.bert, task_head(m.spec.task.task).num_outputs(m.spec.task), m.featurizer->side_dims(),
                          m.spec.adapter.get(), m.spec.task.fusion);
  init_weights(m.model, m.spec.bert);
  // An adapter's heads come from its own file; the base's, when it has them, are overwritten.
  std::map<std::string, torch::Tensor> stored = load_safetensors(weights);
  if (adapter && !own_config) check_head_fits_base(adapter_weights, stored, m.dir, m.base_dir);
  m.int8 = int8_entries(stored);
  m.report = load_weights(m.model, dequantize_weights(std::move(stored), weights), weights,
                          options.allow_new_head || adapter);
  if (m.spec.adapter) {
    BaseRecord& base = m.spec.adapter->base;
    const std::string hash = encoder_weights_hash(*m.model);
    if (adapter && base.hash.empty())
      detail::logger("model")->info(
          "{}: a PEFT adapter records no hash of its base's weights; {} is taken as its base because the shapes fit",
          m.dir, m.base_dir);
    if (adapter && !base.hash.empty() && hash != base.hash)
      throw ModelError(m.dir + ": its base " + m.base_dir + " has other weights than the adapter was trained on (hash " +
                       hash + ", recorded " + base.hash + "); point to its base with --base DIR");
    // Saved again, the adapter records where its base is now (a moved one too) and, for an
    // adapter from elsewhere, the weights of the base it was first used with.
    base.hash = hash;
    base.dir = fs::absolute(m.base_dir).lexically_normal().string();
  }
  std::vector<std::string> loaded_here;  // what the adapter's file brought
  if (adapter) loaded_here = load_adapter_tensors(*m.model, adapter_weights, adapter_file, options.allow_new_head);
  for (const auto& p : m.model->role_parameters())
    if (p.role == Role::kAdapter)
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
  if (options.merge_adapter && m.spec.adapter) {
    merge_adapter(m.model, m.dir);
    m.spec.adapter.reset();
  }
  const std::string reference = (fs::path(m.dir) / "score_reference.json").string();
  if (fs::exists(reference)) m.score_reference = ScoreReference::from_json(read_json_file(reference), reference);
  return m;
}


void write_model_files(const std::string& dir, const ModelSpec& spec, SequenceModel& model, const Featurizer& featurizer,
                       const std::vector<std::pair<std::string, torch::Tensor>>& extra_weights,
                       const ScoreReference* reference) {
  if (static_cast<bool>(spec.adapter) != static_cast<bool>(model->adapter))
    throw ModelError(dir + ": the model's adapter and its spec disagree (a bug)");
  const Tokenizer& tokenizer = featurizer.tokenizer();
  write_file_atomic((fs::path(dir) / "config.json").string(), to_json(spec).dump(2) + "\n");
  nlohmann::ordered_json tok_cfg = {{"do_lower_case", spec.task.lower_case},
                                    {"model_max_length", spec.task.max_len},
                                    {"tokenizer_class", tokenizer.kind() == "wordpiece" ? "BertTokenizer" : "dqe"}};
  write_file_atomic((fs::path(dir) / "tokenizer_config.json").string(), tok_cfg.dump(2) + "\n");
  tokenizer.save(dir);
  if (spec.adapter) {
    // PEFT's layout: the adapter's parameters and the heads; the base's weights stay where they are.
    write_file_atomic((fs::path(dir) / kAdapterConfigFile).string(),
                      spec.adapter->adapter_config(modules_to_save(*model), spec.bert).dump(2) + "\n");
    save_safetensors((fs::path(dir) / kAdapterWeightsFile).string(), spec.adapter->tensors_to_save(adapter_tensors(*model)));
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
