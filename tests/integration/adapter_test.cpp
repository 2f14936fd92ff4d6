// Bottleneck adapter runs (--peft adapter) through the library on the toy set, from a tiny base
// trained here (seconds), as lora_test.cpp does for LoRA.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>

#include "dqe/bottleneck.h"
#include "dqe/checkpoint.h"
#include "dqe/errors.h"
#include "dqe/evaluator.h"
#include "dqe/exporter.h"
#include "dqe/jsonl_reader.h"
#include "dqe/peft.h"
#include "dqe/predictor.h"
#include "dqe/run_context.h"
#include "dqe/safetensors.h"
#include "dqe/scorer.h"
#include "dqe/trainer.h"
#include "integration/run_util.h"
#include "test_util.h"

namespace dqe {
namespace fs = std::filesystem;
namespace {

using test::encoder_weights;
using test::read_jsonl_file;

// What the adapters of one layer of hidden 32 at this size hold, counted here from the shapes.
int64_t adapter_parameters(int64_t layers, int64_t hidden, int64_t size) {
  const int64_t down = hidden * size + size, up = size * hidden + hidden;
  return layers * 2 * (down + up);
}

class AdapterTest : public ::testing::Test {
 protected:
  // The base: a one-layer model trained from scratch to classify the pairs as exact or
  // irrelevant (as in lora_test.cpp); the adapter runs learn a regression of the labels with
  // a new head on top of it.
  static void SetUpTestSuite() {
    shared_ = new test::TempDir();
    test::write_toy_set(shared_->path("train.jsonl"), 320, 1);
    test::write_toy_set(shared_->path("dev.jsonl"), 80, 2);
    TrainConfig base;
    base.train_path = shared_->path("train.jsonl");
    base.dev_path = shared_->path("dev.jsonl");
    base.out_dir = shared_->path("base");
    base.task = "classification";
    base.fields.label = "grade";
    base.layers = 1;
    base.hidden = 32;
    base.heads = 2;
    base.intermediate = 64;
    base.vocab_size = 200;
    base.max_len = 32;
    base.lr = 2e-3;
    base.batch_size = 16;
    base.epochs = 2;
    base.threads = 2;
    base.precision = "fp32";
    const TrainResult r = train(base);
    ASSERT_GT(r.best_metric, 0.9);
  }
  static void TearDownTestSuite() { delete shared_; }

  void SetUp() override {
    config_.train_path = shared_->path("train.jsonl");
    config_.dev_path = shared_->path("dev.jsonl");
    config_.out_dir = dir_.path("run");
    config_.init = base_dir();
    config_.peft = "adapter";
    config_.adapter_size = 16;
    config_.lr = 5e-3;
    config_.batch_size = 16;
    config_.epochs = 3;
    config_.threads = 2;
    config_.seed = 5;
    config_.patience = 0;
    config_.precision = "fp32";
  }

  static std::string base_dir() { return shared_->path("base"); }

  // RMSE of predicting the training mean on dev: the constant predictor to beat.
  double constant_rmse() const {
    double mean = 0, sq = 0;
    auto train = read_jsonl_file(config_.train_path);
    for (const auto& r : train) mean += r["label"].get<double>() / static_cast<double>(train.size());
    auto dev = read_jsonl_file(config_.dev_path);
    for (const auto& r : dev) sq += std::pow(r["label"].get<double>() - mean, 2);
    return std::sqrt(sq / static_cast<double>(dev.size()));
  }

  std::vector<double> scores_of(const std::string& model, const std::string& name, const std::string& base = "") {
    ScoreConfig sc;
    sc.models = {model};
    sc.input = config_.dev_path;
    sc.output = dir_.path(name);
    sc.threads = 2;
    sc.precision = "fp32";
    sc.base = base;
    score(sc);
    std::vector<double> out;
    for (const auto& o : read_jsonl_file(sc.output)) out.push_back(o["score"].get<double>());
    return out;
  }

