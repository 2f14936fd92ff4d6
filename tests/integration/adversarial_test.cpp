// Adversarial training (--adv fgm|pgd), detection statistics saved at training time, and
// score --detect / --normalize on tiny models trained on the toy set: seconds, not minutes.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "dqe/errors.h"
#include "dqe/scorer.h"
#include "dqe/trainer.h"
#include "infer/detect.h"
#include "integration/run_util.h"
#include "test_util.h"

namespace dqe {
namespace fs = std::filesystem;
namespace {

using test::read_jsonl_file;

class AdversarialTrainTest : public ::testing::Test {
 protected:
  void SetUp() override { config_ = test::toy_run(dir_); }

  double constant_rmse() const { return test::constant_rmse(config_.train_path, config_.dev_path); }

  // Scores a JSONL file written from these objects; returns the output lines.
  std::vector<nlohmann::json> score_lines(const std::vector<nlohmann::json>& lines, ScoreConfig sc) {
    const std::string in = dir_.path("lines.jsonl");
    {
      std::ofstream out(in);
      for (const auto& l : lines) out << l.dump() << "\n";
    }
    sc.models = {config_.out_dir};
    sc.input = in;
    sc.output = dir_.path("scored.jsonl");
    sc.threads = 2;
    summary_ = score(sc);
    return read_jsonl_file(sc.output);
  }

