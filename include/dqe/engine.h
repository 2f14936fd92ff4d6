// One training engine for every objective. The engine owns the run: the run directory (its
// lock, new-or-resume checks, the configuration it was started with), AdamW with BERT's
// parameter groups, the warmup/decay schedule, gradient accumulation, clipping with the real
// norm, the non-finite policy, the evaluation cadence, early stopping, best/ and last/
// checkpoints, interrupts and the run's logs. An Objective owns what is trained and how:
// its parameters, its data in chunks of batches, its loss, its evaluation and the files of
// its checkpoints. Fine-tuning (src/train/finetune_objective) and masked-LM pretraining
// (src/train/mlm_objective) are two objectives; a new one is one new file the engine runs.
// Step strategies (plain, later FGM/PGD) and hooks (data parallelism) plug in the same way.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "dqe/run_context.h"
#include "model/sequence_model.h"
#include "model/weights.h"
#include "train/train_state.h"

namespace dqe::training {

// One micro-batch as an objective prepared it; objectives derive their own.
struct PreparedBatch {
  virtual ~PreparedBatch() = default;
  // The step's loss is sum(loss) / sum(weight) over its micro-batches: 1 per micro-batch
  // for a mean loss (fine-tuning), the number of predicted tokens for a summed one (MLM).
  double weight = 1;
  int64_t samples = 0;  // examples in the micro-batch
  int64_t tokens = 0;   // padded token positions
};

struct MicroLoss {
  torch::Tensor loss;  // scalar, differentiable; see PreparedBatch::weight
  // Numbers summed over the step's micro-batches and logged divided by the step's total
  // weight (MLM: correct predictions -> "accuracy").
  std::vector<std::pair<std::string, double>> sums;
};

// A chunk of an epoch, planned: its batches, and whether it is the epoch's last.
struct ChunkPlan {
  int64_t batches = 0;
  bool last_in_epoch = true;
};

struct Evaluation {
  std::string metric;  // the selection metric
  double value = 0;    // NaN when undefined (never an improvement)
  bool higher_is_better = false;
  nlohmann::ordered_json metrics;  // everything measured, as eval writes it
  std::string summary;             // for the log line: "dev rmse 0.43"
};

// What a forward pass feeds the encoder, given the word embeddings of the batch's ids
// [batch, time, hidden]: adversarial training (adversarial.h) adds its perturbation here.
using EmbeddingHook = std::function<torch::Tensor(const torch::Tensor& word_embeds)>;

class Objective {
 public:
  virtual ~Objective() = default;

