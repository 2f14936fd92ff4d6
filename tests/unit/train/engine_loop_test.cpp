// The engine's loop driven by a fake objective: least squares on fixed rows, with scripted
// evaluations. What it pins, each against a value derived here rather than read back from the
// engine: accumulating micro-batches equals one larger batch, patience stops at the right
// evaluation, the non-finite limit, evaluation at an epoch's end (and only there), and an
// interrupted run that resumes to the uninterrupted one's parameters.
#include "dqe/engine.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "dqe/errors.h"
#include "test_util.h"
#include "train/run_log.h"

namespace dqe {
namespace {

namespace fs = std::filesystem;

using training::ChunkPlan;
using training::Evaluation;
using training::MicroLoss;
using training::PreparedBatch;

constexpr int64_t kRows = 24;
constexpr int64_t kDims = 3;

struct RowsBatch : PreparedBatch {
  torch::Tensor x, y;
};

// Mean squared error of a linear model w on rows taken in a fixed order, batch_size at a time.
// Evaluations return `scripted` values in turn (lower is better), then the last one again.
class LeastSquares : public training::Objective {
 public:
  LeastSquares(int64_t batch_size, int64_t chunks_per_epoch = 1)
      : batch_size_(batch_size), chunks_(chunks_per_epoch) {
    auto gen = at::detail::createCPUGenerator(7);
    x_ = torch::randn({kRows, kDims}, gen, torch::kDouble);
    y_ = x_.matmul(torch::tensor({1.0, -2.0, 0.5}, torch::kDouble)) + 0.1 * torch::randn({kRows}, gen, torch::kDouble);
    w_ = torch::zeros({kDims}, torch::kDouble).requires_grad_(true);
  }

  std::vector<RoleParameter> trainable_parameters() override {
    return {RoleParameter{"w", w_, Role::kSequenceHead, /*decay=*/false}};
  }
  int64_t steps_per_epoch(int64_t grad_accum) const override {
    const int64_t per_chunk = kRows / batch_size_ / chunks_;
    return chunks_ * ((per_chunk + grad_accum - 1) / grad_accum);
  }
  ChunkPlan plan_chunk(int64_t epoch, int64_t chunk, uint64_t) override {
    chunk_ = chunk;
    ++chunks_planned;
    return ChunkPlan{kRows / batch_size_ / chunks_, chunk == chunks_ - 1};
  }
  std::unique_ptr<PreparedBatch> prepare(int64_t index, uint64_t) override {
    const int64_t per_chunk = kRows / chunks_;
    const int64_t first = chunk_ * per_chunk + index * batch_size_;
    auto batch = std::make_unique<RowsBatch>();
    batch->x = x_.slice(0, first, first + batch_size_);
    batch->y = y_.slice(0, first, first + batch_size_);
    batch->samples = batch_size_;
    return batch;
  }
  MicroLoss forward(PreparedBatch& prepared) override {
    auto& batch = static_cast<RowsBatch&>(prepared);
    ++forwards;
    torch::Tensor loss = (batch.x.matmul(w_) - batch.y).pow(2).mean();
    if (nan_forwards > 0) {
      --nan_forwards;
      loss = loss * std::nan("");
    }
    return MicroLoss{loss, {}};
  }
  Evaluation evaluate() override {
    Evaluation ev;
    ev.metric = "fake";
    const size_t i = std::min(evaluations.size(), scripted.size() - 1);
    ev.value = scripted.empty() ? 0.0 : scripted[i];
    ev.metrics = {{"fake", ev.value}};
    ev.summary = "fake " + std::to_string(ev.value);
    evaluations.push_back(ev.value);
    w_at_evaluation.push_back(w());
    return ev;
  }
  void write_checkpoint_files(const std::string& dir, bool) override {
    torch::save(w_.detach().clone(), dir + "/w.pt");
  }
  void set_training(bool) override {}
  std::string empty_epoch_message() const override { return "no rows"; }
  std::string data_fingerprint() const override { return "rows-" + std::to_string(kRows); }

