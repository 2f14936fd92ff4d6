// What a task is, in one place: how its labels are read and scaled, its loss and distillation
// target, how its logits decode into scores, classes and probabilities, its metrics, its
// Hugging Face keys. One TaskHead per Task (regression.cpp, classification.cpp, binary.cpp);
// task_head(task) finds it, so that a new task is a new file and one line in task_head.cpp.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "data/task_spec.h"
#include "dqe/jsonl_reader.h"
#include "dqe/metrics.h"
#include "model/model_spec.h"

namespace dqe {

// The task's reading of logits.
struct Predictions {
  // Regression: the value in label units. Binary: P(positive). Classification: the
  // probability-weighted class index scaled to [0, 1].
  std::vector<double> scores;
  std::vector<int64_t> classes;            // classification and binary: predicted class id
  std::vector<std::vector<double>> probs;  // classification: per-class probabilities
  // The model's raw outputs per record, as Hugging Face's `model(**inputs).logits` gives them
  // (predictions_from_logits); empty for an ensemble's average, which has none.
  std::vector<std::vector<double>> logits;
};

class TaskHead {
 public:
  virtual ~TaskHead() = default;
  virtual Task task() const = 0;
  // Size of the classifier's output layer.
  virtual int64_t num_outputs(const TaskSpec& spec) const { return 1; }

  // ---- Labels
  // What the task takes from the training records (class names, label scaling), unless the
  // flags gave it, and from the model a run starts from (a fine-tuned head that knows the
  // classes, or its scaling). init: that model's spec, or null.
  virtual void fit_labels(TaskSpec& spec, const std::vector<Record>& train, const std::string& path,
                          const ModelSpec* init) const {}
  // A record's label as a number: the value (regression), the class id (classification: a
  // known name or an integer id), 0 or 1 (binary). Throws DataError "path:line: ...".
  virtual double encode_label(const Record& record, const TaskSpec& spec, const std::string& path) const = 0;
  // The training target of an encoded label (regression: standardised).
  virtual float target(double label, const TaskSpec& spec) const { return static_cast<float>(label); }
  // Whether a training target is at the bottom of the scale (below the mean; the first class):
  // the results that --augment stuffs with query words.
  virtual bool is_low(float target) const { return target == 0; }
  // Gains of the ranking metrics: >= 0, the lowest label none.
  virtual std::vector<double> gains(const std::vector<double>& labels) const { return labels; }

  // ---- Training
  // The loss of logits [n, outputs] against targets [n]: a mean, or per row (reduction none).
  virtual torch::Tensor loss(const torch::Tensor& logits, const torch::Tensor& targets,
                             at::Reduction::Reduction reduction) const = 0;
  // What the ranking losses compare (train/rank_loss.h), [n], differentiable and ordered as the
  // scores that decode gives: the one logit (regression, binary), or the probability-weighted
  // class index (classification).
  virtual torch::Tensor rank_scores(const torch::Tensor& logits) const { return logits.select(1, 0); }
  // A teacher's targets for a student of this task, [n, k] float64, from the teacher's logits:
  // what the student's distillation_loss compares its logits with.
  virtual torch::Tensor distillation_target(const torch::Tensor& teacher_logits, const TaskSpec& teacher,
                                            const TaskSpec& student, double temperature) const = 0;
  // The student's distillation loss against those targets (a mean over the batch).
  virtual torch::Tensor distillation_loss(const torch::Tensor& logits, const torch::Tensor& targets,
                                          double temperature) const = 0;
  // What the distillation loss is, for the log ("MSE of its scores", "at temperature 2").
  virtual std::string distillation_text(double temperature) const = 0;

  // ---- Inference
  // Logits [n, outputs] (float32, on the CPU) as scores, classes and probabilities.
  virtual Predictions decode(const torch::Tensor& logits, const TaskSpec& spec) const = 0;
  // An ensemble's averaged scores and probabilities: its classes from them.
  virtual void classes_of_average(Predictions& predictions) const {}
  // The fields `score` adds to line i beside "score" (classification: "pred", "probs"), as
  // JSON text, among those asked for.
  virtual void line_fields(const Predictions& predictions, size_t i, const TaskSpec& spec, bool pred, bool probs,
                           std::vector<std::pair<std::string, std::string>>& out) const {}
  // What the score means, for reports ("Score: P(positive).").
  virtual std::string score_meaning() const = 0;
  // The class names in id order (regression: none).
  virtual std::vector<std::string> class_names(const TaskSpec& spec) const { return spec.labels; }
  // How a class is predicted, for reports ("Predicted class: the most probable.").
  virtual std::string class_rule() const { return ""; }

  // ---- Metrics
  // The task's metrics of predictions against encoded labels, with the selection metric
  // (compute_metrics adds the ranking metrics).
  virtual EvalResult metrics(const TaskSpec& spec, const Predictions& predictions,
                             const std::vector<double>& labels) const = 0;
  // After the ranking metrics, the constant predictor to beat, where the model knows it
  // (regression: the training labels' mean, for a model trained by dqe).
  virtual void add_constant_baseline(const TaskSpec& spec, const std::vector<double>& labels, EvalResult& result) const {}

  // ---- Hugging Face
  // config.json's keys for the head: id2label, label2id, num_labels, problem_type.
  virtual void write_hf_keys(const TaskSpec& spec, nlohmann::ordered_json& config) const = 0;
  // What an export changes in those keys so that Hugging Face's pipeline reads the head as dqe
  // computes it (binary: one sigmoid output).
  virtual void write_hf_export_keys(const TaskSpec& spec, nlohmann::ordered_json& config) const {}
  // Folds what the head's logits lack for Hugging Face into its weights (regression: the label
  // scaling, so that the logit is the score) and resets it in the spec.
  virtual void fold_into_head(TaskSpec& spec, std::map<std::string, torch::Tensor>& tensors) const {}
};

// The head of a task.
const TaskHead& task_head(Task task);

}  // namespace dqe
