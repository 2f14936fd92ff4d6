// Checkpoint directories: config.json (Hugging Face keys + a "dqe" section),
// model.safetensors, the tokenizer's file, and for training runs trainer_state.json and
// optimizer.pt. Written to DIR.tmp and renamed into place, so DIR is always complete.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "dqe/config.h"
#include "dqe/drift.h"
#include "dqe/model.h"
#include "dqe/tokenizer.h"

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
  // The effective training configuration, for the record.
  nlohmann::ordered_json config;
};

nlohmann::ordered_json to_json(const TrainerState& state);
// Throws ModelError naming origin on an unknown format version or a missing key.
TrainerState trainer_state_from_json(const nlohmann::json& j, const std::string& origin);

// A model ready to use: its spec, weights and tokenizer.
struct LoadedModel {
  std::string dir;
  ModelSpec spec;
  SequenceModel model{nullptr};
  std::unique_ptr<Tokenizer> tokenizer;
  LoadReport report;
  // Distribution of the model's dev scores at training time (score_reference.json), if saved.
  std::optional<ScoreReference> score_reference;
};

// Accepts a checkpoint directory, a Hugging Face directory, or a run directory (meaning
// its best/ checkpoint, else last/). Throws ModelError naming the path otherwise.
std::string resolve_model_dir(const std::string& path);

// Loads config, tokenizer and weights. With allow_new_head, a missing or wrongly shaped
// head (num_outputs differs) is initialised fresh, for fine-tuning; without it, an MLM
// encoder (no task head) is a ModelError that says to fine-tune it first. A task_override
// makes the result a task model (mlm_encoder false).
// min_type_vocab widens the token type embeddings (for match types on an --init model).
LoadedModel load_model(const std::string& path, bool allow_new_head = false,
                       const std::optional<TaskSpec>& task_override = std::nullopt,
                       std::optional<int64_t> min_type_vocab = std::nullopt);

// Writes a complete checkpoint to dir atomically. state, optimizer and reference are optional;
// extra_weights are saved beside the model's (the MLM head). An spec.mlm_encoder checkpoint
// leaves out the untrained classifier.
void save_checkpoint(const std::string& dir, const ModelSpec& spec, SequenceModel& model, const Tokenizer& tokenizer,
                     const TrainerState* state = nullptr, torch::optim::Optimizer* optimizer = nullptr,
                     const ScoreReference* reference = nullptr,
                     const std::vector<std::pair<std::string, torch::Tensor>>& extra_weights = {});

// Reads DIR/trainer_state.json and, when given, DIR/optimizer.pt into optimizer.
TrainerState load_trainer_state(const std::string& dir, torch::optim::Optimizer* optimizer);

// Makes sure a checkpoint written by save_checkpoint is in place: when a crash hit between
// its two renames, DIR is missing and DIR.old holds the previous complete checkpoint.
void recover_checkpoint(const std::string& dir);

}  // namespace dqe
