#include "dqe/metrics.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <iomanip>
#include <limits>
#include <numeric>
#include <set>
#include <sstream>
#include <stdexcept>
#include <unordered_map>
#include <utility>

#include "base/format.h"

namespace dqe {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

void check_sizes(const std::string& function, size_t a, size_t b) {
  if (a != b) {
    throw std::invalid_argument(function + ": inputs differ in size (" + std::to_string(a) + " vs " +
                                std::to_string(b) + ")");
  }
  if (a == 0) throw std::invalid_argument(function + ": empty input");
}

// Sorting (ranks, ranking) is undefined on NaN, so non-finite values are refused up front.
void check_finite(const std::string& function, const char* what, const std::vector<double>& values) {
  for (size_t i = 0; i < values.size(); ++i) {
    if (!std::isfinite(values[i])) {
      throw std::invalid_argument(function + ": " + what + "[" + std::to_string(i) + "] is not finite");
    }
  }
}

double safe_ratio(double numerator, double denominator) { return denominator > 0 ? numerator / denominator : 0; }

double f1_score(double precision, double recall) { return safe_ratio(2 * precision * recall, precision + recall); }

bool all_equal(const std::vector<double>& values) {
  return std::all_of(values.begin(), values.end(), [&](double v) { return v == values.front(); });
}

// NaN when either side is constant. Tested by value rather than by a zero variance, which
// rounding in the mean can hide.
double pearson(const std::vector<double>& x, const std::vector<double>& y) {
  if (all_equal(x) || all_equal(y)) return kNaN;
  const double n = static_cast<double>(x.size());
  const double mean_x = std::accumulate(x.begin(), x.end(), 0.0) / n;
  const double mean_y = std::accumulate(y.begin(), y.end(), 0.0) / n;
  double sxy = 0, sxx = 0, syy = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double dx = x[i] - mean_x, dy = y[i] - mean_y;
    sxy += dx * dy;
    sxx += dx * dx;
    syy += dy * dy;
  }
  return sxy / std::sqrt(sxx * syy);
}

// 1-based ranks in ascending order; tied values share the average of their ranks.
std::vector<double> average_ranks(const std::vector<double>& values) {
  std::vector<size_t> order(values.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return values[a] < values[b]; });
  std::vector<double> ranks(values.size());
  for (size_t begin = 0; begin < order.size();) {
    size_t end = begin + 1;
    while (end < order.size() && values[order[end]] == values[order[begin]]) ++end;
    // Positions begin..end-1 hold ranks begin+1..end; their mean is (begin + 1 + end) / 2.
    const double rank = (static_cast<double>(begin) + 1 + static_cast<double>(end)) / 2;
    for (size_t i = begin; i < end; ++i) ranks[order[i]] = rank;
    begin = end;
  }
  return ranks;
}

// Linear-gain DCG of the first k gains, in the order given.
double dcg_at(const std::vector<double>& gains, size_t k) {
  double dcg = 0;
  for (size_t i = 0; i < std::min(k, gains.size()); ++i) dcg += gains[i] / std::log2(static_cast<double>(i) + 2);
  return dcg;
}

// Expected DCG@k of a uniformly random order: each position holds the mean gain on average.
double random_dcg_at(const std::vector<double>& gains, size_t k) {
  const double mean_gain = std::accumulate(gains.begin(), gains.end(), 0.0) / static_cast<double>(gains.size());
  double discount = 0;
  for (size_t i = 0; i < std::min(k, gains.size()); ++i) discount += 1 / std::log2(static_cast<double>(i) + 2);
  return mean_gain * discount;
}

nlohmann::ordered_json number_or_null(double value) {
  if (std::isnan(value)) return nullptr;
  return value;
}

std::string format_value(double value) { return format_fixed(value, 4); }

// Left column names, right column values right-aligned, under a "metric value" header.
std::string two_columns(const std::vector<std::pair<std::string, std::string>>& rows) {
  size_t name_width = 6, value_width = 5;  // the header words
  for (const auto& [name, value] : rows) {
    name_width = std::max(name_width, name.size());
    value_width = std::max(value_width, value.size());
  }
  std::ostringstream out;
  out << std::left << std::setw(static_cast<int>(name_width)) << "metric"
      << "  " << std::right << std::setw(static_cast<int>(value_width)) << "value" << '\n';
  for (const auto& [name, value] : rows) {
    out << std::left << std::setw(static_cast<int>(name_width)) << name << "  " << std::right
        << std::setw(static_cast<int>(value_width)) << value << '\n';
  }
  return out.str();
}

