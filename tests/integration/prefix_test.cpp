// Prefix tuning runs (--peft prefix) through the library on the toy set, from a tiny base trained
// here (seconds), as adapter_test.cpp does for bottleneck adapters. That the prefix computes what
// PEFT computes is tests/unit/model/peft/prefix_test.cpp's part (the shared fixture).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <set>

#include "dqe/errors.h"
#include "dqe/evaluator.h"
#include "dqe/exporter.h"
#include "dqe/run_context.h"
#include "dqe/scorer.h"
#include "dqe/trainer.h"
#include "integration/peft_fixture.h"
#include "integration/run_util.h"
#include "io/safetensors.h"
#include "model/model_dir.h"
#include "model/peft/prefix.h"
#include "test_util.h"

namespace dqe {
namespace fs = std::filesystem;
namespace {

using test::encoder_weights;

class PrefixTest : public test::PeftRunTest {
 protected:
  void SetUp() override {
    use_peft("prefix");
    config_.prefix_tokens = 4;
    config_.lr = 3e-2;
  }
};

std::set<std::string> names_in(const std::string& file) {
  std::set<std::string> names;
  for (const auto& [name, t] : load_safetensors(file)) names.insert(name);
  return names;
}

// A prefix run learns with the base frozen: the optimizer holds the table and the head only, the
// base's weights stay bit for bit, and the checkpoints hold the table and the head under PEFT's
// names, which eval, score and export agree on; --merge and full fine-tuning from it are refused.
TEST_F(PrefixTest, LearnsWithTheBaseFrozenAndSavesThePrefixOnly) {
  const std::string base_file = base_dir() + "/best/model.safetensors";
  const std::string base_bytes = test::read_text(base_file);
  LoadedModel base = load_model(base_dir());
  const TrainResult r = train(config_);
  EXPECT_FALSE(r.interrupted);
  // 4 virtual tokens x (1 layer x 2 x hidden 32); the new regression head 32 + 1.
  EXPECT_EQ(r.trainable_parameters, 4 * 2 * 32 + 32 + 1);
  EXPECT_LT(r.best_metric, 0.6 * constant_rmse());

  EXPECT_EQ(test::read_text(base_file), base_bytes);
  LoadedModel tuned = load_model(config_.out_dir);
  ASSERT_TRUE(tuned.spec.adapter.as<PrefixSpec>());
  EXPECT_EQ(tuned.spec.adapter.as<PrefixSpec>()->num_virtual_tokens, 4);
  const auto before = encoder_weights(base), after = encoder_weights(tuned);
  for (const auto& [name, t] : before) EXPECT_TRUE(torch::equal(t, after.at(name))) << name << " changed";

  const std::string best = dir_.path("run/best");
  EXPECT_FALSE(fs::exists(best + "/model.safetensors"));
  const nlohmann::json ac = read_json_file(best + "/adapter_config.json");
  EXPECT_EQ(ac["peft_type"], "PREFIX_TUNING");
  EXPECT_EQ(ac["num_virtual_tokens"], 4);
  EXPECT_EQ(ac["token_dim"], 32);
  EXPECT_EQ(ac["num_layers"], 1);
  EXPECT_EQ(ac["prefix_projection"], false);
  EXPECT_EQ(names_in(best + "/adapter_model.safetensors"),
            std::set<std::string>({"prompt_embeddings", "base_model.classifier.weight", "base_model.classifier.bias"}));

  expect_eval_score_and_export_to_agree(r.best_metric);
  expect_merge_refused("holds a prefix", "is a prefix-tuning adapter, which cannot be merged into its base");
}

// Interrupted and resumed, a run through the reparametrisation ends where a straight one does
// (the MLP is in the checkpoint); two prefixes of one base in one ensemble hold the base once.
TEST_F(PrefixTest, ReparametrisedRunResumesExactlyAndPrefixesShareTheirBase) {
  config_.prefix_projection = true;
  straight_and_resumed_runs();
  if (HasFatalFailure()) return;
  const std::set<std::string> names = names_in(dir_.path("run/last/adapter_model.safetensors"));
  EXPECT_TRUE(names.count("prompt_embeddings"));
  EXPECT_TRUE(names.count("prefix_encoder.transform.2.weight"));

  const RunContext ctx = make_run_context("cpu", "fp32", 1);
  const Ensemble both = load_ensemble({dir_.path("run"), dir_.path("run2")}, 0, std::nullopt, ctx, 16);
  EXPECT_EQ(both.adapters, 2);
  EXPECT_EQ(both.adapter_bases, 1);

  config_.prefix_tokens = 5;
  EXPECT_NE(message_of_training().find("--resume: --prefix-tokens 5 differs from the run's 4"), std::string::npos);
}

// Every task, bf16 too; an --init prefix continues; the positions the prefix takes bound --max-len.
TEST_F(PrefixTest, EveryTaskBf16ContinuationAndPositions) {
  config_.max_steps = 10;
  config_.precision = "bf16";
  TrainResult r = train(config_);
  EXPECT_TRUE(std::isfinite(r.best_metric));

  config_.out_dir = dir_.path("classes");
  config_.task = "classification";
  config_.fields.label = "grade";
  config_.precision = "fp32";
  config_.max_steps = 0;
  r = train(config_);
  EXPECT_EQ(r.metric_name, "accuracy");
  EXPECT_GT(r.best_metric, 0.8);

  config_.init = dir_.path("classes");
  config_.out_dir = dir_.path("continued");
  config_.max_steps = 5;
  config_.prefix_tokens = 6;
  EXPECT_NE(message_of_training().find("--prefix-tokens 6 differs from --init " + config_.init +
                                       "'s num_virtual_tokens 4"),
            std::string::npos);
  config_.prefix_tokens = 4;
  r = train(config_);
  EXPECT_EQ(r.trainable_parameters, 4 * 2 * 32 + 2 * 32 + 2);

  // The base has 512 positions: 4 virtual tokens leave 508.
  config_.init = base_dir();
  config_.out_dir = dir_.path("long");
  config_.max_len = 510;
  EXPECT_NE(message_of_training().find("--max-len 510 exceeds the 508 positions left to the text"), std::string::npos);
  EXPECT_FALSE(fs::exists(dir_.path("long/best")));
  config_.max_len = 0;
  config_.prefix_tokens = 510;
  EXPECT_EQ(message_of_training(),
            "--prefix-tokens must be between 1 and the base's max_position_embeddings less 3 (509), got 510");
}

}  // namespace
}  // namespace dqe
