// Trains tiny models on a toy relevance set through the library: seconds, not minutes.
#include "dqe/trainer.h"

#include <gtest/gtest.h>

#include <atomic>
#include <csignal>
#include <cmath>
#include <fstream>
#include <filesystem>

#include "base/format.h"
#include "dqe/errors.h"
#include "dqe/evaluator.h"
#include "dqe/metrics.h"
#include "dqe/report.h"
#include "dqe/scorer.h"
#include "integration/run_util.h"
#include "io/safetensors.h"
#include "model/model_dir.h"
#include "test_util.h"
#include "train/run_log.h"
#include "train/train_state.h"

namespace dqe {
namespace fs = std::filesystem;
namespace {

using test::read_jsonl_file;

class TrainTest : public ::testing::Test {
 protected:
  void SetUp() override { config_ = test::toy_run(dir_); }

  // RMSE of predicting the training mean on dev: the constant predictor to beat.
  double constant_rmse() const { return test::constant_rmse(config_.train_path, config_.dev_path); }

  test::TempDir dir_;
  TrainConfig config_;
};

// Trains on the GPU, resumes there, and leaves checkpoints that load and score the same on
// the CPU.
TEST_F(TrainTest, TrainsOnTheGpuAndItsCheckpointsScoreTheSameOnTheCpu) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no GPU (this LibTorch has no CUDA, or none is visible)";
  config_.device = "cuda";
  config_.stop_after_step = [](int64_t step) { return step == 30; };
  TrainResult first = train(config_);
  ASSERT_TRUE(first.interrupted);
  config_.stop_after_step = nullptr;
  config_.resume = true;
  TrainResult r = train(config_);
  EXPECT_FALSE(r.interrupted);
  EXPECT_LT(r.best_metric, 0.5 * constant_rmse());
  EvalConfig ec;
  ec.models = {dir_.path("run/best")};
  ec.data = config_.dev_path;
  ec.device = "cpu";
  ec.precision = "fp32";
  const double cpu_rmse = evaluate(ec).primary;
  ec.device = "cuda";
  const double gpu_rmse = evaluate(ec).primary;
  EXPECT_NEAR(cpu_rmse, gpu_rmse, 1e-4);
}

TEST_F(TrainTest, LowersTheLossAndBeatsTheConstantPredictor) {
  TrainResult r = train(config_);
  EXPECT_FALSE(r.interrupted);
  EXPECT_EQ(r.steps, 4 * 20);  // 320 examples / 16 per batch, 4 epochs
  auto log = read_jsonl_file(dir_.path("run/train_log.jsonl"));
  ASSERT_EQ(log.size(), 80u);
  double first = 0, last = 0;
  for (int i = 0; i < 10; ++i) {
    first += log[static_cast<size_t>(i)]["loss"].get<double>();
    last += log[log.size() - 1 - static_cast<size_t>(i)]["loss"].get<double>();
  }
  EXPECT_LT(last, 0.5 * first);
  EXPECT_EQ(r.metric_name, "rmse");
  EXPECT_LT(r.best_metric, 0.5 * constant_rmse());
  EXPECT_EQ(read_jsonl_file(dir_.path("run/eval_log.jsonl")).size(), 4u);  // one evaluation per epoch
  EXPECT_TRUE(fs::exists(dir_.path("run/best/model.safetensors")));
  EXPECT_TRUE(fs::exists(dir_.path("run/last/optimizer.pt")));
}

// The learning rate of every logged step follows the recipe: linear warmup over 10% of the
// steps (rounded), then linear decay to zero, computed here independently of the trainer.
TEST_F(TrainTest, LoggedLearningRateFollowsWarmupThenLinearDecay) {
  config_.max_steps = 25;
  config_.warmup_ratio = 0.2;  // 5 warmup steps
  train(config_);
  auto log = read_jsonl_file(dir_.path("run/train_log.jsonl"));
  ASSERT_EQ(log.size(), 25u);
  for (size_t i = 0; i < log.size(); ++i) {
    const double s = static_cast<double>(i);  // the step's 0-based index
    const double want = i < 5 ? config_.lr * (s + 1) / 5 : config_.lr * (25 - s) / 20;
    EXPECT_NEAR(log[i]["lr"].get<double>(), want, 1e-15) << "step " << i + 1;
  }
}

// Today's deterministic tiny run, recorded (fp32, one thread): a change to the data order,
// the initialisation, the optimizer, the schedule or the loss moves these numbers. The
// tolerance covers other CPUs' BLAS kernels, not a change of recipe.
TEST_F(TrainTest, PinnedTinyRunMetrics) {
  config_.max_steps = 30;
  config_.eval_every = 10;
  config_.threads = 1;
  config_.precision = "fp32";
  train(config_);
  auto evals = read_jsonl_file(dir_.path("run/eval_log.jsonl"));
  auto log = read_jsonl_file(dir_.path("run/train_log.jsonl"));
  ASSERT_EQ(evals.size(), 3u);
  ASSERT_EQ(log.size(), 30u);
  const double want_rmse[] = {0.992492, 0.959965, 0.902430};
  for (size_t i = 0; i < 3; ++i) EXPECT_NEAR(evals[i]["value"].get<double>(), want_rmse[i], 2e-4) << "eval " << i;
  EXPECT_NEAR(log[0]["loss"].get<double>(), 1.007664, 2e-4);
  EXPECT_NEAR(log[29]["loss"].get<double>(), 0.848196, 2e-4);
}

TEST_F(TrainTest, InterruptedRunResumedReachesTheSameMetrics) {
  config_.max_steps = 30;
  config_.eval_every = 10;
  TrainResult straight = train(config_);

  config_.out_dir = dir_.path("run2");
  config_.stop_after_step = [](int64_t step) { return step == 15; };
  TrainResult first = train(config_);
  EXPECT_TRUE(first.interrupted);
  EXPECT_EQ(first.steps, 15);
  config_.stop_after_step = nullptr;
  config_.resume = true;
  TrainResult resumed = train(config_);
  EXPECT_FALSE(resumed.interrupted);
  EXPECT_EQ(resumed.steps, 30);
  EXPECT_NEAR(resumed.final_metrics["rmse"].get<double>(), straight.final_metrics["rmse"].get<double>(), 1e-6);
  EXPECT_NEAR(resumed.best_metric, straight.best_metric, 1e-6);
  EXPECT_EQ(resumed.best_step, straight.best_step);
  // The resumed log continues the interrupted one: every step once, in order.
  auto log = read_jsonl_file(dir_.path("run2/train_log.jsonl"));
  ASSERT_EQ(log.size(), 30u);
  for (size_t i = 0; i < log.size(); ++i) EXPECT_EQ(log[i]["step"].get<int64_t>(), static_cast<int64_t>(i) + 1);
  auto straight_log = read_jsonl_file(dir_.path("run/train_log.jsonl"));
  EXPECT_NEAR(log.back()["loss"].get<double>(), straight_log.back()["loss"].get<double>(), 1e-6);
}

TEST_F(TrainTest, SavedModelEvaluatesAndScoresToTheSameNumbers) {
  TrainResult r = train(config_);
  EvalConfig ec;
  ec.models = {config_.out_dir};  // the run directory means its best checkpoint
  ec.data = config_.dev_path;
  ec.metrics_out = dir_.path("metrics.json");
  ec.threads = 2;
  EvalResult ev = evaluate(ec);
  EXPECT_NEAR(ev.metrics["rmse"].get<double>(), r.best_metric, 1e-7);
  EXPECT_TRUE(ev.metrics.contains("ranking"));
  auto saved = nlohmann::json::parse(test::read_text(ec.metrics_out));
  EXPECT_NEAR(saved["rmse"].get<double>(), r.best_metric, 1e-7);

  ScoreConfig sc;
  sc.models = {config_.out_dir};
  sc.input = config_.dev_path;
  sc.output = dir_.path("scored.jsonl");
  sc.threads = 2;
  sc.chunk_lines = 7;  // many chunks: order must still be kept
  ScoreSummary s = score(sc);
  auto in = read_jsonl_file(config_.dev_path);
  auto out = read_jsonl_file(sc.output);
  ASSERT_EQ(out.size(), in.size());
  EXPECT_EQ(s.lines, static_cast<int64_t>(in.size()));
  double sq = 0;
  for (size_t i = 0; i < in.size(); ++i) {
    EXPECT_EQ(out[i]["id"], in[i]["id"]);
    EXPECT_EQ(out[i]["match"], in[i]["match"]);  // unknown fields pass through
    sq += std::pow(out[i]["score"].get<double>() - in[i]["label"].get<double>(), 2);
  }
  EXPECT_NEAR(std::sqrt(sq / static_cast<double>(in.size())), r.best_metric, 1e-5);
}

// Two seeds of the same run: the ensemble's scores are the mean of the members', line by
// line, in eval and score alike; members must share the task.
TEST_F(TrainTest, EnsembleAveragesItsMembers) {
  config_.epochs = 2;
  train(config_);
  TrainConfig other = config_;
  other.out_dir = dir_.path("run_seed6");
  other.seed = 6;
  train(other);

  auto scores_of = [&](const std::vector<std::string>& models, const std::string& name, bool single) {
    ScoreConfig sc;
    sc.models = models;
    sc.input = config_.dev_path;
    sc.output = dir_.path(name);
    sc.threads = 2;
    sc.precision = "fp32";
    sc.chunk_lines = 13;
    ScoreSummary s = score(sc);
    // 80 lines are under kMinDriftLines: a single model says so, an ensemble has no dev scores.
    EXPECT_TRUE(std::isnan(s.psi));
    EXPECT_EQ(!s.drift_note.empty(), single) << "the drift check needs the dev scores of a single model";
    std::vector<double> out;
    for (const auto& o : read_jsonl_file(sc.output)) out.push_back(o["score"].get<double>());
    return out;
  };
  const auto a = scores_of({config_.out_dir}, "a.jsonl", true);
  const auto b = scores_of({other.out_dir}, "b.jsonl", true);
  const auto both = scores_of({config_.out_dir, other.out_dir}, "ab.jsonl", false);
  ASSERT_EQ(a.size(), 80u);
  ASSERT_EQ(both.size(), a.size());
  double differ = 0, sq = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_NEAR(both[i], (a[i] + b[i]) / 2, 1e-6);
    differ = std::max(differ, std::abs(a[i] - b[i]));
  }
  EXPECT_GT(differ, 1e-3) << "the two seeds should give different models";
  // A directory with an ensemble.json stands for its members.
  fs::create_directories(dir_.path("ens"));
  test::write_text(dir_.path("ens/ensemble.json"), R"({"members": ["../run", ")" + other.out_dir + R"("]})");
  const auto from_dir = scores_of({dir_.path("ens")}, "ens.jsonl", false);
  ASSERT_EQ(from_dir.size(), both.size());
  for (size_t i = 0; i < both.size(); ++i) EXPECT_NEAR(from_dir[i], both[i], 1e-9);
  test::write_text(dir_.path("ens/ensemble.json"), R"({"members": []})");
  try {
    ensemble_members(dir_.path("ens"));
    FAIL() << "an empty member list was accepted";
  } catch (const ModelError& e) {
    EXPECT_NE(std::string(e.what()).find("ens/ensemble.json: needs \"members\""), std::string::npos) << e.what();
  }

