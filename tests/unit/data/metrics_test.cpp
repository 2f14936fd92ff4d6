#include "dqe/metrics.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

namespace dqe {
namespace {

constexpr double kTol = 1e-6;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
// 1 / log2(3), the discount at rank 2.
const double kDiscount2 = 1 / std::log2(3.0);

TEST(MetricsRegression, MatchesHandComputedValues) {
  const auto m = regression_metrics({1, 2, 3, 4}, {1, 3, 2, 5});
  EXPECT_EQ(m.count, 4);
  // errors 0, -1, 1, -1: squared 0+1+1+1 = 3, /4
  EXPECT_NEAR(m.mse, 0.75, kTol);
  EXPECT_NEAR(m.rmse, std::sqrt(0.75), kTol);  // 0.8660254
  // |errors| 0+1+1+1 = 3, /4
  EXPECT_NEAR(m.mae, 0.75, kTol);
  // means 2.5 and 2.75; dx = -1.5 -0.5 0.5 1.5, dy = -1.75 0.25 -0.75 2.25
  // sxy = 2.625 - 0.125 - 0.375 + 3.375 = 5.5; sxx = 5; syy = 8.75
  // r = 5.5 / sqrt(5 * 8.75) = 5.5 / 6.6143783 = 0.8315218
  EXPECT_NEAR(m.pearson, 0.8315218, kTol);
  // ranks 1 2 3 4 vs 1 3 2 4: sum d^2 = 2; rho = 1 - 6 * 2 / (4 * 15) = 0.8
  EXPECT_NEAR(m.spearman, 0.8, kTol);
}

TEST(MetricsRegression, SpearmanAveragesTiedRanks) {
  const auto m = regression_metrics({1, 2, 2, 3}, {1, 2, 3, 4});
  // ranks 1 2.5 2.5 4 vs 1 2 3 4, both with mean 2.5:
  // dx = -1.5 0 0 1.5, dy = -1.5 -0.5 0.5 1.5; sxy = 2.25 + 2.25 = 4.5; sxx = 4.5; syy = 5
  // rho = 4.5 / sqrt(4.5 * 5) = 4.5 / 4.7434165 = 0.9486833
  EXPECT_NEAR(m.spearman, 0.9486833, kTol);
}

TEST(MetricsRegression, ConstantSideGivesNullCorrelation) {
  // Values whose mean is not exact in binary: the check must not depend on rounding.
  const auto m = regression_metrics({0.1, 0.1, 0.1}, {1, 2, 3});
  // errors -0.9 -1.9 -2.9: squared 0.81 + 3.61 + 8.41 = 12.83, /3
  EXPECT_NEAR(m.mse, 12.83 / 3, kTol);
  EXPECT_TRUE(std::isnan(m.pearson));
  EXPECT_TRUE(std::isnan(m.spearman));
  const auto json = to_json(m);
  EXPECT_TRUE(json["pearson"].is_null());
  EXPECT_TRUE(json["spearman"].is_null());
  EXPECT_EQ(json.dump(-1).find("NaN"), std::string::npos);
}

TEST(MetricsRegression, RejectsBadInput) {
  EXPECT_THROW(regression_metrics({1, 2}, {1}), std::invalid_argument);
  EXPECT_THROW(regression_metrics({}, {}), std::invalid_argument);
  EXPECT_THROW(regression_metrics({1, kNaN}, {1, 2}), std::invalid_argument);
}

TEST(MetricsRegression, JsonAndTableLayout) {
  const auto m = regression_metrics({1, 2, 3, 4}, {1, 3, 2, 5});
  const auto json = to_json(m);
  std::vector<std::string> keys;
  for (const auto& item : json.items()) keys.push_back(item.key());
  EXPECT_EQ(keys, (std::vector<std::string>{"count", "mse", "rmse", "mae", "pearson", "spearman"}));
  EXPECT_EQ(json["count"], 4);
  EXPECT_EQ(format_table(m),
            "metric     value\n"
            "count          4\n"
            "mse       0.7500\n"
            "rmse      0.8660\n"
            "mae       0.7500\n"
            "pearson   0.8315\n"
            "spearman  0.8000\n");
}

// Three classes, truth/prediction pairs chosen for this confusion matrix (rows true):
//   a: 2 1 0
//   b: 0 1 1
//   c: 1 0 2
ClassificationMetrics three_class_example() {
  return classification_metrics({0, 0, 1, 1, 2, 2, 2, 0}, {0, 0, 0, 1, 1, 2, 2, 2}, {"a", "b", "c"});
}

TEST(MetricsClassification, MatchesHandComputedValues) {
  const auto m = three_class_example();
  EXPECT_EQ(m.count, 8);
  EXPECT_EQ(m.confusion, (std::vector<std::vector<int64_t>>{{2, 1, 0}, {0, 1, 1}, {1, 0, 2}}));
  EXPECT_NEAR(m.accuracy, 0.625, kTol);  // diagonal 2 + 1 + 2 = 5, /8
  EXPECT_NEAR(m.micro_f1, 0.625, kTol);  // single-label: equals accuracy
  ASSERT_EQ(m.per_class.size(), 3u);
  // a: tp 2 of 3 predicted, 3 true -> P = R = F1 = 2/3
  EXPECT_EQ(m.per_class[0].name, "a");
  EXPECT_NEAR(m.per_class[0].precision, 2.0 / 3, kTol);
  EXPECT_NEAR(m.per_class[0].recall, 2.0 / 3, kTol);
  EXPECT_NEAR(m.per_class[0].f1, 2.0 / 3, kTol);
  EXPECT_EQ(m.per_class[0].support, 3);
  // b: tp 1 of 2 predicted, 2 true -> P = R = F1 = 0.5
  EXPECT_NEAR(m.per_class[1].precision, 0.5, kTol);
  EXPECT_NEAR(m.per_class[1].recall, 0.5, kTol);
  EXPECT_NEAR(m.per_class[1].f1, 0.5, kTol);
  EXPECT_EQ(m.per_class[1].support, 2);
  // c: like a
  EXPECT_NEAR(m.per_class[2].f1, 2.0 / 3, kTol);
  // macro F1 = (2/3 + 1/2 + 2/3) / 3 = 0.6111111
  EXPECT_NEAR(m.macro_f1, 0.6111111, kTol);
}

TEST(MetricsClassification, QuadraticWeightedKappaByHand) {
  const auto m = three_class_example();
  // K = 3: w = (i - j)^2 / 4, so w(0,1) = w(1,2) = 0.25 and w(0,2) = 1.
  // sum w * O = 0.25 * O01(1) + 0.25 * O12(1) + 1 * O20(1) = 1.5
  // Marginals: true 3 2 3, predicted 3 2 3, n = 8, E_ij = true_i * predicted_j / 8:
  //   E01 = E10 = E12 = E21 = 6/8 = 0.75 (weight 0.25 each -> 4 * 0.1875 = 0.75)
  //   E02 = E20 = 9/8 = 1.125 (weight 1 -> 2.25)
  // sum w * E = 3.0; kappa = 1 - 1.5 / 3 = 0.5
  EXPECT_NEAR(m.quadratic_weighted_kappa, 0.5, kTol);
}

TEST(MetricsClassification, UnseenClassesAndEmptyPredictions) {
  // Classes x y z; truth x x y, all predicted x; z appears nowhere.
  const auto m = classification_metrics({0, 0, 0}, {0, 0, 1}, {"x", "y", "z"});
  EXPECT_NEAR(m.accuracy, 2.0 / 3, kTol);
  // x: P = 2/3, R = 2/2 = 1, F1 = 2 * (2/3) / (5/3) = 0.8
  EXPECT_NEAR(m.per_class[0].f1, 0.8, kTol);
  // y: never predicted -> precision 0 (undefined), recall 0/1 = 0, F1 0
  EXPECT_EQ(m.per_class[1].precision, 0);
  EXPECT_EQ(m.per_class[1].recall, 0);
  EXPECT_EQ(m.per_class[1].support, 1);
  // z: absent from both sides -> all 0 and left out of the macro average: (0.8 + 0) / 2
  EXPECT_EQ(m.per_class[2].support, 0);
  EXPECT_NEAR(m.macro_f1, 0.4, kTol);
  // true marginals 2 1 0, predicted 3 0 0: sum w * O = 0.25 * O10(1) = 0.25;
  // sum w * E = 0.25 * E10 (1 * 3 / 3 = 1) = 0.25; kappa = 1 - 1 = 0
  EXPECT_NEAR(m.quadratic_weighted_kappa, 0, kTol);
}

TEST(MetricsClassification, KappaIsNullWhenUndefined) {
  // Everything in class 0: sum w * E = 0.
  const auto m = classification_metrics({0, 0}, {0, 0}, {"a", "b"});
  EXPECT_TRUE(std::isnan(m.quadratic_weighted_kappa));
  EXPECT_NEAR(m.accuracy, 1, kTol);
  EXPECT_NEAR(m.macro_f1, 1, kTol);  // only class a is present
  EXPECT_TRUE(to_json(m)["quadratic_weighted_kappa"].is_null());
  // One class: the weights (i - j)^2 / (K - 1)^2 are undefined.
  EXPECT_TRUE(std::isnan(classification_metrics({0}, {0}, {"only"}).quadratic_weighted_kappa));
}

TEST(MetricsClassification, RejectsBadInput) {
  const std::vector<std::string> names = {"a", "b"};
  EXPECT_THROW(classification_metrics({0, 1}, {0}, names), std::invalid_argument);
  EXPECT_THROW(classification_metrics({}, {}, names), std::invalid_argument);
  EXPECT_THROW(classification_metrics({2}, {0}, names), std::invalid_argument);
  EXPECT_THROW(classification_metrics({0}, {-1}, names), std::invalid_argument);
  EXPECT_THROW(classification_metrics({0}, {0}, {"a", "a"}), std::invalid_argument);
}

TEST(MetricsClassification, JsonLayout) {
  const auto json = to_json(three_class_example());
  EXPECT_EQ(json["count"], 8);
  EXPECT_NEAR(json["accuracy"].get<double>(), 0.625, kTol);
  EXPECT_NEAR(json["quadratic_weighted_kappa"].get<double>(), 0.5, kTol);
  EXPECT_NEAR(json["per_class"]["b"]["recall"].get<double>(), 0.5, kTol);
  EXPECT_EQ(json["per_class"]["a"]["support"], 3);
  EXPECT_EQ(json["confusion_matrix"].dump(), R"({"labels":["a","b","c"],"matrix":[[2,1,0],[0,1,1],[1,0,2]]})");
}

TEST(MetricsClassification, TableShowsClassesAndConfusion) {
  const std::string table = format_table(three_class_example());
  EXPECT_NE(table.find("accuracy                  0.6250\n"), std::string::npos) << table;
  EXPECT_NE(table.find("quadratic_weighted_kappa  0.5000\n"), std::string::npos) << table;
  EXPECT_NE(table.find("class  precision  recall      f1  support\n"
                       "a         0.6667  0.6667  0.6667        3\n"
                       "b         0.5000  0.5000  0.5000        2\n"),
            std::string::npos)
      << table;
  EXPECT_NE(table.find("true \\ predicted  a  b  c\n"
                       "a                 2  1  0\n"
                       "b                 0  1  1\n"
                       "c                 1  0  2\n"),
            std::string::npos)
      << table;
}

TEST(MetricsBinary, MatchesHandComputedValues) {
  const std::vector<double> p = {0.9, 0.8, 0.7, 0.6, 0.55, 0.4, 0.3, 0.2};
  const std::vector<int64_t> y = {1, 1, 0, 1, 0, 0, 1, 0};
  const auto m = binary_metrics(p, y);
  EXPECT_EQ(m.count, 8);
  // >= 0.5: first five rows -> tp 3 (0.9 0.8 0.6), fp 2 (0.7 0.55); fn 1 (0.3), tn 2
  EXPECT_NEAR(m.accuracy, 5.0 / 8, kTol);
  EXPECT_NEAR(m.precision, 3.0 / 5, kTol);
  EXPECT_NEAR(m.recall, 3.0 / 4, kTol);
  // 2 * 0.6 * 0.75 / 1.35 = 0.6666667
  EXPECT_NEAR(m.f1, 2.0 / 3, kTol);
  // positive > negative pairs: 0.9 -> 4, 0.8 -> 4, 0.6 -> 3, 0.3 -> 1; 12 of 16
  EXPECT_NEAR(m.roc_auc, 0.75, kTol);
  // positives at ranks 1 2 4 7: precision 1, 1, 3/4, 4/7; AP = (2.75 + 0.5714286) / 4
  EXPECT_NEAR(m.pr_auc, 0.8303571, kTol);
}

TEST(MetricsBinary, TiesCountHalfAndFormOneStep) {
  // The positive comes first within each tie: grouping must not reward that order.
  const auto m = binary_metrics({0.8, 0.8, 0.5, 0.5, 0.2}, {1, 0, 1, 0, 0});
  // pairs (pos, neg): 0.8 vs 0.8 0.5 0.2 -> 0.5 + 1 + 1; 0.5 vs 0.8 0.5 0.2 -> 0 + 0.5 + 1
  // = 4 of 6
  EXPECT_NEAR(m.roc_auc, 4.0 / 6, kTol);
  // thresholds 0.8: tp 1 fp 1, precision 1/2, recall +1/2; 0.5: tp 2 fp 2, precision 1/2,
  // recall +1/2; AP = 0.25 + 0.25 = 0.5 (per row instead: (1 + 2/3) / 2 = 0.83)
  EXPECT_NEAR(m.pr_auc, 0.5, kTol);
}

TEST(MetricsBinary, ThresholdIsInclusive) {
  const auto m = binary_metrics({0.3, 0.3}, {1, 0}, 0.3);
  EXPECT_NEAR(m.recall, 1, kTol);
  EXPECT_NEAR(m.precision, 0.5, kTol);
  EXPECT_EQ(to_json(m)["threshold"], 0.3);
}

TEST(MetricsBinary, UndefinedAreasAreNull) {
  const auto no_positive = binary_metrics({0.9, 0.1}, {0, 0});
  EXPECT_TRUE(std::isnan(no_positive.roc_auc));
  EXPECT_TRUE(std::isnan(no_positive.pr_auc));
  EXPECT_EQ(no_positive.precision, 0);  // fp 1, tp 0
  EXPECT_EQ(no_positive.recall, 0);     // no positive: undefined -> 0
  const auto only_positive = binary_metrics({0.9, 0.1}, {1, 1});
  EXPECT_TRUE(std::isnan(only_positive.roc_auc));
  EXPECT_NEAR(only_positive.pr_auc, 1, kTol);  // every step has precision 1
  const auto json = to_json(no_positive);
  EXPECT_TRUE(json["roc_auc"].is_null());
  EXPECT_TRUE(json["pr_auc"].is_null());
  EXPECT_NE(format_table(no_positive).find("roc_auc       n/a\n"), std::string::npos) << format_table(no_positive);
}

TEST(MetricsBinary, RejectsBadInput) {
  EXPECT_THROW(binary_metrics({0.5}, {1, 0}), std::invalid_argument);
  EXPECT_THROW(binary_metrics({}, {}), std::invalid_argument);
  EXPECT_THROW(binary_metrics({0.5}, {2}), std::invalid_argument);
  EXPECT_THROW(binary_metrics({kNaN}, {1}), std::invalid_argument);
}

TEST(MetricsRanking, PerfectRanking) {
  const auto m = ranking_metrics({"q", "q", "q"}, {0.9, 0.5, 0.1}, {3, 2, 0});
  EXPECT_EQ(m.num_queries, 1);
  EXPECT_NEAR(m.ndcg_at_5, 1, kTol);
  EXPECT_NEAR(m.ndcg_at_10, 1, kTol);
  EXPECT_NEAR(m.mrr, 1, kTol);
}

TEST(MetricsRanking, WorstRanking) {
  const auto m = ranking_metrics({"q", "q", "q"}, {0.1, 0.5, 0.9}, {3, 2, 0});
  // ranked gains 0 2 3: DCG = 0 + 2 / log2(3) + 3 / log2(4) = 1.2618595 + 1.5 = 2.7618595
  // ideal 3 2 0: IDCG = 3 + 1.2618595 = 4.2618595; nDCG = 0.6480410
  EXPECT_NEAR(m.ndcg_at_10, 0.6480410, kTol);
  EXPECT_NEAR(m.ndcg_at_5, 0.6480410, kTol);
  EXPECT_NEAR(m.mrr, 1.0 / 3, kTol);  // the gain-3 result is at rank 3
  // random: mean gain 5/3 * (1 + 0.6309298 + 0.5) = 3.5515497; / 4.2618595 = 5/6
  EXPECT_NEAR(m.random_ndcg_at_10, 5.0 / 6, kTol);
}

TEST(MetricsRanking, CutoffsDifferBeyondRankFive) {
  // The only relevant result is ranked 6th of 7.
  const std::vector<std::string> ids(7, "q");
  const auto m = ranking_metrics(ids, {7, 6, 5, 4, 3, 2, 1}, {0, 0, 0, 0, 0, 1, 0});
  EXPECT_NEAR(m.ndcg_at_5, 0, kTol);                    // nothing relevant in the top 5
  EXPECT_NEAR(m.ndcg_at_10, 1 / std::log2(7.0), kTol);  // 1 / 2.8073549 = 0.3562072, IDCG 1
  EXPECT_NEAR(m.mrr, 1.0 / 6, kTol);
  // (1/7) * (1 + 0.6309298 + 0.5 + 0.4306766 + 0.3868528 + 0.3562072 + 0.3333333) = 3.6379997 / 7
  EXPECT_NEAR(m.random_ndcg_at_10, 0.5197142, kTol);
}

TEST(MetricsRanking, RandomBaselineIsTheExactExpectation) {
  // Brute force over all 120 orders of five results, against the closed form.
  const std::vector<double> gains = {3, 1, 0, 2, 1};
  std::vector<double> ideal = gains;
  std::sort(ideal.begin(), ideal.end(), std::greater<>());
  auto dcg = [](const std::vector<double>& g) {
    double sum = 0;
    for (size_t i = 0; i < g.size(); ++i) sum += g[i] / std::log2(static_cast<double>(i) + 2);
    return sum;
  };
  std::vector<size_t> positions(gains.size());
  std::iota(positions.begin(), positions.end(), size_t{0});
  double all_orders_total = 0;
  int all_orders = 0;
  do {
    std::vector<double> g;
    for (size_t p : positions) g.push_back(gains[p]);
    all_orders_total += dcg(g) / dcg(ideal);
    ++all_orders;
  } while (std::next_permutation(positions.begin(), positions.end()));
  ASSERT_EQ(all_orders, 120);

  const auto m = ranking_metrics(std::vector<std::string>(5, "q"), {5, 4, 3, 2, 1}, gains);
  EXPECT_NEAR(m.random_ndcg_at_10, all_orders_total / all_orders, 1e-9);
}

TEST(MetricsRanking, TiesKeepInputOrder) {
  const auto m = ranking_metrics({"q", "q"}, {0.5, 0.5}, {0, 1});
  EXPECT_NEAR(m.ndcg_at_10, kDiscount2, kTol);  // 1 / log2(3) = 0.6309298 over IDCG 1
  EXPECT_NEAR(m.mrr, 0.5, kTol);
}

TEST(MetricsRanking, AveragesOverCountedQueriesOnly) {
  const auto m = ranking_metrics({"perfect", "worst", "single", "perfect", "zero", "worst", "zero", "perfect", "worst"},
                                 {0.9, 0.1, 0.7, 0.5, 0.3, 0.5, 0.2, 0.1, 0.9}, {3, 3, 3, 2, 0, 2, 0, 0, 0});
  // "single" has one result and "zero" no positive gain: both ignored.
  EXPECT_EQ(m.num_queries, 2);
  // (1 + 0.6480410) / 2 = 0.8240205 (see PerfectRanking and WorstRanking)
  EXPECT_NEAR(m.ndcg_at_10, 0.8240205, kTol);
  EXPECT_NEAR(m.mrr, (1 + 1.0 / 3) / 2, kTol);
  // perfect: 5/3 * 2.1309298 / 4.2618595 = 5/6 too, as the gains are the same
  EXPECT_NEAR(m.random_ndcg_at_10, 5.0 / 6, kTol);
}

TEST(MetricsRanking, NoCountedQueryGivesNull) {
  const auto m = ranking_metrics({"a", "b", "b"}, {1, 2, 3}, {1, 0, 0});
  EXPECT_EQ(m.num_queries, 0);
  EXPECT_TRUE(std::isnan(m.ndcg_at_10));
  const auto json = to_json(m);
  EXPECT_EQ(json.dump(), R"({"num_queries":0,"ndcg_at_5":null,"ndcg_at_10":null,"mrr":null,"random_ndcg_at_10":null})");
}

TEST(MetricsRanking, RejectsBadInput) {
  EXPECT_THROW(ranking_metrics({"q"}, {1, 2}, {1, 2}), std::invalid_argument);
  EXPECT_THROW(ranking_metrics({"q", "q"}, {1, 2}, {1}), std::invalid_argument);
  EXPECT_THROW(ranking_metrics({}, {}, {}), std::invalid_argument);
  EXPECT_THROW(ranking_metrics({"q", "q"}, {1, 2}, {1, -1}), std::invalid_argument);
  EXPECT_THROW(ranking_metrics({"q", "q"}, {1, kNaN}, {1, 0}), std::invalid_argument);
}

TEST(MetricsRanking, JsonAndTableLayout) {
  const auto m = ranking_metrics({"q", "q", "q"}, {0.1, 0.5, 0.9}, {3, 2, 0});
  const auto json = to_json(m);
  std::vector<std::string> keys;
  for (const auto& item : json.items()) keys.push_back(item.key());
  EXPECT_EQ(keys, (std::vector<std::string>{"num_queries", "ndcg_at_5", "ndcg_at_10", "mrr", "random_ndcg_at_10"}));
  EXPECT_EQ(format_table(m),
            "metric              value\n"
            "num_queries             1\n"
            "ndcg_at_5          0.6480\n"
            "ndcg_at_10         0.6480\n"
            "mrr                0.3333\n"
            "random_ndcg_at_10  0.8333\n");
}


TEST(MetricsRegistry, FindsByKeyOrPath) {
  const MetricInfo* ndcg = find_metric("ndcg_at_10");
  ASSERT_NE(ndcg, nullptr);
  EXPECT_EQ(ndcg, find_metric("ranking.ndcg_at_10"));
  EXPECT_EQ(ndcg->path, "ranking.ndcg_at_10");
  EXPECT_EQ(ndcg->label, "nDCG@10");
  EXPECT_TRUE(ndcg->higher_is_better());
  EXPECT_TRUE(ndcg->gated);
  const MetricInfo* rmse = find_metric("rmse");
  ASSERT_NE(rmse, nullptr);
  EXPECT_EQ(rmse->direction, Direction::kLowerIsBetter);
  EXPECT_FALSE(rmse->higher_is_better());
  EXPECT_EQ(find_metric("count")->direction, Direction::kNeither);
  EXPECT_FALSE(find_metric("count")->gated);
  EXPECT_EQ(find_metric("ndcg"), nullptr);
  EXPECT_EQ(find_metric("ranking.rmse"), nullptr);  // a path names one place only
  EXPECT_EQ(find_metric(""), nullptr);
}

// Every scalar that to_json() writes has an entry at its path, and a gated metric has a
// direction, so that the gate and the report cannot miss a metric or compare it backwards.
TEST(MetricsRegistry, CoversEveryScalarToJsonWrites) {
  size_t seen = 0;
  auto check = [&](const nlohmann::ordered_json& object, const std::string& prefix) {
    for (auto it = object.begin(); it != object.end(); ++it) {
      if (it->is_structured()) continue;  // per_class, confusion_matrix
      const MetricInfo* info = find_metric(prefix + it.key());
      ASSERT_NE(info, nullptr) << prefix + it.key();
      EXPECT_EQ(info->path, prefix + it.key());
      EXPECT_EQ(info->key, it.key());
      ++seen;
    }
  };
  check(to_json(regression_metrics({1, 2, 3}, {1, 3, 2})), "");
  check(to_json(classification_metrics({0, 1, 1}, {0, 1, 0}, {"a", "b"})), "");
  check(to_json(binary_metrics({0.2, 0.7, 0.9}, {0, 1, 0})), "");
  check(to_json(ranking_metrics({"q", "q"}, {0.9, 0.1}, {1, 0})), "ranking.");
  EXPECT_EQ(seen, 6u + 5u + 8u + 5u);
  std::vector<std::string> keys;
  for (const MetricInfo& m : metric_registry()) {
    keys.push_back(m.key);
    EXPECT_FALSE(m.label.empty()) << m.key;
    if (m.gated) EXPECT_NE(m.direction, Direction::kNeither) << m.key;
  }
  std::sort(keys.begin(), keys.end());
  EXPECT_EQ(std::adjacent_find(keys.begin(), keys.end()), keys.end()) << "keys must be unique";
  EXPECT_EQ(metric_keys_list().rfind("count, mse, rmse, ", 0), 0u);
}

}  // namespace
}  // namespace dqe
