// What a model predicts and how its inputs are built: the task, its labels and their scaling,
// the length and field names, the match types and side inputs. Saved as the "dqe" section of
// config.json (model/model_spec.h).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "dqe/jsonl_reader.h"

namespace dqe {

enum class Task { kRegression, kClassification, kBinary };

std::string task_name(Task task);
// Throws ConfigError naming --task for an unknown name.
Task parse_task(const std::string& name);

// How the pooled text vector and the encoded side inputs meet (model.h, SequenceModel):
// kAdd, each side input's MLP added to the logits (dqe's first layout, kept for its
// checkpoints); kGate, each encoded input gated by the text and added to the pooled vector
// before the head; kConcat, an MLP of the pooled vector and the encoded inputs added to the logits.
enum class Fusion { kAdd, kGate, kConcat };
std::string fusion_name(Fusion fusion);
// Throws ConfigError naming --fusion for an unknown name.
Fusion parse_fusion(const std::string& name);

struct TaskSpec {
  Task task = Task::kRegression;
  // Classification: class names in id order. Binary: optional [negative, positive] names.
  std::vector<std::string> labels;
  // Regression targets are standardised for training; predictions are mapped back.
  double label_mean = 0.0;
  double label_std = 1.0;
  // Regression: the mean of the training labels, the constant predictor that eval prints
  // beside the model. Kept apart from label_mean, which an export folds into the head; unknown
  // (nullopt) for a model dqe did not train.
  std::optional<double> training_mean;
  // Longest input, special tokens included.
  int64_t max_len = 128;
  FieldMap fields;
  bool lower_case = true;
  // Lexical match signal: tokens whose id also occurs on the other side of the pair get
  // token type 2 (query side) or 3 (result side) instead of 0/1, so even a model trained
  // from scratch sees at once which words the query and the result share. Needs
  // type_vocab_size >= 4.
  bool match_types = false;
  // The model adds an MLP of lexical_features() to its logits (data/lexical.h); the statistics
  // they need are saved beside the weights (lexical_stats.json).
  bool lexical_features = false;
  // How side inputs meet the text; a config without the key is kAdd (older checkpoints).
  Fusion fusion = Fusion::kAdd;
};

}  // namespace dqe
