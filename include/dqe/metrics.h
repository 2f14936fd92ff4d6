// Task metrics for dqe eval and the trainer's dev evaluations. Pure functions over plain
// vectors; to_json() gives the layout written to --metrics-out.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace dqe {

// A task's metrics of a model on labelled data: what eval prints and writes, and the
// selection metric of training.
struct EvalResult {
  nlohmann::ordered_json metrics;
  std::string table;            // readable, for stdout
  std::string primary_name;     // the metric used for model selection
  double primary = 0;
  bool higher_is_better = false;
};

struct RegressionMetrics {
  int64_t count = 0;
  double mse = 0, rmse = 0, mae = 0;
  // NaN when either side has zero variance (JSON null).
  double pearson = 0, spearman = 0;  // spearman uses average ranks for ties
};
// Throws std::invalid_argument when sizes differ, the input is empty or a value is not finite.
RegressionMetrics regression_metrics(const std::vector<double>& predicted, const std::vector<double>& truth);

struct ClassMetrics {
  std::string name;
  double precision = 0, recall = 0, f1 = 0;  // 0 when undefined (no predictions / no support)
  int64_t support = 0;                       // true instances of the class
};

struct ClassificationMetrics {
  int64_t count = 0;
  double accuracy = 0;
  // Macro: mean F1 over the classes present in truth or predictions (as scikit-learn without
  // explicit labels). Micro equals accuracy, as each row has exactly one label.
  double macro_f1 = 0, micro_f1 = 0;
  // 1 - sum(w * O) / sum(w * E), w_ij = (i - j)^2 / (K - 1)^2, O the confusion matrix and E
  // the outer product of its marginals divided by the count.
  // Over class indices; NaN with one class or when sum(w * E) is 0 (every row in one class).
  double quadratic_weighted_kappa = 0;
  std::vector<ClassMetrics> per_class;  // in class index order
  std::vector<std::vector<int64_t>> confusion;  // confusion[true][predicted]
};
// Class ids index into class_names. Throws std::invalid_argument on size mismatch,
// empty input, duplicate class names or an id outside [0, class_names.size()).
ClassificationMetrics classification_metrics(const std::vector<int64_t>& predicted,
                                             const std::vector<int64_t>& truth,
                                             const std::vector<std::string>& class_names);

struct BinaryMetrics {
  int64_t count = 0;
  double threshold = 0.5;
  double accuracy = 0, precision = 0, recall = 0, f1 = 0;
  double roc_auc = 0;  // Mann-Whitney with ties counted half; NaN when one class is absent
  // Average precision: sum over distinct thresholds, highest first, of
  // (recall gained) * (precision there); NaN when there is no positive.
  double pr_auc = 0;
};
// truth is 0/1; probability is P(positive). A prediction is positive when probability >= threshold.
// Throws std::invalid_argument on size mismatch, empty input, a non-finite probability or a
// truth other than 0/1.
BinaryMetrics binary_metrics(const std::vector<double>& probability, const std::vector<int64_t>& truth,
                             double threshold = 0.5);

struct RankingMetrics {
  int64_t num_queries = 0;  // queries with two or more results and a positive ideal DCG
  double ndcg_at_5 = 0, ndcg_at_10 = 0, mrr = 0;
  // Expected nDCG@10 of a uniformly random order of the same results, averaged over the
  // same queries, so that the gain of a model over chance can be reported. Exact, by
  // linearity: E[DCG@10] = mean gain * sum_{i=1..min(10,n)} 1 / log2(i + 1).
  double random_ndcg_at_10 = 0;
};
// Groups rows by query_id; within a query, results are ranked by score, descending (ties
// keep input order). Gains are linear (DCG = sum gain / log2(rank + 1)); gains must be >= 0.
// MRR: reciprocal rank of the first result whose gain equals the query's highest gain.
// The averages are NaN when no query counts. Throws std::invalid_argument on size mismatch,
// empty input, a non-finite score or gain, or a negative gain.
RankingMetrics ranking_metrics(const std::vector<std::string>& query_ids, const std::vector<double>& scores,
                               const std::vector<double>& gains);

// ---- The metric registry: every scalar that to_json() writes, in one place ----

enum class Direction { kHigherIsBetter, kLowerIsBetter, kNeither };

struct MetricInfo {
  std::string key;    // as to_json() writes it and eval prints it: "ndcg_at_10"
  std::string path;   // dotted path in the metrics JSON: "ranking.ndcg_at_10"
  std::string label;  // for people (plain UTF-8 text, not HTML): "nDCG@10"
  Direction direction;
  bool gated;  // compared with a --baseline by default
  bool higher_is_better() const { return direction == Direction::kHigherIsBetter; }
};

// In the order to_json() writes them (regression, classification, binary, ranking, then
// what evaluate() adds). Keys are unique across tasks: a key alone names one metric.
const std::vector<MetricInfo>& metric_registry();
// By key ("ndcg_at_10") or path ("ranking.ndcg_at_10"); nullptr when unknown.
const MetricInfo* find_metric(const std::string& name);
// The keys, comma-separated, for messages that list the valid names.
std::string metric_keys_list();

// Flat objects with the field names as keys; NaN is written as null. Classification adds
// "per_class": {name: {precision, recall, f1, support}} and
// "confusion_matrix": {"labels": [...], "matrix": [[...]]} (rows: true class).
nlohmann::ordered_json to_json(const RegressionMetrics& m);
nlohmann::ordered_json to_json(const ClassificationMetrics& m);
nlohmann::ordered_json to_json(const BinaryMetrics& m);
nlohmann::ordered_json to_json(const RankingMetrics& m);

// A readable fixed-width table of the metrics, for stdout: one "metric value" row each, four
// decimals, "n/a" for NaN; classification adds per-class rows and the confusion matrix.
std::string format_table(const RegressionMetrics& m);
std::string format_table(const ClassificationMetrics& m);
std::string format_table(const BinaryMetrics& m);
std::string format_table(const RankingMetrics& m);

}  // namespace dqe
