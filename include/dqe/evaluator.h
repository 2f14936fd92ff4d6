// Inference over encoded inputs and the task's metrics; `dqe eval` and the trainer's dev
// evaluations share this code.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "dqe/checkpoint.h"
#include "dqe/config.h"
#include "dqe/jsonl_reader.h"
#include "dqe/model.h"
#include "dqe/runtime.h"
#include "dqe/tokenizer.h"

namespace dqe {

// Raw logits [N, num_outputs] in input order, on the CPU; batches run in length order for
// little padding, on the model's device. bf16 precision runs the encoder under autocast
// (faster, not bit-exact); logits are fp32.
torch::Tensor predict_logits(SequenceModel& model, const std::vector<Encoding>& inputs, int64_t batch_size,
                             int64_t pad_id, Precision precision = Precision::kFp32);

struct Predictions {
  // Regression: the value in label units. Binary: P(positive). Classification: the
  // probability-weighted class index scaled to [0, 1].
  std::vector<double> scores;
  std::vector<int64_t> classes;           // classification and binary: predicted class id
  std::vector<std::vector<double>> probs;  // classification: per-class probabilities
};
Predictions predictions_from_logits(const torch::Tensor& logits, const TaskSpec& task);

struct EvalResult {
  nlohmann::ordered_json metrics;
  std::string table;            // readable, for stdout
  std::string primary_name;     // the metric used for model selection
  double primary = 0;
  bool higher_is_better = false;
};

// labels are encode_label() values. Ranking metrics are added when some query has two or
// more results.
EvalResult compute_metrics(const TaskSpec& task, const Predictions& predictions, const std::vector<double>& labels,
                           const std::vector<std::string>& query_ids);

// The model's task with the command's overrides: max_len (0 keeps the model's; otherwise
// 3..max_position_embeddings, else ConfigError naming --max-len) and field names.
TaskSpec inference_task(const ModelSpec& spec, int64_t max_len, const std::optional<FieldMap>& fields);

// One model, or several whose predictions are averaged (an ensemble, e.g. fine-tuning runs
// with different seeds). Each member keeps its own tokenizer, length and label scaling;
// they must share the task and class names.
struct Ensemble {
  std::vector<LoadedModel> members;
  std::vector<TaskSpec> tasks;  // inference_task() of each member

  const TaskSpec& task() const { return tasks.front(); }
  // Every member's directory, in order.
  std::vector<std::string> dirs() const;
};

// The models a --model argument names: the directory itself, or, when it holds an
// ensemble.json ({"members": ["seed1", "seed2"]}, paths relative to it), its members.
// Throws ModelError naming the file when it is malformed.
std::vector<std::string> ensemble_members(const std::string& dir);

// Loads the models (ensemble directories expanded) onto device. Throws ConfigError naming
// --model when there is none or when a member's task or class names differ from the first's.
Ensemble load_ensemble(const std::vector<std::string>& models, int64_t max_len, const std::optional<FieldMap>& fields,
                       const c10::Device& device);

// The members' predictions averaged: scores, and class probabilities (the class is then
// the most probable; binary: score >= 0.5). path names the records in error messages.
Predictions predict_ensemble(const Ensemble& ensemble, const std::vector<Record>& records, const std::string& path,
                             int64_t batch_size, Precision precision, int threads);

struct EvalConfig {
  // Checkpoint, Hugging Face or run directory; with several, their predictions are averaged.
  std::vector<std::string> models;
  std::string data;
  std::string metrics_out;  // optional JSON output
  // Longest input; 0 means the model's own.
  int64_t max_len = 0;
  int64_t batch_size = 64;
  int threads = 0;
  // "auto" (bf16 autocast on a GPU or where the CPU has native bf16, else fp32), "fp32"
  // (exact) or "bf16".
  std::string precision = "auto";
  // "auto" (a GPU when there is one), "cpu", "cuda" or "cuda:N".
  std::string device = "auto";
  int64_t max_bad_lines = 0;
  std::string rejects;
  // Overrides the field names saved with the model.
  std::optional<FieldMap> fields;
};

EvalResult evaluate(const EvalConfig& config);

}  // namespace dqe
