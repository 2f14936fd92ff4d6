#include <algorithm>
#include <cmath>
#include <set>

#include "base/format.h"
#include "dqe/errors.h"
#include "model/heads/heads.h"

namespace dqe {
namespace {

bool is_integer(double v) { return std::isfinite(v) && v == std::floor(v) && std::fabs(v) < 1e9; }

// More classes than this is a stray label, not a task: 100000 would build 100,001 classes.
constexpr size_t kMaxClasses = 1000;

// Class names for classification, from the training records: sorted distinct strings, or
// "0".."K-1" when every label is an integer. Throws DataError naming path:line on a mix.
std::vector<std::string> collect_class_labels(const std::vector<Record>& records, const std::string& path) {
  std::set<std::string> names;
  std::set<int64_t> ids;
  const Record* first_string = nullptr;
  const Record* first_number = nullptr;
  for (const auto& r : records) {
    if (r.label_kind == LabelKind::kString) {
      names.insert(r.label_string);
      if (names.size() > kMaxClasses)
        throw DataError(record_place(path, r) + "more than " + std::to_string(kMaxClasses) +
                        " distinct class names: is --label-field the class?");
      if (!first_string) first_string = &r;
    } else if (r.label_kind == LabelKind::kNumber) {
      if (!is_integer(r.label_number) || r.label_number < 0)
        throw DataError(record_place(path, r) + "classification label must be a class name or a non-negative integer id");
      if (r.label_number >= static_cast<double>(kMaxClasses))
        throw DataError(record_place(path, r) + "class id " + std::to_string(static_cast<int64_t>(r.label_number)) +
                        " is too large: at most " + std::to_string(kMaxClasses) + " classes (ids 0-" +
                        std::to_string(kMaxClasses - 1) + ")");
      ids.insert(static_cast<int64_t>(r.label_number));
      if (!first_number) first_number = &r;
    }
  }
  if (first_string && first_number) {
    const Record& later = first_string->line > first_number->line ? *first_string : *first_number;
    throw DataError(record_place(path, later) + "labels mix class names and numeric ids");
  }
  std::vector<std::string> labels;
  if (first_string) {
    labels.assign(names.begin(), names.end());
  } else if (!ids.empty()) {
    for (int64_t i = 0; i <= *ids.rbegin(); ++i) labels.push_back(std::to_string(i));
  }
  if (labels.size() < 2) throw DataError(path + ": classification needs at least 2 distinct labels");
  return labels;
}

}  // namespace

void ClassificationHead::fit_labels(TaskSpec& spec, const std::vector<Record>& train, const std::string& path,
                                    const ModelSpec* init) const {
  if (!spec.labels.empty()) return;  // given (--labels)
  spec.labels = collect_class_labels(train, path);
  // Keep a fine-tuned head when it already knows the same classes.
  if (init && init->task.task == Task::kClassification && init->task.labels.size() >= spec.labels.size() &&
      std::all_of(spec.labels.begin(), spec.labels.end(), [&](const std::string& l) {
        return std::find(init->task.labels.begin(), init->task.labels.end(), l) != init->task.labels.end();
      }))
    spec.labels = init->task.labels;
}

double ClassificationHead::encode_label(const Record& r, const TaskSpec& spec, const std::string& path) const {
  if (r.label_kind == LabelKind::kNone) missing_label(r, spec, path);
  if (r.label_kind == LabelKind::kString) {
    auto it = std::find(spec.labels.begin(), spec.labels.end(), r.label_string);
    if (it != spec.labels.end()) return static_cast<double>(it - spec.labels.begin());
    std::string known;
    for (const auto& l : spec.labels) known += (known.empty() ? "" : ", ") + l;
    throw DataError(record_place(path, r) + "label \"" + r.label_string + "\" is not one of the known classes (" + known +
                    ")");
  }
  // An integer id, or a number equal to a class name such as "1".
  if (is_integer(r.label_number)) {
    const std::string as_name = std::to_string(static_cast<int64_t>(r.label_number));
    auto it = std::find(spec.labels.begin(), spec.labels.end(), as_name);
    if (it != spec.labels.end()) return static_cast<double>(it - spec.labels.begin());
    if (r.label_number >= 0 && r.label_number < static_cast<double>(spec.labels.size())) return r.label_number;
  }
  throw DataError(record_place(path, r) + "label " + std::to_string(r.label_number) + " is not a known class id (0-" +
                  std::to_string(spec.labels.size() - 1) + ")");
}

torch::Tensor ClassificationHead::loss(const torch::Tensor& logits, const torch::Tensor& targets,
                                       at::Reduction::Reduction reduction) const {
  return torch::cross_entropy_loss(logits, targets.to(torch::kInt64), {}, reduction);
}

torch::Tensor ClassificationHead::distillation_target(const torch::Tensor& teacher_logits, const TaskSpec& /*teacher*/,
                                                      const TaskSpec& /*student*/, double temperature) const {
  return torch::softmax(teacher_logits / temperature, 1);
}

torch::Tensor ClassificationHead::distillation_loss(const torch::Tensor& logits, const torch::Tensor& targets,
                                                    double temperature) const {
  // KL(p || q) = sum p (log p - log q), batch mean; 0 log 0 = 0. Times T^2, so that the
  // gradients keep their size as T changes.
  const double t = temperature;
  const torch::Tensor log_q = torch::log_softmax(logits / t, 1);
  const torch::Tensor p_log_p = torch::where(targets > 0, targets * torch::log(targets), torch::zeros_like(targets));
  return (p_log_p - targets * log_q).sum(1).mean() * (t * t);
}

std::string ClassificationHead::distillation_text(double temperature) const {
  return "at temperature " + format_significant(temperature);
}

torch::Tensor ClassificationHead::rank_scores(const torch::Tensor& logits) const {
  const torch::Tensor index = torch::arange(logits.size(1), logits.options());
  return (torch::softmax(logits, 1) * index).sum(1);
}

Predictions ClassificationHead::decode(const torch::Tensor& logits, const TaskSpec& /*spec*/) const {
  Predictions p;
  const int64_t n = logits.size(0);
  p.scores.resize(static_cast<size_t>(n));
  auto probs = torch::softmax(logits, 1);
  auto acc = probs.accessor<float, 2>();
  const int64_t k = probs.size(1);
  p.classes.resize(static_cast<size_t>(n));
  p.probs.resize(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    double weighted = 0;
    int64_t best = 0;
    p.probs[i].resize(static_cast<size_t>(k));
    for (int64_t c = 0; c < k; ++c) {
      p.probs[i][c] = acc[i][c];
      weighted += acc[i][c] * static_cast<double>(c);
      if (acc[i][c] > acc[i][best]) best = c;
    }
    p.classes[i] = best;
    p.scores[i] = k > 1 ? weighted / static_cast<double>(k - 1) : 0;
  }
  return p;
}

void ClassificationHead::classes_of_average(Predictions& p) const {
  for (size_t i = 0; i < p.classes.size(); ++i)
    p.classes[i] = std::max_element(p.probs[i].begin(), p.probs[i].end()) - p.probs[i].begin();
}

void ClassificationHead::line_fields(const Predictions& p, size_t i, const TaskSpec& spec, bool pred, bool probs,
                                     std::vector<std::pair<std::string, std::string>>& out) const {
  if (pred) out.emplace_back("pred", nlohmann::json(spec.labels[static_cast<size_t>(p.classes[i])]).dump());
  if (probs) out.emplace_back("probs", nlohmann::json(p.probs[i]).dump());
}

std::string ClassificationHead::score_meaning() const {
  return "Score: the probability-weighted class index scaled to [0, 1], as <code>dqe score</code> writes it (classes "
         "in the order of the table above).";
}

EvalResult ClassificationHead::metrics(const TaskSpec& spec, const Predictions& predictions,
                                       const std::vector<double>& labels) const {
  EvalResult r;
  const std::vector<int64_t> truth(labels.begin(), labels.end());
  const ClassificationMetrics m = classification_metrics(predictions.classes, truth, spec.labels);
  r.metrics = to_json(m);
  r.table = format_table(m);
  r.primary_name = "accuracy";
  r.primary = m.accuracy;
  return r;
}

void ClassificationHead::write_hf_keys(const TaskSpec& spec, nlohmann::ordered_json& j) const {
  nlohmann::ordered_json id2label, label2id;
  for (size_t i = 0; i < spec.labels.size(); ++i) {
    id2label[std::to_string(i)] = spec.labels[i];
    label2id[spec.labels[i]] = i;
  }
  j["id2label"] = id2label;
  j["label2id"] = label2id;
  j["problem_type"] = "single_label_classification";
}

}  // namespace dqe
