#include "base/format.h"
#include "dqe/errors.h"
#include "model/heads/heads.h"

namespace dqe {

double BinaryHead::encode_label(const Record& r, const TaskSpec& spec, const std::string& path) const {
  if (r.label_kind == LabelKind::kNone) missing_label(r, spec, path);
  if (r.label_kind == LabelKind::kNumber && (r.label_number == 0 || r.label_number == 1)) return r.label_number;
  if (r.label_kind == LabelKind::kString && spec.labels.size() == 2) {
    if (r.label_string == spec.labels[0]) return 0;
    if (r.label_string == spec.labels[1]) return 1;
  }
  throw DataError(record_place(path, r) + "binary label must be 0, 1, true or false");
}

torch::Tensor BinaryHead::loss(const torch::Tensor& logits, const torch::Tensor& targets,
                               at::Reduction::Reduction reduction) const {
  return torch::binary_cross_entropy_with_logits(logits.squeeze(1), targets, {}, {}, reduction);
}

torch::Tensor BinaryHead::distillation_target(const torch::Tensor& teacher_logits, const TaskSpec& /*teacher*/,
                                              const TaskSpec& /*student*/, double temperature) const {
  return torch::sigmoid(teacher_logits / temperature);
}

torch::Tensor BinaryHead::distillation_loss(const torch::Tensor& logits, const torch::Tensor& targets,
                                            double temperature) const {
  // Binary cross-entropy of sigmoid(logit / T) against the teacher's probability, times T^2.
  const double t = temperature;
  return torch::binary_cross_entropy_with_logits(logits.squeeze(1) / t, targets.squeeze(1)) * (t * t);
}

std::string BinaryHead::distillation_text(double temperature) const {
  return "at temperature " + format_significant(temperature);
}

Predictions BinaryHead::decode(const torch::Tensor& logits, const TaskSpec& /*spec*/) const {
  Predictions p;
  const int64_t n = logits.size(0);
  p.scores.resize(static_cast<size_t>(n));
  auto probs = torch::sigmoid(logits);
  auto acc = probs.accessor<float, 2>();
  p.classes.resize(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    p.scores[i] = acc[i][0];
    p.classes[i] = acc[i][0] >= 0.5f ? 1 : 0;
  }
  return p;
}

void BinaryHead::classes_of_average(Predictions& p) const {
  for (size_t i = 0; i < p.classes.size(); ++i) p.classes[i] = p.scores[i] >= 0.5 ? 1 : 0;
}

std::vector<std::string> BinaryHead::class_names(const TaskSpec& spec) const {
  return spec.labels.size() == 2 ? spec.labels : std::vector<std::string>{"0", "1"};
}

EvalResult BinaryHead::metrics(const TaskSpec& /*spec*/, const Predictions& predictions,
                               const std::vector<double>& labels) const {
  EvalResult r;
  const std::vector<int64_t> truth(labels.begin(), labels.end());
  const BinaryMetrics m = binary_metrics(predictions.scores, truth);
  r.metrics = to_json(m);
  r.table = format_table(m);
  r.primary_name = "roc_auc";
  r.primary = m.roc_auc;
  return r;
}

void BinaryHead::write_hf_keys(const TaskSpec& /*spec*/, nlohmann::ordered_json& j) const {
  j["num_labels"] = 1;
  j["id2label"] = {{"0", "LABEL_0"}};
  j["label2id"] = {{"LABEL_0", 0}};
}

void BinaryHead::write_hf_export_keys(const TaskSpec& spec, nlohmann::ordered_json& j) const {
  // BCEWithLogits on the one logit is what dqe trained; Hugging Face's pipeline applies a
  // sigmoid to a single label.
  const std::string positive = spec.labels.size() == 2 ? spec.labels[1] : "LABEL_0";
  j["id2label"] = {{"0", positive}};
  j["label2id"] = {{positive, 0}};
  j["problem_type"] = "multi_label_classification";
}

}  // namespace dqe
