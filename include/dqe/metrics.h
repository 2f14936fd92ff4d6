// Task metrics for dqe eval and the trainer's dev evaluations. Pure functions over plain
// vectors; to_json() gives the layout written to --metrics-out.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace dqe {

struct RegressionMetrics {
  int64_t count = 0;
  double mse = 0, rmse = 0, mae = 0;
  // NaN when either side has zero variance (JSON null).
  double pearson = 0, spearman = 0;  // spearman uses average ranks for ties
};
// Throws std::invalid_argument when sizes differ or the input is empty.
RegressionMetrics regression_metrics(const std::vector<double>& predicted, const std::vector<double>& truth);

struct ClassMetrics {
  std::string name;
  double precision = 0, recall = 0, f1 = 0;  // 0 when undefined (no predictions / no support)
  int64_t support = 0;                       // true instances of the class
};

struct ClassificationMetrics {
  int64_t count = 0;
  double accuracy = 0, macro_f1 = 0, micro_f1 = 0;
  double quadratic_weighted_kappa = 0;  // over class indices; NaN when undefined
  std::vector<ClassMetrics> per_class;  // in class index order
  std::vector<std::vector<int64_t>> confusion;  // confusion[true][predicted]
};
// Class ids index into class_names. Throws std::invalid_argument on size mismatch,
// empty input or an id outside [0, class_names.size()).
ClassificationMetrics classification_metrics(const std::vector<int64_t>& predicted,
                                             const std::vector<int64_t>& truth,
                                             const std::vector<std::string>& class_names);

struct BinaryMetrics {
  int64_t count = 0;
  double threshold = 0.5;
  double accuracy = 0, precision = 0, recall = 0, f1 = 0;
  double roc_auc = 0;  // Mann-Whitney with ties counted half; NaN when one class is absent
  double pr_auc = 0;   // average precision (step-wise); NaN when there is no positive
};
// truth is 0/1; probability is P(positive). A prediction is positive when probability >= threshold.
BinaryMetrics binary_metrics(const std::vector<double>& probability, const std::vector<int64_t>& truth,
                             double threshold = 0.5);

struct RankingMetrics {
  int64_t num_queries = 0;  // queries with two or more results and a positive ideal DCG
  double ndcg_at_5 = 0, ndcg_at_10 = 0, mrr = 0;
  // Expected nDCG@10 of a uniformly random order of the same results, averaged over the
  // same queries, so that the gain of a model over chance can be reported.
  double random_ndcg_at_10 = 0;
};
// Groups rows by query_id; within a query, results are ranked by score, descending (ties
// keep input order). Gains are linear (DCG = sum gain / log2(rank + 1)); gains must be >= 0.
// MRR: reciprocal rank of the first result whose gain equals the query's highest gain.
RankingMetrics ranking_metrics(const std::vector<std::string>& query_ids, const std::vector<double>& scores,
                               const std::vector<double>& gains);

nlohmann::ordered_json to_json(const RegressionMetrics& m);
nlohmann::ordered_json to_json(const ClassificationMetrics& m);
nlohmann::ordered_json to_json(const BinaryMetrics& m);
nlohmann::ordered_json to_json(const RankingMetrics& m);

// A readable fixed-width table of the metrics, for stdout.
std::string format_table(const RegressionMetrics& m);
std::string format_table(const ClassificationMetrics& m);
std::string format_table(const BinaryMetrics& m);
std::string format_table(const RankingMetrics& m);

}  // namespace dqe
