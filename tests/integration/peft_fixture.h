// The fixture of the parameter-efficient runs (lora_test, adalora_test, adapter_test), through
// the library on the toy set. The base, trained here once per suite: a one-layer model that
// classifies the pairs as exact or irrelevant, so its encoder knows the task's signal. The runs
// learn a regression of the labels with a new head (one output instead of two) on top of it.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include <torch/torch.h>

#include "dqe/errors.h"
#include "dqe/evaluator.h"
#include "dqe/exporter.h"
#include "dqe/scorer.h"
#include "dqe/trainer.h"
#include "integration/run_util.h"
#include "io/safetensors.h"
#include "test_util.h"

namespace dqe::test {

class PeftRunTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    shared_ = new TempDir();
    write_toy_set(shared_->path("train.jsonl"), 320, 1);
    write_toy_set(shared_->path("dev.jsonl"), 80, 2);
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
  static void TearDownTestSuite() {
    delete shared_;
    shared_ = nullptr;
  }

  // The run: --peft `peft` from the base into dir_/run, 3 epochs (60 steps) of batches of 16.
  void use_peft(const std::string& peft) {
    config_.train_path = shared_->path("train.jsonl");
    config_.dev_path = shared_->path("dev.jsonl");
    config_.out_dir = dir_.path("run");
    config_.init = base_dir();
    config_.peft = peft;
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
  double constant_rmse() const { return test::constant_rmse(config_.train_path, config_.dev_path); }

  // The dev scores of a model (through --base `base` when given), written to dir_/name.
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

  // The run in config_.out_dir, whose best dev metric was best_metric: eval gives that metric,
  // score scores the 80 dev lines, and export without --merge rewrites it as an adapter that
  // scores them the same (into dir_/exported). Returns the scores.
  std::vector<double> expect_eval_score_and_export_to_agree(double best_metric) {
    EvalConfig ec;
    ec.models = {config_.out_dir};
    ec.data = config_.dev_path;
    ec.threads = 2;
    ec.precision = "fp32";
    EXPECT_NEAR(evaluate(ec).primary, best_metric, 1e-6);
    const std::vector<double> scores = scores_of(config_.out_dir, "scores.jsonl");
    EXPECT_EQ(scores.size(), 80u);
    ExportConfig xc;
    xc.model = config_.out_dir;
    xc.out = dir_.path("exported");
    const ExportResult x = export_model(xc);
    EXPECT_TRUE(x.adapter);
    EXPECT_EQ(x.merged_modules, 0);
    EXPECT_TRUE(std::filesystem::exists(dir_.path("exported/adapter_model.safetensors")));
    EXPECT_FALSE(std::filesystem::exists(dir_.path("exported/model.safetensors")));
    const std::vector<double> exported = scores_of(xc.out, "exported.jsonl");
    EXPECT_EQ(exported.size(), scores.size());
    for (size_t i = 0; i < std::min(scores.size(), exported.size()); ++i)
      EXPECT_NEAR(exported[i], scores[i], 1e-6) << "line " << i + 1;
    return scores;
  }

  // The ConfigError that training config_ throws, or "(trained)".
  // A kind that cannot be folded into its base: export --merge is refused in one line holding
  // merge_says and writes nothing; full fine-tuning from the run is refused with init_says.
  // Leaves config_ set for that full fine-tuning.
  void expect_merge_refused(const std::string& merge_says, const std::string& init_says) {
    ExportConfig xc;
    xc.model = config_.out_dir;
    xc.out = dir_.path("merged");
    xc.merge = true;
    try {
      export_model(xc);
      ADD_FAILURE() << config_.out_dir << " was merged";
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(merge_says), std::string::npos) << e.what();
      EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
    }
    EXPECT_FALSE(std::filesystem::exists(dir_.path("merged")));
    config_.init = config_.out_dir;
    config_.peft = "none";
    config_.out_dir = dir_.path("full");
    EXPECT_NE(message_of_training().find(init_says), std::string::npos);
    EXPECT_FALSE(std::filesystem::exists(dir_.path("full/best")));
  }

