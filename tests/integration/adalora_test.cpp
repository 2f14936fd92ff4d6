// AdaLoRA runs through the library on the toy set, from a tiny base trained here (seconds).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>

#include "data/dataset.h"
#include "dqe/errors.h"
#include "dqe/evaluator.h"
#include "dqe/exporter.h"
#include "dqe/scorer.h"
#include "dqe/trainer.h"
#include "integration/peft_fixture.h"
#include "integration/run_util.h"
#include "io/safetensors.h"
#include "model/model_dir.h"
#include "model/peft/adalora.h"
#include "model/peft/adapter.h"
#include "model/peft/lora.h"
#include "test_util.h"

namespace dqe {
namespace fs = std::filesystem;
namespace {

using test::encoder_weights;
using test::read_jsonl_file;

class AdaLoraTest : public test::PeftRunTest {
 protected:
  // 60 steps: 6 at full rank, pruning until step 42, 18 at the final ranks.
  void SetUp() override { use_peft("adalora"); }
};

// Before the first step the adapted model is its base: every E starts at zero.
TEST_F(AdaLoraTest, StepZeroIsTheBase) {
  LoadedModel base = load_model(base_dir());
  LoraSpec spec;
  spec.r = 12;
  spec.alpha = 16;
  spec.dropout = 0;
  spec.modules = lora_modules({"all-linear"}, 1);
  spec.adalora.emplace();
  LoadOptions lo;
  lo.adapter = AdapterSpecPtr(spec);
  LoadedModel adapted = load_model(base_dir(), lo);
  torch::InferenceMode guard;
  base.model->eval();
  adapted.model->eval();
  std::vector<Encoding> inputs;
  for (const auto& r : read_jsonl_file(config_.dev_path))
    inputs.push_back(base.tokenizer->encode_pair(r["query"].get<std::string>(), r["title"].get<std::string>(), 32));
  std::vector<size_t> rows(inputs.size());
  for (size_t i = 0; i < rows.size(); ++i) rows[i] = i;
  const Batch b = collate(inputs, rows, base.tokenizer->pad_id());
  EXPECT_TRUE(torch::equal(adapted.model->forward(b.ids, b.type_ids, b.mask), base.model->forward(b.ids, b.type_ids, b.mask)));
}

// A run learns with the base frozen, prunes to target_r per module on average, saves PEFT's
// ADALORA layout (resized by the rank pattern), and eval, score and export --merge agree.
TEST_F(AdaLoraTest, LearnsPrunesToTheTargetAndSavesPeftsLayout) {
  const std::string base_file = base_dir() + "/best/model.safetensors";
  const std::string base_bytes = test::read_text(base_file);
  LoadedModel base = load_model(base_dir());
  const TrainResult r = train(config_);
  EXPECT_FALSE(r.interrupted);
  // query and value (32 x 32) at init_r 12: 12 (in + out + 1) each; the new head 32 + 1.
  EXPECT_EQ(r.trainable_parameters, 2 * 12 * (32 + 32 + 1) + 32 + 1);
  EXPECT_LT(r.best_metric, 0.5 * constant_rmse());
  ASSERT_EQ(r.adalora_ranks.size(), 2u);
  EXPECT_EQ(r.adalora_ranks[0].second + r.adalora_ranks[1].second, 8 * 2);

  EXPECT_EQ(test::read_text(base_file), base_bytes);
  LoadedModel tuned = load_model(config_.out_dir);
  ASSERT_TRUE(tuned.spec.adapter.as<LoraSpec>() && tuned.spec.adapter.as<LoraSpec>()->adalora);
  const auto before = encoder_weights(base), after = encoder_weights(tuned);
  ASSERT_EQ(before.size(), after.size());
  for (const auto& [name, t] : before) EXPECT_TRUE(torch::equal(t, after.at(name))) << name << " changed";

  const std::string best = dir_.path("run/best"), last = dir_.path("run/last");
  EXPECT_FALSE(fs::exists(best + "/model.safetensors"));
  for (const char* f : {"adapter_config.json", "adapter_model.safetensors", "config.json", "trainer_state.json",
                        "optimizer.pt", kAdaLoraStateFile})
    EXPECT_TRUE(fs::exists(last + "/" + f)) << f;
  const nlohmann::json ac = read_json_file(last + "/adapter_config.json");
  EXPECT_EQ(ac["peft_type"], "ADALORA");
  EXPECT_EQ(ac["task_type"], "SEQ_CLS");
  EXPECT_EQ(ac["init_r"], 12);
  EXPECT_EQ(ac["target_r"], 8);
  EXPECT_EQ(ac["tinit"], 6);
  EXPECT_EQ(ac["tfinal"], 18);
  EXPECT_EQ(ac["total_step"], 60);
  EXPECT_EQ(ac["lora_alpha"], 16);
  EXPECT_EQ(ac["target_modules"], nlohmann::json({"query", "value"}));
  const std::string layer = "bert.encoder.layer.0.attention.self.";
  int64_t kept = 0;
  std::map<std::string, int64_t> rank_of;
  for (const std::string m : {"query", "value"}) {
    const auto& pattern = ac["rank_pattern"][layer + m + ".lora_E"];
    ASSERT_EQ(pattern.size(), 12u) << m;
    for (const auto& keep : pattern) rank_of[m] += keep.get<bool>() ? 1 : 0;
    kept += rank_of[m];
  }
  EXPECT_EQ(kept, 16);
  const auto file = load_safetensors(last + "/adapter_model.safetensors");
  std::set<std::string> names;
  for (const auto& [name, t] : file) names.insert(name);
  const std::string prefix = std::string(kPeftPrefix) + layer;
  EXPECT_EQ(names, (std::set<std::string>{prefix + "query.lora_A", prefix + "query.lora_B", prefix + "query.lora_E",
                                          prefix + "value.lora_A", prefix + "value.lora_B", prefix + "value.lora_E",
                                          "base_model.model.classifier.weight", "base_model.model.classifier.bias"}));
  for (const std::string m : {"query", "value"}) {
    EXPECT_EQ(file.at(prefix + m + ".lora_A").sizes(), (std::vector<int64_t>{rank_of[m], 32})) << m;
    EXPECT_EQ(file.at(prefix + m + ".lora_E").sizes(), (std::vector<int64_t>{rank_of[m], 1})) << m;
    EXPECT_EQ(file.at(prefix + m + ".lora_B").sizes(), (std::vector<int64_t>{32, rank_of[m]})) << m;
  }

  // Saved and loaded, the adapter scores as it did in training; merged, the same to 1e-5.
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
  ec.models = {xc.out};
  EXPECT_NEAR(evaluate(ec).primary, r.best_metric, 1e-5);
  const auto unmerged = scores_of(config_.out_dir, "unmerged.jsonl"), merged = scores_of(xc.out, "merged.jsonl");
  ASSERT_EQ(unmerged.size(), 80u);
  ASSERT_EQ(merged.size(), unmerged.size());
  for (size_t i = 0; i < merged.size(); ++i) EXPECT_NEAR(merged[i], unmerged[i], 1e-5) << "line " << i + 1;
}

// On the GPU: an AdaLoRA run (the allocator's state on the device) and its resumption there,
// scoring the same on the CPU.
TEST_F(AdaLoraTest, TrainsOnTheGpuAndScoresTheSameOnTheCpu) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no GPU (this LibTorch has no CUDA, or none is visible)";
  const TrainResult r = train_on_the_gpu_with_a_resume();
  EXPECT_LT(r.best_metric, 0.5 * constant_rmse());
  int64_t total = 0;
  for (const auto& [module, rank] : r.adalora_ranks) total += rank;
  EXPECT_EQ(total, 16);
  expect_the_cpu_to_evaluate_it_as_the_gpu();
}

TEST_F(AdaLoraTest, ResumedRunEqualsAnUninterruptedOne) {
  // 30 steps: 3 at full rank, pruning every 2 until step 20, 10 at the final ranks.
  config_.adalora_tinit = 3;
  config_.adalora_tfinal = 10;
  config_.adalora_delta_t = 2;
  // Interrupted after step 15, while pruning.
  const auto [straight, resumed] = straight_and_resumed_runs();
  if (HasFatalFailure()) return;
  EXPECT_EQ(resumed.adalora_ranks, straight.adalora_ranks);
  EXPECT_EQ(read_json_file(dir_.path("run/last/adapter_config.json"))["rank_pattern"],
            read_json_file(dir_.path("run2/last/adapter_config.json"))["rank_pattern"]);
  expect_same_tensors(std::string("last/") + kAdaLoraStateFile);

  config_.adalora_target_r = 4;
  EXPECT_NE(message_of_training().find("--resume: --adalora-target-r 4 differs from the run's 8"), std::string::npos);
}

// Every task, bf16 too, trains with AdaLoRA as it does in full.
TEST_F(AdaLoraTest, EveryTaskAndBf16) {
  config_.max_steps = 10;
  config_.precision = "bf16";
  config_.lora_targets = {"all-linear"};
  config_.adalora_init_r = 6;
  config_.adalora_target_r = 2;
  TrainResult r = train(config_);
  EXPECT_TRUE(std::isfinite(r.best_metric));
  int64_t total = 0;
  for (const auto& [module, rank] : r.adalora_ranks) total += rank;
  EXPECT_EQ(total, 2 * 7);  // one layer's six Linears and the pooler's

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
  EXPECT_GT(r.best_metric, 0.8);
}

TEST_F(AdaLoraTest, FlagsAreCheckedAgainstTheBaseAndTheRun) {
  config_.adalora_init_r = 64;
  EXPECT_EQ(message_of_training(),
            "--adalora-init-r 64 exceeds 32, the smaller dimension of bert.encoder.layer.0.attention.self.query [32 x 32]");
  config_.adalora_init_r = 12;
  config_.adalora_tinit = 50;
  config_.adalora_tfinal = 10;
  EXPECT_EQ(message_of_training(),
            "--adalora-tinit 50 and --adalora-tfinal 10 leave no step to prune in: the run has 60 steps, and tinit + "
            "tfinal must be fewer");
  config_.adalora_tinit = -1;
  config_.adalora_tfinal = -1;
  config_.adalora_target_r = 16;
  EXPECT_EQ(message_of_training(), "--adalora-target-r 16 exceeds --adalora-init-r 12 (pruning only lowers ranks)");
  config_.adalora_target_r = 8;
  config_.max_steps = 1;
  EXPECT_NE(message_of_training().find("leave no step to prune in: the run has 1 steps"), std::string::npos);
}

// An AdaLoRA adapter is not continued (by AdaLoRA or LoRA); without --peft it is merged into
// its base and every weight trains.
TEST_F(AdaLoraTest, AnAdapterAsInitIsMergedNotContinued) {
  config_.max_steps = 5;
  ASSERT_FALSE(train(config_).interrupted);
  config_.init = config_.out_dir;
  for (const std::string peft : {"adalora", "lora"}) {
    config_.peft = peft;
    config_.out_dir = dir_.path("continued-" + peft);
    EXPECT_EQ(message_of_training(), "--peft " + peft + ": --init " + config_.init +
                                         " is an AdaLoRA adapter, which this run cannot continue; start from its base, "
                                         "or from the adapter merged (dqe export --merge)");
  }
  config_.peft = "none";
  config_.out_dir = dir_.path("full");
  const TrainResult r = train(config_);
  EXPECT_GT(r.trainable_parameters, 10000);
  EXPECT_TRUE(fs::exists(dir_.path("full/best/model.safetensors")));
  EXPECT_FALSE(fs::exists(dir_.path("full/best/adapter_config.json")));
}

}  // namespace
}  // namespace dqe
