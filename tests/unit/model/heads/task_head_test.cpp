// Each task head against hand-derived values: label encoding, the classes and label scaling
// a run learns, decoding, losses, distillation targets, metrics and Hugging Face keys.
#include "model/heads/task_head.h"

#include <gtest/gtest.h>

#include "dqe/errors.h"

namespace dqe {
namespace {

const TaskHead& head_of(const TaskSpec& t) { return task_head(t.task); }

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

TEST(RegressionHead, EncodeLabelTakesTheNumberAndRefusesNames) {
  TaskSpec t;
  t.task = Task::kRegression;
  EXPECT_EQ(head_of(t).encode_label(number_label(2.67), t, "f"), 2.67);
  EXPECT_THROW(head_of(t).encode_label(string_label("high", 4), t, "f"), DataError);
  try {
    head_of(t).encode_label(Record{}, t, "train.jsonl");
    FAIL();
  } catch (const DataError& e) {
    EXPECT_EQ(std::string(e.what()), "train.jsonl:0: missing field \"label\"");
  }
}

TEST(BinaryHead, EncodeLabelTakesZeroOneAndTheTwoNames) {
  TaskSpec t;
  t.task = Task::kBinary;
  EXPECT_EQ(head_of(t).encode_label(number_label(0), t, "f"), 0);
  EXPECT_EQ(head_of(t).encode_label(number_label(1), t, "f"), 1);
  EXPECT_THROW(head_of(t).encode_label(number_label(2), t, "f"), DataError);
  EXPECT_THROW(head_of(t).encode_label(string_label("yes"), t, "f"), DataError);
  t.labels = {"bad", "good"};
  EXPECT_EQ(head_of(t).encode_label(string_label("bad"), t, "f"), 0);
  EXPECT_EQ(head_of(t).encode_label(string_label("good"), t, "f"), 1);
}

TEST(ClassificationHead, EncodeLabelTakesNamesIdsAndNumbersThatAreNames) {
  TaskSpec t;
  t.task = Task::kClassification;
  t.labels = {"irrelevant", "partial", "exact"};
  EXPECT_EQ(head_of(t).encode_label(string_label("partial"), t, "f"), 1);
  EXPECT_EQ(head_of(t).encode_label(number_label(2), t, "f"), 2);  // an id in range
  EXPECT_THROW(head_of(t).encode_label(number_label(3), t, "f"), DataError);
  EXPECT_THROW(head_of(t).encode_label(number_label(1.5), t, "f"), DataError);
  try {
    head_of(t).encode_label(string_label("great", 9), t, "dev.jsonl");
    FAIL();
  } catch (const DataError& e) {
    EXPECT_EQ(std::string(e.what()),
              "dev.jsonl:9: label \"great\" is not one of the known classes (irrelevant, partial, exact)");
  }
  // Numeric class names: the number 3 is the class named "3", not id 3.
  t.labels = {"1", "3", "5"};
  EXPECT_EQ(head_of(t).encode_label(number_label(3), t, "f"), 1);
  EXPECT_EQ(head_of(t).encode_label(number_label(2), t, "f"), 2);  // no class "2": id 2
}

// The classes a classification run learns: sorted names, or dense ids.
std::vector<std::string> collect_class_labels(const std::vector<Record>& records, const std::string& path) {
  TaskSpec t;
  t.task = Task::kClassification;
  task_head(t.task).fit_labels(t, records, path, nullptr);
  return t.labels;
}

TEST(ClassificationHead, LearnsSortedNamesOrDenseIds) {
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

TEST(RegressionHead, FoldIntoHeadMakesTheLogitTheScore) {
  TaskSpec task;
  task.label_mean = 3;
  task.label_std = 0.5;
  std::map<std::string, torch::Tensor> t = {{"classifier.weight", torch::tensor({{2.0f, -4.0f}})},
                                            {"classifier.bias", torch::tensor({1.0f})}};
  task_head(Task::kRegression).fold_into_head(task, t);
  // logit' = 0.5 * (w x + b) + 3: w' = [1, -2], b' = 3.5.
  EXPECT_FLOAT_EQ(t.at("classifier.weight")[0][0].item<float>(), 1.0f);
  EXPECT_FLOAT_EQ(t.at("classifier.weight")[0][1].item<float>(), -2.0f);
  EXPECT_FLOAT_EQ(t.at("classifier.bias")[0].item<float>(), 3.5f);
  EXPECT_EQ(task.label_mean, 0);
  EXPECT_EQ(task.label_std, 1);
}

}  // namespace
}  // namespace dqe