  EvalConfig ec;
  ec.models = {config_.out_dir, other.out_dir};
  ec.data = config_.dev_path;
  ec.threads = 2;
  ec.precision = "fp32";
  const EvalResult ev = evaluate(ec);
  auto dev = read_jsonl_file(config_.dev_path);
  for (size_t i = 0; i < dev.size(); ++i) sq += std::pow(both[i] - dev[i]["label"].get<double>(), 2);
  EXPECT_NEAR(ev.primary, std::sqrt(sq / static_cast<double>(dev.size())), 1e-6);
  EXPECT_EQ(ev.metrics["model"].size(), 2u);

  // An ensemble of config_'s run and `member` is refused with an error containing `expected`.
  auto expect_refused = [&](const std::string& member, const std::string& expected) {
    ec.models = {config_.out_dir, member};
    try {
      evaluate(ec);
      ADD_FAILURE() << "the ensemble with " << member << " was accepted";
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(expected), std::string::npos) << e.what();
    }
  };

  // Members that read other fields are refused unless the field flags say how to read them all.
  TrainConfig titled = config_;
  titled.out_dir = dir_.path("run_titled");
  titled.fields.text = {"title"};
  titled.max_steps = 2;
  train(titled);
  expect_refused(titled.out_dir, "--model " + titled.out_dir + ": it reads other JSON fields");
  ec.fields = config_.fields;
  EXPECT_NO_THROW(evaluate(ec));
  ec.fields.reset();

  TrainConfig binary = config_;
  binary.out_dir = dir_.path("run_binary");
  binary.task = "binary";
  binary.fields.label = "match";
  binary.max_steps = 2;
  train(binary);
  expect_refused(binary.out_dir, "--model " + binary.out_dir + ": its task (binary) differs");
}

