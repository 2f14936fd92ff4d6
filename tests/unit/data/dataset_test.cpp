// Batch plans and padding: the pieces every run's numbers depend on.
#include "data/dataset.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "dqe/errors.h"

namespace dqe {
namespace {

TEST(PlanTrainingBatches, EveryRowOnceInSizedBatchesOfSimilarLength) {
  std::vector<size_t> lengths;
  for (size_t i = 0; i < 103; ++i) lengths.push_back(5 + (i * 37) % 60);
  const auto plan = plan_training_batches(lengths, 8, 42);
  ASSERT_EQ(plan.size(), 13u);  // 103 rows in batches of 8: 12 full and one of 7
  std::multiset<size_t> seen;
  size_t short_batches = 0;
  for (const auto& batch : plan) {
    EXPECT_LE(batch.size(), 8u);
    short_batches += batch.size() < 8;
    seen.insert(batch.begin(), batch.end());
    for (size_t i = 1; i < batch.size(); ++i) EXPECT_LE(lengths[batch[i - 1]], lengths[batch[i]]);
  }
  EXPECT_EQ(short_batches, 1u);
  ASSERT_EQ(seen.size(), lengths.size());
  for (size_t i = 0; i < lengths.size(); ++i) EXPECT_EQ(seen.count(i), 1u);
}

// The plan is the run's data order: a change to it changes every result, so it is pinned
// (libstdc++'s std::shuffle over mt19937_64).
TEST(PlanTrainingBatches, PinnedForASeed) {
  const std::vector<size_t> lengths = {9, 3, 7, 3, 12, 5, 8, 4, 6, 10};
  const auto plan = plan_training_batches(lengths, 3, 7);
  const std::vector<std::vector<size_t>> want = {{5, 8, 2}, {4}, {6, 0, 9}, {3, 1, 7}};
  EXPECT_EQ(plan, want);
  EXPECT_EQ(plan_training_batches(lengths, 3, 7), plan);
  EXPECT_NE(plan_training_batches(lengths, 3, 8), plan);
}

TEST(PlanInferenceBatches, LongestFirstInInputOrderForTies) {
  const auto plan = plan_inference_batches({4, 9, 4, 7, 9}, 2);
  EXPECT_EQ(plan, (std::vector<std::vector<size_t>>{{1, 4}, {3, 0}, {2}}));
}

TEST(Collate, PadsWithThePadIdAndMasksThePadding) {
  std::vector<Encoding> inputs(2);
  inputs[0].ids = {2, 10, 3};
  inputs[0].type_ids = {0, 0, 0};
  inputs[1].ids = {2, 11, 12, 3, 13};
  inputs[1].type_ids = {0, 0, 0, 1, 1};
  Batch b = collate(inputs, {1, 0}, /*pad_id=*/0);
  EXPECT_TRUE(torch::equal(b.ids, torch::tensor({{2, 11, 12, 3, 13}, {2, 10, 3, 0, 0}}, torch::kInt64)));
  EXPECT_TRUE(torch::equal(b.type_ids, torch::tensor({{0, 0, 0, 1, 1}, {0, 0, 0, 0, 0}}, torch::kInt64)));
  EXPECT_TRUE(torch::equal(b.mask, torch::tensor({{1, 1, 1, 1, 1}, {1, 1, 1, 0, 0}}, torch::kInt64)));
  EXPECT_EQ(b.rows, (std::vector<size_t>{1, 0}));
}

}  // namespace
}  // namespace dqe
