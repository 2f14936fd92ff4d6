#include <algorithm>
#include <cmath>

#include "base/format.h"
#include "dqe/errors.h"
#include "model/heads/heads.h"

namespace dqe {

std::string record_place(const std::string& path, const Record& r) { return path + ":" + std::to_string(r.line) + ": "; }

void missing_label(const Record& r, const TaskSpec& spec, const std::string& path) {
  throw DataError(record_place(path, r) + "missing field \"" + spec.fields.label + "\"");
}

void RegressionHead::fit_labels(TaskSpec& spec, const std::vector<Record>& train, const std::string& path,
                                const ModelSpec* init) const {
  double sum = 0, sq = 0;
  for (const auto& r : train) {
    const double v = encode_label(r, spec, path);
    sum += v;
    sq += v * v;
  }
  const double n = static_cast<double>(train.size());
  spec.training_mean = sum / n;
  // A regression head fine-tuned by dqe keeps the scale it learned.
  if (init && init->has_dqe_section && !init->mlm_encoder && init->task.task == Task::kRegression) {
    spec.label_mean = init->task.label_mean;
    spec.label_std = init->task.label_std;
    return;
  }
  spec.label_mean = sum / n;
  spec.label_std = std::sqrt(std::max(0.0, sq / n - spec.label_mean * spec.label_mean));
  if (!(spec.label_std > 1e-12)) spec.label_std = 1.0;  // constant labels: nothing to scale
}

double RegressionHead::encode_label(const Record& r, const TaskSpec& spec, const std::string& path) const {
  if (r.label_kind == LabelKind::kNone) missing_label(r, spec, path);
  if (r.label_kind != LabelKind::kNumber)
    throw DataError(record_place(path, r) + "label must be a number for regression, got \"" + r.label_string + "\"");
  return r.label_number;
}

float RegressionHead::target(double label, const TaskSpec& spec) const {
  // Labels go through float before scaling, as they always have: the recorded runs depend on it.
  const float as_float = static_cast<float>(label);
  return static_cast<float>((as_float - spec.label_mean) / spec.label_std);
}

std::vector<double> RegressionHead::gains(const std::vector<double>& labels) const {
  // Gains must be >= 0: the lowest label is "no gain".
  std::vector<double> gains(labels);
  const double lowest = labels.empty() ? 0 : *std::min_element(labels.begin(), labels.end());
  for (auto& g : gains) g -= lowest;
  return gains;
}

torch::Tensor RegressionHead::loss(const torch::Tensor& logits, const torch::Tensor& targets,
                                   at::Reduction::Reduction reduction) const {
  return torch::mse_loss(logits.squeeze(1), targets, reduction);
}

torch::Tensor RegressionHead::distillation_target(const torch::Tensor& teacher_logits, const TaskSpec& teacher,
                                                  const TaskSpec& student, double /*temperature*/) const {
  // The teacher's score, standardised as the student's labels are: what the student's logit predicts.
  return ((teacher_logits * teacher.label_std + teacher.label_mean) - student.label_mean) / student.label_std;
}

torch::Tensor RegressionHead::distillation_loss(const torch::Tensor& logits, const torch::Tensor& targets,
                                                double /*temperature*/) const {
  return torch::mse_loss(logits.squeeze(1), targets.squeeze(1));
}

Predictions RegressionHead::decode(const torch::Tensor& logits, const TaskSpec& spec) const {
  Predictions p;
  const int64_t n = logits.size(0);
  p.scores.resize(static_cast<size_t>(n));
  auto acc = logits.accessor<float, 2>();
  for (int64_t i = 0; i < n; ++i) p.scores[i] = acc[i][0] * spec.label_std + spec.label_mean;
  return p;
}

EvalResult RegressionHead::metrics(const TaskSpec& /*spec*/, const Predictions& predictions,
                                   const std::vector<double>& labels) const {
  EvalResult r;
  const RegressionMetrics m = regression_metrics(predictions.scores, labels);
  r.metrics = to_json(m);
  r.table = format_table(m);
  r.primary_name = "rmse";
  r.primary = m.rmse;
  return r;
}

void RegressionHead::add_constant_baseline(const TaskSpec& spec, const std::vector<double>& labels,
                                           EvalResult& r) const {
  if (labels.empty() || !spec.training_mean) return;
  const double mean = *spec.training_mean;
  double sq = 0;
  for (double y : labels) sq += (y - mean) * (y - mean);
  const double rmse = std::sqrt(sq / static_cast<double>(labels.size()));
  r.metrics["train_mean_rmse"] = rmse;
  r.table += "rmse of predicting the training mean (" + format_fixed(mean) + "): " + format_fixed(rmse) + "\n";
}

void RegressionHead::write_hf_keys(const TaskSpec& /*spec*/, nlohmann::ordered_json& j) const {
  j["num_labels"] = 1;
  j["id2label"] = {{"0", "LABEL_0"}};
  j["label2id"] = {{"LABEL_0", 0}};
  j["problem_type"] = "regression";
}

void RegressionHead::fold_into_head(TaskSpec& spec, std::map<std::string, torch::Tensor>& tensors) const {
  // The logit is the standardised label; score = logit * label_std + label_mean.
  torch::NoGradGuard no_grad;
  torch::Tensor& w = tensors.at("classifier.weight");
  torch::Tensor& b = tensors.at("classifier.bias");
  w = w.detach().to(torch::kFloat64).mul(spec.label_std).to(torch::kFloat32);
  b = b.detach().to(torch::kFloat64).mul(spec.label_std).add(spec.label_mean).to(torch::kFloat32);
  spec.label_mean = 0;
  spec.label_std = 1;
}

}  // namespace dqe
