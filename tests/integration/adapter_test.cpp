// Bottleneck adapter runs (--peft adapter) through the library on the toy set, from a tiny base
// trained here (seconds), as lora_test.cpp does for LoRA.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>

#include "dqe/errors.h"
#include "dqe/evaluator.h"
#include "dqe/exporter.h"
#include "dqe/jsonl_reader.h"
#include "dqe/run_context.h"
#include "dqe/scorer.h"
#include "dqe/trainer.h"
#include "infer/predictor.h"
#include "integration/peft_fixture.h"
#include "integration/run_util.h"
#include "io/safetensors.h"
#include "model/model_dir.h"
#include "model/peft/adapter.h"
#include "model/peft/bottleneck.h"
#include "model/peft/lora.h"
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

class AdapterTest : public test::PeftRunTest {
 protected:
  void SetUp() override {
    use_peft("adapter");
    config_.adapter_size = 16;
  }
};

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
  ASSERT_TRUE(tuned.spec.adapter.as<BottleneckSpec>());
  EXPECT_FALSE(tuned.spec.adapter.as<LoraSpec>());
  EXPECT_EQ(tuned.spec.adapter.as<BottleneckSpec>()->size, 16);
  EXPECT_EQ(fs::canonical(tuned.base_dir), fs::canonical(base_dir() + "/best"));
  const auto before = encoder_weights(base), after = encoder_weights(tuned);
  ASSERT_EQ(before.size(), after.size());
  for (const auto& [name, t] : before) EXPECT_TRUE(torch::equal(t, after.at(name))) << name << " changed";
  ASSERT_EQ(bottleneck_adapters(*tuned.model)->adapters.size(), 2u);
  for (const auto& [name, adapter] : bottleneck_adapters(*tuned.model)->adapters)
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
  EXPECT_EQ(config["dqe"]["adapter"]["base_weights_hash"], encoder_weights_hash(*base.model));
  std::set<std::string> names;
  for (const auto& [name, t] : load_safetensors(best + "/adapter_model.safetensors")) names.insert(name);
  std::set<std::string> want = {"base_model.model.classifier.weight", "base_model.model.classifier.bias"};
  for (const char* site : {"attention.output", "output"})
    for (const char* tensor : {"down.weight", "down.bias", "up.weight", "up.bias"})
      want.insert(std::string("base_model.model.bert.encoder.layer.0.") + site + ".adapter." + tensor);
  EXPECT_EQ(names, want);

  expect_eval_score_and_export_to_agree(r.best_metric);

  // With --merge, refused, and nothing is written; nor can full fine-tuning start from it (it
  // would have to merge it).
  expect_merge_refused("--merge: " + config_.out_dir + " holds bottleneck adapters, which are nonlinear "
                       "(h + up(act(down(h)))) and cannot be folded into its base's weights; export it without --merge",
                       "is a bottleneck adapter, which cannot be merged into its base");
}

// Before any step the adapted model is its base: the same logits on every dev pair.
TEST_F(AdapterTest, StepZeroEqualsTheBase) {
  LoadedModel base = load_model(base_dir());
  LoadOptions lo;
  BottleneckSpec spec;
  spec.size = 8;
  lo.adapter = AdapterSpecPtr(spec);
  LoadedModel adapted = load_model(base_dir(), lo);
  ASSERT_TRUE(adapted.model->adapter);
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
  const TrainResult r = train_on_the_gpu_with_a_resume();
  EXPECT_LT(r.best_metric, 0.5 * constant_rmse());
  expect_the_cpu_to_evaluate_it_as_the_gpu();
}

TEST_F(AdapterTest, ResumedRunEqualsAnUninterruptedOne) {
  straight_and_resumed_runs();
  if (HasFatalFailure()) return;

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
  EXPECT_NE(first_of(both.members[0].model, Role::kAdapter).data_ptr(),
            first_of(both.members[1].model, Role::kAdapter).data_ptr());

  // The run's shape is recorded: a resume may not change it.
  config_.adapter_size = 8;
  EXPECT_NE(message_of_training().find("--resume: --adapter-size 8 differs from the run's 16"), std::string::npos);
}

// The adapter names its base; a moved base is pointed at with --base (eval, score, and a
// resumed run), and a base whose weights changed is refused naming both.
TEST_F(AdapterTest, ChangedBaseIsRefusedAndBaseFlagFindsAMovedOne) {
  expect_a_moved_base_found_and_a_changed_one_refused("bert.encoder.layer.0.output.LayerNorm.bias");
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
  EXPECT_NE(message_of_training().find("--adapter-size 8 differs from --init " + config_.init + "'s adapter_size 4"),
            std::string::npos);
  config_.adapter_size = 4;
  r = train(config_);
  EXPECT_EQ(r.trainable_parameters, adapter_parameters(1, 32, 4) + 2 * 32 + 2);
  EXPECT_TRUE(fs::exists(dir_.path("continued/best/adapter_config.json")));
}

TEST_F(AdapterTest, UsageErrorsNameTheFlag) {
  config_.adapter_size = 0;
  EXPECT_EQ(message_of_training(), "--adapter-size must be between 1 and 65536, got 0");
  config_.adapter_size = 33;
  EXPECT_EQ(message_of_training(), "--adapter-size must be between 1 and the base's hidden size 32, got 33");
  EXPECT_FALSE(fs::exists(dir_.path("run/best")));
  config_.adapter_size = 16;
  config_.init.clear();
  EXPECT_EQ(message_of_training(), "--peft adapter needs --init: the base model to adapt");
}

}  // namespace
}  // namespace dqe
