// Distillation through the library (dqe train --teacher), on the toy set with tiny models
// (seconds): a student learns what a teacher says, from the teacher alone, and --unlabeled
// pairs that only the teacher labels are trained on.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>

#include "dqe/errors.h"
#include "dqe/scorer.h"
#include "dqe/trainer.h"
#include "integration/run_util.h"
#include "test_util.h"

namespace dqe {
namespace fs = std::filesystem;
namespace {

using test::read_jsonl_file;

double pearson(const std::vector<double>& a, const std::vector<double>& b) {
  const double n = static_cast<double>(a.size());
  double ma = 0, mb = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    ma += a[i] / n;
    mb += b[i] / n;
  }
  double ab = 0, aa = 0, bb = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    ab += (a[i] - ma) * (b[i] - mb);
    aa += (a[i] - ma) * (a[i] - ma);
    bb += (b[i] - mb) * (b[i] - mb);
  }
  return aa > 0 && bb > 0 ? ab / std::sqrt(aa * bb) : 0;
}

class DistillTest : public ::testing::Test {
 protected:
  // The teacher: a regression of the toy labels (3 for a matching kind, 1 otherwise). The
  // noisy set has the same pairs with labels drawn at random: a student that learns from it
  // anything like the teacher learnt it from the teacher.
  static void SetUpTestSuite() {
    shared_ = new test::TempDir();
    test::write_toy_set(shared_->path("train.jsonl"), 240, 1);
    test::write_toy_set(shared_->path("dev.jsonl"), 60, 2);
    std::mt19937 rng(7);
    std::ofstream noisy(shared_->path("noisy.jsonl")), unlabeled(shared_->path("unlabeled.jsonl"));
    for (auto r : read_jsonl_file(shared_->path("train.jsonl"))) {
      r["label"] = 1.0 + static_cast<double>(rng() % 3);
      noisy << r.dump() << "\n";
      r.erase("label");
      unlabeled << r.dump() << "\n";
    }
    noisy.close();
    unlabeled.close();
    TrainConfig t = student_config("teacher");
    t.train_path = shared_->path("train.jsonl");
    t.epochs = 3;
    train(t);
    teacher_scores_ = new std::vector<double>(scores_of(shared_->path("teacher"), "teacher"));
  }
  static void TearDownTestSuite() {
    delete teacher_scores_;
    delete shared_;
  }

  static TrainConfig student_config(const std::string& name) {
    TrainConfig c;
    c.train_path = shared_->path("noisy.jsonl");
    c.dev_path = shared_->path("dev.jsonl");
    c.out_dir = shared_->path(name);
    // Match token types let a tiny model from scratch learn the toy task in seconds.
    c.match_types = "on";
    c.layers = 1;
    c.hidden = 32;
    c.heads = 2;
    c.intermediate = 64;
    c.vocab_size = 200;
    c.max_len = 32;
    c.lr = 2e-3;
    c.batch_size = 16;
    c.epochs = 3;
    c.patience = 0;
    c.threads = 2;
    c.precision = "fp32";
    return c;
  }

  static std::vector<double> scores_of(const std::string& model, const std::string& name) {
    ScoreConfig sc;
    sc.models = {model};
    sc.input = shared_->path("dev.jsonl");
    sc.output = shared_->path(name + "-scores.jsonl");
    sc.threads = 2;
    sc.precision = "fp32";
    score(sc);
    std::vector<double> out;
    for (const auto& o : read_jsonl_file(sc.output)) out.push_back(o["score"].get<double>());
    return out;
  }

  static double agreement(const std::string& name) { return pearson(scores_of(shared_->path(name), name), *teacher_scores_); }

  static test::TempDir* shared_;
  static std::vector<double>* teacher_scores_;
};

test::TempDir* DistillTest::shared_ = nullptr;
std::vector<double>* DistillTest::teacher_scores_ = nullptr;

// On labels that say nothing, a student follows the teacher only when it learns from it.
TEST_F(DistillTest, StudentOfTheTeacherAloneAgreesWithIt) {
  TrainConfig alone = student_config("labels-only");
  train(alone);
  TrainConfig student = student_config("distilled");
  student.teachers = {shared_->path("teacher")};
  student.distill_alpha = 1;  // the teacher's outputs alone
  train(student);
  const double without = agreement("labels-only");
  const double with = agreement("distilled");
  EXPECT_GT(with, 0.6) << "without the teacher: " << without;
  EXPECT_GT(with, without + 0.3);
}

// --unlabeled pairs are trained on (the epoch has their batches too) and, with few labelled
// pairs, bring the student closer to the teacher.
TEST_F(DistillTest, UnlabeledPairsAreLearntFromTheTeacher) {
  const std::string few = shared_->path("few.jsonl");
  {
    std::ofstream out(few);
    const auto rows = read_jsonl_file(shared_->path("train.jsonl"));
    for (size_t i = 0; i < 16; ++i) out << rows[i].dump() << "\n";
  }
  TrainConfig labelled = student_config("few");
  labelled.train_path = few;
  labelled.teachers = {shared_->path("teacher")};
  labelled.distill_alpha = 1;
  const TrainResult a = train(labelled);
  TrainConfig more = labelled;
  more.out_dir = shared_->path("few-plus-unlabeled");
  more.unlabeled = shared_->path("unlabeled.jsonl");
  const TrainResult b = train(more);
  EXPECT_EQ(a.steps, 3 * 1);             // 16 pairs: one batch an epoch
  EXPECT_EQ(b.steps, 3 * (256 / 16));    // 16 + 240 pairs
  EXPECT_GT(agreement("few-plus-unlabeled"), agreement("few") + 0.1);
}

TEST_F(DistillTest, FlagsAreChecked) {
  TrainConfig c = student_config("bad");
  c.unlabeled = shared_->path("unlabeled.jsonl");
  EXPECT_THROW(c.validate(), ConfigError);  // --unlabeled without --teacher
  c.unlabeled.clear();
  c.teachers = {shared_->path("teacher")};
  c.distill_alpha = 0;
  EXPECT_THROW(c.validate(), ConfigError);
  c.distill_alpha = 0.5;
  c.keep_layers = 1;
  EXPECT_THROW(c.validate(), ConfigError);  // --keep-layers without --init
  c.init = shared_->path("teacher");
  c.validate();
}

// A student started from the teacher with one of its layers: the bottom one, renumbered.
TEST_F(DistillTest, InitFromTheTeacherWithFewerLayers) {
  TrainConfig t = student_config("two-layer-teacher");
  t.train_path = shared_->path("train.jsonl");
  t.layers = 2;
  t.epochs = 1;
  train(t);
  TrainConfig c = student_config("pruned-student");
  c.init = shared_->path("two-layer-teacher");
  c.keep_layers = 1;
  c.teachers = {shared_->path("two-layer-teacher")};
  c.epochs = 1;
  train(c);
  EXPECT_EQ(read_json_file(shared_->path("pruned-student/best/config.json"))["num_hidden_layers"], 1);
}

}  // namespace
}  // namespace dqe