  std::string train_message() {
    try {
      train(config_);
    } catch (const ConfigError& e) {
      return e.what();
    }
    return "(trained)";
  }

  static test::TempDir* shared_;
  test::TempDir dir_;
  TrainConfig config_;
};

test::TempDir* AdapterTest::shared_ = nullptr;

// An adapter run learns with the base frozen: the optimizer holds the adapters and the head
// only, the base's weights stay bit for bit, and the checkpoints hold the adapters and the head
// (no copy of the base) that eval, score and export agree on; --merge is refused.
TEST_F(AdapterTest, LearnsWithTheBaseFrozenAndSavesTheAdapterOnly) {
  const std::string base_file = base_dir() + "/best/model.safetensors";
  const std::string base_bytes = test::read_text(base_file);
  LoadedModel base = load_model(base_dir());
  const TrainResult r = train(config_);
  EXPECT_FALSE(r.interrupted);
  // Two adapters in the one layer of hidden 32 at size 16; the new regression head 32 + 1.
  EXPECT_EQ(r.trainable_parameters, adapter_parameters(1, 32, 16) + 32 + 1);
  EXPECT_EQ(r.trainable_parameters, 2 * (32 * 16 + 16 + 16 * 32 + 32) + 33);
  EXPECT_LT(r.best_metric, 0.5 * constant_rmse());

  EXPECT_EQ(test::read_text(base_file), base_bytes);
  LoadedModel tuned = load_model(config_.out_dir);
  ASSERT_TRUE(tuned.spec.bottleneck);
  EXPECT_FALSE(tuned.spec.lora);
  EXPECT_EQ(tuned.spec.bottleneck->size, 16);
  EXPECT_EQ(fs::canonical(tuned.base_dir), fs::canonical(base_dir() + "/best"));
  const auto before = encoder_weights(base), after = encoder_weights(tuned);
  ASSERT_EQ(before.size(), after.size());
  for (const auto& [name, t] : before) EXPECT_TRUE(torch::equal(t, after.at(name))) << name << " changed";
  ASSERT_EQ(tuned.model->bottleneck->adapters.size(), 2u);
  for (const auto& [name, adapter] : tuned.model->bottleneck->adapters)
    EXPECT_GT(adapter->up->weight.abs().max().item<double>(), 1e-4) << name << " did not learn";

  const std::string best = dir_.path("run/best");
  EXPECT_FALSE(fs::exists(best + "/model.safetensors"));
  for (const char* f : {"adapter_config.json", "adapter_model.safetensors", "config.json", "vocab.txt",
                        "tokenizer_config.json", "trainer_state.json", "optimizer.pt", "score_reference.json"})
    EXPECT_TRUE(fs::exists(best + "/" + f)) << f;
  const nlohmann::json ac = read_json_file(best + "/adapter_config.json");
  EXPECT_EQ(ac["peft_type"], "BOTTLENECK");
  EXPECT_EQ(ac["task_type"], "SEQ_CLS");
  EXPECT_EQ(ac["adapter_size"], 16);
  EXPECT_EQ(ac["modules_to_save"], nlohmann::json({"classifier"}));
  EXPECT_EQ(ac["base_model_name_or_path"], base_dir());
  const nlohmann::json config = read_json_file(best + "/config.json");
  EXPECT_EQ(config["dqe"]["adapter"]["peft_type"], "BOTTLENECK");
  EXPECT_EQ(config["dqe"]["adapter"]["base"], base_dir());
  EXPECT_EQ(config["dqe"]["adapter"]["base_weights_hash"], encoder_weights_hash(base.model));
  std::set<std::string> names;
  for (const auto& [name, t] : load_safetensors(best + "/adapter_model.safetensors")) names.insert(name);
  std::set<std::string> want = {"base_model.model.classifier.weight", "base_model.model.classifier.bias"};
  for (const char* site : {"attention.output", "output"})
    for (const char* tensor : {"down.weight", "down.bias", "up.weight", "up.bias"})
      want.insert(std::string("base_model.model.bert.encoder.layer.0.") + site + ".adapter." + tensor);
  EXPECT_EQ(names, want);

  EvalConfig ec;
  ec.models = {config_.out_dir};
  ec.data = config_.dev_path;
  ec.threads = 2;
  ec.precision = "fp32";
  EXPECT_NEAR(evaluate(ec).primary, r.best_metric, 1e-6);
  const auto scores = scores_of(config_.out_dir, "scores.jsonl");
  ASSERT_EQ(scores.size(), 80u);

  // Without --merge, export rewrites the adapter; with it, refused, and nothing is written.
  ExportConfig xc;
  xc.model = config_.out_dir;
  xc.out = dir_.path("exported");
  const ExportResult x = export_model(xc);
  EXPECT_TRUE(x.adapter);
  EXPECT_EQ(x.merged_modules, 0);
  EXPECT_TRUE(fs::exists(dir_.path("exported/adapter_model.safetensors")));
  EXPECT_FALSE(fs::exists(dir_.path("exported/model.safetensors")));
  const auto exported = scores_of(xc.out, "exported.jsonl");
  ASSERT_EQ(exported.size(), scores.size());
  for (size_t i = 0; i < scores.size(); ++i) EXPECT_NEAR(exported[i], scores[i], 1e-6) << "line " << i + 1;

  xc.out = dir_.path("merged");
  xc.merge = true;
  try {
    export_model(xc);
    FAIL() << "bottleneck adapters were merged";
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()),
              "--merge: " + config_.out_dir + " holds bottleneck adapters, which are nonlinear (h + up(act(down(h)))) "
              "and cannot be folded into its base's weights; export it without --merge");
  }
  EXPECT_FALSE(fs::exists(dir_.path("merged")));