  std::string message_of_training() {
    try {
      train(config_);
    } catch (const ConfigError& e) {
      return e.what();
    }
    return "(trained)";
  }

  // On the GPU: the run, interrupted after step 20 and resumed there.
  TrainResult train_on_the_gpu_with_a_resume() {
    config_.device = "cuda";
    config_.stop_after_step = [](int64_t step) { return step == 20; };
    EXPECT_TRUE(train(config_).interrupted);
    config_.stop_after_step = nullptr;
    config_.resume = true;
    return train(config_);
  }
  // The run's dev metric on the CPU equals the GPU's.
  void expect_the_cpu_to_evaluate_it_as_the_gpu() {
    EvalConfig ec;
    ec.models = {config_.out_dir};
    ec.data = config_.dev_path;
    ec.precision = "fp32";
    ec.device = "cpu";
    const double cpu = evaluate(ec).primary;
    ec.device = "cuda";
    EXPECT_NEAR(evaluate(ec).primary, cpu, 1e-4);
  }

  // 30 steps straight into dir_/run, then the same interrupted after step 15 and resumed into
  // dir_/run2: {straight, resumed}, with what must match between them checked.
  std::pair<TrainResult, TrainResult> straight_and_resumed_runs() {
    config_.max_steps = 30;
    config_.eval_every = 10;
    const TrainResult straight = train(config_);
    config_.out_dir = dir_.path("run2");
    config_.stop_after_step = [](int64_t step) { return step == 15; };
    EXPECT_TRUE(train(config_).interrupted);
    config_.stop_after_step = nullptr;
    config_.resume = true;
    config_.init.clear();  // a resumed run continues from its own last/ (and its recorded base)
    const TrainResult resumed = train(config_);
    EXPECT_EQ(resumed.steps, 30);
    EXPECT_EQ(resumed.trainable_parameters, straight.trainable_parameters);
    EXPECT_NEAR(resumed.final_metrics["rmse"].get<double>(), straight.final_metrics["rmse"].get<double>(), 1e-6);
    EXPECT_NEAR(resumed.best_metric, straight.best_metric, 1e-6);
    EXPECT_EQ(resumed.best_step, straight.best_step);
    expect_same_tensors("last/adapter_model.safetensors");
    return {straight, resumed};
  }
  // The file under dir_/run and dir_/run2 holds the same tensors (to float noise).
  void expect_same_tensors(const std::string& file) {
    const auto a = load_safetensors(dir_.path("run/" + file));
    const auto b = load_safetensors(dir_.path("run2/" + file));
    ASSERT_EQ(a.size(), b.size()) << file;
    for (const auto& [name, t] : a) EXPECT_TRUE(torch::allclose(t, b.at(name), 1e-5, 1e-6)) << file << ": " << name;
  }

  // A run from a copy of the base, dir_/base, stopped after step 3; the base then moves to
  // dir_/moved. Eval refuses the adapter naming the missing base, and finds it with --base
  // (eval, score, and the resumed run). Then `changed` is changed in the moved base, and eval
  // refuses the adapter naming both.
  void expect_a_moved_base_found_and_a_changed_one_refused(const std::string& changed) {
    std::filesystem::create_directories(dir_.path("base"));
    for (const auto& entry : std::filesystem::directory_iterator(base_dir() + "/best"))
      std::filesystem::copy_file(entry.path(), std::filesystem::path(dir_.path("base")) / entry.path().filename());
    config_.init = dir_.path("base");
    config_.max_steps = 6;
    config_.stop_after_step = [](int64_t step) { return step == 3; };
    ASSERT_TRUE(train(config_).interrupted);

    std::filesystem::rename(dir_.path("base"), dir_.path("moved"));
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
    ASSERT_TRUE(tensors.count(changed)) << changed;
    tensors[changed][0] += 0.01;
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

  static inline TempDir* shared_ = nullptr;
  TempDir dir_;
  TrainConfig config_;
};

}  // namespace dqe::test