// Lexical features: the MLP learns (its output layer leaves zero), the statistics travel
// with the checkpoint, and eval and score reproduce the training run's dev metric.
TEST_F(TrainTest, LexicalFeaturesTrainAndTravelWithTheModel) {
  config_.lexical_features = true;
  config_.precision = "fp32";
  TrainResult r = train(config_);
  EXPECT_LT(r.best_metric, 0.5 * constant_rmse());
  ASSERT_TRUE(fs::exists(dir_.path("run/best/lexical_stats.json")));
  LoadedModel m = load_model(config_.out_dir);
  EXPECT_TRUE(m.spec.task.lexical_features);
  ASSERT_TRUE(m.model->side_head("lexical"));
  ASSERT_EQ(m.featurizer->side_inputs().size(), 1u);
  auto lexical = std::dynamic_pointer_cast<const LexicalInput>(m.featurizer->side_inputs().front());
  ASSERT_TRUE(lexical);
  EXPECT_GT(lexical->stats().docs, 10);
  const torch::Tensor out_weight = m.model->side_head("lexical")->output->weight;
  EXPECT_GT(out_weight.abs().max().item<double>(), 1e-4) << "the lexical MLP did not learn";

  EvalConfig ec;
  ec.models = {config_.out_dir};
  ec.data = config_.dev_path;
  ec.precision = "fp32";
  EXPECT_NEAR(evaluate(ec).primary, r.best_metric, 1e-6);
  ScoreConfig sc;
  sc.models = {config_.out_dir};
  sc.input = config_.dev_path;
  sc.output = dir_.path("scored.jsonl");
  sc.precision = "fp32";
  EXPECT_EQ(score(sc).written, 80);

  fs::remove(dir_.path("run/best/lexical_stats.json"));
  try {
    load_model(dir_.path("run/best"));
    FAIL() << "a lexical model loaded without its statistics";
  } catch (const ModelError& e) {
    EXPECT_NE(std::string(e.what()).find("lexical_stats.json is missing"), std::string::npos) << e.what();
  }
}