  // Full fine-tuning cannot start from it either (it would have to merge it).
  config_.init = config_.out_dir;
  config_.peft = "none";
  config_.out_dir = dir_.path("full");
  EXPECT_NE(train_message().find("is a bottleneck adapter, which cannot be merged into its base"), std::string::npos);
  EXPECT_FALSE(fs::exists(dir_.path("full/best")));
}

// Before any step the adapted model is its base: the same logits on every dev pair.
TEST_F(AdapterTest, StepZeroEqualsTheBase) {
  LoadedModel base = load_model(base_dir());
  LoadOptions lo;
  lo.bottleneck = BottleneckSpec{};
  lo.bottleneck->size = 8;
  LoadedModel adapted = load_model(base_dir(), lo);
  ASSERT_TRUE(adapted.model->bottleneck);
  ReaderOptions ro;
  ro.fields.label = "grade";
  const std::vector<Record> records = read_jsonl(config_.dev_path, ro);
  const torch::Tensor want =
      Predictor(base.model, base.featurizer, Precision::kFp32, 16).run(records, 2).logits;
  const torch::Tensor got =
      Predictor(adapted.model, adapted.featurizer, Precision::kFp32, 16).run(records, 2).logits;
  ASSERT_EQ(want.size(0), 80);
  EXPECT_TRUE(torch::equal(got, want));
}

// On the GPU: an adapter run and its resumption there, scoring the same on the CPU.
TEST_F(AdapterTest, TrainsOnTheGpuAndScoresTheSameOnTheCpu) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no GPU (this LibTorch has no CUDA, or none is visible)";
  config_.device = "cuda";
  config_.stop_after_step = [](int64_t step) { return step == 20; };
  ASSERT_TRUE(train(config_).interrupted);
  config_.stop_after_step = nullptr;
  config_.resume = true;
  const TrainResult r = train(config_);
  EXPECT_LT(r.best_metric, 0.5 * constant_rmse());
  EvalConfig ec;
  ec.models = {config_.out_dir};
  ec.data = config_.dev_path;
  ec.precision = "fp32";
  ec.device = "cpu";
  const double cpu = evaluate(ec).primary;
  ec.device = "cuda";
  EXPECT_NEAR(evaluate(ec).primary, cpu, 1e-4);
}