// A table whose first column is left-aligned and the others right-aligned, each as wide as
// its widest cell.
std::string grid(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> widths;
  for (const auto& row : rows) {
    widths.resize(std::max(widths.size(), row.size()), 0);
    for (size_t c = 0; c < row.size(); ++c) widths[c] = std::max(widths[c], row[c].size());
  }
  std::ostringstream out;
  for (const auto& row : rows) {
    for (size_t c = 0; c < row.size(); ++c) {
      if (c > 0) out << "  ";
      out << (c == 0 ? std::left : std::right) << std::setw(static_cast<int>(widths[c])) << row[c];
    }
    out << '\n';
  }
  return out.str();
}

}  // namespace

RegressionMetrics regression_metrics(const std::vector<double>& predicted, const std::vector<double>& truth) {
  const std::string function = "regression_metrics";
  check_sizes(function, predicted.size(), truth.size());
  check_finite(function, "predicted", predicted);
  check_finite(function, "truth", truth);
  RegressionMetrics m;
  m.count = static_cast<int64_t>(predicted.size());
  double squared = 0, absolute = 0;
  for (size_t i = 0; i < predicted.size(); ++i) {
    const double error = predicted[i] - truth[i];
    squared += error * error;
    absolute += std::abs(error);
  }
  const double n = static_cast<double>(m.count);
  m.mse = squared / n;
  m.rmse = std::sqrt(m.mse);
  m.mae = absolute / n;
  m.pearson = pearson(predicted, truth);
  m.spearman = pearson(average_ranks(predicted), average_ranks(truth));
  return m;
}

ClassificationMetrics classification_metrics(const std::vector<int64_t>& predicted, const std::vector<int64_t>& truth,
                                             const std::vector<std::string>& class_names) {
  const std::string function = "classification_metrics";
  check_sizes(function, predicted.size(), truth.size());
  // Class names key the per-class JSON object, so a duplicate would silently merge two classes.
  if (std::set<std::string>(class_names.begin(), class_names.end()).size() != class_names.size()) {
    throw std::invalid_argument(function + ": duplicate class names");
  }
  const auto num_classes = static_cast<int64_t>(class_names.size());
  for (size_t i = 0; i < predicted.size(); ++i) {
    for (const int64_t id : {predicted[i], truth[i]}) {
      if (id < 0 || id >= num_classes) {
        throw std::invalid_argument(function + ": class id " + std::to_string(id) + " at row " + std::to_string(i) +
                                    " is outside [0, " + std::to_string(num_classes) + ")");
      }
    }
  }

  const auto k = static_cast<size_t>(num_classes);
  ClassificationMetrics m;
  m.count = static_cast<int64_t>(predicted.size());
  m.confusion.assign(k, std::vector<int64_t>(k, 0));
  for (size_t i = 0; i < predicted.size(); ++i) ++m.confusion[truth[i]][predicted[i]];

  std::vector<double> true_totals(k, 0), predicted_totals(k, 0);
  int64_t correct = 0;
  for (size_t t = 0; t < k; ++t) {
    correct += m.confusion[t][t];
    for (size_t p = 0; p < k; ++p) {
      true_totals[t] += static_cast<double>(m.confusion[t][p]);
      predicted_totals[p] += static_cast<double>(m.confusion[t][p]);
    }
  }
  const double n = static_cast<double>(m.count);
  m.accuracy = static_cast<double>(correct) / n;
  // With one label per row, every false positive is another class's false negative, so
  // micro precision = micro recall = micro F1 = accuracy.
  m.micro_f1 = m.accuracy;

  double f1_sum = 0;
  int64_t classes_seen = 0;
  for (size_t c = 0; c < k; ++c) {
    ClassMetrics cm;
    cm.name = class_names[c];
    const auto tp = static_cast<double>(m.confusion[c][c]);
    cm.precision = safe_ratio(tp, predicted_totals[c]);
    cm.recall = safe_ratio(tp, true_totals[c]);
    cm.f1 = f1_score(cm.precision, cm.recall);
    cm.support = static_cast<int64_t>(true_totals[c]);
    // Like scikit-learn without explicit labels: a class absent from both truth and
    // predictions does not pull the macro average down.
    if (true_totals[c] > 0 || predicted_totals[c] > 0) {
      f1_sum += cm.f1;
      ++classes_seen;
    }
    m.per_class.push_back(std::move(cm));
  }
  m.macro_f1 = f1_sum / static_cast<double>(classes_seen);

  if (k < 2) {
    m.quadratic_weighted_kappa = kNaN;
  } else {
    double observed = 0, expected = 0;
    const double max_distance = static_cast<double>(k - 1);
    for (size_t t = 0; t < k; ++t) {
      for (size_t p = 0; p < k; ++p) {
        const double distance = (static_cast<double>(t) - static_cast<double>(p)) / max_distance;
        const double weight = distance * distance;
        observed += weight * static_cast<double>(m.confusion[t][p]);
        expected += weight * true_totals[t] * predicted_totals[p] / n;
      }
    }
    // expected is 0 only when truth and predictions all fall in one class.
    m.quadratic_weighted_kappa = expected > 0 ? 1 - observed / expected : kNaN;
  }
  return m;
}

