// Pretrains tiny encoders on a generated corpus through the library: seconds, not minutes.
#include "dqe/pretrainer.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>

#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "dqe/errors.h"
#include "dqe/report.h"
#include "dqe/trainer.h"
#include "io/safetensors.h"
#include "model/model_dir.h"
#include "test_util.h"
#include "train/run_log.h"

namespace dqe {
namespace fs = std::filesystem;
namespace {

// Product-title-like lines with structure a model can learn: each brand sells one kind
// of product in one material, so a masked brand, kind or material is predictable.
void write_corpus(const std::string& path, int lines, unsigned seed) {
  const std::vector<std::vector<std::string>> brands = {
      {"acme", "chair", "oak"}, {"zenith", "lamp", "brass"}, {"nordic", "table", "pine"},
      {"hydro", "hose", "rubber"}, {"bolt", "drill", "steel"}, {"plush", "rug", "wool"}};
  const std::vector<std::string> extras = {"large", "small", "modern", "classic", "set", "pack", "new", "white"};
  std::mt19937 rng(seed);
  std::string text;
  for (int i = 0; i < lines; ++i) {
    const auto& b = brands[rng() % brands.size()];
    text += b[0] + " " + extras[rng() % extras.size()] + " " + b[2] + " " + b[1] + " " + extras[rng() % extras.size()] + "\n";
    if (i % 97 == 50) text += "\n";  // empty lines are skipped, not errors
  }
  test::write_text(path, text);
}

class PretrainTest : public ::testing::Test {
 protected:
  void SetUp() override {
    write_corpus(dir_.path("corpus.txt"), 600, 1);
    config_.corpus = dir_.path("corpus.txt");
    config_.out_dir = dir_.path("run");
    config_.layers = 1;
    config_.hidden = 32;
    config_.heads = 2;
    config_.intermediate = 64;
    config_.vocab_size = 80;
    config_.max_len = 16;
    config_.lr = 3e-3;
    config_.batch_size = 16;
    config_.epochs = 3;
    config_.threads = 2;
    config_.seed = 3;
    config_.held_out_every = 10;
    config_.chunk_lines = 250;  // several chunks per epoch
  }

