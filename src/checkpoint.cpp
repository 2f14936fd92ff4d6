#include "dqe/checkpoint.h"

#include <cerrno>
#include <cstring>
#include <filesystem>

#include <fcntl.h>
#include <unistd.h>

#include "detail/remove_tree.h"
#include "dqe/errors.h"
#include "dqe/output.h"
#include "dqe/safetensors.h"

namespace dqe {
namespace fs = std::filesystem;

nlohmann::ordered_json to_json(const TrainerState& s) {
  nlohmann::ordered_json j;
  j["format_version"] = TrainerState::kFormatVersion;
  j["step"] = s.step;
  j["epoch"] = s.epoch;
  j["batch_in_epoch"] = s.batch_in_epoch;
  j["samples_seen"] = s.samples_seen;
  j["total_steps"] = s.total_steps;
  j["seed"] = s.seed;
  j["metric_name"] = s.metric_name;
  j["higher_is_better"] = s.higher_is_better;
  j["best_metric"] = s.best_metric ? nlohmann::ordered_json(*s.best_metric) : nlohmann::ordered_json(nullptr);
  j["best_step"] = s.best_step;
  j["evals_without_improvement"] = s.evals_without_improvement;
  j["finished"] = s.finished;
  j["chunk"] = s.chunk;
  j["tokens_seen"] = s.tokens_seen;
  j["elapsed_s"] = s.elapsed_s;
  j["data_fingerprint"] = s.data_fingerprint;
  j["config"] = s.config;
  return j;
}

namespace {

// A non-negative integer field; floats and out-of-range values are refused rather than cast.
int64_t count_field(const nlohmann::json& j, const char* key, const std::string& origin, bool required = true) {
  auto it = j.find(key);
  if (it == j.end()) {
    if (required) throw ModelError(origin + ": missing \"" + key + "\"");
    return 0;
  }
  if (!it->is_number_unsigned() || it->get<uint64_t>() > static_cast<uint64_t>(INT64_MAX))
    throw ModelError(origin + ": \"" + key + "\" must be a non-negative integer");
  return it->get<int64_t>();
}

}  // namespace

TrainerState trainer_state_from_json(const nlohmann::json& j, const std::string& origin) {
  if (!j.is_object()) throw ModelError(origin + ": expected a JSON object");
  if (json_depth(j) > kMaxJsonDepth) throw ModelError(origin + ": JSON nested too deeply");
  const auto version_it = j.find("format_version");
  if (version_it == j.end() || !version_it->is_number_integer() ||
      version_it->get<int64_t>() != TrainerState::kFormatVersion)
    throw ModelError(origin + ": unsupported format_version " + (version_it == j.end() ? "(none)" : version_it->dump()) +
                     " (expected " + std::to_string(TrainerState::kFormatVersion) + ")");
  TrainerState s;
  try {
    s.step = count_field(j, "step", origin);
    s.epoch = count_field(j, "epoch", origin);
    s.batch_in_epoch = count_field(j, "batch_in_epoch", origin);
    s.samples_seen = count_field(j, "samples_seen", origin, false);
    s.total_steps = count_field(j, "total_steps", origin);
    if (!j.at("seed").is_number_unsigned()) throw ModelError(origin + ": \"seed\" must be a non-negative integer");
    s.seed = j.at("seed").get<uint64_t>();
    s.metric_name = j.value("metric_name", std::string());
    s.higher_is_better = j.value("higher_is_better", false);
    if (j.contains("best_metric") && j["best_metric"].is_number()) s.best_metric = j["best_metric"].get<double>();
    s.best_step = count_field(j, "best_step", origin, false);
    s.evals_without_improvement = count_field(j, "evals_without_improvement", origin, false);
    s.finished = j.value("finished", false);
    s.chunk = count_field(j, "chunk", origin, false);
    s.tokens_seen = count_field(j, "tokens_seen", origin, false);
    if (j.contains("elapsed_s") && j["elapsed_s"].is_number()) s.elapsed_s = j["elapsed_s"].get<double>();
    s.data_fingerprint = j.value("data_fingerprint", std::string());
    if (j.contains("config")) s.config = j["config"];
  } catch (const nlohmann::json::exception& e) {
    throw ModelError(origin + ": " + e.what());
  }
  return s;
}

void recover_checkpoint(const std::string& dir) {
  const std::string old = dir + ".old";
  std::error_code ec;
  if (!fs::exists(dir) && fs::is_directory(old)) fs::rename(old, dir, ec);
}

std::string resolve_model_dir(const std::string& path) {
  if (path.empty()) throw ConfigError("no model given");
  if (!fs::exists(path)) throw ModelError(path + ": no such model directory");
  if (!fs::is_directory(path)) throw ModelError(path + ": is not a directory");
  if (fs::exists(fs::path(path) / "config.json")) return path;
  for (const char* sub : {"best", "last"}) {
    const std::string candidate = (fs::path(path) / sub).string();
    recover_checkpoint(candidate);
    if (fs::exists(fs::path(candidate) / "config.json")) return candidate;
  }
  throw ModelError(path + ": not a model directory (no config.json, and no best/ or last/ checkpoint)");
}

LoadedModel load_model(const std::string& path, const LoadOptions& options) {
  LoadedModel m;
  m.dir = resolve_model_dir(path);
  m.spec = load_model_spec(m.dir);
  if (m.spec.mlm_encoder && !options.allow_new_head)
    throw ModelError(m.dir + ": is a pretrained encoder (dqe pretrain) without a task head; fine-tune it first: "
                     "dqe train --init " + path + " ...");
  if (options.task) {
    m.spec.task = *options.task;
    m.spec.mlm_encoder = false;
  }
  if (options.min_type_vocab) m.spec.bert.type_vocab_size = std::max(m.spec.bert.type_vocab_size, *options.min_type_vocab);
  m.tokenizer = load_tokenizer(m.dir, m.spec.task.lower_case);
  const std::string weights = (fs::path(m.dir) / "model.safetensors").string();
  if (!fs::exists(weights)) throw ModelError(m.dir + ": no model.safetensors in the model directory");
  if (m.tokenizer->vocab_size() > m.spec.bert.vocab_size)
    throw ModelError(m.dir + ": tokenizer has " + std::to_string(m.tokenizer->vocab_size()) +
                     " tokens but the model's vocab_size is " + std::to_string(m.spec.bert.vocab_size));
  // Side inputs saved with the model are kept (a fine-tuned model's statistics); those the
  // task asks for and the directory lacks are fitted on the training records.
  const bool saved_lexical = fs::exists(fs::path(m.dir) / LexicalInput::kFile);
  if (m.spec.task.lexical_features && !saved_lexical && options.fit_records)
    m.featurizer = std::make_shared<const Featurizer>(Featurizer::fit(m.spec.task, m.tokenizer, *options.fit_records));
  else
    m.featurizer = std::make_shared<const Featurizer>(Featurizer::load(m.dir, m.spec.task, m.tokenizer));
  m.model = SequenceModel(m.spec.bert, m.spec.task.num_outputs(), m.featurizer->side_dims());
  init_weights(m.model, m.spec.bert);
  m.report = load_weights(m.model, load_safetensors(weights), weights, options.allow_new_head);
  const std::string reference = (fs::path(m.dir) / "score_reference.json").string();
  if (fs::exists(reference)) m.score_reference = ScoreReference::from_json(read_json_file(reference), reference);
  return m;
}

namespace {

void fsync_path(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

}  // namespace

void write_model_files(const std::string& dir, const ModelSpec& spec, SequenceModel& model, const Featurizer& featurizer,
                       const std::vector<std::pair<std::string, torch::Tensor>>& extra_weights,
                       const ScoreReference* reference) {
  const Tokenizer& tokenizer = featurizer.tokenizer();
  write_file_atomic((fs::path(dir) / "config.json").string(), to_json(spec).dump(2) + "\n");
  nlohmann::ordered_json tok_cfg = {{"do_lower_case", spec.task.lower_case},
                                    {"model_max_length", spec.task.max_len},
                                    {"tokenizer_class", tokenizer.kind() == "wordpiece" ? "BertTokenizer" : "dqe"}};
  write_file_atomic((fs::path(dir) / "tokenizer_config.json").string(), tok_cfg.dump(2) + "\n");
  tokenizer.save(dir);
  std::vector<std::pair<std::string, torch::Tensor>> weights = checkpoint_weights(model, spec.mlm_encoder);
  weights.insert(weights.end(), extra_weights.begin(), extra_weights.end());
  save_safetensors((fs::path(dir) / "model.safetensors").string(), weights);
  featurizer.save(dir);
  if (reference)
    write_file_atomic((fs::path(dir) / "score_reference.json").string(), reference->to_json().dump(2) + "\n");
}

void write_training_state(const std::string& dir, const TrainerState& state, torch::optim::Optimizer* optimizer) {
  if (optimizer) {
    const std::string opt_path = (fs::path(dir) / "optimizer.pt").string();
    try {
      torch::save(*optimizer, opt_path);
    } catch (const c10::Error& e) {
      throw IoError(opt_path + ": cannot write optimizer state");
    }
    fsync_path(opt_path);
  }
  write_file_atomic((fs::path(dir) / "trainer_state.json").string(), to_json(state).dump(2) + "\n");
}

void write_checkpoint(const std::string& dir, const std::function<void(const std::string& tmp_dir)>& fill) {
  const fs::path target(dir);
  const std::string tmp = dir + ".tmp";
  const std::string old = dir + ".old";
  std::error_code ec;
  detail::remove_tree(tmp);
  if (!fs::create_directories(tmp, ec) && ec)
    throw IoError(tmp + ": cannot create directory (" + ec.message() + ")");
  fill(tmp);
  fsync_path(tmp);

  detail::remove_tree(old);
  if (fs::exists(target)) {
    fs::rename(target, old, ec);
    if (ec) throw IoError(dir + ": cannot replace checkpoint (" + ec.message() + ")");
  }
  fs::rename(tmp, target, ec);
  if (ec) throw IoError(dir + ": cannot move checkpoint into place (" + ec.message() + ")");
  fsync_path(target.parent_path().empty() ? "." : target.parent_path().string());
  detail::remove_tree(old);
}

void save_checkpoint(const std::string& dir, const ModelSpec& spec, SequenceModel& model, const Featurizer& featurizer,
                     const ScoreReference* reference) {
  write_checkpoint(dir, [&](const std::string& tmp) { write_model_files(tmp, spec, model, featurizer, {}, reference); });
}

TrainerState load_trainer_state(const std::string& dir, torch::optim::Optimizer* optimizer) {
  const std::string path = (fs::path(dir) / "trainer_state.json").string();
  if (!fs::exists(path)) throw ModelError(dir + ": no trainer_state.json (not a training checkpoint)");
  TrainerState state = trainer_state_from_json(read_json_file(path), path);
  if (optimizer) {
    const std::string opt_path = (fs::path(dir) / "optimizer.pt").string();
    if (!fs::exists(opt_path)) throw ModelError(dir + ": no optimizer.pt to resume from");
    // The moments go where the parameters are (a run may resume on another device).
    c10::Device device(c10::kCPU);
    for (const auto& group : optimizer->param_groups())
      if (!group.params().empty()) device = group.params().front().device();
    try {
      torch::load(*optimizer, opt_path, device);
    } catch (const c10::Error& e) {
      throw ModelError(opt_path + ": cannot read optimizer state");
    }
  }
  return state;
}

}  // namespace dqe