BinaryMetrics binary_metrics(const std::vector<double>& probability, const std::vector<int64_t>& truth,
                             double threshold) {
  const std::string function = "binary_metrics";
  check_sizes(function, probability.size(), truth.size());
  check_finite(function, "probability", probability);
  for (size_t i = 0; i < truth.size(); ++i) {
    if (truth[i] != 0 && truth[i] != 1) {
      throw std::invalid_argument(function + ": truth[" + std::to_string(i) + "] is " + std::to_string(truth[i]) +
                                  ", not 0 or 1");
    }
  }
  BinaryMetrics m;
  m.count = static_cast<int64_t>(truth.size());
  m.threshold = threshold;
  double tp = 0, fp = 0, fn = 0, tn = 0;
  for (size_t i = 0; i < truth.size(); ++i) {
    const bool positive = probability[i] >= threshold;
    if (truth[i] == 1) {
      (positive ? tp : fn) += 1;
    } else {
      (positive ? fp : tn) += 1;
    }
  }
  const double positives = tp + fn, negatives = fp + tn;
  m.accuracy = (tp + tn) / static_cast<double>(m.count);
  m.precision = safe_ratio(tp, tp + fp);
  m.recall = safe_ratio(tp, positives);
  m.f1 = f1_score(m.precision, m.recall);

  if (positives == 0 || negatives == 0) {
    m.roc_auc = kNaN;
  } else {
    // Mann-Whitney U from the positives' rank sum; average ranks count ties as half.
    const std::vector<double> ranks = average_ranks(probability);
    double positive_rank_sum = 0;
    for (size_t i = 0; i < truth.size(); ++i) {
      if (truth[i] == 1) positive_rank_sum += ranks[i];
    }
    m.roc_auc = (positive_rank_sum - positives * (positives + 1) / 2) / (positives * negatives);
  }

  if (positives == 0) {
    m.pr_auc = kNaN;
  } else {
    // Average precision over distinct thresholds, highest first: a group of tied scores
    // enters as one step, as in scikit-learn's average_precision_score.
    std::vector<size_t> order(truth.size());
    std::iota(order.begin(), order.end(), size_t{0});
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return probability[a] > probability[b]; });
    double seen_tp = 0, seen_fp = 0, ap = 0;
    for (size_t begin = 0; begin < order.size();) {
      double step_tp = 0;
      size_t end = begin;
      for (; end < order.size() && probability[order[end]] == probability[order[begin]]; ++end) {
        (truth[order[end]] == 1 ? step_tp : seen_fp) += 1;
      }
      seen_tp += step_tp;
      ap += (step_tp / positives) * (seen_tp / (seen_tp + seen_fp));
      begin = end;
    }
    m.pr_auc = ap;
  }
  return m;
}