  test::TempDir dir_;
  PretrainConfig config_;
};

TEST_F(PretrainTest, LearnsTheCorpusAndCountsItsLines) {
  config_.epochs = 8;
  config_.lr = 5e-3;
  PretrainResult r = pretrain(config_);
  EXPECT_FALSE(r.interrupted);
  EXPECT_EQ(r.held_out_lines, 61);  // every 10th of 606 physical lines, empty ones excluded
  EXPECT_EQ(r.empty_lines, 6);
  EXPECT_EQ(r.train_lines + r.held_out_lines + r.empty_lines, 606);
  EXPECT_GT(r.steps, 0);
  // Half of each line is predictable from the other half; chance is 1/80.
  EXPECT_LT(r.initial_accuracy, 0.1);
  EXPECT_GT(r.best_accuracy, 0.4);
  EXPECT_LT(r.best_loss, r.initial_loss - 1.0);
  EXPECT_TRUE(fs::exists(fs::path(r.best_dir) / "model.safetensors"));
  EXPECT_TRUE(fs::exists(fs::path(r.last_dir) / "trainer_state.json"));
}

// Today's deterministic tiny pretraining run, recorded (fp32, one thread): held-back MLM
// loss before training and after 20 steps, and the first and last step's loss. The
// tolerance covers other CPUs' BLAS kernels, not a change of recipe.
TEST_F(PretrainTest, PinnedTinyRunMetrics) {
  config_.max_steps = 20;
  config_.eval_every = 10;
  config_.threads = 1;
  config_.precision = "fp32";
  PretrainResult r = pretrain(config_);
  EXPECT_NEAR(r.initial_loss, 4.413874, 2e-4);
  EXPECT_NEAR(r.best_loss, 3.996154, 2e-4);
  std::ifstream in(dir_.path("run/train_log.jsonl"));
  std::vector<double> losses;
  for (std::string line; std::getline(in, line);) losses.push_back(nlohmann::json::parse(line)["loss"].get<double>());
  ASSERT_EQ(losses.size(), 20u);
  EXPECT_NEAR(losses.front(), 4.407504, 2e-4);
  EXPECT_NEAR(losses.back(), 3.864612, 2e-4);
}

TEST_F(PretrainTest, ResultIsAnInitForTrainButNotAModelToScoreWith) {
  config_.epochs = 1;
  PretrainResult r = pretrain(config_);
  const auto saved = load_safetensors((fs::path(r.best_dir) / "model.safetensors").string());
  EXPECT_TRUE(saved.count("cls.predictions.bias"));
  EXPECT_TRUE(saved.count("cls.predictions.transform.dense.weight"));
  EXPECT_FALSE(saved.count("classifier.weight")) << "an untrained head must not be saved";

  try {
    load_model(config_.out_dir);
    FAIL() << "a pretrained encoder loaded as a task model";
  } catch (const ModelError& e) {
    EXPECT_NE(std::string(e.what()).find("dqe train --init"), std::string::npos) << e.what();
  }
  TaskSpec task;
  task.max_len = 16;
  LoadOptions lo;
  lo.allow_new_head = true;
  lo.task = task;
  LoadedModel m = load_model(config_.out_dir, lo);
  EXPECT_FALSE(m.spec.mlm_encoder);
  EXPECT_TRUE(torch::equal(m.model->named_parameters()["bert.encoder.layer.0.attention.self.query.weight"],
                           saved.at("bert.encoder.layer.0.attention.self.query.weight")));

  // Fine-tuning from it: the regression statistics come from the labels, not the encoder.
  test::write_toy_set(dir_.path("train.jsonl"), 96, 1);
  test::write_toy_set(dir_.path("dev.jsonl"), 32, 2);
  TrainConfig tc;
  tc.train_path = dir_.path("train.jsonl");
  tc.dev_path = dir_.path("dev.jsonl");
  tc.out_dir = dir_.path("ft");
  tc.init = config_.out_dir;
  tc.max_steps = 4;
  tc.threads = 2;
  TrainResult t = train(tc);
  LoadedModel ft = load_model(t.best_dir);
  EXPECT_FALSE(ft.spec.mlm_encoder);
  EXPECT_TRUE(ft.spec.task.match_types);
  EXPECT_NEAR(ft.spec.task.label_mean, 2.0, 0.5);
  EXPECT_GT(ft.spec.task.label_std, 0.5);
}

TEST_F(PretrainTest, ResumeAcrossChunksMatchesAnUninterruptedRun) {
  config_.epochs = 2;
  config_.eval_every = 7;
  PretrainResult full = pretrain(config_);

  config_.out_dir = dir_.path("split");
  int stops = 0;
  config_.stop_after_step = [&](int64_t step) {
    if (step != 5 && step != 23 && step != 40) return false;
    ++stops;
    return true;
  };
  PretrainResult part = pretrain(config_);
  ASSERT_TRUE(part.interrupted);
  config_.resume = true;
  while (part.interrupted) part = pretrain(config_);
  EXPECT_EQ(stops, 3);
  EXPECT_EQ(part.steps, full.steps);
  auto a = load_safetensors((fs::path(full.last_dir) / "model.safetensors").string());
  auto b = load_safetensors((fs::path(part.last_dir) / "model.safetensors").string());
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [name, t] : a) EXPECT_TRUE(torch::allclose(t, b.at(name), 1e-6, 1e-7)) << name;
  EXPECT_NEAR(part.best_loss, full.best_loss, 1e-5);
}

TEST_F(PretrainTest, ContinuesPretrainingAHuggingFaceCheckpoint) {
  DQE_REQUIRE_SHARED_FIXTURES();
  const std::string hf = std::string(DQE_SHARED_DIR) + "/fixtures/tiny-bert-hf";
  config_.init = hf;
  config_.max_steps = 6;
  config_.max_len = 32;
  PretrainResult r = pretrain(config_);
  const auto before = load_safetensors(hf + "/model.safetensors");
  const auto after = load_safetensors((fs::path(r.last_dir) / "model.safetensors").string());
  // Same vocabulary and shape, new weights, a new MLM head, the pooler kept.
  EXPECT_EQ(test::read_text(hf + "/vocab.txt"), test::read_text((fs::path(r.last_dir) / "vocab.txt").string()));
  EXPECT_EQ(after.at("cls.predictions.bias").size(0), 226);
  EXPECT_FALSE(torch::equal(before.at("bert.encoder.layer.0.attention.self.query.weight"),
                            after.at("bert.encoder.layer.0.attention.self.query.weight")));
  EXPECT_TRUE(torch::equal(before.at("bert.pooler.dense.weight"), after.at("bert.pooler.dense.weight")));
  EXPECT_EQ(after.count("classifier.weight"), 0u);
  // The new head is drawn from --seed: a second run in the same process gives the same weights.
  config_.out_dir = dir_.path("again");
  const auto again = load_safetensors((fs::path(pretrain(config_).last_dir) / "model.safetensors").string());
  for (const char* name : {"cls.predictions.transform.dense.weight", "bert.encoder.layer.0.attention.self.query.weight"})
    EXPECT_TRUE(torch::equal(after.at(name), again.at(name))) << name;
  EXPECT_DOUBLE_EQ(read_json_file(fs::path(r.last_dir) / "config.json")["hidden_dropout_prob"].get<double>(), 0.1);
  // --dropout overrides the Hugging Face model's and is saved with the encoder.
  config_.out_dir = dir_.path("no-dropout");
  config_.dropout = 0.0;
  const fs::path no_dropout = pretrain(config_).last_dir;
  EXPECT_EQ(read_json_file(no_dropout / "config.json")["hidden_dropout_prob"].get<double>(), 0.0);
  EXPECT_EQ(read_json_file(no_dropout / "config.json")["attention_probs_dropout_prob"].get<double>(), 0.0);
}

TEST_F(PretrainTest, BadInputsAreNamedErrors) {
  config_.corpus = dir_.path("missing.txt");
  try {
    pretrain(config_);
    FAIL();
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("missing.txt"), std::string::npos);
  }
  test::write_text(dir_.path("empty.txt"), "\n  \n\n");
  config_.corpus = dir_.path("empty.txt");
  EXPECT_THROW(pretrain(config_), DataError);
  EXPECT_FALSE(fs::exists(fs::path(config_.out_dir) / "last"));

