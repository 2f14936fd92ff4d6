// Where a training run is in its schedule (trainer_state.json) and the optimizer's state
// (optimizer.pt), written into a checkpoint directory beside the model's files.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

namespace dqe {

// Where a training run is in its schedule. Saved as trainer_state.json.
struct TrainerState {
  static constexpr int kFormatVersion = 1;
  int64_t step = 0;            // optimizer steps taken
  int64_t epoch = 0;           // epoch in progress (0-based)
  int64_t batch_in_epoch = 0;  // batches of that epoch already consumed
  int64_t samples_seen = 0;
  int64_t total_steps = 0;
  uint64_t seed = 0;
  std::string metric_name;  // what best_metric measures
  bool higher_is_better = false;
  std::optional<double> best_metric;
  int64_t best_step = 0;
  int64_t evals_without_improvement = 0;
  bool finished = false;
  // Streaming runs (pretrain): the chunk of the input in progress; batch_in_epoch then
  // counts batches of that chunk.
  int64_t chunk = 0;
  // Padded token positions computed, and seconds spent, over the whole run (resumes included).
  int64_t tokens_seen = 0;
  double elapsed_s = 0;
  // What the run was trained on (the objective's fingerprint of its data), checked on --resume.
  std::string data_fingerprint;
  // The effective training configuration, for the record.
  nlohmann::ordered_json config;
};

nlohmann::ordered_json to_json(const TrainerState& state);
// Throws ModelError naming origin on an unknown format version or a missing key.
TrainerState trainer_state_from_json(const nlohmann::json& j, const std::string& origin);

// Writes trainer_state.json and, when given, optimizer.pt into an existing directory. The
// state file goes last: its presence marks a complete training checkpoint.
void write_training_state(const std::string& dir, const TrainerState& state, torch::optim::Optimizer* optimizer);

// Reads DIR/trainer_state.json and, when given, DIR/optimizer.pt into optimizer.
TrainerState load_trainer_state(const std::string& dir, torch::optim::Optimizer* optimizer);

}  // namespace dqe
