#include "dqe/gate.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "dqe/errors.h"
#include "dqe/evaluator.h"
#include "test_util.h"

namespace dqe {
namespace {

const nlohmann::json kMetrics = nlohmann::json::parse(
    R"({"count": 10, "rmse": 0.50, "pearson": 0.60, "ranking": {"ndcg_at_10": 0.90, "mrr": 0.70}})");

// The message of the ConfigError that f throws; fails the test when it throws none.
template <typename F>
std::string config_error(F f) {
  try {
    f();
  } catch (const ConfigError& e) {
    return e.what();
  }
  ADD_FAILURE() << "no ConfigError";
  return "";
}

class GateTest : public ::testing::Test {
 protected:
  // A gate against a baseline holding json_text.
  GateConfig with_baseline(const std::string& json_text) {
    test::write_text(dir_.path("base.json"), json_text);
    GateConfig g;
    g.baseline = dir_.path("base.json");
    return g;
  }
  test::TempDir dir_;
};

TEST_F(GateTest, PassesWithinToleranceAndSummarisesEachComparison) {
  GateConfig g = with_baseline(R"({"rmse": 0.495, "pearson": 0.605, "ranking": {"ndcg_at_10": 0.905}})");
  g.max_regression = 0.01;
  const GateResult r = Gate(g).check(kMetrics);
  EXPECT_TRUE(r.passed());
  EXPECT_EQ(r.summary(),
            "rmse 0.5000 <= baseline 0.4950 + 0.0100 ok; pearson 0.6000 >= baseline 0.6050 - 0.0100 ok; "
            "ndcg_at_10 0.9000 >= baseline 0.9050 - 0.0100 ok: passed");
}

TEST_F(GateTest, NamesTheMetricAndBothValuesWhenWorse) {
  // rmse got worse by 0.05 (lower is better); ndcg_at_10 by 0.02; pearson improved.
  GateConfig g = with_baseline(R"({"rmse": 0.45, "pearson": 0.50, "ranking": {"ndcg_at_10": 0.92}})");
  g.max_regression = 0.01;
  const GateResult r = Gate(g).check(kMetrics);
  ASSERT_EQ(r.failures.size(), 2u);
  EXPECT_EQ(r.failures[0], "rmse 0.5000 is worse than the baseline 0.4500 by 0.0500 (allowed 0.0100)");
  // Named as eval prints it, not by its JSON path.
  EXPECT_EQ(r.failures[1], "ndcg_at_10 0.9000 is worse than the baseline 0.9200 by 0.0200 (allowed 0.0100)");
  EXPECT_EQ(r.summary(),
            "rmse 0.5000 <= baseline 0.4500 + 0.0100 failed; pearson 0.6000 >= baseline 0.5000 - 0.0100 ok; "
            "ndcg_at_10 0.9000 >= baseline 0.9200 - 0.0100 failed: failed (2 of 3)");
}

TEST_F(GateTest, DefaultToleranceAndZeroTolerance) {
  GateConfig g = with_baseline(R"({"rmse": 0.491})");  // worse by 0.009 <= 0.01, the default
  EXPECT_TRUE(Gate(g).check(kMetrics).passed());
  g.max_regression = 0.0;
  EXPECT_FALSE(Gate(g).check(kMetrics).passed());
  // A run compared with its own metrics passes even with no tolerance.
  test::write_text(g.baseline, kMetrics.dump());
  EXPECT_TRUE(Gate(g).check(kMetrics).passed());
}

TEST_F(GateTest, FloorsAndCeilings) {
  GateConfig g;
  g.fail_under = {"pearson=0.7", "ranking.mrr=0.5"};
  g.fail_over = {"rmse=0.4"};
  const GateResult r = Gate(g).check(kMetrics);
  ASSERT_EQ(r.failures.size(), 2u);
  EXPECT_EQ(r.failures[0], "pearson 0.6000 is below the floor 0.7000");
  EXPECT_EQ(r.failures[1], "rmse 0.5000 is above the ceiling 0.4000");
  EXPECT_EQ(r.summary(), "pearson 0.6000 >= 0.7000 failed; mrr 0.7000 >= 0.5000 ok; rmse 0.5000 <= 0.4000 failed: "
                         "failed (2 of 3)");
}

TEST_F(GateTest, AcceptsPrintedNamesAndJsonPaths) {
  for (const char* bound : {"ndcg_at_10=0.95", "ranking.ndcg_at_10=0.95"}) {
    GateConfig g;
    g.fail_under = {bound};
    const GateResult r = Gate(g).check(kMetrics);
    ASSERT_EQ(r.failures.size(), 1u) << bound;
    EXPECT_EQ(r.failures[0], "ndcg_at_10 0.9000 is below the floor 0.9500") << bound;
  }
}

TEST_F(GateTest, CountsReadAsCounts) {
  GateConfig g;
  g.fail_under = {"count=20"};
  const GateResult r = Gate(g).check(kMetrics);
  ASSERT_EQ(r.failures.size(), 1u);
  EXPECT_EQ(r.failures[0], "count 10 is below the floor 20");
}

TEST_F(GateTest, MalformedOrUnknownBoundsFailWhenTheGateIsBuilt) {
  GateConfig g;
  g.fail_under = {"pearson"};
  EXPECT_EQ(config_error([&] { Gate{g}; }), "--fail-under expects metric=value, got \"pearson\"");
  g.fail_under = {"pearson=high"};
  EXPECT_EQ(config_error([&] { Gate{g}; }), "--fail-under expects a number after \"pearson=\", got \"high\"");
  g.fail_under = {"ndcg=0.9"};
  const std::string msg = config_error([&] { Gate{g}; });
  EXPECT_EQ(msg.rfind("--fail-under: unknown metric \"ndcg\" (valid: count, mse, rmse, ", 0), 0u) << msg;
  EXPECT_NE(msg.find("ndcg_at_10"), std::string::npos) << msg;
}

TEST_F(GateTest, NonFiniteBoundsAreUsageErrors) {
  GateConfig g;
  g.fail_over = {"rmse=nan"};
  EXPECT_EQ(config_error([&] { Gate{g}; }), "--fail-over rmse=nan: the bound must be a finite number");
  g.fail_over = {"rmse=inf"};
  EXPECT_THROW(Gate{g}, ConfigError);
  g.fail_over = {};
  g.fail_under = {"pearson=-inf"};
  EXPECT_THROW(Gate{g}, ConfigError);
}

TEST_F(GateTest, MaxRegressionMustBeFiniteAndNonNegative) {
  GateConfig g = with_baseline(R"({"rmse": 0.5})");
  for (double bad : {std::numeric_limits<double>::quiet_NaN(), -0.01, std::numeric_limits<double>::infinity()}) {
    g.max_regression = bad;
    const std::string msg = config_error([&] { Gate{g}; });
    EXPECT_EQ(msg.rfind("--max-regression must be a finite number >= 0, got ", 0), 0u) << msg;
  }
}

TEST_F(GateTest, MaxRegressionNeedsABaseline) {
  GateConfig g;
  g.max_regression = 0.01;
  EXPECT_EQ(config_error([&] { Gate{g}; }), "--max-regression needs --baseline (there is nothing to regress from)");
}

TEST_F(GateTest, ABaselineWithNothingToCompareIsAUsageError) {
  for (const char* text : {"{}", R"({"rmse": null, "ranking": {"ndcg_at_10": null}})",
                           R"({"count": 40, "threshold": 0.5, "data": "dev.jsonl"})"}) {
    const GateConfig g = with_baseline(text);
    const std::string msg = config_error([&] { Gate{g}; });
    EXPECT_EQ(msg, "--baseline " + g.baseline + ": no gated metric with a value, nothing to compare (gated: mse, "
                   "rmse, mae, pearson, spearman, accuracy, macro_f1, micro_f1, quadratic_weighted_kappa, f1, roc_auc, "
                   "pr_auc, ndcg_at_5, ndcg_at_10, mrr)")
        << text;
  }
  for (const char* text : {"", "[0.5]", "{\"rmse\": "}) {
    const GateConfig g = with_baseline(text);
    const std::string msg = config_error([&] { Gate{g}; });
    EXPECT_EQ(msg.rfind("--baseline " + g.baseline + ": ", 0), 0u) << text << ": " << msg;
  }
}

TEST_F(GateTest, AnUnreadableBaselineNamesTheFlag) {
  GateConfig g;
  g.baseline = dir_.path("missing.json");
  try {
    Gate{g};
    ADD_FAILURE() << "no IoError";
  } catch (const IoError& e) {
    EXPECT_EQ(std::string(e.what()).rfind("--baseline " + g.baseline + ": cannot open", 0), 0u) << e.what();
  }
}

// The baseline's content is taken when the gate is built, so that writing --metrics-out
// over the same file afterwards cannot change what the run is compared with.
TEST_F(GateTest, TheBaselineIsReadWhenTheGateIsBuilt) {
  GateConfig g = with_baseline(R"({"rmse": 0.40})");
  const Gate gate(g);
  test::write_text(g.baseline, kMetrics.dump());
  const GateResult r = gate.check(kMetrics);
  ASSERT_EQ(r.failures.size(), 1u);
  EXPECT_EQ(r.failures[0], "rmse 0.5000 is worse than the baseline 0.4000 by 0.1000 (allowed 0.0100)");
}

TEST_F(GateTest, NoMetricInCommonWithTheRunIsAUsageError) {
  const Gate gate(with_baseline(R"({"accuracy": 0.8, "macro_f1": 0.7})"));
  EXPECT_EQ(config_error([&] { gate.check(kMetrics); }),
            "--baseline " + dir_.path("base.json") +
                ": no gated metric in common with this run (baseline: accuracy, macro_f1; this run: count, rmse, "
                "pearson, ndcg_at_10, mrr)");
}

TEST_F(GateTest, ABaselineMetricTheRunDidNotProduceIsAUsageError) {
  // No ranking metrics this time (no query with two results): nothing to compare nDCG with.
  const Gate gate(with_baseline(R"({"rmse": 0.5, "ranking": {"ndcg_at_10": 0.9}})"));
  const nlohmann::json run = nlohmann::json::parse(R"({"count": 10, "rmse": 0.5, "pearson": 0.6})");
  EXPECT_EQ(config_error([&] { gate.check(run); }),
            "--baseline " + dir_.path("base.json") +
                " has ndcg_at_10, which this run did not produce (it has: count, rmse, pearson)");
}

TEST_F(GateTest, ABoundOnAMetricTheRunDidNotProduceIsAUsageError) {
  GateConfig g;
  g.fail_under = {"accuracy=0.5"};  // a classification metric; these are regression results
  const Gate gate(g);               // a known metric: only the run can tell
  EXPECT_EQ(config_error([&] { gate.check(kMetrics); }),
            "--fail-under accuracy: this run has no such metric (it has: count, rmse, pearson, ndcg_at_10, mrr)");
}

TEST_F(GateTest, AMetricUndefinedInTheRunFails) {
  // Constant predictions: Pearson is null. That is a regression, not something to skip.
  const nlohmann::json run = nlohmann::json::parse(R"({"count": 10, "rmse": 0.5, "pearson": null})");
  GateConfig g = with_baseline(R"({"rmse": 0.5, "pearson": 0.6})");
  GateResult r = Gate(g).check(run);
  ASSERT_EQ(r.failures.size(), 1u);
  EXPECT_EQ(r.failures[0], "pearson is undefined (null) in this run; the baseline has 0.6000");
  EXPECT_EQ(r.summary(),
            "rmse 0.5000 <= baseline 0.5000 + 0.0100 ok; pearson n/a >= baseline 0.6000 - 0.0100 failed: "
            "failed (1 of 2)");

  GateConfig floor;
  floor.fail_under = {"pearson=0.5"};
  r = Gate(floor).check(run);
  ASSERT_EQ(r.failures.size(), 1u);
  EXPECT_EQ(r.failures[0], "pearson is undefined (null) in this run; the floor is 0.5000");
}

TEST_F(GateTest, NoFlagsNoGate) {
  EXPECT_FALSE(Gate(GateConfig{}).active());
  GateConfig g;
  g.fail_over = {"rmse=1"};
  EXPECT_TRUE(Gate(g).active());
}

TEST(GateMetricValue, ReadsNestedKeys) {
  EXPECT_DOUBLE_EQ(metric_value(kMetrics, "ranking.mrr"), 0.70);
  EXPECT_TRUE(std::isnan(metric_value(kMetrics, "ranking.nope")));
  EXPECT_TRUE(std::isnan(metric_value(kMetrics, "rmse.x")));
}

// --gate-metric: only the metrics named are compared, each with its own tolerance, absolute or
// a share of the baseline (worked by hand: ndcg_at_10 0.92 x 0.5% = 0.0046, and 0.90 is worse
// by 0.02; pearson would fail at the default 0.01, and is not compared).
TEST_F(GateTest, GateMetricsHaveTheirOwnAbsoluteOrRelativeTolerances) {
  GateConfig g = with_baseline(R"({"rmse": 0.497, "pearson": 0.70, "ranking": {"ndcg_at_10": 0.904}})");
  g.gate_metrics = {"rmse=0.005", "ndcg_at_10=0.5%"};
  GateResult r = Gate(g).check(kMetrics);
  EXPECT_TRUE(r.passed()) << r.summary();
  EXPECT_EQ(r.summary(),
            "rmse 0.5000 <= baseline 0.4970 + 0.0050 ok; ndcg_at_10 0.9000 >= baseline 0.9040 - 0.5% (0.0045) ok: "
            "passed");
  g = with_baseline(R"({"rmse": 0.497, "ranking": {"ndcg_at_10": 0.92}})");
  g.gate_metrics = {"ndcg_at_10=0.5%", "rmse"};
  g.max_regression = 0.001;
  r = Gate(g).check(kMetrics);
  ASSERT_EQ(r.failures.size(), 2u) << r.summary();
  EXPECT_EQ(r.failures[0], "ndcg_at_10 0.9000 is worse than the baseline 0.9200 by 0.0200 (allowed 0.0046)");
  EXPECT_EQ(r.failures[1], "rmse 0.5000 is worse than the baseline 0.4970 by 0.0030 (allowed 0.0010)");

  GateConfig bad;
  bad.gate_metrics = {"rmse=0.01"};
  EXPECT_NE(config_error([&] { Gate{bad}; }).find("--gate-metric needs --baseline"), std::string::npos);
  for (const auto& [text, says] : std::vector<std::pair<std::string, std::string>>{
           {"rmse=-1", "must be finite and >= 0"},
           {"rmse=abc", "expected a tolerance"},
           {"rmse=nan%", "must be finite"},
           {"bogus=1", "unknown metric \"bogus\""},
           {"mrr", "has no value for it"}}) {
    GateConfig c = with_baseline(R"({"rmse": 0.5})");
    c.gate_metrics = {text};
    EXPECT_NE(config_error([&] { Gate{c}; }).find(says), std::string::npos) << text;
  }
}

// A baseline measured on other data is refused unless asked for; one without a fingerprint
// (written before eval recorded it) is compared as before.
TEST_F(GateTest, ABaselineOfOtherDataIsRefusedUnlessAllowed) {
  nlohmann::json run = kMetrics;
  run["data"] = "dev.jsonl";
  run["data_fingerprint"] = {{"records", 10}, {"hash", "bbbb"}};
  GateConfig g = with_baseline(
      R"({"rmse": 0.5, "data": "old.jsonl", "data_fingerprint": {"records": 12, "hash": "aaaa"}})");
  const std::string why = config_error([&] { Gate(g).check(run); });
  EXPECT_NE(why.find("was measured on other data (old.jsonl: 12 records, fingerprint aaaa; this run: dev.jsonl: 10 "
                     "records, fingerprint bbbb)"),
            std::string::npos)
      << why;
  EXPECT_NE(why.find("--allow-other-data"), std::string::npos) << why;
  g.allow_other_data = true;
  EXPECT_TRUE(Gate(g).check(run).passed());
  GateConfig same = with_baseline(R"({"rmse": 0.5, "data_fingerprint": {"records": 10, "hash": "bbbb"}})");
  EXPECT_TRUE(Gate(same).check(run).passed());
  GateConfig old = with_baseline(R"({"rmse": 0.5})");
  EXPECT_TRUE(Gate(old).check(run).passed());
  GateConfig alone;
  alone.allow_other_data = true;
  EXPECT_NE(config_error([&] { Gate{alone}; }).find("--allow-other-data needs --baseline"), std::string::npos);
}

// The fingerprint is of the records' content: the same records give the same one, and a
// changed label, text or query id another.
TEST(DataFingerprint, IsOfTheRecordsContent) {
  std::vector<Record> a(2);
  a[0].query = "drill";
  a[0].text = "cordless drill";
  a[0].query_id = "q1";
  a[0].label_kind = LabelKind::kNumber;
  a[0].label_number = 3;
  a[1] = a[0];
  a[1].text = "hammer";
  a[1].line = 7;  // where a record was read does not matter
  std::vector<Record> b = a;
  b[0].line = 40;
  EXPECT_EQ(data_fingerprint(a), data_fingerprint(b));
  EXPECT_EQ(data_fingerprint(a).size(), 16u);
  b[1].label_number = 2;
  EXPECT_NE(data_fingerprint(a), data_fingerprint(b));
  b = a;
  b[1].query_id = "q2";
  EXPECT_NE(data_fingerprint(a), data_fingerprint(b));
  b = a;
  std::swap(b[0].text, b[1].text);
  EXPECT_NE(data_fingerprint(a), data_fingerprint(b));
}

}  // namespace
}  // namespace dqe
