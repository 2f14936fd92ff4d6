#include "dqe/gate.h"

#include <gtest/gtest.h>

#include "dqe/errors.h"
#include "test_util.h"

namespace dqe {
namespace {

const nlohmann::json kMetrics = nlohmann::json::parse(
    R"({"rmse": 0.50, "pearson": 0.60, "ranking": {"ndcg_at_10": 0.90, "mrr": 0.70}, "count": 10})");

TEST(Gate, PassesWithinTolerance) {
  test::TempDir dir;
  test::write_text(dir.path("base.json"), R"({"rmse": 0.495, "pearson": 0.605, "ranking": {"ndcg_at_10": 0.905}})");
  GateConfig g;
  g.baseline = dir.path("base.json");
  g.max_regression = 0.01;
  EXPECT_TRUE(check_gates(kMetrics, g).empty());
}

TEST(Gate, NamesTheMetricAndBothValuesWhenWorse) {
  test::TempDir dir;
  // rmse got worse by 0.05 (lower is better); ndcg_at_10 by 0.02; pearson improved.
  test::write_text(dir.path("base.json"), R"({"rmse": 0.45, "pearson": 0.50, "ranking": {"ndcg_at_10": 0.92}})");
  GateConfig g;
  g.baseline = dir.path("base.json");
  g.max_regression = 0.01;
  auto failures = check_gates(kMetrics, g);
  ASSERT_EQ(failures.size(), 2u);
  EXPECT_EQ(failures[0], "rmse 0.5000 is worse than the baseline 0.4500 by 0.0500 (allowed 0.0100)");
  EXPECT_EQ(failures[1], "ranking.ndcg_at_10 0.9000 is worse than the baseline 0.9200 by 0.0200 (allowed 0.0100)");
}

TEST(Gate, FloorsAndCeilings) {
  GateConfig g;
  g.fail_under = {"pearson=0.7", "ranking.mrr=0.5"};
  g.fail_over = {"rmse=0.4"};
  auto failures = check_gates(kMetrics, g);
  ASSERT_EQ(failures.size(), 2u);
  EXPECT_EQ(failures[0], "pearson 0.6000 is below the floor 0.7000");
  EXPECT_EQ(failures[1], "rmse 0.5000 is above the ceiling 0.4000");
}

TEST(Gate, BadBoundsAreUsageErrors) {
  GateConfig g;
  g.fail_under = {"pearson"};
  EXPECT_THROW(check_gates(kMetrics, g), ConfigError);
  g.fail_under = {"pearson=high"};
  EXPECT_THROW(check_gates(kMetrics, g), ConfigError);
  g.fail_under = {"accuracy=0.5"};  // not in regression results
  EXPECT_THROW(check_gates(kMetrics, g), ConfigError);
  g.fail_under = {};
  g.baseline = "/nonexistent/base.json";
  EXPECT_THROW(check_gates(kMetrics, g), IoError);
}

TEST(Gate, MetricValueReadsNestedKeys) {
  EXPECT_DOUBLE_EQ(metric_value(kMetrics, "ranking.mrr"), 0.70);
  EXPECT_TRUE(std::isnan(metric_value(kMetrics, "ranking.nope")));
  EXPECT_TRUE(std::isnan(metric_value(kMetrics, "rmse.x")));
}

}  // namespace
}  // namespace dqe
