// Label encoding, batch plans and padding: the pieces every run's numbers depend on.
#include "data/dataset.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "dqe/errors.h"

namespace dqe {
namespace {

Record number_label(double v, size_t line = 1) {
  Record r;
  r.line = line;
  r.label_kind = LabelKind::kNumber;
  r.label_number = v;
  return r;
}

Record string_label(const std::string& s, size_t line = 1) {
  Record r;
  r.line = line;
  r.label_kind = LabelKind::kString;
  r.label_string = s;
  return r;
}

TEST(EncodeLabel, RegressionTakesTheNumberAndRefusesNames) {
  TaskSpec t;
  t.task = Task::kRegression;
  EXPECT_EQ(encode_label(number_label(2.67), t, "f"), 2.67);
  EXPECT_THROW(encode_label(string_label("high", 4), t, "f"), DataError);
  try {
    encode_label(Record{}, t, "train.jsonl");
    FAIL();
  } catch (const DataError& e) {
    EXPECT_EQ(std::string(e.what()), "train.jsonl:0: missing field \"label\"");
  }
}

TEST(EncodeLabel, BinaryTakesZeroOneAndTheTwoNames) {
  TaskSpec t;
  t.task = Task::kBinary;
  EXPECT_EQ(encode_label(number_label(0), t, "f"), 0);
  EXPECT_EQ(encode_label(number_label(1), t, "f"), 1);
  EXPECT_THROW(encode_label(number_label(2), t, "f"), DataError);
  EXPECT_THROW(encode_label(string_label("yes"), t, "f"), DataError);
  t.labels = {"bad", "good"};
  EXPECT_EQ(encode_label(string_label("bad"), t, "f"), 0);
  EXPECT_EQ(encode_label(string_label("good"), t, "f"), 1);
}

TEST(EncodeLabel, ClassificationTakesNamesIdsAndNumbersThatAreNames) {
  TaskSpec t;
  t.task = Task::kClassification;
  t.labels = {"irrelevant", "partial", "exact"};
  EXPECT_EQ(encode_label(string_label("partial"), t, "f"), 1);
  EXPECT_EQ(encode_label(number_label(2), t, "f"), 2);  // an id in range
  EXPECT_THROW(encode_label(number_label(3), t, "f"), DataError);
  EXPECT_THROW(encode_label(number_label(1.5), t, "f"), DataError);
  try {
    encode_label(string_label("great", 9), t, "dev.jsonl");
    FAIL();
  } catch (const DataError& e) {
    EXPECT_EQ(std::string(e.what()),
              "dev.jsonl:9: label \"great\" is not one of the known classes (irrelevant, partial, exact)");
  }
  // Numeric class names: the number 3 is the class named "3", not id 3.
  t.labels = {"1", "3", "5"};
  EXPECT_EQ(encode_label(number_label(3), t, "f"), 1);
  EXPECT_EQ(encode_label(number_label(2), t, "f"), 2);  // no class "2": id 2
}

TEST(CollectClassLabels, SortedNamesOrDenseIds) {
  EXPECT_EQ(collect_class_labels({string_label("b"), string_label("a"), string_label("b")}, "f"),
            (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(collect_class_labels({number_label(3), number_label(0)}, "f"),
            (std::vector<std::string>{"0", "1", "2", "3"}));
  EXPECT_THROW(collect_class_labels({string_label("a"), number_label(1, 2)}, "f"), DataError);
  EXPECT_THROW(collect_class_labels({string_label("a")}, "f"), DataError);
  EXPECT_THROW(collect_class_labels({number_label(-1), number_label(1)}, "f"), DataError);
  // A stray label is not a task with 100,001 classes.
  try {
    collect_class_labels({number_label(0), number_label(100000, 7)}, "train.jsonl");
    FAIL() << "100,001 classes were built";
  } catch (const DataError& e) {
    EXPECT_EQ(std::string(e.what()), "train.jsonl:7: class id 100000 is too large: at most 1000 classes (ids 0-999)");
  }
}

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