  // What the optimizer trains, with roles and decay flags, in a fixed order.
  virtual std::vector<RoleParameter> trainable_parameters() = 0;
  // Optimizer steps in one epoch at this gradient accumulation (for the schedule).
  virtual int64_t steps_per_epoch(int64_t grad_accum) const = 0;
  // Loads and plans chunk `chunk` of epoch `epoch` (0-based): the batches of its data order.
  virtual ChunkPlan plan_chunk(int64_t epoch, int64_t chunk, uint64_t order_seed) = 0;
  // Micro-batch `index` of the planned chunk; step_seed seeds what it draws (MLM masks).
  virtual std::unique_ptr<PreparedBatch> prepare(int64_t index, uint64_t step_seed) = 0;
  // LibTorch's seed for a micro-batch's dropout, from its step seed.
  virtual uint64_t dropout_seed(uint64_t step_seed) const { return step_seed; }
  // Forward pass of a prepared micro-batch, in training mode.
  virtual MicroLoss forward(PreparedBatch& batch) = 0;
  // The same with the hook between the word embeddings and the encoder; false when the
  // objective has no such seam (then forward_embeds is never called).
  virtual bool has_embedding_seam() const { return false; }
  virtual MicroLoss forward_embeds(PreparedBatch& batch, const EmbeddingHook& hook) { return forward(batch); }
  // Called after each optimizer step, with that step's (clipped) gradients still on the
  // parameters: step is the 0-based index of the step just taken, total_steps the schedule's
  // length. What reshapes the trainable parameters between steps goes here (AdaLoRA's rank
  // allocation, PEFT's update_and_allocate(global_step)); a skipped non-finite step has none.
  virtual void after_optimizer_step(int64_t step, int64_t total_steps) {}
  // Measures the model (it may switch modes; the engine restores training mode).
  virtual Evaluation evaluate() = 0;
  // Writes the model's files into a checkpoint directory being built; best: the evaluation
  // just measured is the best so far (fine-tuning saves its dev scores with it).
  virtual void write_checkpoint_files(const std::string& dir, bool best) = 0;
  virtual void set_training(bool training) = 0;
  // Why an epoch without a single batch is an error ("corpus.txt: no line has a token").
  virtual std::string empty_epoch_message() const = 0;
  // What the data the run trains on is, checked on --resume (e.g. a hash of the records).
  virtual std::string data_fingerprint() const = 0;
};

// How one micro-batch's gradients are computed. The plain strategy is forward then
// backward; adversarial training (FGM, PGD) perturbs the embeddings between passes.
class StepStrategy {
 public:
  virtual ~StepStrategy() = default;
  // Accumulates scale * d(loss)/d(params) for the micro-batch; returns its loss.
  virtual MicroLoss run(Objective& objective, PreparedBatch& batch, double scale) = 0;
  // Whether run() makes one backward pass: a gradient is final as soon as that pass has
  // accumulated it (what lets a data-parallel job all-reduce during the pass).
  virtual bool one_backward_pass() const { return false; }
};

class PlainStep : public StepStrategy {
 public:
  MicroLoss run(Objective& objective, PreparedBatch& batch, double scale) override;
  bool one_backward_pass() const override { return true; }
};

// What one process's micro-batches of a step amounted to. Its gradients are
// d(loss_sum / weight)/d(params).
struct StepTotals {
  double weight = 0;  // sum of the micro-batches' weights
  double loss_sum = 0;
  int64_t samples = 0, tokens = 0;
  std::vector<std::pair<std::string, double>> sums;  // MicroLoss::sums, added up
};

// Where data parallelism (and other cross-cutting work) plugs in.
class Hooks {
 public:
  virtual ~Hooks() = default;
  // Before the backward pass that completes the step's gradients, when one pass does (the
  // strategy's one_backward_pass, on the step's last micro-batch that has weight): each
  // parameter's gradient is final once that pass has accumulated it. `weight` is this
  // process's step weight (StepTotals::weight). A data-parallel hook starts all-reducing
  // buckets of gradients as they become final, during the pass.
  virtual void before_last_backward(const std::vector<torch::Tensor>& parameters, double weight) {}
  // After the step's backward passes, before clipping: e.g. all-reduce the gradients. A
  // data-parallel hook replaces the gradients by the job's weighted mean and `step` by the
  // job's totals, which the engine then logs.
  virtual void after_backward(const std::vector<torch::Tensor>& parameters, StepTotals& step) {}
  // Whether this process writes checkpoints and logs.
  virtual bool is_primary() const { return true; }
  // A decision every process must share (stop now, early stop): true when any says so.
  virtual bool agree_any(bool local) { return local; }
};

struct EngineOptions {
  std::string out_dir;
  std::string component = "train";  // log prefix: [train], [pretrain]
  int64_t epochs = 1;
  int64_t max_steps = 0;  // > 0: the schedule's length, instead of epochs
  int64_t grad_accum = 1;
  double lr = 5e-5;
  double warmup_ratio = 0.1;
  double weight_decay = 0.01;
  double max_grad_norm = 1.0;  // 0: no clipping (the norm is still measured and logged)
  int64_t eval_every = 0;      // 0: at the end of each epoch
  int64_t patience = 0;        // 0: never stop early
  bool evaluate_at_start = false;  // measure the model before the first step (pretraining)
  bool resume = false;
  // The command's configuration: recorded with every checkpoint, and compared on --resume.
  nlohmann::ordered_json config;
  // Keys of config that may differ on --resume (compute settings, evaluation cadence);
  // any other difference is refused naming the flag.
  std::vector<std::string> may_change_on_resume;
  // Called after every optimizer step; returning true stops as an interruption would.
  std::function<bool(int64_t step)> stop_after_step;
};

// The schedule's options from a command's configuration (train and pretrain name these
// knobs alike); the caller adds what is its own.
template <typename Config>
EngineOptions schedule_of(const Config& c) {
  EngineOptions o;
  o.out_dir = c.out_dir;
  o.epochs = c.epochs;
  o.max_steps = c.max_steps;
  o.grad_accum = c.grad_accum;
  o.lr = c.lr;
  o.warmup_ratio = c.warmup_ratio;
  o.weight_decay = c.weight_decay;
  o.max_grad_norm = c.max_grad_norm;
  o.eval_every = c.eval_every;
  o.resume = c.resume;
  o.config = c.to_json();
  o.stop_after_step = c.stop_after_step;
  return o;
}

struct EngineResult {
  int64_t steps = 0;
  int64_t trainable_parameters = 0;  // the optimizer's, all groups
  bool interrupted = false;  // stopped by a signal or stop_after_step; resume to continue
  int interrupt_signal = 0;  // the signal, or 0 for stop_after_step
  bool early_stopped = false;
  std::string metric_name;
  std::optional<double> best_metric;
  int64_t best_step = 0;
  nlohmann::ordered_json final_metrics;  // of the last evaluation
  std::string best_dir, last_dir;
};

// The run directory's lifecycle, before the objective loads anything: takes an exclusive
// lock on it (released when the object goes away), refuses a directory that is not a dqe
// run (so that nothing of the user's is replaced), a finished or running run without
// --resume, and --resume without a checkpoint; recovers checkpoints a crash left half-swapped.
class RunDirectory {
 public:
  // owner false: a data-parallel rank other than 0, which reads the run (on --resume) after
  // rank 0 has set it up, and neither locks nor writes it.
  RunDirectory(const std::string& out_dir, bool resume, bool owner = true);
  // Gives the lock back. A run that made the directory and fails (an exception leaves the scope)
  // before any step was logged or checkpoint written removes it: a bad flag or line leaves no
  // half-made run behind.
  ~RunDirectory();
  RunDirectory(const RunDirectory&) = delete;
  RunDirectory& operator=(const RunDirectory&) = delete;