  test::TempDir dir_;
  TrainConfig config_;
  ScoreSummary summary_;
};

bool has_reason(const nlohmann::json& line, const std::string& reason) {
  for (const auto& r : line["suspect_reasons"])
    if (r.get<std::string>() == reason) return true;
  return false;
}

// The toy model's word embeddings are small (N(0, 0.02) in 32 dimensions, about 0.1 a token):
// eps is sized to them, as the default 1.0 is to a pretrained BERT's (about 1 a token). At eps
// 0.1 or more, a perturbation as large as a whole token's embedding, the toy regression model
// stays at the constant predictor (measured: RMSE 0.997 against 0.998), and at 0.02 it learns
// the task (0.008): adversarial training at a radius that erases the words leaves nothing to learn.
TEST_F(AdversarialTrainTest, FgmTrainsLearnsAndLogsThePerturbedLoss) {
  config_.adv = "fgm";
  config_.adv_eps = 0.02;
  config_.task = "binary";
  config_.fields.label = "match";
  TrainResult r = train(config_);
  EXPECT_FALSE(r.interrupted);
  EXPECT_GT(r.best_metric, 0.95);  // ROC AUC
  auto log = read_jsonl_file(dir_.path("run/train_log.jsonl"));
  ASSERT_EQ(log.size(), 80u);
  double clean = 0, perturbed = 0;
  for (const auto& l : log) {
    ASSERT_TRUE(l.contains("adv_loss")) << l.dump();
    clean += l["loss"].get<double>();
    perturbed += l["adv_loss"].get<double>();
  }
  EXPECT_GT(perturbed, clean);  // the perturbation climbs the loss

  config_.out_dir = dir_.path("run-regression");
  config_.task = "regression";
  config_.fields.label = "label";
  EXPECT_LT(train(config_).best_metric, 0.5 * constant_rmse());
}

TEST_F(AdversarialTrainTest, PgdTrainsAndLearns) {
  config_.adv = "pgd";
  config_.adv_eps = 0.02;
  config_.adv_steps = 2;
  config_.adv_alpha = 0.01;
  config_.task = "binary";
  config_.fields.label = "match";
  EXPECT_GT(train(config_).best_metric, 0.95);  // ROC AUC
}

TEST_F(AdversarialTrainTest, FgmWorksForBinaryAndClassificationAndInBf16) {
  config_.adv = "fgm";
  config_.adv_eps = 0.02;
  config_.task = "binary";
  config_.fields.label = "match";
  EXPECT_GT(train(config_).best_metric, 0.95);  // ROC AUC
  config_.out_dir = dir_.path("run-classes");
  config_.task = "classification";
  config_.fields.label = "grade";
  config_.labels = {"irrelevant", "exact"};
  EXPECT_GT(train(config_).best_metric, 0.9);  // accuracy
  config_.out_dir = dir_.path("run-bf16");
  config_.task = "regression";
  config_.fields.label = "label";
  config_.labels.clear();
  config_.precision = "bf16";
  config_.max_steps = 30;
  TrainResult r = train(config_);
  EXPECT_TRUE(std::isfinite(r.best_metric));
  EXPECT_LT(r.best_metric, constant_rmse());
}

TEST_F(AdversarialTrainTest, AugmentedTrainingLearnsAndResumesToTheSameRun) {
  config_.augment = 0.3;
  TrainResult r = train(config_);
  EXPECT_LT(r.best_metric, 0.5 * constant_rmse());
  config_.out_dir = dir_.path("run-short");
  config_.max_steps = 20;
  TrainResult straight = train(config_);
  config_.out_dir = dir_.path("run-resumed");
  config_.stop_after_step = [](int64_t step) { return step == 9; };
  ASSERT_TRUE(train(config_).interrupted);
  config_.stop_after_step = nullptr;
  config_.resume = true;
  EXPECT_NEAR(train(config_).best_metric, straight.best_metric, 1e-6);
}

TEST_F(AdversarialTrainTest, ResumedFgmRunEqualsTheUninterruptedOne) {
  config_.adv = "fgm";
  config_.max_steps = 30;
  config_.eval_every = 10;
  TrainResult straight = train(config_);
  config_.out_dir = dir_.path("run2");
  config_.stop_after_step = [](int64_t step) { return step == 15; };
  ASSERT_TRUE(train(config_).interrupted);
  config_.stop_after_step = nullptr;
  config_.resume = true;
  TrainConfig changed = config_;
  changed.adv_eps = 0.5;
  try {
    train(changed);
    ADD_FAILURE() << "resumed with another --adv-eps";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("--adv-eps"), std::string::npos) << e.what();
  }
  TrainResult resumed = train(config_);
  EXPECT_EQ(resumed.steps, 30);
  EXPECT_NEAR(resumed.best_metric, straight.best_metric, 1e-6);
  auto a = read_jsonl_file(dir_.path("run/train_log.jsonl"));
  auto b = read_jsonl_file(dir_.path("run2/train_log.jsonl"));
  ASSERT_EQ(a.size(), b.size());
  EXPECT_NEAR(a.back()["adv_loss"].get<double>(), b.back()["adv_loss"].get<double>(), 1e-6);
}

TEST_F(AdversarialTrainTest, DetectFlagsHandMadeAttacksAndNotCleanDev) {
  config_.max_steps = 60;
  train(config_);
  ASSERT_TRUE(fs::exists(dir_.path("run/best/") + kDetectStatsFile));

  // The dev set itself, at the calibrated 1%: 80 lines allow no false positive.
  ScoreConfig sc;
  sc.detect = true;
  auto dev = read_jsonl_file(config_.dev_path);
  auto out = score_lines(dev, sc);
  ASSERT_EQ(out.size(), dev.size());
  EXPECT_EQ(summary_.suspects, 0);
  for (const auto& o : out) EXPECT_FALSE(o["suspect"].get<bool>()) << o.dump();
  // At 20% the thresholds come down and flag about that share of dev.
  sc.detect_fpr = 0.2;
  score_lines(dev, sc);
  EXPECT_GT(summary_.suspects, 0);
  EXPECT_LE(summary_.suspects, 16);

  sc.detect_fpr.reset();
  const std::vector<nlohmann::json> attacks = {
      {{"query", "blue lamp"}, {"title", "red chair oak lamp lamp lamp blue lamp blue lamp"}, {"label", 1}},
      {{"query", "red drill"}, {"title", "oak dr\xD1\x96ll steel"}, {"label", 1}},
      {{"query", "red rug"}, {"title", "small r\xE2\x80\x8Bug set"}, {"label", 1}},
      {{"query", "2 in x 4 in stud"}, {"title", "2-pack 2 in. x 4 in. x 8 ft. Stud"}, {"label", 1}}};
  out = score_lines(attacks, sc);
  ASSERT_EQ(out.size(), 4u);
  EXPECT_TRUE(has_reason(out[0], "keyword_repetition")) << out[0].dump();
  EXPECT_TRUE(has_reason(out[1], "mixed_script")) << out[1].dump();
  EXPECT_TRUE(has_reason(out[1], "confusables")) << out[1].dump();
  EXPECT_TRUE(has_reason(out[2], "invisible_chars")) << out[2].dump();
  for (const auto& o : out) EXPECT_TRUE(o["suspect"].get<bool>());
  // Legitimate repeats are no keyword stuffing (the toy vocabulary does not know these words,
  // so other signals may fire).
  EXPECT_FALSE(has_reason(out[3], "keyword_repetition")) << out[3].dump();
  int64_t counted = 0;
  for (const auto& [name, count] : summary_.suspect_counts) counted += count;
  EXPECT_GE(counted, 4);
  EXPECT_EQ(summary_.suspects, 4);
}

TEST_F(AdversarialTrainTest, NormalizeScoresAnAttackedLineAsItsCleanOriginal) {
  config_.max_steps = 40;
  config_.detect_fpr = 0;  // and no detection statistics
  train(config_);
  EXPECT_FALSE(fs::exists(dir_.path("run/best/") + kDetectStatsFile));
  const std::vector<nlohmann::json> lines = {
      {{"query", "red chair"}, {"title", "oak chair steel"}},
      // Cyrillic o and a, a zero-width space, a soft hyphen, a fullwidth "s".
      {{"query", "red chair"}, {"title", "\xD0\xBE" "ak ch\xD0\xB0ir\xE2\x80\x8B \xEF\xBD\x93te\xC2\xAD" "el"}}};
  ScoreConfig sc;
  auto plain = score_lines(lines, sc);
  EXPECT_GT(std::fabs(plain[0]["score"].get<double>() - plain[1]["score"].get<double>()), 1e-4);
  EXPECT_FALSE(summary_.normalized);
  sc.normalize = true;
  auto normalized = score_lines(lines, sc);
  EXPECT_EQ(normalized[0]["score"].get<double>(), normalized[1]["score"].get<double>());
  EXPECT_EQ(normalized[0]["score"].get<double>(), plain[0]["score"].get<double>());  // clean text is unchanged
  EXPECT_EQ(normalized[1]["title"], lines[1]["title"]);  // the line goes out as it came in
  EXPECT_TRUE(summary_.normalized);

  // This model has no detection statistics: --detect is a one-line error naming them.
  sc.detect = true;
  try {
    score_lines(lines, sc);
    ADD_FAILURE() << "--detect without detection statistics";
  } catch (const ModelError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("no detection statistics"), std::string::npos) << what;
    EXPECT_EQ(what.find('\n'), std::string::npos);
  }
}

}  // namespace
}  // namespace dqe