TEST_F(AdapterTest, ResumedRunEqualsAnUninterruptedOne) {
  config_.max_steps = 30;
  config_.eval_every = 10;
  const TrainResult straight = train(config_);

  config_.out_dir = dir_.path("run2");
  config_.stop_after_step = [](int64_t step) { return step == 15; };
  const TrainResult first = train(config_);
  ASSERT_TRUE(first.interrupted);
  config_.stop_after_step = nullptr;
  config_.resume = true;
  config_.init.clear();  // a resumed run continues from its own last/ (and its recorded base)
  const TrainResult resumed = train(config_);
  EXPECT_EQ(resumed.steps, 30);
  EXPECT_EQ(resumed.trainable_parameters, straight.trainable_parameters);
  EXPECT_NEAR(resumed.final_metrics["rmse"].get<double>(), straight.final_metrics["rmse"].get<double>(), 1e-6);
  EXPECT_NEAR(resumed.best_metric, straight.best_metric, 1e-6);
  EXPECT_EQ(resumed.best_step, straight.best_step);
  const auto a = load_safetensors(dir_.path("run/last/adapter_model.safetensors"));
  const auto b = load_safetensors(dir_.path("run2/last/adapter_model.safetensors"));
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [name, t] : a) EXPECT_TRUE(torch::allclose(t, b.at(name), 1e-5, 1e-6)) << name;

  // Two adapters of one base in an ensemble hold the base once, each its own adapters.
  const RunContext ctx = make_run_context("cpu", "fp32", 1);
  const Ensemble both = load_ensemble({dir_.path("run"), dir_.path("run2")}, 0, std::nullopt, ctx, 16);
  EXPECT_EQ(both.adapters, 2);
  EXPECT_EQ(both.adapter_bases, 1);
  EXPECT_GT(both.shared_base_bytes, 0);
  auto first_of = [](SequenceModel model, Role role) {
    for (const auto& p : model->role_parameters())
      if (p.role == role) return p.tensor;
    return torch::Tensor();
  };
  for (Role role : {Role::kEmbeddings, Role::kEncoder, Role::kPooler})
    EXPECT_EQ(first_of(both.members[0].model, role).data_ptr(), first_of(both.members[1].model, role).data_ptr());
  EXPECT_NE(first_of(both.members[0].model, Role::kBottleneck).data_ptr(),
            first_of(both.members[1].model, Role::kBottleneck).data_ptr());

  // The run's shape is recorded: a resume may not change it.
  config_.adapter_size = 8;
  EXPECT_NE(train_message().find("--resume: --adapter-size 8 differs from the run's 16"), std::string::npos);
}

// The adapter names its base; a moved base is pointed at with --base, and a base whose weights
// changed is refused naming both.
TEST_F(AdapterTest, ChangedBaseIsRefusedAndBaseFlagFindsAMovedOne) {
  fs::create_directories(dir_.path("base"));
  for (const auto& entry : fs::directory_iterator(base_dir() + "/best"))
    fs::copy_file(entry.path(), fs::path(dir_.path("base")) / entry.path().filename());
  config_.init = dir_.path("base");
  config_.max_steps = 6;
  config_.stop_after_step = [](int64_t step) { return step == 3; };
  ASSERT_TRUE(train(config_).interrupted);

  fs::rename(dir_.path("base"), dir_.path("moved"));
  EvalConfig ec;
  ec.models = {config_.out_dir};
  ec.data = config_.dev_path;
  ec.precision = "fp32";
  try {
    evaluate(ec);
    FAIL() << "an adapter whose base is gone was evaluated";
  } catch (const ModelError& e) {
    EXPECT_NE(std::string(e.what()).find(": its base model " + dir_.path("base") + " is missing"), std::string::npos)
        << e.what();
  }
  ec.base = dir_.path("moved");
  EXPECT_NO_THROW(evaluate(ec));
  EXPECT_EQ(scores_of(config_.out_dir, "s.jsonl", dir_.path("moved")).size(), 80u);

  config_.stop_after_step = nullptr;
  config_.resume = true;
  config_.base = dir_.path("moved");
  EXPECT_EQ(train(config_).steps, 6);

  auto tensors = load_safetensors(dir_.path("moved/model.safetensors"));
  tensors["bert.encoder.layer.0.output.LayerNorm.bias"][0] += 0.01;
  save_safetensors(dir_.path("moved/model.safetensors"), {tensors.begin(), tensors.end()});
  try {
    evaluate(ec);
    FAIL() << "an adapter was evaluated on another base";
  } catch (const ModelError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find(config_.out_dir), std::string::npos) << message;
    EXPECT_NE(message.find(": its base " + dir_.path("moved") + " has other weights than the adapter was trained on"),
              std::string::npos)
        << message;
  }
}

