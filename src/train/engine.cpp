// The engine's loop: start or resume, then chunks of an epoch's batches, each step's
// micro-batches accumulated, clipped and applied, evaluations on their cadence with best/ and
// last/ checkpoints, and interrupts that leave a resumable last/. Its recipe pieces are in
// recipe.cpp, the run directory in run_directory.cpp.
#include "dqe/engine.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <optional>

#include "base/format.h"
#include "base/log.h"
#include "base/progress.h"
#include "dqe/errors.h"
#include "io/checkpoint_dir.h"
#include "train/run_log.h"
#include "train/train_util.h"

namespace dqe::training {
namespace fs = std::filesystem;

// One run of the loop; its members are the run's state between steps.
struct Engine::Impl {
  explicit Impl(Engine& engine)
      : o(engine.options_), ctx(engine.ctx_), run_dir(engine.run_dir_), objective(engine.objective_),
        strategy(*engine.strategy_), hooks(*engine.hooks_), log(detail::logger(o.component)) {}

  EngineResult run();

 private:
  // What one call of take_step did.
  struct StepOutcome {
    bool taken = false;        // false: a non-finite step, skipped
    bool chunk_done = false;   // the step took the chunk's last batch
    bool epoch_ended = false;  // ... and the chunk was the epoch's last
  };

  void start();
  // On --resume with another step budget: the schedule re-planned over it.
  void replan(int64_t new_total);
  StepOutcome take_step(const ChunkPlan& plan);
  StepTotals accumulate(int64_t first, int64_t count);
  double clip_gradients();
  void skip_non_finite();
  void log_step(const StepTotals& totals, double loss, double lr, double grad_norm, int64_t epoch);
  bool evaluation_due(bool epoch_ended) const {
    return (o.eval_every > 0 && state.step % o.eval_every == 0) || (o.eval_every == 0 && epoch_ended);
  }
  bool evaluate_and_save();
  void save(const std::string& dir, bool best);
  bool finish_chunk(bool last_in_epoch);
  EngineResult interrupt();

  const EngineOptions& o;
  const RunContext& ctx;
  RunDirectory& run_dir;
  Objective& objective;
  StepStrategy& strategy;
  Hooks& hooks;
  std::shared_ptr<spdlog::logger> log;