TEST_F(TrainTest, ClassificationWithNamedLabels) {
  config_.task = "classification";
  config_.fields.label = "grade";
  config_.labels = {"irrelevant", "exact"};  // least to most relevant
  TrainResult r = train(config_);
  EXPECT_EQ(r.metric_name, "accuracy");
  EXPECT_GT(r.best_metric, 0.9);
  LoadedModel m = load_model(config_.out_dir);
  EXPECT_EQ(m.spec.task.labels, (std::vector<std::string>{"irrelevant", "exact"}));
  // With classes in relevance order the ranking metrics are meaningful: a good model ranks
  // the exact matches first.
  EXPECT_GT(r.final_metrics["ranking"]["ndcg_at_10"].get<double>(), 0.95);
  EXPECT_TRUE(r.final_metrics.contains("confusion_matrix"));

  ScoreConfig sc;
  sc.models = {config_.out_dir};
  sc.input = config_.dev_path;
  sc.output = dir_.path("scored.jsonl");
  sc.threshold = 0.5;
  sc.filter = true;
  ScoreSummary s = score(sc);
  auto out = read_jsonl_file(sc.output);
  EXPECT_EQ(static_cast<int64_t>(out.size()), s.written);
  EXPECT_EQ(s.written + s.filtered, 80);
  for (const auto& o : out) {
    EXPECT_TRUE(o["keep"].get<bool>());
    EXPECT_EQ(o["probs"].size(), 2u);
    // score = P(class 1) * 1 / (K - 1): the probability-weighted class index in [0, 1]
    EXPECT_NEAR(o["score"].get<double>(), o["probs"][1].get<double>(), 1e-6);
    EXPECT_EQ(o["pred"].get<std::string>(), o["probs"][0] > o["probs"][1] ? "irrelevant" : "exact");
  }
}

TEST_F(TrainTest, BinaryTask) {
  config_.task = "binary";
  config_.fields.label = "match";
  TrainResult r = train(config_);
  EXPECT_EQ(r.metric_name, "roc_auc");
  EXPECT_GT(r.best_metric, 0.95);
  EXPECT_TRUE(r.final_metrics.contains("pr_auc"));
}

// --select-metric: a ranking metric selects the best checkpoint, and eval of that checkpoint
// gives the value the run selected it by; a metric the dev set cannot give is refused before
// the first step, and a name that is no metric at once.
TEST_F(TrainTest, SelectMetricChoosesTheCheckpointByThatMetric) {
  config_.select_metric = "ndcg_at_10";
  config_.eval_every = 10;
  const TrainResult r = train(config_);
  EXPECT_EQ(r.metric_name, "ndcg_at_10");
  ASSERT_GE(r.best_step, 10);
  // The best of every evaluation's nDCG@10, at the step the run names.
  double best = 0;
  int64_t best_step = 0;
  for (const auto& e : read_jsonl_file(dir_.path("run/eval_log.jsonl"))) {
    const double v = e["metrics"]["ranking"]["ndcg_at_10"].get<double>();
    if (v > best) best = v, best_step = e["step"].get<int64_t>();
  }
  EXPECT_DOUBLE_EQ(r.best_metric, best);
  EXPECT_EQ(r.best_step, best_step);
  EvalConfig ec;
  ec.models = {config_.out_dir};
  ec.data = config_.dev_path;
  ec.precision = "fp32";
  EXPECT_NEAR(evaluate(ec).metrics["ranking"]["ndcg_at_10"].get<double>(), r.best_metric, 1e-6);

  // Dev without query ids has no ranking metrics.
  std::ofstream(dir_.path("flat.jsonl")) << R"({"query": "red chair", "title": "red chair", "label": 3})" << "\n"
                                         << R"({"query": "lamp", "title": "oak table", "label": 1})" << "\n";
  config_.dev_path = dir_.path("flat.jsonl");
  config_.out_dir = dir_.path("flat");
  try {
    train(config_);
    FAIL() << "selected on a metric the dev set cannot give";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("--select-metric ndcg_at_10: the regression task's dev evaluation of " +
                                         config_.dev_path + " has no ndcg_at_10 (ranking metrics need a query_id"),
              std::string::npos)
        << e.what();
  }
  EXPECT_FALSE(fs::exists(dir_.path("flat/last")));
  config_.select_metric = "random_ndcg_at_10";
  try {
    train(config_);
    FAIL() << "selected on a metric with no direction";
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()).find("--select-metric: \"random_ndcg_at_10\" is not a metric that can select a "
                                         "model (choose among mse, rmse, "),
              0u)
        << e.what();
  }
}

