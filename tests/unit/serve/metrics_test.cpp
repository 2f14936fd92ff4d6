#include "serve/metrics.h"

#include <cmath>
#include <sstream>

#include <gtest/gtest.h>

#include "dqe/scorer.h"

namespace dqe::service {
namespace {

TEST(Metrics, HistogramBucketsAreCumulativeWithSumAndCount) {
  Metrics m({1, 2, 3}, 100);
  m.scored("quality", {0.5, 1.0, 1.5, 2.5, 9.0});
  const std::string text = m.text();
  // A score on a bound counts in that bucket (le: less or equal).
  EXPECT_NE(text.find("dqe_score_bucket{model=\"quality\",le=\"1\"} 2\n"), std::string::npos) << text;
  EXPECT_NE(text.find("dqe_score_bucket{model=\"quality\",le=\"2\"} 3\n"), std::string::npos);
  EXPECT_NE(text.find("dqe_score_bucket{model=\"quality\",le=\"3\"} 4\n"), std::string::npos);
  EXPECT_NE(text.find("dqe_score_bucket{model=\"quality\",le=\"+Inf\"} 5\n"), std::string::npos);
  EXPECT_NE(text.find("dqe_score_sum{model=\"quality\"} 14.5\n"), std::string::npos);
  EXPECT_NE(text.find("dqe_score_count{model=\"quality\"} 5\n"), std::string::npos);
  EXPECT_NE(text.find("dqe_scored_lines_total{model=\"quality\"} 5\n"), std::string::npos);
  EXPECT_NE(text.find("dqe_queue_capacity 100\n"), std::string::npos);
}

TEST(Metrics, RequestsAreCountedByRouteAndCode) {
  Metrics m({}, 10);
  m.request("infer", 200, 0.003);
  m.request("infer", 200, 0.2);
  m.request("infer", 400, 0.001);
  const std::string text = m.text();
  EXPECT_NE(text.find("dqe_requests_total{route=\"infer\",code=\"200\"} 2\n"), std::string::npos) << text;
  EXPECT_NE(text.find("dqe_requests_total{route=\"infer\",code=\"400\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("dqe_request_duration_seconds_bucket{route=\"infer\",le=\"0.005\"} 2\n"), std::string::npos);
  EXPECT_NE(text.find("dqe_request_duration_seconds_count{route=\"infer\"} 3\n"), std::string::npos);
  // Every family has HELP and TYPE once.
  std::istringstream lines(text);
  int types = 0;
  for (std::string line; std::getline(lines, line);) types += line.rfind("# TYPE ", 0) == 0;
  EXPECT_EQ(types, 15);
}

TEST(Metrics, LabelValuesAndSamplesAreWrittenAsTheFormatWants) {
  EXPECT_EQ(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
  EXPECT_EQ(sample_text(0.1), "0.1");
  EXPECT_EQ(sample_text(1e-7), "1e-07");
  EXPECT_EQ(sample_text(std::nan("")), "NaN");
  EXPECT_EQ(sample_text(-INFINITY), "-Inf");
  EXPECT_EQ(std::stod(sample_text(1.0 / 3)), 1.0 / 3) << "round-trips";
}

// The window's PSI is the formula over the last `window` scores, worked by hand here.
TEST(Metrics, TheDriftWindowIsThePsiOfItsLastScores) {
  ScoreReference ref;
  ref.edges = {0.5};
  ref.fractions = {0.5, 0.5};
  DriftWindow w(ref, 200);
  for (int i = 0; i < 99; ++i) w.add(0.0);
  EXPECT_TRUE(std::isnan(w.psi())) << "fewer than kMinDriftLines";
  w.add(0.0);
  // 100 scores, all in bin 0: (1 - .5) ln(1 / .5) + (1e-4 - .5) ln(1e-4 / .5).
  const double all_low = 0.5 * std::log(2.0) + (1e-4 - 0.5) * std::log(1e-4 / 0.5);
  EXPECT_NEAR(w.psi(), all_low, 1e-9);
  for (int i = 0; i < 100; ++i) w.add(1.0);
  EXPECT_NEAR(w.psi(), 0.0, 1e-12) << "half and half, as on dev";
  for (int i = 0; i < 200; ++i) w.add(1.0);  // the low scores leave the window
  EXPECT_EQ(w.lines(), 200);
  EXPECT_NEAR(w.psi(), all_low, 1e-9) << "all high mirrors all low";
}

}  // namespace
}  // namespace dqe::service