  EngineResult result;
  std::vector<torch::Tensor> params;
  std::unique_ptr<torch::optim::AdamW> optimizer;
  TrainerState state;
  int64_t steps_per_epoch = 0, total_steps = 0, warmup = 0;
  std::optional<RunLog> run_log;  // the primary process's
  std::optional<Progress> progress;
  // Whether the model at the current step has been measured (and saved) already.
  bool evaluated_at_current_step = false;
  int non_finite_in_a_row = 0;
  std::chrono::steady_clock::time_point t_start;
  double elapsed_before = 0;
  int64_t samples_at_start = 0, tokens_at_start = 0;
};

Engine::Engine(EngineOptions options, RunContext ctx, RunDirectory& run_dir, Objective& objective,
               std::unique_ptr<StepStrategy> strategy, std::unique_ptr<Hooks> hooks)
    : options_(std::move(options)), ctx_(std::move(ctx)), run_dir_(run_dir), objective_(objective),
      strategy_(strategy ? std::move(strategy) : std::make_unique<PlainStep>()),
      hooks_(hooks ? std::move(hooks) : std::make_unique<Hooks>()) {}

EngineResult Engine::run() {
  Impl impl(*this);
  return impl.run();
}

// The optimizer, and the state of a new run or the one a resumed run saved.
void Engine::Impl::start() {
  result.best_dir = run_dir.best();
  result.last_dir = run_dir.last();
  const std::vector<RoleParameter> trainable = objective.trainable_parameters();
  for (const auto& p : trainable) params.push_back(p.tensor);
  optimizer = make_adamw(trainable, o.lr, o.weight_decay);
  for (const auto& group : optimizer->param_groups())
    for (const auto& p : group.params()) result.trainable_parameters += p.numel();
  steps_per_epoch = objective.steps_per_epoch(o.grad_accum);

  if (o.resume) {
    run_dir.check_resume_config(o.config, o.may_change_on_resume);
    state = load_trainer_state(run_dir.last(), optimizer.get());
    const std::string fingerprint = objective.data_fingerprint();
    if (!state.data_fingerprint.empty() && state.data_fingerprint != fingerprint)
      throw ConfigError("--resume: the data differ from the run's (now " + fingerprint + "; the run had " +
                        state.data_fingerprint + ")");
  } else {
    state.seed = ctx.seeds.seed();
    state.total_steps = o.max_steps > 0 ? o.max_steps : o.epochs * steps_per_epoch;
    state.config = o.config;
    state.data_fingerprint = objective.data_fingerprint();
  }
  total_steps = state.total_steps;
  warmup = static_cast<int64_t>(std::llround(o.warmup_ratio * static_cast<double>(total_steps)));
  if (o.resume) {
    const int64_t budget = o.max_steps > 0 ? o.max_steps : o.epochs * steps_per_epoch;
    if (budget != total_steps) replan(budget);
    if (state.finished) log->info("{} already finished at step {}; nothing to do", o.out_dir, state.step);
    else
      log->info("resuming {} at step {} (epoch {}{}, batch {})", o.out_dir, state.step, state.epoch + 1,
                state.chunk > 0 ? ", chunk " + std::to_string(state.chunk + 1) : std::string(), state.batch_in_epoch);
  }
  if (hooks.is_primary()) run_log.emplace(o.out_dir, o.resume ? state.step : -1);
  if (o.resume) {
    const auto evals = read_eval_log((fs::path(o.out_dir) / "eval_log.jsonl").string());
    evaluated_at_current_step = !evals.empty() && evals.back().step == state.step;
  }
}

void Engine::Impl::replan(int64_t new_total) {
  const std::string budget =
      o.max_steps > 0 ? "--max-steps " + std::to_string(o.max_steps) : "--epochs " + std::to_string(o.epochs);
  if (state.finished && state.step < total_steps) {
    log->info("{} stopped early at step {} (no dev improvement); {} does not restart it", o.out_dir, state.step, budget);
    return;
  }
  if (new_total <= state.step)
    throw ConfigError("--resume: " + budget + " gives " + std::to_string(new_total) + " steps, and the run is at step " +
                      std::to_string(state.step) + " already; give a larger budget to extend it");
  // As Hugging Face's Trainer does on a resume with more epochs: warmup and decay planned over
  // the new length, as if the run had been started with it (a finished run's learning rate of
  // 0 rises again).
  const double lr_was = linear_schedule(o.lr, state.step, total_steps, warmup);
  const int64_t warmup_now = static_cast<int64_t>(std::llround(o.warmup_ratio * static_cast<double>(new_total)));
  const double lr_now = linear_schedule(o.lr, state.step, new_total, warmup_now);
  log->info("{} {} from {} to {} steps ({}): the learning-rate schedule is re-planned over {} steps; at step {} it is "
            "{} (was {})",
            new_total > total_steps ? "extending" : "shortening", o.out_dir, total_steps, new_total, budget, new_total,
            state.step, format_significant(lr_now, 4), format_significant(lr_was, 4));
  state.total_steps = total_steps = new_total;
  warmup = warmup_now;
  state.finished = false;
  for (const char* key : {"epochs", "max-steps"})
    if (o.config.contains(key)) state.config[key] = o.config[key];
}

EngineResult Engine::Impl::run() {
  start();
  if (!o.resume && o.evaluate_at_start) evaluate_and_save();  // what the model knew before training

  progress.emplace(o.component, total_steps, "step");
  t_start = std::chrono::steady_clock::now();
  elapsed_before = state.elapsed_s;
  samples_at_start = state.samples_seen;
  tokens_at_start = state.tokens_seen;
  bool stop = state.finished;
  objective.set_training(true);

  // Batches seen in the epoch in progress (a resumed epoch already had some).
  int64_t batches_this_epoch = state.chunk > 0 || state.batch_in_epoch > 0 ? 1 : 0;
  while (!stop && state.step < total_steps) {
    if (o.max_steps == 0 && state.epoch >= o.epochs) break;
    if (hooks.agree_any(ctx.stop.requested())) return interrupt();
    const ChunkPlan plan = objective.plan_chunk(state.epoch, state.chunk, ctx.seeds.data_order(state.epoch, state.chunk));
    batches_this_epoch += plan.batches;
    bool epoch_ended = false;
    while (!stop && state.step < total_steps) {
      if (state.batch_in_epoch >= plan.batches) {
        // A chunk done (or, on a resume, one whose batches were all taken before).
        epoch_ended = finish_chunk(plan.last_in_epoch);
        break;
      }
      const StepOutcome step = take_step(plan);
      epoch_ended = step.epoch_ended;
      if (step.taken && evaluation_due(epoch_ended)) {
        progress->finish();
        if (hooks.agree_any(evaluate_and_save())) {
          log->info("early stopping: no improvement in {} evaluations", o.patience);
          result.early_stopped = true;
          stop = true;
        }
      }
      const bool asked = step.taken && ((o.stop_after_step && o.stop_after_step(state.step)) || ctx.stop.requested());
      if (step.taken && !stop && hooks.agree_any(asked)) return interrupt();
      if (step.chunk_done) break;
    }
    if (epoch_ended) {
      if (batches_this_epoch == 0) throw DataError(objective.empty_epoch_message());
      batches_this_epoch = 0;
      // An epoch that ended without a step (its last chunk was empty) is measured here.
      if (o.eval_every == 0 && !evaluated_at_current_step && state.step > 0) {
        progress->finish();
        evaluate_and_save();
      }
    }
  }
  progress->finish();
  if (!state.finished) {
    if (!evaluated_at_current_step && !result.early_stopped) evaluate_and_save();
    state.finished = true;
    save(run_dir.last(), false);
  }
  if (run_log) run_log->flush();
  result.steps = state.step;
  result.metric_name = state.metric_name;
  result.best_metric = state.best_metric;
  result.best_step = state.best_step;
  return result;
}

// One optimizer step over the chunk's next grad_accum batches (fewer at its end).
Engine::Impl::StepOutcome Engine::Impl::take_step(const ChunkPlan& plan) {
  const int64_t first = state.batch_in_epoch;
  const int64_t count = std::min<int64_t>(o.grad_accum, plan.batches - first);
  optimizer->zero_grad();
  StepTotals totals = accumulate(first, count);
  hooks.after_backward(params, totals);
  const double loss = totals.weight > 0 ? totals.loss_sum / totals.weight : 0.0;
  const double grad_norm = clip_gradients();
  const double lr = linear_schedule(o.lr, state.step, total_steps, warmup);
  const int64_t epoch_of_step = state.epoch;

  StepOutcome out;
  state.batch_in_epoch = first + count;
  out.chunk_done = state.batch_in_epoch >= plan.batches;
  if (out.chunk_done) out.epoch_ended = finish_chunk(plan.last_in_epoch);
  if (!std::isfinite(loss) || !std::isfinite(grad_norm)) {
    skip_non_finite();
    return out;
  }
  non_finite_in_a_row = 0;
  set_learning_rate(*optimizer, lr);
  optimizer->step();
  objective.after_optimizer_step(state.step, total_steps);
  ++state.step;
  state.samples_seen += totals.samples;
  state.tokens_seen += totals.tokens;
  evaluated_at_current_step = false;
  log_step(totals, loss, lr, grad_norm, epoch_of_step);
  out.taken = true;
  return out;
}

// The gradients of micro-batches [first, first + count) of the chunk, accumulated so that they
// are those of sum(loss) / sum(weight).
StepTotals Engine::Impl::accumulate(int64_t first, int64_t count) {
  StepTotals totals;
  std::vector<std::unique_ptr<PreparedBatch>> micro;
  for (int64_t k = 0; k < count; ++k) {
    micro.push_back(objective.prepare(first + k, ctx.seeds.micro_batch(state.step, k)));
    totals.weight += micro.back()->weight;
    totals.samples += micro.back()->samples;
    totals.tokens += micro.back()->tokens;
  }
  int64_t last_with_weight = -1;
  for (int64_t k = 0; k < count; ++k)
    if (micro[static_cast<size_t>(k)]->weight > 0) last_with_weight = k;
  for (int64_t k = 0; k < count; ++k) {
    PreparedBatch& batch = *micro[static_cast<size_t>(k)];
    if (batch.weight <= 0) continue;  // nothing to learn from (no masked token)
    if (k == last_with_weight && strategy.one_backward_pass()) hooks.before_last_backward(params, totals.weight);
    SeedStreams::seed_torch(objective.dropout_seed(ctx.seeds.micro_batch(state.step, k)));
    MicroLoss out = strategy.run(objective, batch, totals.weight);
    totals.loss_sum += out.loss.item<double>();
    for (const auto& sum : out.sums) {
      auto it = std::find_if(totals.sums.begin(), totals.sums.end(), [&](const auto& s) { return s.first == sum.first; });
      if (it == totals.sums.end()) totals.sums.push_back(sum);
      else it->second += sum.second;
    }
  }
  return totals;
}

// The gradients' global norm, before clipping; clips to max_grad_norm when it is set.
double Engine::Impl::clip_gradients() {
  if (o.max_grad_norm > 0) return torch::nn::utils::clip_grad_norm_(params, o.max_grad_norm);
  double sq = 0;
  for (const auto& p : params)
    if (p.grad().defined()) sq += p.grad().pow(2).sum().item<double>();
  return std::sqrt(sq);
}

// A step whose loss or gradient is not finite changes nothing; kMaxNonFiniteSteps in a row
// end the run.
void Engine::Impl::skip_non_finite() {
  optimizer->zero_grad();
  log->warn("step {}: loss or gradient is not finite; step skipped", state.step + 1);
  if (++non_finite_in_a_row < kMaxNonFiniteSteps) return;
  throw Error(o.component + " diverged: " + std::to_string(kMaxNonFiniteSteps) +
              " steps in a row had a non-finite loss or gradient; lower --lr or check the labels" +
              (fs::exists(fs::path(run_dir.last()) / "trainer_state.json")
                   ? " (the last good checkpoint is in " + run_dir.last() + ")"
                   : std::string(" (no checkpoint was written yet)")));
}

void Engine::Impl::log_step(const StepTotals& totals, double loss, double lr, double grad_norm, int64_t epoch) {
  const double since_start = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
  state.elapsed_s = elapsed_before + since_start;
  TrainLogRecord rec;
  rec.step = state.step;
  rec.epoch = epoch;
  rec.loss = loss;
  rec.lr = lr;
  rec.grad_norm = grad_norm;
  rec.samples_per_s = since_start > 0 ? static_cast<double>(state.samples_seen - samples_at_start) / since_start : 0;
  rec.tokens = state.tokens_seen;
  rec.tokens_per_s = since_start > 0 ? static_cast<double>(state.tokens_seen - tokens_at_start) / since_start : 0;
  rec.elapsed_s = state.elapsed_s;
  for (const auto& [name, v] : totals.sums) rec.extra[name] = totals.weight > 0 ? v / totals.weight : 0.0;
  if (run_log) run_log->write(rec);
  progress->update(state.step, "loss " + format_significant(loss) + " lr " + format_significant(lr, 2) + " " +
                                   format_significant(rec.samples_per_s, 3) + " samples/s");
}

// Measures the model, logs it, saves best/ when it improved and last/ always; returns whether
// patience has run out.
bool Engine::Impl::evaluate_and_save() {
  Evaluation ev = objective.evaluate();
  objective.set_training(true);
  evaluated_at_current_step = true;
  state.metric_name = ev.metric;
  state.higher_is_better = ev.higher_is_better;
  const bool improved = std::isfinite(ev.value) &&
                        (!state.best_metric ||
                         (ev.higher_is_better ? ev.value > *state.best_metric : ev.value < *state.best_metric));
  if (improved) {
    state.best_metric = ev.value;
    state.best_step = state.step;
    state.evals_without_improvement = 0;
  } else {
    ++state.evals_without_improvement;
  }
  EvalLogRecord rec;
  rec.step = state.step;
  rec.epoch = static_cast<double>(state.step) / static_cast<double>(std::max<int64_t>(1, steps_per_epoch));
  rec.metric = ev.metric;
  rec.value = ev.value;
  rec.best = state.best_metric;
  rec.improved = improved;
  rec.metrics = ev.metrics;
  if (run_log) run_log->write(rec);
  log->info("step {}: {}{} (best {} at step {})", state.step, ev.summary, improved ? " *" : "",
            format_significant(state.best_metric.value_or(NAN)), state.best_step);
  result.final_metrics = ev.metrics;
  if (improved) save(run_dir.best(), true);
  save(run_dir.last(), false);
  return o.patience > 0 && state.evals_without_improvement >= o.patience;
}

void Engine::Impl::save(const std::string& dir, bool best) {
  if (!hooks.is_primary()) return;
  write_checkpoint(dir, [&](const std::string& tmp) {
    objective.write_checkpoint_files(tmp, best);
    write_training_state(tmp, state, optimizer.get());
  });
}

// Moves the data position past a finished chunk; returns whether that ended the epoch.
bool Engine::Impl::finish_chunk(bool last_in_epoch) {
  state.batch_in_epoch = 0;
  if (last_in_epoch) {
    ++state.epoch;
    state.chunk = 0;
  } else {
    ++state.chunk;
  }
  return last_in_epoch;
}

// Writes last/ and returns: the run continues with --resume.
EngineResult Engine::Impl::interrupt() {
  progress->finish();
  save(run_dir.last(), false);
  if (run_log) run_log->flush();
  log->info("stopped at step {}; checkpoint written to {}; continue with the same command plus --resume", state.step,
            run_dir.last());
  result.interrupted = true;
  result.interrupt_signal = ctx.stop.signal_number();
  result.steps = state.step;
  return result;
}

}  // namespace dqe::training