RankingMetrics ranking_metrics(const std::vector<std::string>& query_ids, const std::vector<double>& scores,
                               const std::vector<double>& gains) {
  const std::string function = "ranking_metrics";
  check_sizes(function, query_ids.size(), scores.size());
  check_sizes(function, query_ids.size(), gains.size());
  check_finite(function, "scores", scores);
  check_finite(function, "gains", gains);
  for (size_t i = 0; i < gains.size(); ++i) {
    if (gains[i] < 0) throw std::invalid_argument(function + ": gains[" + std::to_string(i) + "] is negative");
  }

  std::unordered_map<std::string, size_t> query_index;
  std::vector<std::vector<size_t>> queries;  // row indices, in input order
  for (size_t i = 0; i < query_ids.size(); ++i) {
    const auto [it, inserted] = query_index.try_emplace(query_ids[i], queries.size());
    if (inserted) queries.emplace_back();
    queries[it->second].push_back(i);
  }

  RankingMetrics m;
  double ndcg5_sum = 0, ndcg10_sum = 0, mrr_sum = 0, random_sum = 0;
  std::vector<double> ranked, ideal;
  for (std::vector<size_t>& rows : queries) {
    if (rows.size() < 2) continue;
    // Stable, so tied scores keep input order.
    std::stable_sort(rows.begin(), rows.end(), [&](size_t a, size_t b) { return scores[a] > scores[b]; });
    ranked.clear();
    for (const size_t row : rows) ranked.push_back(gains[row]);
    ideal = ranked;
    std::sort(ideal.begin(), ideal.end(), std::greater<>());
    // Gains are >= 0, so the ideal DCG is positive exactly when the top gain is.
    if (ideal.front() <= 0) continue;

    ++m.num_queries;
    const double ideal_dcg10 = dcg_at(ideal, 10);
    ndcg5_sum += dcg_at(ranked, 5) / dcg_at(ideal, 5);
    ndcg10_sum += dcg_at(ranked, 10) / ideal_dcg10;
    const size_t first_best =
        static_cast<size_t>(std::find(ranked.begin(), ranked.end(), ideal.front()) - ranked.begin());
    mrr_sum += 1 / static_cast<double>(first_best + 1);
    random_sum += random_dcg_at(ranked, 10) / ideal_dcg10;
  }
  if (m.num_queries == 0) {
    m.ndcg_at_5 = m.ndcg_at_10 = m.mrr = m.random_ndcg_at_10 = kNaN;
  } else {
    const double q = static_cast<double>(m.num_queries);
    m.ndcg_at_5 = ndcg5_sum / q;
    m.ndcg_at_10 = ndcg10_sum / q;
    m.mrr = mrr_sum / q;
    m.random_ndcg_at_10 = random_sum / q;
  }
  return m;
}

const std::vector<MetricInfo>& metric_registry() {
  using D = Direction;
  static const std::vector<MetricInfo> kMetrics = {
      {"count", "count", "examples", D::kNeither, false},
      {"mse", "mse", "MSE", D::kLowerIsBetter, true},
      {"rmse", "rmse", "RMSE", D::kLowerIsBetter, true},
      {"mae", "mae", "MAE", D::kLowerIsBetter, true},
      {"pearson", "pearson", "Pearson r", D::kHigherIsBetter, true},
      {"spearman", "spearman", "Spearman \u03c1", D::kHigherIsBetter, true},
      {"accuracy", "accuracy", "accuracy", D::kHigherIsBetter, true},
      {"macro_f1", "macro_f1", "macro F1", D::kHigherIsBetter, true},
      {"micro_f1", "micro_f1", "micro F1", D::kHigherIsBetter, true},
      {"quadratic_weighted_kappa", "quadratic_weighted_kappa", "quadratic weighted kappa", D::kHigherIsBetter, true},
      {"threshold", "threshold", "threshold", D::kNeither, false},
      // Precision and recall trade off at the threshold; F1 and the AUCs are what to track.
      {"precision", "precision", "precision", D::kHigherIsBetter, false},
      {"recall", "recall", "recall", D::kHigherIsBetter, false},
      {"f1", "f1", "F1", D::kHigherIsBetter, true},
      {"roc_auc", "roc_auc", "ROC-AUC", D::kHigherIsBetter, true},
      {"pr_auc", "pr_auc", "PR-AUC", D::kHigherIsBetter, true},
      {"num_queries", "ranking.num_queries", "queries (2+ results)", D::kNeither, false},
      {"ndcg_at_5", "ranking.ndcg_at_5", "nDCG@5", D::kHigherIsBetter, true},
      {"ndcg_at_10", "ranking.ndcg_at_10", "nDCG@10", D::kHigherIsBetter, true},
      {"mrr", "ranking.mrr", "MRR", D::kHigherIsBetter, true},
      // Properties of the data, not of the model: nothing to get better at.
      {"random_ndcg_at_10", "ranking.random_ndcg_at_10", "nDCG@10 of a random order", D::kNeither, false},
      {"train_mean_rmse", "train_mean_rmse", "RMSE of predicting the training mean", D::kNeither, false},
  };
  return kMetrics;
}

const MetricInfo* find_metric(const std::string& name) {
  for (const MetricInfo& m : metric_registry())
    if (m.key == name || m.path == name) return &m;
  return nullptr;
}

std::string metric_keys_list() {
  std::string out;
  for (const MetricInfo& m : metric_registry()) out += (out.empty() ? "" : ", ") + m.key;
  return out;
}

nlohmann::ordered_json to_json(const RegressionMetrics& m) {
  return {{"count", m.count},
          {"mse", number_or_null(m.mse)},
          {"rmse", number_or_null(m.rmse)},
          {"mae", number_or_null(m.mae)},
          {"pearson", number_or_null(m.pearson)},
          {"spearman", number_or_null(m.spearman)}};
}