// --rank-loss: every kind trains on batches of whole query groups and logs its term; the
// pointwise term keeps the scores on the label scale; a run resumes exactly, a different group
// draw each epoch included (a cap below the groups' size of 4).
TEST_F(TrainTest, RankLossesTrainOnWholeQueriesAndResumeExactly) {
  const double constant = constant_rmse();
  config_.select_metric = "ndcg_at_10";
  for (const std::string kind : {"listnet", "ranknet", "lambdaloss"}) {
    SCOPED_TRACE(kind);
    config_.rank_loss = kind;
    config_.out_dir = dir_.path(kind);
    const TrainResult r = train(config_);
    EXPECT_EQ(r.metric_name, "ndcg_at_10");
    // 80 groups of 4 in batches of 16 rows: 20 steps an epoch, 4 epochs.
    const auto log = read_jsonl_file(dir_.path(kind + "/train_log.jsonl"));
    ASSERT_EQ(log.size(), 80u);
    for (const auto& e : log) ASSERT_GE(e.at("rank_loss").get<double>(), 0) << e.dump();
    const auto evals = read_jsonl_file(dir_.path(kind + "/eval_log.jsonl"));
    const auto& ranking = evals.back()["metrics"]["ranking"];
    EXPECT_GT(r.best_metric, ranking["random_ndcg_at_10"].get<double>() + 0.1);
    EXPECT_LT(evals.back()["metrics"]["rmse"].get<double>(), 0.5 * constant);
  }

  config_.rank_loss = "lambdaloss";
  config_.rank_group_cap = 3;
  config_.max_steps = 30;
  config_.eval_every = 10;
  config_.out_dir = dir_.path("straight");
  const TrainResult straight = train(config_);
  config_.out_dir = dir_.path("resumed");
  config_.stop_after_step = [](int64_t step) { return step == 15; };
  EXPECT_TRUE(train(config_).interrupted);
  config_.stop_after_step = nullptr;
  config_.resume = true;
  const TrainResult resumed = train(config_);
  EXPECT_EQ(resumed.steps, 30);
  EXPECT_NEAR(resumed.best_metric, straight.best_metric, 1e-6);
  EXPECT_NEAR(resumed.final_metrics["rmse"].get<double>(), straight.final_metrics["rmse"].get<double>(), 1e-6);
  const auto a = read_jsonl_file(dir_.path("straight/train_log.jsonl"));
  const auto b = read_jsonl_file(dir_.path("resumed/train_log.jsonl"));
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i]["rank_loss"].get<double>(), b[i]["rank_loss"].get<double>(), 1e-6);
}

TEST_F(TrainTest, RankLossRefusesWhatItCannotRankInOneLine) {
  config_.rank_loss = "listnet";
  config_.rank_group_cap = 32;  // above --batch-size 16
  try {
    train(config_);
    FAIL() << "a group cap above the batch size was accepted";
  } catch (const ConfigError& e) {
    EXPECT_STREQ(e.what(), "--rank-group-cap 32 exceeds --batch-size 16: a batch holds whole query groups");
  }
  config_.rank_group_cap = 16;
  config_.unlabeled = config_.dev_path;
  config_.teachers = {config_.out_dir};
  try {
    train(config_);
    FAIL() << "--unlabeled pairs were ranked";
  } catch (const ConfigError& e) {
    EXPECT_STREQ(e.what(), "--rank-loss ranks judged results: --unlabeled pairs have no label to rank by");
  }
  EXPECT_FALSE(fs::exists(config_.out_dir));
}

TEST_F(TrainTest, FineTunesAHuggingFaceCheckpoint) {
  DQE_REQUIRE_SHARED_FIXTURES();
  config_.init = std::string(DQE_SHARED_DIR) + "/fixtures/tiny-bert-hf";
  config_.max_steps = 10;
  config_.lr = 1e-4;
  config_.max_len = 0;  // the model's own: min(model_max_length, max_position_embeddings) = 64
  TrainResult r = train(config_);
  EXPECT_EQ(r.steps, 10);
  LoadedModel m = load_model(config_.out_dir);
  EXPECT_EQ(m.spec.task.task, Task::kRegression);
  EXPECT_EQ(m.spec.task.max_len, 64);
  EXPECT_EQ(m.spec.bert.hidden_size, 32);
  EXPECT_FALSE(m.spec.task.match_types);  // "auto" keeps the Hugging Face model's inputs
  EXPECT_DOUBLE_EQ(m.spec.bert.hidden_dropout_prob, 0.1);  // the model's own
  EXPECT_EQ(test::read_text(m.dir + "/vocab.txt"), test::read_text(config_.init + "/vocab.txt"));
}

// --dropout applies to an --init model too, and the checkpoints (resumed ones included) keep
// it; --resume refuses another value.
TEST_F(TrainTest, DropoutOverridesTheInitModels) {
  DQE_REQUIRE_SHARED_FIXTURES();
  config_.init = std::string(DQE_SHARED_DIR) + "/fixtures/tiny-bert-hf";
  config_.max_steps = 4;
  config_.max_len = 0;
  config_.dropout = 0.0;
  config_.stop_after_step = [](int64_t step) { return step == 2; };
  ASSERT_TRUE(train(config_).interrupted);
  config_.stop_after_step = nullptr;
  config_.init.clear();
  config_.resume = true;
  config_.dropout = 0.1;
  try {
    train(config_);
    FAIL() << "resumed with another dropout";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("--resume: --dropout 0.1 differs from the run's 0 "), std::string::npos) << e.what();
  }
  config_.dropout.reset();
  EXPECT_EQ(train(config_).steps, 4);
  LoadedModel m = load_model(config_.out_dir);
  EXPECT_EQ(m.spec.bert.hidden_dropout_prob, 0.0);
  EXPECT_EQ(m.spec.bert.attention_probs_dropout_prob, 0.0);
  for (const auto& module : m.model->modules())
    if (auto* dropout = module->as<torch::nn::DropoutImpl>()) EXPECT_EQ(dropout->options.p(), 0.0);
}

