#include "train/train_state.h"

#include <filesystem>

#include "base/json_depth.h"
#include "dqe/errors.h"
#include "io/checkpoint_dir.h"
#include "io/json_file.h"
#include "io/output.h"

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