  torch::Tensor w() const { return w_.detach().clone(); }
  void set_w(const torch::Tensor& w) {
    torch::NoGradGuard no_grad;
    w_.copy_(w);
  }

  std::vector<double> scripted{1.0};
  std::vector<double> evaluations;
  std::vector<torch::Tensor> w_at_evaluation;
  int nan_forwards = 0;  // the next this many forward passes give a NaN loss
  int forwards = 0;
  int chunks_planned = 0;

 private:
  int64_t batch_size_, chunks_;
  int64_t chunk_ = 0;
  torch::Tensor x_, y_, w_;
};

training::EngineOptions options_for(const std::string& out) {
  training::EngineOptions o;
  o.out_dir = out;
  o.lr = 0.05;
  o.warmup_ratio = 0;
  o.weight_decay = 0;
  o.max_grad_norm = 0;
  o.config = {{"lr", o.lr}};
  return o;
}

training::EngineResult run_engine(LeastSquares& objective, const training::EngineOptions& o) {
  training::RunDirectory dir(o.out_dir, o.resume);
  const RunContext ctx;  // a named default: clang refuses RunContext{} (SeedStreams' explicit constructor)
  training::Engine engine(o, ctx, dir, objective);
  return engine.run();
}

// Accumulating 3 micro-batches of 2 rows takes the same steps as batches of 6 rows: the same
// losses in the log and the same parameters, to rounding.
TEST(EngineLoop, AccumulatingMicroBatchesEqualsOneLargerBatch) {
  test::TempDir tmp;
  LeastSquares small(2), large(6);
  auto accum = options_for(tmp.path("accum"));
  accum.grad_accum = 3;
  accum.epochs = 2;
  auto whole = options_for(tmp.path("whole"));
  whole.epochs = 2;
  const auto a = run_engine(small, accum);
  const auto b = run_engine(large, whole);
  EXPECT_EQ(a.steps, 8);  // 24 rows / 6 per step, two epochs
  EXPECT_EQ(b.steps, 8);
  EXPECT_EQ(small.forwards, 24);
  EXPECT_EQ(large.forwards, 8);
  EXPECT_TRUE(torch::allclose(small.w(), large.w(), 1e-12, 1e-12)) << small.w() << large.w();
  EXPECT_GT(small.w().abs().sum().item<double>(), 0.1);  // it learned something

  const auto log_a = read_train_log(tmp.path("accum/train_log.jsonl"));
  const auto log_b = read_train_log(tmp.path("whole/train_log.jsonl"));
  ASSERT_EQ(log_a.size(), 8u);
  ASSERT_EQ(log_b.size(), 8u);
  for (size_t i = 0; i < log_a.size(); ++i) {
    EXPECT_NEAR(log_a[i].loss, log_b[i].loss, 1e-12) << "step " << i + 1;
    EXPECT_EQ(log_a[i].epoch, static_cast<int64_t>(i / 4));
  }
}

// One step of the engine is one step of AdamW on the mean loss: the first step's update,
// derived by hand, is -lr * sign(gradient) (Adam's first step with bias correction).
TEST(EngineLoop, FirstStepIsAdamsSignStep) {
  test::TempDir tmp;
  LeastSquares objective(24);
  auto o = options_for(tmp.path("run"));
  o.max_steps = 1;
  o.warmup_ratio = 0;
  const torch::Tensor w0 = objective.w();
  // The gradient of mean((xw - y)^2) at w = 0 is -2/n x^T y.
  LeastSquares probe(24);
  auto batch = probe.prepare(0, 0);
  auto& rows = static_cast<RowsBatch&>(*batch);
  const torch::Tensor grad = -2.0 / kRows * rows.x.t().matmul(rows.y);
  run_engine(objective, o);
  const torch::Tensor expected = w0 - 0.05 * grad.sign();
  EXPECT_TRUE(torch::allclose(objective.w(), expected, 1e-6, 1e-9)) << objective.w() << expected;
}

// Patience 2 with evaluations 1.0, 0.9, 0.95, 0.97: the third and fourth do not improve on
// the second, so the run stops after the fourth (step 4), with the best at step 2.
TEST(EngineLoop, PatienceStopsAtTheRightEvaluation) {
  test::TempDir tmp;
  LeastSquares objective(2);
  objective.scripted = {1.0, 0.9, 0.95, 0.97, 0.5};
  auto o = options_for(tmp.path("run"));
  o.eval_every = 1;
  o.patience = 2;
  o.epochs = 3;
  const auto result = run_engine(objective, o);
  EXPECT_TRUE(result.early_stopped);
  EXPECT_EQ(result.steps, 4);
  EXPECT_EQ(objective.evaluations.size(), 4u);  // none after the stop, not even a final one
  ASSERT_TRUE(result.best_metric.has_value());
  EXPECT_DOUBLE_EQ(*result.best_metric, 0.9);
  EXPECT_EQ(result.best_step, 2);
  const auto evals = read_eval_log(tmp.path("run/eval_log.jsonl"));
  ASSERT_EQ(evals.size(), 4u);
  EXPECT_TRUE(evals[1].improved);
  EXPECT_FALSE(evals[3].improved);
  // best/ holds the step-2 model.
  torch::Tensor best;
  torch::load(best, tmp.path("run/best/w.pt"));
  EXPECT_TRUE(torch::equal(best, objective.w_at_evaluation[1]));
  EXPECT_FALSE(torch::equal(best, objective.w()));
}

// A non-finite loss skips the step without touching the parameters; kMaxNonFiniteSteps in a
// row end the run; fewer, followed by a finite step, do not.
TEST(EngineLoop, NonFiniteStepsAreSkippedUpToTheLimit) {
  test::TempDir tmp;
  {
    LeastSquares objective(2);
    objective.nan_forwards = training::kMaxNonFiniteSteps - 1;
    auto o = options_for(tmp.path("recovers"));
    o.max_steps = 3;
    const auto result = run_engine(objective, o);
    EXPECT_EQ(result.steps, 3);  // the skipped steps do not count
    EXPECT_EQ(objective.forwards, training::kMaxNonFiniteSteps - 1 + 3);
    EXPECT_EQ(read_train_log(tmp.path("recovers/train_log.jsonl")).size(), 3u);
  }
  {
    LeastSquares objective(2);
    objective.nan_forwards = training::kMaxNonFiniteSteps;
    auto o = options_for(tmp.path("diverges"));
    o.max_steps = 3;
    const torch::Tensor w0 = objective.w();
    try {
      run_engine(objective, o);
      FAIL() << "five non-finite steps in a row did not stop the run";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("diverged: 5 steps in a row"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("no checkpoint was written yet"), std::string::npos) << e.what();
    }
    EXPECT_EQ(objective.forwards, training::kMaxNonFiniteSteps);
    EXPECT_TRUE(torch::equal(objective.w(), w0));  // no skipped step moved the parameters
  }
}

// With eval_every 0 the model is measured at each epoch's end and nowhere else, also when an
// epoch comes in several chunks and when the epoch's step count does not divide by the
// accumulation (the last step of an epoch takes what is left).
TEST(EngineLoop, EvaluatesAtEachEpochsEnd) {
  test::TempDir tmp;
  LeastSquares objective(2, /*chunks_per_epoch=*/2);  // 12 batches an epoch, 6 per chunk
  auto o = options_for(tmp.path("run"));
  o.epochs = 3;
  o.grad_accum = 5;  // per chunk: steps of 5 and 1 batches
  objective.scripted = {3.0, 2.0, 1.0};
  const auto result = run_engine(objective, o);
  EXPECT_EQ(result.steps, 12);  // 2 steps a chunk, 2 chunks an epoch, 3 epochs
  EXPECT_EQ(objective.chunks_planned, 6);
  const auto evals = read_eval_log(tmp.path("run/eval_log.jsonl"));
  ASSERT_EQ(evals.size(), 3u);
  EXPECT_EQ(evals[0].step, 4);
  EXPECT_EQ(evals[1].step, 8);
  EXPECT_EQ(evals[2].step, 12);
  EXPECT_EQ(objective.evaluations.size(), 3u);  // the last epoch's evaluation is the final one
  EXPECT_EQ(result.best_step, 12);
}

// A run stopped after step 3 and resumed ends with the parameters of the uninterrupted run,
// and its logs hold each step once.
TEST(EngineLoop, ResumeContinuesToTheUninterruptedResult) {
  test::TempDir tmp;
  LeastSquares whole(4);
  auto o = options_for(tmp.path("whole"));
  o.epochs = 2;
  run_engine(whole, o);

  LeastSquares first(4);
  auto stopped = options_for(tmp.path("stopped"));
  stopped.epochs = 2;
  stopped.stop_after_step = [](int64_t step) { return step == 3; };
  const auto interrupted = run_engine(first, stopped);
  EXPECT_TRUE(interrupted.interrupted);
  EXPECT_EQ(interrupted.steps, 3);

  LeastSquares second(4);  // a new process: its parameters come from last/
  torch::Tensor saved;
  torch::load(saved, tmp.path("stopped/last/w.pt"));
  second.set_w(saved);
  auto resumed = options_for(tmp.path("stopped"));
  resumed.epochs = 2;
  resumed.resume = true;
  const auto result = run_engine(second, resumed);
  EXPECT_FALSE(result.interrupted);
  EXPECT_EQ(result.steps, 12);
  EXPECT_TRUE(torch::allclose(second.w(), whole.w(), 1e-12, 1e-12)) << second.w() << whole.w();
  const auto log = read_train_log(tmp.path("stopped/train_log.jsonl"));
  ASSERT_EQ(log.size(), 12u);
  for (size_t i = 0; i < log.size(); ++i) EXPECT_EQ(log[i].step, static_cast<int64_t>(i + 1));
}

// A kill at the first evaluation after best/ was written and before last/ was: --resume continues
// from best/, which holds the same state, to the uninterrupted run's parameters (a run stuck
// there was refused both with --resume and without it).
TEST(EngineLoop, ResumeContinuesFromABestWrittenWithoutItsLast) {
  test::TempDir tmp;
  LeastSquares whole(4);
  auto o = options_for(tmp.path("whole"));
  o.epochs = 2;
  o.eval_every = 4;
  run_engine(whole, o);

  LeastSquares first(4);
  auto stopped = options_for(tmp.path("killed"));
  stopped.epochs = 2;
  stopped.eval_every = 4;
  stopped.stop_after_step = [](int64_t step) { return step == 4; };
  ASSERT_TRUE(run_engine(first, stopped).interrupted);
  fs::remove_all(tmp.path("killed/last"));  // as the kill left it
  ASSERT_TRUE(fs::exists(tmp.path("killed/best/trainer_state.json")));
  EXPECT_THROW(training::RunDirectory(tmp.path("killed"), /*resume=*/false), ConfigError);  // it holds a run

  LeastSquares second(4);
  auto resumed = options_for(tmp.path("killed"));
  resumed.epochs = 2;
  resumed.eval_every = 4;
  resumed.resume = true;
  training::RunDirectory dir(resumed.out_dir, true);
  EXPECT_EQ(dir.resumed_state().step, 4);
  torch::Tensor saved;
  torch::load(saved, tmp.path("killed/last/w.pt"));  // what the objective loads from last/
  second.set_w(saved);
  const RunContext ctx;
  training::Engine engine(resumed, ctx, dir, second);
  const auto result = engine.run();
  EXPECT_EQ(result.steps, 12);
  EXPECT_TRUE(torch::allclose(second.w(), whole.w(), 1e-12, 1e-12)) << second.w() << whole.w();
  const auto log = read_train_log(tmp.path("killed/train_log.jsonl"));
  ASSERT_EQ(log.size(), 12u);
  for (size_t i = 0; i < log.size(); ++i) EXPECT_EQ(log[i].step, static_cast<int64_t>(i + 1));
}

}  // namespace
}  // namespace dqe