// A fine-tuning from --init draws the heads it adds (here the lexical MLP) from --seed: the
// same seed gives the same run, another seed another one.
TEST_F(TrainTest, FineTuningFromInitIsReproducible) {
  DQE_REQUIRE_SHARED_FIXTURES();
  config_.init = std::string(DQE_SHARED_DIR) + "/fixtures/tiny-bert-hf";
  config_.lexical_features = true;
  config_.max_steps = 5;
  config_.lr = 1e-4;
  config_.max_len = 0;
  config_.precision = "fp32";
  auto lexical_weight = [&](const std::string& out) {
    config_.out_dir = out;
    train(config_);
    return load_model(out).model->side_head("lexical")->hidden->weight.clone();
  };
  const torch::Tensor first = lexical_weight(dir_.path("first"));
  const torch::Tensor again = lexical_weight(dir_.path("again"));
  config_.seed = 6;
  const torch::Tensor other = lexical_weight(dir_.path("other"));
  EXPECT_TRUE(torch::equal(first, again));
  EXPECT_FALSE(torch::equal(first, other));
}

// --resume continues the run as it was started: a flag that shapes what is learned (rate,
// batch plan, seed, schedule, data) differs from the recorded one is refused naming the
// flag, before any step; where and how it computes (threads) may change.
TEST_F(TrainTest, ResumeRefusesRunShapingChangesNamingTheFlag) {
  config_.max_steps = 20;
  config_.stop_after_step = [](int64_t step) { return step == 5; };
  ASSERT_TRUE(train(config_).interrupted);
  config_.stop_after_step = nullptr;
  config_.resume = true;
  auto refused = [&](TrainConfig changed, const std::string& expected) {
    try {
      train(changed);
      ADD_FAILURE() << "resumed with a changed " << expected;
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(expected), std::string::npos) << e.what();
    }
  };
  TrainConfig c = config_;
  c.lr = 5;
  refused(c, "--resume: --lr 5 differs from the run's 0.002");
  c = config_;
  c.batch_size = 8;
  refused(c, "--resume: --batch-size 8 differs from the run's 16");
  c = config_;
  c.seed = 6;
  refused(c, "--seed");
  c = config_;
  c.max_steps = 4;  // a budget may change, but not to end before where the run is
  refused(c, "--resume: --max-steps 4 gives 4 steps, and the run is at step 5 already");
  c = config_;
  c.warmup_ratio = 0.2;
  refused(c, "--warmup-ratio");
  // The same path with fewer lines: another data set.
  const std::string full = test::read_text(config_.train_path);
  test::write_toy_set(config_.train_path, 200, 1);
  refused(config_, "--resume: the data differ from the run's");
  test::write_text(config_.train_path, full);
  // Nothing was written by the refused attempts: the run continues from step 5.
  EXPECT_EQ(read_jsonl_file(dir_.path("run/train_log.jsonl")).size(), 5u);
  config_.threads = 1;
  TrainResult r = train(config_);
  EXPECT_FALSE(r.interrupted);
  EXPECT_EQ(r.steps, 20);
}

// --resume with a larger budget extends the run, finished or not, re-planning the schedule
// over the new length as Hugging Face's Trainer does (computed here from the recipe's formula):
// the steps past the old end decay to 0 at the new one. An extended run interrupted and resumed
// again ends where the uninterrupted extension does. --epochs extends an epoch-based run.
TEST_F(TrainTest, ResumeWithALargerBudgetExtendsTheRunOverANewSchedule) {
  config_.max_steps = 20;
  config_.warmup_ratio = 0.2;
  config_.eval_every = 10;
  ASSERT_FALSE(train(config_).interrupted);
  config_.resume = true;
  config_.max_steps = 30;
  const TrainResult extended = train(config_);
  EXPECT_FALSE(extended.interrupted);
  EXPECT_EQ(extended.steps, 30);
  const auto log = read_jsonl_file(dir_.path("run/train_log.jsonl"));
  ASSERT_EQ(log.size(), 30u);
  for (size_t i = 20; i < 30; ++i) {
    const double want = config_.lr * (30.0 - static_cast<double>(i)) / (30.0 - 6.0);  // warmup: 20% of 30
    EXPECT_NEAR(log[i]["lr"].get<double>(), want, 1e-15) << "step " << i + 1;
  }
  EXPECT_EQ(read_jsonl_file(dir_.path("run/eval_log.jsonl")).back()["step"], 30);
  const TrainerState state = load_trainer_state(dir_.path("run/last"), nullptr);
  EXPECT_EQ(state.total_steps, 30);
  EXPECT_EQ(state.config["max-steps"], 30);

  config_.out_dir = dir_.path("run2");
  config_.resume = false;
  config_.max_steps = 20;
  train(config_);
  config_.resume = true;
  config_.max_steps = 30;
  config_.stop_after_step = [](int64_t step) { return step == 25; };
  ASSERT_TRUE(train(config_).interrupted);
  config_.stop_after_step = nullptr;
  const TrainResult again = train(config_);
  EXPECT_EQ(again.steps, 30);
  EXPECT_NEAR(again.final_metrics["rmse"].get<double>(), extended.final_metrics["rmse"].get<double>(), 1e-6);

  config_.out_dir = dir_.path("run3");
  config_.resume = false;
  config_.max_steps = 0;
  config_.epochs = 1;
  EXPECT_EQ(train(config_).steps, 20);
  config_.resume = true;
  config_.epochs = 2;
  EXPECT_EQ(train(config_).steps, 40);
}