// Every task, bf16 too, trains with adapters as it does in full.
TEST_F(AdapterTest, EveryTaskAndBf16) {
  config_.max_steps = 10;
  config_.precision = "bf16";
  TrainResult r = train(config_);
  EXPECT_TRUE(std::isfinite(r.best_metric));

  config_.out_dir = dir_.path("binary");
  config_.task = "binary";
  config_.fields.label = "match";
  r = train(config_);
  EXPECT_EQ(r.metric_name, "roc_auc");
  EXPECT_TRUE(std::isfinite(r.best_metric));

  config_.out_dir = dir_.path("classes");
  config_.task = "classification";
  config_.fields.label = "grade";
  config_.precision = "fp32";
  config_.adapter_size = 4;
  r = train(config_);
  EXPECT_EQ(r.metric_name, "accuracy");
  EXPECT_EQ(r.trainable_parameters, adapter_parameters(1, 32, 4) + 2 * 32 + 2);  // the base's 2-class head, kept
  EXPECT_GT(r.best_metric, 0.9);

  // A side head trains in full and is saved with the adapter.
  config_.out_dir = dir_.path("lexical");
  config_.lexical_features = true;
  r = train(config_);
  const nlohmann::json ac = read_json_file(dir_.path("lexical/best/adapter_config.json"));
  EXPECT_EQ(ac["modules_to_save"], nlohmann::json({"classifier", "lexical", "fusion"}));  // fusion layers train in full too
  EXPECT_EQ(load_safetensors(dir_.path("lexical/best/adapter_model.safetensors")).count("base_model.model.lexical.2.weight"), 1u);
  EvalConfig ec;
  ec.models = {config_.out_dir};
  ec.data = config_.dev_path;
  ec.precision = "fp32";
  EXPECT_NEAR(evaluate(ec).primary, r.best_metric, 1e-6);

  // An --init adapter continues training its own adapters.
  config_.init = dir_.path("classes");
  config_.out_dir = dir_.path("continued");
  config_.lexical_features = false;
  config_.adapter_size = 8;
  EXPECT_NE(train_message().find("--adapter-size 8 differs from --init " + config_.init + "'s adapter_size 4"),
            std::string::npos);
  config_.adapter_size = 4;
  r = train(config_);
  EXPECT_EQ(r.trainable_parameters, adapter_parameters(1, 32, 4) + 2 * 32 + 2);
  EXPECT_TRUE(fs::exists(dir_.path("continued/best/adapter_config.json")));
}

TEST_F(AdapterTest, UsageErrorsNameTheFlag) {
  config_.adapter_size = 0;
  EXPECT_EQ(train_message(), "--adapter-size must be between 1 and 65536, got 0");
  config_.adapter_size = 33;
  EXPECT_EQ(train_message(), "--adapter-size must be between 1 and the base's hidden size 32, got 33");
  EXPECT_FALSE(fs::exists(dir_.path("run/best")));
  config_.adapter_size = 16;
  config_.init.clear();
  EXPECT_EQ(train_message(), "--peft adapter needs --init: the base model to adapt");
}

}  // namespace
}  // namespace dqe