nlohmann::ordered_json to_json(const ClassificationMetrics& m) {
  nlohmann::ordered_json per_class = nlohmann::ordered_json::object();
  nlohmann::ordered_json labels = nlohmann::ordered_json::array();
  for (const ClassMetrics& c : m.per_class) {
    per_class[c.name] = {{"precision", number_or_null(c.precision)},
                         {"recall", number_or_null(c.recall)},
                         {"f1", number_or_null(c.f1)},
                         {"support", c.support}};
    labels.push_back(c.name);
  }
  return {{"count", m.count},
          {"accuracy", number_or_null(m.accuracy)},
          {"macro_f1", number_or_null(m.macro_f1)},
          {"micro_f1", number_or_null(m.micro_f1)},
          {"quadratic_weighted_kappa", number_or_null(m.quadratic_weighted_kappa)},
          {"per_class", std::move(per_class)},
          {"confusion_matrix", {{"labels", std::move(labels)}, {"matrix", m.confusion}}}};
}

nlohmann::ordered_json to_json(const BinaryMetrics& m) {
  return {{"count", m.count},
          {"threshold", m.threshold},
          {"accuracy", number_or_null(m.accuracy)},
          {"precision", number_or_null(m.precision)},
          {"recall", number_or_null(m.recall)},
          {"f1", number_or_null(m.f1)},
          {"roc_auc", number_or_null(m.roc_auc)},
          {"pr_auc", number_or_null(m.pr_auc)}};
}

nlohmann::ordered_json to_json(const RankingMetrics& m) {
  return {{"num_queries", m.num_queries},
          {"ndcg_at_5", number_or_null(m.ndcg_at_5)},
          {"ndcg_at_10", number_or_null(m.ndcg_at_10)},
          {"mrr", number_or_null(m.mrr)},
          {"random_ndcg_at_10", number_or_null(m.random_ndcg_at_10)}};
}

std::string format_table(const RegressionMetrics& m) {
  return two_columns({{"count", std::to_string(m.count)},
                      {"mse", format_value(m.mse)},
                      {"rmse", format_value(m.rmse)},
                      {"mae", format_value(m.mae)},
                      {"pearson", format_value(m.pearson)},
                      {"spearman", format_value(m.spearman)}});
}

std::string format_table(const ClassificationMetrics& m) {
  std::string table = two_columns({{"count", std::to_string(m.count)},
                                   {"accuracy", format_value(m.accuracy)},
                                   {"macro_f1", format_value(m.macro_f1)},
                                   {"micro_f1", format_value(m.micro_f1)},
                                   {"quadratic_weighted_kappa", format_value(m.quadratic_weighted_kappa)}});
  std::vector<std::vector<std::string>> classes = {{"class", "precision", "recall", "f1", "support"}};
  for (const ClassMetrics& c : m.per_class) {
    classes.push_back(
        {c.name, format_value(c.precision), format_value(c.recall), format_value(c.f1), std::to_string(c.support)});
  }
  table += '\n' + grid(classes);

  std::vector<std::vector<std::string>> confusion = {{"true \\ predicted"}};
  for (const ClassMetrics& c : m.per_class) confusion[0].push_back(c.name);
  for (size_t t = 0; t < m.confusion.size(); ++t) {
    std::vector<std::string> row = {m.per_class[t].name};
    for (const int64_t count : m.confusion[t]) row.push_back(std::to_string(count));
    confusion.push_back(std::move(row));
  }
  table += '\n' + grid(confusion);
  return table;
}

std::string format_table(const BinaryMetrics& m) {
  return two_columns({{"count", std::to_string(m.count)},
                      {"threshold", format_value(m.threshold)},
                      {"accuracy", format_value(m.accuracy)},
                      {"precision", format_value(m.precision)},
                      {"recall", format_value(m.recall)},
                      {"f1", format_value(m.f1)},
                      {"roc_auc", format_value(m.roc_auc)},
                      {"pr_auc", format_value(m.pr_auc)}});
}

std::string format_table(const RankingMetrics& m) {
  return two_columns({{"num_queries", std::to_string(m.num_queries)},
                      {"ndcg_at_5", format_value(m.ndcg_at_5)},
                      {"ndcg_at_10", format_value(m.ndcg_at_10)},
                      {"mrr", format_value(m.mrr)},
                      {"random_ndcg_at_10", format_value(m.random_ndcg_at_10)}});
}

}  // namespace dqe
