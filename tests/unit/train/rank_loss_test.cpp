// The ranking losses against values derived by hand from their papers' formulas, and the batches
// of whole query groups they train on.
#include "train/rank_loss.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <set>

#include "dqe/errors.h"
#include "model/heads/task_head.h"

namespace dqe::training {
namespace {

double softplus(double x) { return std::log1p(std::exp(x)); }

double loss_of(RankLoss kind, std::vector<float> s, std::vector<float> g,
               std::vector<std::pair<int64_t, int64_t>> groups) {
  return rank_loss(kind, torch::tensor(s), torch::tensor(g), groups).item<double>();
}

TEST(RankLoss, ListNetIsTheCrossEntropyOfTopOneProbabilities) {
  // Equal scores: log 2 whatever the gains.
  EXPECT_NEAR(loss_of(RankLoss::kListNet, {0, 0}, {1, 0}, {{0, 2}}), std::log(2.0), 1e-6);
  // s = (ln 3, 0): top-one probabilities 3/4 and 1/4; gains (1, 0): e/(1+e) and 1/(1+e).
  const double p = std::exp(1.0) / (1 + std::exp(1.0));
  EXPECT_NEAR(loss_of(RankLoss::kListNet, {static_cast<float>(std::log(3.0)), 0}, {1, 0}, {{0, 2}}),
              -(p * std::log(0.75) + (1 - p) * std::log(0.25)), 1e-6);
}

TEST(RankLoss, RankNetIsTheMeanLogisticLossOfTheOrderedPairs) {
  // Pairs (0,1), (0,2), (1,2) of gains (2, 1, 0), scores (1, 0, 2): s_j - s_i = -1, 1, 2.
  EXPECT_NEAR(loss_of(RankLoss::kRankNet, {1, 0, 2}, {2, 1, 0}, {{0, 3}}),
              (softplus(-1) + softplus(1) + softplus(2)) / 3, 1e-6);
  // Well ordered by a wide margin: almost nothing to learn.
  EXPECT_LT(loss_of(RankLoss::kRankNet, {30, 15, 0}, {2, 1, 0}, {{0, 3}}), 1e-6);
}

TEST(RankLoss, LambdaLossWeightsEachPairByItsNdcgLoss2Delta) {
  // Two results, the relevant one ranked second: delta(1) = 1/log2(2) - 1/log2(3), G = (1, 0).
  const double delta1 = 1 - 1 / std::log2(3.0), delta2 = 1 / std::log2(3.0) - 1 / std::log2(4.0);
  EXPECT_NEAR(loss_of(RankLoss::kLambdaLoss, {0, 1}, {1, 0}, {{0, 2}}), delta1 * softplus(1) / std::log(2.0), 1e-6);
  // Three results in reverse order: scores (0, 1, 2), gains (2, 1, 0), so ranks (3, 2, 1);
  // exponential gains (3, 1, 0) over the ideal DCG 3 + 1/log2(3).
  const double ideal = 3 + 1 / std::log2(3.0);
  const double g0 = 3 / ideal, g1 = 1 / ideal;
  const double expected =
      (delta1 * (g0 - g1) * softplus(1) + delta2 * g0 * softplus(2) + delta1 * g1 * softplus(1)) / std::log(2.0);
  EXPECT_NEAR(loss_of(RankLoss::kLambdaLoss, {0, 1, 2}, {2, 1, 0}, {{0, 3}}), expected, 1e-6);
}

TEST(RankLoss, AveragesOverTheGroupsThatOrderAPair) {
  // The second group's results are judged alike and the third has one: only the first counts.
  for (RankLoss kind : {RankLoss::kListNet, RankLoss::kRankNet, RankLoss::kLambdaLoss}) {
    const double alone = loss_of(kind, {0, 1}, {1, 0}, {{0, 2}});
    EXPECT_NEAR(loss_of(kind, {0, 1, 5, -3, 7}, {1, 0, 2, 2, 1}, {{0, 2}, {2, 4}, {4, 5}}), alone, 1e-6);
    // Two groups: the mean of their losses.
    const double other = loss_of(kind, {2, 0, 1}, {0, 1, 2}, {{0, 3}});
    EXPECT_NEAR(loss_of(kind, {0, 1, 2, 0, 1}, {1, 0, 0, 1, 2}, {{0, 2}, {2, 5}}), (alone + other) / 2, 1e-6);
  }
  // Nothing to rank: zero, and the graph is kept for backward.
  torch::Tensor s = torch::tensor(std::vector<float>{1, 2}).requires_grad_();
  torch::Tensor none = rank_loss(RankLoss::kListNet, s, torch::tensor(std::vector<float>{1, 1}), {{0, 2}});
  EXPECT_EQ(none.item<double>(), 0);
  none.backward();
  EXPECT_EQ(s.grad().abs().sum().item<double>(), 0);
}

TEST(RankLoss, AGradientStepRaisesTheMoreRelevantResult) {
  for (RankLoss kind : {RankLoss::kListNet, RankLoss::kRankNet, RankLoss::kLambdaLoss}) {
    torch::Tensor s = torch::tensor(std::vector<float>{0, 1, 0.5}).requires_grad_();
    rank_loss(kind, s, torch::tensor(std::vector<float>{2, 0, 1}), {{0, 3}}).backward();
    EXPECT_LT(s.grad()[0].item<double>(), 0);  // descending the gradient raises the best result
    EXPECT_GT(s.grad()[1].item<double>(), 0);  // and lowers the worst
  }
}

TEST(RankLoss, ParsesTheFlagsChoicesAndNamesTheRest) {
  EXPECT_EQ(parse_rank_loss("lambdaloss"), RankLoss::kLambdaLoss);
  EXPECT_EQ(parse_rank_loss("none"), RankLoss::kNone);
  EXPECT_THROW(parse_rank_loss("lambdarank"), ConfigError);
}

TEST(RankLoss, ClassificationRanksByTheExpectedClass) {
  const TaskHead& head = task_head(Task::kClassification);
  const torch::Tensor logits = torch::tensor(std::vector<float>{0, 0, 0, 0, 0, 100}).view({2, 3});
  const torch::Tensor s = head.rank_scores(logits);
  EXPECT_NEAR(s[0].item<double>(), 1.0, 1e-6);  // uniform over classes 0, 1, 2
  EXPECT_NEAR(s[1].item<double>(), 2.0, 1e-6);
  EXPECT_NEAR(task_head(Task::kRegression).rank_scores(logits.slice(1, 0, 1))[1].item<double>(), 0, 1e-6);
}

// Groups of sizes 1..9 (45 rows), interleaved as a log would have them.
std::vector<int64_t> interleaved_groups() {
  std::vector<int64_t> group_of_row;
  for (int64_t round = 0; round < 9; ++round)
    for (int64_t g = round; g < 9; ++g) group_of_row.push_back(g);
  return group_of_row;
}

TEST(PlanGroupBatches, PacksWholeGroupsOnceEachWithinTheBatchSize) {
  const std::vector<int64_t> group_of_row = interleaved_groups();
  const auto batches = plan_group_batches(group_of_row, 12, 12, 7);
  std::multiset<size_t> seen;
  for (const auto& rows : batches) {
    ASSERT_FALSE(rows.empty());
    EXPECT_LE(rows.size(), 12u);
    std::vector<int64_t> groups;
    for (size_t r : rows) seen.insert(r), groups.push_back(group_of_row[r]);
    // Each group in one run of neighbours, whole.
    std::set<int64_t> runs;
    for (const auto& [begin, end] : group_ranges(groups)) {
      EXPECT_TRUE(runs.insert(groups[static_cast<size_t>(begin)]).second) << "group split within a batch";
      EXPECT_EQ(end - begin, groups[static_cast<size_t>(begin)] + 1);  // group g has g + 1 rows
    }
  }
  EXPECT_EQ(seen.size(), group_of_row.size());
  EXPECT_EQ(std::set<size_t>(seen.begin(), seen.end()).size(), group_of_row.size());
  EXPECT_EQ(plan_group_batches(group_of_row, 12, 12, 7), batches);
  EXPECT_NE(plan_group_batches(group_of_row, 12, 12, 8), batches);
}

TEST(PlanGroupBatches, DrawsCapRowsOfALargerGroupAnewEachEpoch) {
  const std::vector<int64_t> group_of_row = interleaved_groups();
  std::set<std::vector<size_t>> draws;
  for (uint64_t seed = 0; seed < 5; ++seed) {
    std::map<int64_t, std::vector<size_t>> rows_of;
    for (const auto& rows : plan_group_batches(group_of_row, 8, 4, seed))
      for (size_t r : rows) rows_of[group_of_row[r]].push_back(r);
    ASSERT_EQ(rows_of.size(), 9u);
    for (const auto& [g, rows] : rows_of) EXPECT_EQ(rows.size(), static_cast<size_t>(std::min<int64_t>(g + 1, 4)));
    draws.insert(rows_of[8]);
  }
  EXPECT_GT(draws.size(), 1u);
}

}  // namespace
}  // namespace dqe::training