// A run that fails before its first step leaves no directory behind when it made it, and
// leaves a directory the user made (empty) as it was.
TEST_F(TrainTest, ARunFailingBeforeItsFirstStepRemovesTheDirectoryItMade) {
  const std::string bad = dir_.path("bad.jsonl");
  test::write_text(bad, test::read_text(config_.train_path) + "{\"query\": \"q\"}\n");
  config_.train_path = bad;
  config_.out_dir = dir_.path("new/run");
  EXPECT_THROW(train(config_), DataError);
  EXPECT_FALSE(fs::exists(config_.out_dir));
  fs::create_directories(dir_.path("mine"));
  config_.out_dir = dir_.path("mine");
  EXPECT_THROW(train(config_), DataError);
  EXPECT_TRUE(fs::is_directory(config_.out_dir));
}

// A resumed position past the end of the data (as a changed batch plan once left it) ends
// the epoch instead of spinning: every loop of the engine makes progress.
TEST_F(TrainTest, ResumedPositionPastTheDataEndsTheEpoch) {
  config_.epochs = 2;
  config_.stop_after_step = [](int64_t step) { return step == 3; };
  ASSERT_TRUE(train(config_).interrupted);
  const std::string state_path = dir_.path("run/last/trainer_state.json");
  auto state = nlohmann::json::parse(test::read_text(state_path));
  state["batch_in_epoch"] = 100000;
  test::write_text(state_path, state.dump());
  config_.stop_after_step = nullptr;
  config_.resume = true;
  TrainResult r = train(config_);
  EXPECT_FALSE(r.interrupted);
  EXPECT_EQ(r.steps, 3 + 20);  // the rest of epoch 1 was skipped; epoch 2 in full
}

