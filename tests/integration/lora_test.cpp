// LoRA runs through the library on the toy set, from a tiny base trained here (seconds).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>

#include "dqe/errors.h"
#include "dqe/evaluator.h"
#include "dqe/exporter.h"
#include "dqe/scorer.h"
#include "dqe/trainer.h"
#include "integration/peft_fixture.h"
#include "integration/run_util.h"
#include "io/safetensors.h"
#include "model/model_dir.h"
#include "model/peft/adapter.h"
#include "model/peft/lora.h"
#include "test_util.h"

namespace dqe {
namespace fs = std::filesystem;
namespace {

using test::encoder_weights;
using test::read_jsonl_file;

class LoraTest : public test::PeftRunTest {
 protected:
  void SetUp() override { use_peft("lora"); }
};

// A LoRA run learns with the base frozen: the optimizer holds the updates and the head only,
// the base's weights stay bit for bit, and the checkpoints are PEFT adapters that eval, score
// and export (merged) agree on.
TEST_F(LoraTest, LearnsWithTheBaseFrozenAndSavesPeftsLayout) {
  const std::string base_file = base_dir() + "/best/model.safetensors";
  const std::string base_bytes = test::read_text(base_file);
  LoadedModel base = load_model(base_dir());
  const TrainResult r = train(config_);
  EXPECT_FALSE(r.interrupted);
  // query and value of one layer (32 x 32), rank 8: r (in + out) each; the new head 32 + 1.
  EXPECT_EQ(r.trainable_parameters, 2 * 8 * (32 + 32) + 32 + 1);
  EXPECT_LT(r.best_metric, 0.5 * constant_rmse());

  EXPECT_EQ(test::read_text(base_file), base_bytes);
  LoadedModel tuned = load_model(config_.out_dir);
  ASSERT_TRUE(tuned.spec.adapter.as<LoraSpec>());
  const auto before = encoder_weights(base), after = encoder_weights(tuned);
  ASSERT_EQ(before.size(), after.size());
  for (const auto& [name, t] : before) EXPECT_TRUE(torch::equal(t, after.at(name))) << name << " changed";
  for (const auto& [name, update] : lora_adapter(*tuned.model)->updates)
    EXPECT_GT(update->lora_B->weight.abs().max().item<double>(), 1e-4) << name << " did not learn";

  const std::string best = dir_.path("run/best");
  EXPECT_FALSE(fs::exists(best + "/model.safetensors"));
  for (const char* f : {"adapter_config.json", "adapter_model.safetensors", "config.json", "vocab.txt",
                        "tokenizer_config.json", "trainer_state.json", "optimizer.pt", "score_reference.json"})
    EXPECT_TRUE(fs::exists(best + "/" + f)) << f;
  const nlohmann::json ac = read_json_file(best + "/adapter_config.json");
  EXPECT_EQ(ac["peft_type"], "LORA");
  EXPECT_EQ(ac["task_type"], "SEQ_CLS");
  EXPECT_EQ(ac["r"], 8);
  EXPECT_EQ(ac["lora_alpha"], 16);
  EXPECT_DOUBLE_EQ(ac["lora_dropout"].get<double>(), 0.1);
  EXPECT_EQ(ac["target_modules"], nlohmann::json({"query", "value"}));
  EXPECT_EQ(ac["modules_to_save"], nlohmann::json({"classifier"}));
  EXPECT_EQ(ac["base_model_name_or_path"], base_dir());
  EXPECT_EQ(ac["bias"], "none");
  EXPECT_EQ(ac["fan_in_fan_out"], false);
  std::set<std::string> names;
  for (const auto& [name, t] : load_safetensors(best + "/adapter_model.safetensors")) names.insert(name);
  const std::string layer = "base_model.model.bert.encoder.layer.0.attention.self.";
  EXPECT_EQ(names, (std::set<std::string>{layer + "query.lora_A.weight", layer + "query.lora_B.weight",
                                          layer + "value.lora_A.weight", layer + "value.lora_B.weight",
                                          "base_model.model.classifier.weight", "base_model.model.classifier.bias"}));

  EvalConfig ec;
  ec.models = {config_.out_dir};
  ec.data = config_.dev_path;
  ec.threads = 2;
  ec.precision = "fp32";
  EXPECT_NEAR(evaluate(ec).primary, r.best_metric, 1e-6);

  ExportConfig xc;
  xc.model = config_.out_dir;
  xc.out = dir_.path("merged");
  xc.merge = true;
  EXPECT_EQ(export_model(xc).merged_modules, 2);
  EXPECT_TRUE(fs::exists(dir_.path("merged/model.safetensors")));
  ec.models = {xc.out};
  EXPECT_NEAR(evaluate(ec).primary, r.best_metric, 1e-5);
  const auto unmerged = scores_of(config_.out_dir, "unmerged.jsonl"), merged = scores_of(xc.out, "merged.jsonl");
  ASSERT_EQ(unmerged.size(), 80u);
  ASSERT_EQ(merged.size(), unmerged.size());
  for (size_t i = 0; i < merged.size(); ++i) EXPECT_NEAR(merged[i], unmerged[i], 1e-5) << "line " << i + 1;
}

// On the GPU: a LoRA run and its resumption there, scoring the same on the CPU.
TEST_F(LoraTest, TrainsOnTheGpuAndScoresTheSameOnTheCpu) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no GPU (this LibTorch has no CUDA, or none is visible)";
  const TrainResult r = train_on_the_gpu_with_a_resume();
  EXPECT_LT(r.best_metric, 0.5 * constant_rmse());
  expect_the_cpu_to_evaluate_it_as_the_gpu();
}

TEST_F(LoraTest, ResumedRunEqualsAnUninterruptedOne) {
  straight_and_resumed_runs();
  if (HasFatalFailure()) return;

  // The run's shape is recorded: a resume may not change it.
  config_.lora_rank = 4;
  try {
    train(config_);
    FAIL() << "a resume with another --lora-rank was accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("--resume: --lora-rank 4 differs from the run's 8"), std::string::npos) << e.what();
  }
}

// The adapter names its base; a moved base is pointed at with --base (eval, score, and a
// resumed run), and a base whose weights changed is refused naming both.
TEST_F(LoraTest, ChangedBaseIsRefusedAndBaseFlagFindsAMovedOne) {
  expect_a_moved_base_found_and_a_changed_one_refused("bert.embeddings.LayerNorm.weight");
}

// Every task, bf16 too, trains with LoRA as it does in full.
TEST_F(LoraTest, EveryTaskAndBf16) {
  config_.max_steps = 10;
  config_.precision = "bf16";
  config_.lora_targets = {"all-linear"};
  TrainResult r = train(config_);
  // all-linear on one layer and the pooler: q, k, v and the attention output (32 x 32), the
  // intermediate (64 x 32), the output (32 x 64), the pooler (32 x 32); rank 8.
  EXPECT_EQ(r.trainable_parameters, 8 * (5 * (32 + 32) + 2 * (32 + 64)) + 33);
  EXPECT_TRUE(std::isfinite(r.best_metric));

  config_.out_dir = dir_.path("binary");
  config_.task = "binary";
  config_.fields.label = "match";
  config_.lora_targets = {"query", "value"};
  r = train(config_);
  EXPECT_EQ(r.metric_name, "roc_auc");
  EXPECT_TRUE(std::isfinite(r.best_metric));

  config_.out_dir = dir_.path("classes");
  config_.task = "classification";
  config_.fields.label = "grade";
  config_.precision = "fp32";
  r = train(config_);
  EXPECT_EQ(r.metric_name, "accuracy");
  EXPECT_EQ(r.trainable_parameters, 2 * 8 * 64 + 2 * 32 + 2);  // the base's 2-class head, kept and trained
  EXPECT_GT(r.best_metric, 0.9);

  // A side head and the fusion layers where it meets the text train in full and are saved
  // with the adapter, as PEFT saves modules_to_save.
  config_.out_dir = dir_.path("lexical");
  config_.lexical_features = true;
  r = train(config_);
  const nlohmann::json ac = read_json_file(dir_.path("lexical/best/adapter_config.json"));
  EXPECT_EQ(ac["modules_to_save"], nlohmann::json({"classifier", "lexical", "fusion"}));
  const auto adapter_tensors = load_safetensors(dir_.path("lexical/best/adapter_model.safetensors"));
  EXPECT_EQ(adapter_tensors.count("base_model.model.lexical.2.weight"), 1u);
  EXPECT_EQ(adapter_tensors.count("base_model.model.fusion.2.weight"), 1u);
  EXPECT_TRUE(fs::exists(dir_.path("lexical/best/lexical_stats.json")));
  EvalConfig ec;
  ec.models = {config_.out_dir};
  ec.data = config_.dev_path;
  ec.precision = "fp32";
  EXPECT_NEAR(evaluate(ec).primary, r.best_metric, 1e-6);
}

// What can only be checked against the base: the rank and the targets.
TEST_F(LoraTest, RankAndTargetsAreCheckedAgainstTheBase) {
  auto message = [&] {
    try {
      train(config_);
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("(trained)");
  };
  config_.lora_rank = 64;
  EXPECT_EQ(message(), "--lora-rank 64 exceeds 32, the smaller dimension of bert.encoder.layer.0.attention.self.query [32 x 32]");
  config_.lora_rank = 8;
  config_.lora_targets = {"layer.3.output.dense"};
  EXPECT_NE(message().find("--lora-targets: \"layer.3.output.dense\" names no Linear of the encoder"), std::string::npos);
}

// --init takes an adapter Python's PEFT wrote: --peft lora continues its updates (the flags
// must describe them), full fine-tuning starts from it merged.
TEST_F(LoraTest, InitFromAPeftAdapter) {
  DQE_REQUIRE_SHARED_FIXTURES();
  config_.init = std::string(DQE_SHARED_DIR) + "/fixtures/tiny-bert-lora-peft";
  config_.task = "classification";
  config_.fields.label = "grade";
  config_.max_steps = 3;
  config_.max_len = 32;
  try {
    train(config_);
    FAIL() << "an adapter of rank 4 was continued at rank 8";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("--lora-rank 8 differs from --init " + config_.init + "'s r 4"), std::string::npos)
        << e.what();
  }
  config_.lora_rank = 4;
  config_.lora_alpha = 8;
  TrainResult r = train(config_);
  EXPECT_EQ(r.trainable_parameters, 2 * 2 * 4 * (32 + 32) + 3 * 32 + 3);  // the adapter's 3-class head
  const LoadedModel m = load_model(config_.out_dir);
  ASSERT_TRUE(m.spec.adapter.as<LoraSpec>());
  EXPECT_EQ(fs::canonical(m.base_dir), fs::canonical(test::hf_fixture()));

  config_.peft = "none";
  config_.out_dir = dir_.path("full");
  r = train(config_);
  EXPECT_TRUE(fs::exists(dir_.path("full/best/model.safetensors")));
  EXPECT_FALSE(fs::exists(dir_.path("full/best/adapter_config.json")));
  EXPECT_GT(r.trainable_parameters, 10000);
}

}  // namespace
}  // namespace dqe
