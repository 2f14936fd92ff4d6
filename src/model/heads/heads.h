// The task heads dqe has: regression (a graded relevance), classification (named grades) and
// binary (relevant or not). task_head() (task_head.h) is how the rest of dqe finds them.
#pragma once

#include "model/heads/task_head.h"

namespace dqe {

// One output, the standardised label: MSE, the score in label units.
class RegressionHead : public TaskHead {
 public:
  Task task() const override { return Task::kRegression; }
  void fit_labels(TaskSpec& spec, const std::vector<Record>& train, const std::string& path,
                  const ModelSpec* init) const override;
  double encode_label(const Record& record, const TaskSpec& spec, const std::string& path) const override;
  float target(double label, const TaskSpec& spec) const override;
  bool is_low(float target) const override { return target < 0; }
  std::vector<double> gains(const std::vector<double>& labels) const override;
  torch::Tensor loss(const torch::Tensor& logits, const torch::Tensor& targets,
                     at::Reduction::Reduction reduction) const override;
  torch::Tensor distillation_target(const torch::Tensor& teacher_logits, const TaskSpec& teacher, const TaskSpec& student,
                                    double temperature) const override;
  torch::Tensor distillation_loss(const torch::Tensor& logits, const torch::Tensor& targets,
                                  double temperature) const override;
  std::string distillation_text(double temperature) const override { return "MSE of its scores"; }
  Predictions decode(const torch::Tensor& logits, const TaskSpec& spec) const override;
  std::string score_meaning() const override { return "Score: the predicted value, in label units."; }
  std::vector<std::string> class_names(const TaskSpec& spec) const override { return {}; }
  EvalResult metrics(const TaskSpec& spec, const Predictions& predictions,
                     const std::vector<double>& labels) const override;
  void add_constant_baseline(const TaskSpec& spec, const std::vector<double>& labels, EvalResult& result) const override;
  void write_hf_keys(const TaskSpec& spec, nlohmann::ordered_json& config) const override;
  void fold_into_head(TaskSpec& spec, std::map<std::string, torch::Tensor>& tensors) const override;
};

// One output per class name, least relevant first: cross-entropy; the score is the
// probability-weighted class index scaled to [0, 1].
class ClassificationHead : public TaskHead {
 public:
  Task task() const override { return Task::kClassification; }
  int64_t num_outputs(const TaskSpec& spec) const override { return static_cast<int64_t>(spec.labels.size()); }
  void fit_labels(TaskSpec& spec, const std::vector<Record>& train, const std::string& path,
                  const ModelSpec* init) const override;
  double encode_label(const Record& record, const TaskSpec& spec, const std::string& path) const override;
  torch::Tensor loss(const torch::Tensor& logits, const torch::Tensor& targets,
                     at::Reduction::Reduction reduction) const override;
  torch::Tensor distillation_target(const torch::Tensor& teacher_logits, const TaskSpec& teacher, const TaskSpec& student,
                                    double temperature) const override;
  torch::Tensor distillation_loss(const torch::Tensor& logits, const torch::Tensor& targets,
                                  double temperature) const override;
  std::string distillation_text(double temperature) const override;
  torch::Tensor rank_scores(const torch::Tensor& logits) const override;
  Predictions decode(const torch::Tensor& logits, const TaskSpec& spec) const override;
  void classes_of_average(Predictions& predictions) const override;
  void line_fields(const Predictions& predictions, size_t i, const TaskSpec& spec, bool pred, bool probs,
                   std::vector<std::pair<std::string, std::string>>& out) const override;
  std::string score_meaning() const override;
  std::string class_rule() const override { return "Predicted class: the most probable."; }
  EvalResult metrics(const TaskSpec& spec, const Predictions& predictions,
                     const std::vector<double>& labels) const override;
  void write_hf_keys(const TaskSpec& spec, nlohmann::ordered_json& config) const override;
};

// One output, the logit of the positive class: binary cross-entropy; the score is P(positive).
class BinaryHead : public TaskHead {
 public:
  Task task() const override { return Task::kBinary; }
  double encode_label(const Record& record, const TaskSpec& spec, const std::string& path) const override;
  torch::Tensor loss(const torch::Tensor& logits, const torch::Tensor& targets,
                     at::Reduction::Reduction reduction) const override;
  torch::Tensor distillation_target(const torch::Tensor& teacher_logits, const TaskSpec& teacher, const TaskSpec& student,
                                    double temperature) const override;
  torch::Tensor distillation_loss(const torch::Tensor& logits, const torch::Tensor& targets,
                                  double temperature) const override;
  std::string distillation_text(double temperature) const override;
  Predictions decode(const torch::Tensor& logits, const TaskSpec& spec) const override;
  void classes_of_average(Predictions& predictions) const override;
  std::string score_meaning() const override { return "Score: P(positive)."; }
  std::vector<std::string> class_names(const TaskSpec& spec) const override;
  std::string class_rule() const override { return "Positive when P(positive) &#8805; 0.5."; }
  EvalResult metrics(const TaskSpec& spec, const Predictions& predictions,
                     const std::vector<double>& labels) const override;
  void write_hf_keys(const TaskSpec& spec, nlohmann::ordered_json& config) const override;
  void write_hf_export_keys(const TaskSpec& spec, nlohmann::ordered_json& config) const override;
};

// "path:line: " for messages about a record.
std::string record_place(const std::string& path, const Record& record);
// The DataError for a record without its label field.
[[noreturn]] void missing_label(const Record& record, const TaskSpec& spec, const std::string& path);

}  // namespace dqe