// A stop asked before the first step: nothing to resume, nothing written as if it were.
TEST_F(TrainTest, StopBeforeTheFirstStepIsInterruptedWithoutACheckpoint) {
  std::atomic<int> flag{SIGTERM};
  try {
    train(config_, StopToken(&flag));
    FAIL() << "a stopped run trained";
  } catch (const Interrupted& e) {
    EXPECT_EQ(e.signal_number(), SIGTERM);
    EXPECT_NE(std::string(e.what()).find("nothing to resume"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(dir_.path("run/last")));
}

// A stop asked during training: the step finishes, last/ is written, the signal is reported.
TEST_F(TrainTest, StopDuringTrainingWritesLastAndNamesTheSignal) {
  std::atomic<int> flag{0};
  config_.stop_after_step = [&](int64_t step) {
    if (step == 4) flag = SIGINT;  // as the CLI's handler would
    return false;
  };
  TrainResult r = train(config_, StopToken(&flag));
  EXPECT_TRUE(r.interrupted);
  EXPECT_EQ(r.interrupt_signal, SIGINT);
  EXPECT_EQ(r.steps, 4);
  EXPECT_EQ(load_trainer_state(dir_.path("run/last"), nullptr).step, 4);
}

// The logs are written and read through one schema (run_log.h): every step record has
// exactly the schema's keys, and the reader finds them all.
TEST_F(TrainTest, RunLogsFollowTheSharedSchema) {
  config_.max_steps = 12;
  config_.eval_every = 6;
  train(config_);
  std::ifstream in(dir_.path("run/train_log.jsonl"));
  std::string line;
  ASSERT_TRUE(std::getline(in, line));
  const auto first = nlohmann::ordered_json::parse(line);
  std::vector<std::string> keys;
  for (const auto& item : first.items()) keys.push_back(item.key());
  // Written out, not read from the code: the log is a format that report and scripts read.
  const std::vector<std::string> want = {"step",          "epoch",  "loss",         "lr",       "grad_norm",
                                         "samples_per_s", "tokens", "tokens_per_s", "elapsed_s"};
  EXPECT_EQ(keys, want);
  const auto steps = read_train_log(dir_.path("run/train_log.jsonl"));
  ASSERT_EQ(steps.size(), 12u);
  EXPECT_GT(steps.back().tokens, steps.front().tokens);
  EXPECT_GT(steps.back().tokens_per_s, 0);
  EXPECT_GE(steps.back().elapsed_s, steps.front().elapsed_s);
  std::ifstream eval_in(dir_.path("run/eval_log.jsonl"));
  ASSERT_TRUE(std::getline(eval_in, line));
  keys.clear();
  const auto first_eval = nlohmann::ordered_json::parse(line);
  for (const auto& item : first_eval.items()) keys.push_back(item.key());
  const std::vector<std::string> want_eval = {"step", "epoch", "metric", "value", "best", "improved", "metrics"};
  EXPECT_EQ(keys, want_eval);
  const auto evals = read_eval_log(dir_.path("run/eval_log.jsonl"));
  ASSERT_EQ(evals.size(), 2u);
  EXPECT_EQ(evals[1].step, 12);
  EXPECT_EQ(evals[1].metric, "rmse");
  EXPECT_TRUE(evals[1].metrics.contains("train_mean_rmse"));
}

// The report runs the best model through the same predictor and metrics as eval: its
// table shows eval's numbers.
TEST_F(TrainTest, ReportShowsEvalsMetrics) {
  config_.max_steps = 20;
  train(config_);
  EvalConfig ec;
  ec.models = {config_.out_dir};
  ec.data = config_.dev_path;
  ec.precision = "fp32";
  const EvalResult ev = evaluate(ec);
  ReportConfig rc;
  rc.run_dir = config_.out_dir;
  rc.out = dir_.path("report.html");
  rc.precision = "fp32";
  write_report(rc);
  const std::string html = test::read_text(rc.out);
  size_t shown = 0;
  for (const auto& [key, value] : ev.metrics.items()) {
    if (!value.is_number()) continue;
    const MetricInfo* info = find_metric(key);
    ASSERT_NE(info, nullptr) << key;
    EXPECT_NE(html.find("<td>" + html_escape(info->label) + "</td><td class=\"num\">" +
                        format_number(value.get<double>()) + "</td>"),
              std::string::npos)
        << key << " " << value;
    ++shown;
  }
  EXPECT_GE(shown, 7u);  // count, mse, rmse, mae, pearson, spearman, train_mean_rmse
}

// A model whose output overflows on an input does not write null scores: eval and score
// stop at the first such line, naming it.
TEST_F(TrainTest, NonFiniteScoresStopEvalAndScore) {
  config_.max_steps = 2;
  train(config_);
  const std::string best = dir_.path("run/best");
  auto spec = nlohmann::json::parse(test::read_text(best + "/config.json"));
  spec["dqe"]["label_std"] = 1e308;  // any logit above 1.8 overflows to infinity
  test::write_text(best + "/config.json", spec.dump());
  auto weights = load_safetensors(best + "/model.safetensors");
  weights["classifier.bias"] = torch::full({1}, 1e30f);
  std::vector<std::pair<std::string, torch::Tensor>> named(weights.begin(), weights.end());
  save_safetensors(best + "/model.safetensors", named);
  ScoreConfig sc;
  sc.models = {best};
  sc.input = config_.dev_path;
  sc.output = dir_.path("scored.jsonl");
  try {
    score(sc);
    FAIL() << "non-finite scores were written";
  } catch (const ModelError& e) {
    EXPECT_NE(std::string(e.what()).find("dev.jsonl:1: the model's score is not finite"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(sc.output));
  EvalConfig ec;
  ec.models = {best};
  ec.data = config_.dev_path;
  EXPECT_THROW(evaluate(ec), ModelError);
}

TEST_F(TrainTest, RefusesToOverwriteARunWithoutResume) {
  config_.max_steps = 2;
  train(config_);
  EXPECT_THROW(train(config_), ConfigError);
}

TEST_F(TrainTest, BadTrainingLineNamesFileAndLine) {
  test::write_text(config_.train_path, test::read_text(config_.train_path) + "{\"query\": \"x\"}\n");
  try {
    train(config_);
    FAIL();
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("train.jsonl:321: missing string field \"title\""), std::string::npos)
        << e.what();
  }
  EXPECT_FALSE(fs::exists(dir_.path("run/last")));
}

TEST_F(TrainTest, DivergingRunStopsNamingTheLikelyCause) {
  config_.eval_every = 3;
  config_.lr = 1e30;  // the weights overflow after a few steps
  config_.max_grad_norm = 0;
  config_.warmup_ratio = 0;
  try {
    train(config_);
    FAIL() << "training should have stopped";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("non-finite loss"), std::string::npos) << what;
    EXPECT_NE(what.find("--lr"), std::string::npos) << what;
    // A checkpoint the message names is one that exists.
    const size_t named = what.find("the last good checkpoint is in ");
    if (named != std::string::npos) {
      const std::string dir = what.substr(named + 31, what.find(')', named) - named - 31);
      EXPECT_TRUE(fs::exists(fs::path(dir) / "trainer_state.json")) << dir;
    } else {
      EXPECT_NE(what.find("no checkpoint was written yet"), std::string::npos) << what;
    }
  }
}

}  // namespace
}  // namespace dqe