  config_.corpus = dir_.path("corpus.txt");
  config_.mask_prob = 1.5;
  EXPECT_THROW(pretrain(config_), ConfigError);
  config_.mask_prob = 0.15;

  // A device is not a corpus file (it is read more than once), and not "no such file".
  const std::string null_device = dir_.path("null");
  if (::mknod(null_device.c_str(), S_IFCHR | 0666, makedev(1, 3)) == 0) {
    config_.corpus = null_device;
    try {
      pretrain(config_);
      FAIL() << "a character device was read as a corpus";
    } catch (const IoError& e) {
      EXPECT_NE(std::string(e.what()).find("null: not a regular file"), std::string::npos) << e.what();
    }
  }
  config_.corpus = dir_.path("corpus");
  fs::create_directories(config_.corpus);
  EXPECT_THROW(pretrain(config_), IoError);

  // A gzip corpus cut short says so (the reader's own error), rather than "read error".
  const std::string cut = dir_.path("cut.txt.gz");
  ASSERT_EQ(std::system(("gzip -c " + dir_.path("corpus.txt") + " | head -c 300 > " + cut).c_str()), 0);
  config_.corpus = cut;
  try {
    pretrain(config_);
    FAIL() << "a truncated corpus was read as a shorter one";
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("truncated gzip stream"), std::string::npos) << e.what();
  }
}

// Lines that hold no token (zero-width and control characters only) leave every epoch
// without a batch: a one-line error, not a loop that never ends, with --max-steps or --epochs.
TEST_F(PretrainTest, CorpusWithoutTokensIsAnErrorNotAHang) {
  std::string text;
  for (int i = 0; i < 50; ++i) text += "\u200b\u200b \x01\u200d\n";
  test::write_text(dir_.path("invisible.txt"), text);
  config_.corpus = dir_.path("invisible.txt");
  config_.tokenizer = dir_.path("vocab.txt");
  test::write_text(config_.tokenizer, "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nchair\n");
  for (int64_t max_steps : {int64_t{10}, int64_t{0}}) {
    config_.max_steps = max_steps;
    config_.epochs = 2;
    config_.out_dir = dir_.path("run" + std::to_string(max_steps));
    try {
      pretrain(config_);
      FAIL() << "pretrained on lines without tokens";
    } catch (const DataError& e) {
      EXPECT_NE(std::string(e.what()).find("invisible.txt: no training line has a token"), std::string::npos)
          << e.what();
    }
  }
}

// A pretraining run's logs follow the shared schema, with its own per-step accuracy, and
// its report shows the MLM curves and no predictions.
TEST_F(PretrainTest, LogsAndReportOfAPretrainingRun) {
  config_.max_steps = 8;
  config_.eval_every = 4;
  pretrain(config_);
  std::ifstream in(dir_.path("run/train_log.jsonl"));
  std::string line;
  ASSERT_TRUE(std::getline(in, line));
  const auto first = nlohmann::ordered_json::parse(line);
  std::vector<std::string> keys;
  for (const auto& item : first.items()) keys.push_back(item.key());
  // Written out, not read from the code: the log is a format that report and scripts read.
  const std::vector<std::string> want = {"step",   "epoch",     "loss",         "lr",        "grad_norm",
                                         "samples_per_s", "tokens", "tokens_per_s", "elapsed_s", "accuracy"};
  EXPECT_EQ(keys, want);
  const auto steps = read_train_log(dir_.path("run/train_log.jsonl"));
  ASSERT_EQ(steps.size(), 8u);
  EXPECT_GT(steps.back().tokens, 0);
  EXPECT_GT(steps.back().grad_norm, 0);
  EXPECT_TRUE(steps.back().extra.contains("accuracy"));

  ReportConfig rc;
  rc.run_dir = config_.out_dir;
  rc.out = dir_.path("report.html");
  write_report(rc);
  const std::string html = test::read_text(rc.out);
  EXPECT_NE(html.find("masked-language-model pretraining"), std::string::npos);
  EXPECT_NE(html.find("Training accuracy (masked tokens)"), std::string::npos);
  EXPECT_NE(html.find("mlm_loss"), std::string::npos);
  EXPECT_NE(html.find("no predictions to show"), std::string::npos);
}

}  // namespace
}  // namespace dqe