  const std::string& path() const { return path_; }
  std::string best() const { return path_ + "/best"; }
  std::string last() const { return path_ + "/last"; }
  // On --resume: the saved state of last/ (without the optimizer).
  const TrainerState& resumed_state() const { return resumed_; }
  // Refuses, naming the flag, a --resume whose configuration differs from the run's in a key
  // other than `may_change`.
  void check_resume_config(const nlohmann::ordered_json& now, const std::vector<std::string>& may_change) const;

 private:
  std::string path_;
  int lock_fd_ = -1;
  bool created_ = false;  // this run made the directory (it did not exist)
  TrainerState resumed_;
};

class Engine {
 public:
  Engine(EngineOptions options, RunContext ctx, RunDirectory& run_dir, Objective& objective,
         std::unique_ptr<StepStrategy> strategy = nullptr, std::unique_ptr<Hooks> hooks = nullptr);
  EngineResult run();

 private:
  struct Impl;
  EngineOptions options_;
  RunContext ctx_;
  RunDirectory& run_dir_;
  Objective& objective_;
  std::unique_ptr<StepStrategy> strategy_;
  std::unique_ptr<Hooks> hooks_;
};

// AdamW over the parameters, in two groups: weight decay on those with decay set, none on
// the others (biases and LayerNorm, as BERT training does).
std::unique_ptr<torch::optim::AdamW> make_adamw(const std::vector<RoleParameter>& parameters, double lr,
                                                double weight_decay);
void set_learning_rate(torch::optim::Optimizer& optimizer, double lr);
// Linear warmup from 0 over `warmup` steps to peak, then linear decay to 0 at `total`.
double linear_schedule(double peak, int64_t step, int64_t total, int64_t warmup);

// Optimizer steps in a row whose loss or gradients were not finite before a run stops.
constexpr int kMaxNonFiniteSteps = 5;

}  // namespace dqe::training
