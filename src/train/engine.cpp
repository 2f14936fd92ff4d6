#include "dqe/engine.h"
#include "io/checkpoint_dir.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>

#include "base/format.h"
#include "base/log.h"
#include "base/progress.h"
#include "dqe/errors.h"
#include "io/output.h"
#include "train/run_log.h"
#include "train/train_util.h"

namespace dqe::training {
namespace fs = std::filesystem;

// ---------------------------------------------------------------------------------------
// Recipe pieces

std::unique_ptr<torch::optim::AdamW> make_adamw(const std::vector<RoleParameter>& parameters, double lr,
                                                double weight_decay) {
  std::vector<torch::Tensor> decay, no_decay;
  for (const auto& p : parameters) (p.decay ? decay : no_decay).push_back(p.tensor);
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(decay, std::make_unique<torch::optim::AdamWOptions>(
                                 torch::optim::AdamWOptions(lr).weight_decay(weight_decay)));
  groups.emplace_back(no_decay, std::make_unique<torch::optim::AdamWOptions>(
                                    torch::optim::AdamWOptions(lr).weight_decay(0.0)));
  return std::make_unique<torch::optim::AdamW>(std::move(groups), torch::optim::AdamWOptions(lr));
}

void set_learning_rate(torch::optim::Optimizer& optimizer, double lr) {
  for (auto& group : optimizer.param_groups()) static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
}

double linear_schedule(double peak, int64_t step, int64_t total, int64_t warmup) {
  if (step < warmup) return peak * static_cast<double>(step + 1) / static_cast<double>(warmup);
  if (total <= warmup) return peak;
  return peak * std::max(0.0, static_cast<double>(total - step) / static_cast<double>(total - warmup));
}

MicroLoss PlainStep::run(Objective& objective, PreparedBatch& batch, double scale) {
  MicroLoss out = objective.forward(batch);
  (out.loss / scale).backward();
  return out;
}

// ---------------------------------------------------------------------------------------
// The run directory

namespace {

// Marks a directory as a dqe run, so that a later run recognises it as one of dqe's (and a
// directory without it, holding anything, as the user's).
constexpr const char* kRunMarker = "dqe_run.json";

// What dqe itself writes into a run directory.
bool is_dqe_entry(const std::string& name) {
  static const char* const kOwn[] = {kRunMarker,  "train_log.jsonl", "eval_log.jsonl", "best",    "last",
                                     "best.tmp",  "last.tmp",        "best.old",       "last.old"};
  return std::find(std::begin(kOwn), std::end(kOwn), name) != std::end(kOwn);
}

bool is_dqe_run(const fs::path& dir) {
  return fs::exists(dir / kRunMarker) || fs::exists(dir / "last" / "trainer_state.json") ||
         fs::exists(dir / "best" / "config.json");
}

std::string value_text(const nlohmann::ordered_json& v) {
  if (v.is_string()) return v.get<std::string>().empty() ? "\"\"" : v.get<std::string>();
  if (v.is_array()) {
    std::string out;
    for (const auto& x : v) out += (out.empty() ? "" : ",") + value_text(x);
    return out;
  }
  if (v.is_number_float()) return format_significant(v.get<double>(), 6);
  return v.dump();
}

}  // namespace

RunDirectory::RunDirectory(const std::string& out_dir, bool resume, bool owner) : path_(out_dir) {
  if (path_.empty()) throw ConfigError("--out is required");
  const fs::path dir(path_);
  if (!owner) {
    if (resume) resumed_ = load_trainer_state(last(), nullptr);
    return;
  }
  std::error_code ec;
  if (fs::exists(dir) && !fs::is_directory(dir)) throw ConfigError("--out " + path_ + " is not a directory");
  fs::create_directories(dir, ec);
  if (ec) throw IoError(path_ + ": cannot create directory (" + ec.message() + ")");
  lock_fd_ = ::open(path_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (lock_fd_ < 0) throw IoError(path_ + ": cannot open (" + std::strerror(errno) + ")");
  if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    ::close(lock_fd_);
    lock_fd_ = -1;
    if (err == EWOULDBLOCK)
      throw ConfigError("--out " + path_ + " is in use by another dqe run; wait for it or choose another directory");
    throw IoError(path_ + ": cannot lock (" + std::strerror(err) + ")");
  }
  if (!resume) {
    for (const auto& entry : fs::directory_iterator(dir)) {
      const std::string name = entry.path().filename().string();
      if (!is_dqe_entry(name) || !is_dqe_run(dir))
        throw ConfigError("--out " + path_ + " is not empty and not a dqe run directory (it holds " + name +
                          "); choose a new or empty directory");
    }
  }
  recover_checkpoint(last());
  recover_checkpoint(best());
  if (resume) {
    if (!fs::exists(fs::path(last()) / "trainer_state.json"))
      throw ConfigError("--resume: " + last() + " holds no training checkpoint to continue from");
    resumed_ = load_trainer_state(last(), nullptr);
  } else if (fs::exists(last()) || fs::exists(best())) {
    throw ConfigError("--out " + path_ + " already holds a run: add --resume to continue it, or choose another directory");
  }
  // Proves the directory writable now, not after an hour of training.
  write_file_atomic((dir / kRunMarker).string(), nlohmann::ordered_json{{"format", "dqe run"}}.dump() + "\n");
}

RunDirectory::~RunDirectory() {
  if (lock_fd_ >= 0) ::close(lock_fd_);  // releases the lock
}

void RunDirectory::check_resume_config(const nlohmann::ordered_json& now, const std::vector<std::string>& may_change) const {
  const nlohmann::ordered_json& before = resumed_.config;
  if (!before.is_object()) return;
  for (auto it = now.begin(); it != now.end(); ++it) {
    const std::string& key = it.key();
    if (std::find(may_change.begin(), may_change.end(), key) != may_change.end()) continue;
    auto was = before.find(key);
    if (was == before.end()) continue;  // recorded by an older dqe that did not have the flag
    // A model source left out on --resume is the run's own (it continues from last/).
    if ((key == "init" || key == "tokenizer") && it->is_string() && it->get<std::string>().empty()) continue;
    if (*it == *was) continue;
    if (it->is_number() && was->is_number() && it->get<double>() == was->get<double>()) continue;
    throw ConfigError("--resume: --" + key + " " + value_text(*it) + " differs from the run's " + value_text(*was) +
                      " (a resumed run continues as it was started; start a new run to change it)");
  }
}

// ---------------------------------------------------------------------------------------
// The loop

Engine::Engine(EngineOptions options, RunContext ctx, RunDirectory& run_dir, Objective& objective,
               std::unique_ptr<StepStrategy> strategy, std::unique_ptr<Hooks> hooks)
    : options_(std::move(options)), ctx_(std::move(ctx)), run_dir_(run_dir), objective_(objective),
      strategy_(strategy ? std::move(strategy) : std::make_unique<PlainStep>()),
      hooks_(hooks ? std::move(hooks) : std::make_unique<Hooks>()) {}

EngineResult Engine::run() {
  auto log = detail::logger(options_.component);
  const EngineOptions& o = options_;
  EngineResult result;
  result.best_dir = run_dir_.best();
  result.last_dir = run_dir_.last();

  const std::vector<RoleParameter> trainable = objective_.trainable_parameters();
  std::vector<torch::Tensor> params;
  for (const auto& p : trainable) params.push_back(p.tensor);
  auto optimizer = make_adamw(trainable, o.lr, o.weight_decay);
  for (const auto& group : optimizer->param_groups())
    for (const auto& p : group.params()) result.trainable_parameters += p.numel();
  const int64_t steps_per_epoch = objective_.steps_per_epoch(o.grad_accum);

  TrainerState state;
  if (o.resume) {
    run_dir_.check_resume_config(o.config, o.may_change_on_resume);
    state = load_trainer_state(run_dir_.last(), optimizer.get());
    const std::string fingerprint = objective_.data_fingerprint();
    if (!state.data_fingerprint.empty() && state.data_fingerprint != fingerprint)
      throw ConfigError("--resume: the data differ from the run's (now " + fingerprint + "; the run had " +
                        state.data_fingerprint + ")");
    if (state.finished) log->info("{} already finished at step {}; nothing to do", o.out_dir, state.step);
    else
      log->info("resuming {} at step {} (epoch {}{}, batch {})", o.out_dir, state.step, state.epoch + 1,
                state.chunk > 0 ? ", chunk " + std::to_string(state.chunk + 1) : std::string(), state.batch_in_epoch);
  } else {
    state.seed = ctx_.seeds.seed();
    state.total_steps = o.max_steps > 0 ? o.max_steps : o.epochs * steps_per_epoch;
    state.config = o.config;
    state.data_fingerprint = objective_.data_fingerprint();
  }
  const int64_t total_steps = state.total_steps;
  const int64_t warmup = static_cast<int64_t>(std::llround(o.warmup_ratio * static_cast<double>(total_steps)));
  const bool primary = hooks_->is_primary();
  std::optional<RunLog> run_log;
  if (primary) run_log.emplace(o.out_dir, o.resume ? state.step : -1);
  // Whether the model at the current step has been measured (and saved) already.
  bool evaluated_at_current_step = false;
  if (o.resume) {
    const auto evals = read_eval_log((fs::path(o.out_dir) / "eval_log.jsonl").string());
    evaluated_at_current_step = !evals.empty() && evals.back().step == state.step;
  }

  auto save = [&](const std::string& dir, bool best) {
    if (!primary) return;
    write_checkpoint(dir, [&](const std::string& tmp) {
      objective_.write_checkpoint_files(tmp, best);
      write_training_state(tmp, state, optimizer.get());
    });
  };

  // Returns whether to stop early.
  auto evaluate_and_save = [&]() -> bool {
    Evaluation ev = objective_.evaluate();
    objective_.set_training(true);
    evaluated_at_current_step = true;
    state.metric_name = ev.metric;
    state.higher_is_better = ev.higher_is_better;
    const bool improved = std::isfinite(ev.value) &&
                          (!state.best_metric || (ev.higher_is_better ? ev.value > *state.best_metric
                                                                      : ev.value < *state.best_metric));
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
    if (improved) save(run_dir_.best(), true);
    save(run_dir_.last(), false);
    return o.patience > 0 && state.evals_without_improvement >= o.patience;
  };

  if (!o.resume && o.evaluate_at_start) evaluate_and_save();  // what the model knew before training

  Progress progress(o.component, total_steps, "step");
  const auto t_start = std::chrono::steady_clock::now();
  const double elapsed_before = state.elapsed_s;
  const int64_t samples_at_start = state.samples_seen, tokens_at_start = state.tokens_seen;
  int non_finite_in_a_row = 0;
  bool stop = state.finished;
  objective_.set_training(true);

  // Moves the data position past a finished chunk; returns whether that ended the epoch.
  auto finish_chunk = [&](bool last_in_epoch) {
    state.batch_in_epoch = 0;
    if (last_in_epoch) {
      ++state.epoch;
      state.chunk = 0;
    } else {
      ++state.chunk;
    }
    return last_in_epoch;
  };

  // Writes last/ and returns: the run continues with --resume.
  auto interrupt = [&]() {
    progress.finish();
    save(run_dir_.last(), false);
    if (run_log) run_log->flush();
    log->info("stopped at step {}; checkpoint written to {}; continue with the same command plus --resume",
              state.step, run_dir_.last());
    result.interrupted = true;
    result.interrupt_signal = ctx_.stop.signal_number();
    result.steps = state.step;
    return result;
  };

  // Batches seen in the epoch in progress (a resumed epoch already had some).
  int64_t batches_this_epoch = state.chunk > 0 || state.batch_in_epoch > 0 ? 1 : 0;
  while (!stop && state.step < total_steps) {
    if (o.max_steps == 0 && state.epoch >= o.epochs) break;
    if (hooks_->agree_any(ctx_.stop.requested())) return interrupt();
    const ChunkPlan plan = objective_.plan_chunk(state.epoch, state.chunk, ctx_.seeds.data_order(state.epoch, state.chunk));
    batches_this_epoch += plan.batches;
    bool epoch_ended = false;
    while (!stop && state.step < total_steps) {
      if (state.batch_in_epoch >= plan.batches) {
        // A chunk done (or, on a resume, one whose batches were all taken before).
        epoch_ended = finish_chunk(plan.last_in_epoch);
        break;
      }
      const int64_t first = state.batch_in_epoch;
      const int64_t count = std::min<int64_t>(o.grad_accum, plan.batches - first);
      optimizer->zero_grad();
      std::vector<std::unique_ptr<PreparedBatch>> micro;
      double weight = 0;
      int64_t samples = 0, tokens = 0;
      for (int64_t k = 0; k < count; ++k) {
        micro.push_back(objective_.prepare(first + k, ctx_.seeds.micro_batch(state.step, k)));
        weight += micro.back()->weight;
        samples += micro.back()->samples;
        tokens += micro.back()->tokens;
      }
      double loss_sum = 0;
      std::vector<std::pair<std::string, double>> sums;
      int64_t last_with_weight = -1;
      for (int64_t k = 0; k < count; ++k)
        if (micro[static_cast<size_t>(k)]->weight > 0) last_with_weight = k;
      for (int64_t k = 0; k < count; ++k) {
        if (micro[static_cast<size_t>(k)]->weight <= 0) continue;  // nothing to learn from (no masked token)
        if (k == last_with_weight && strategy_->one_backward_pass()) hooks_->before_last_backward(params, weight);
        SeedStreams::seed_torch(objective_.dropout_seed(ctx_.seeds.micro_batch(state.step, k)));
        MicroLoss out = strategy_->run(objective_, *micro[static_cast<size_t>(k)], weight);
        loss_sum += out.loss.item<double>();
        for (const auto& sum : out.sums) {
          auto it = std::find_if(sums.begin(), sums.end(), [&](const auto& s) { return s.first == sum.first; });
          if (it == sums.end()) sums.push_back(sum);
          else it->second += sum.second;
        }
      }
      micro.clear();
      StepTotals totals{weight, loss_sum, samples, tokens, std::move(sums)};
      hooks_->after_backward(params, totals);
      const double loss_value = totals.weight > 0 ? totals.loss_sum / totals.weight : 0.0;
      double grad_norm = 0;
      if (o.max_grad_norm > 0) {
        grad_norm = torch::nn::utils::clip_grad_norm_(params, o.max_grad_norm);
      } else {
        double sq = 0;
        for (const auto& p : params)
          if (p.grad().defined()) sq += p.grad().pow(2).sum().item<double>();
        grad_norm = std::sqrt(sq);
      }
      const double lr = linear_schedule(o.lr, state.step, total_steps, warmup);
      const int64_t epoch_of_step = state.epoch;
      state.batch_in_epoch = first + count;
      const bool chunk_done = state.batch_in_epoch >= plan.batches;
      if (chunk_done) epoch_ended = finish_chunk(plan.last_in_epoch);
      if (!std::isfinite(loss_value) || !std::isfinite(grad_norm)) {
        optimizer->zero_grad();
        log->warn("step {}: loss or gradient is not finite; step skipped", state.step + 1);
        if (++non_finite_in_a_row >= kMaxNonFiniteSteps)
          throw Error(o.component + " diverged: " + std::to_string(kMaxNonFiniteSteps) +
                      " steps in a row had a non-finite loss or gradient; lower --lr or check the labels" +
                      (fs::exists(fs::path(run_dir_.last()) / "trainer_state.json")
                           ? " (the last good checkpoint is in " + run_dir_.last() + ")"
                           : std::string(" (no checkpoint was written yet)")));
        if (chunk_done) break;
        continue;
      }
      non_finite_in_a_row = 0;
      set_learning_rate(*optimizer, lr);
      optimizer->step();
      objective_.after_optimizer_step(state.step, total_steps);
      ++state.step;
      state.samples_seen += totals.samples;
      state.tokens_seen += totals.tokens;
      evaluated_at_current_step = false;

      const double since_start = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
      state.elapsed_s = elapsed_before + since_start;
      TrainLogRecord rec;
      rec.step = state.step;
      rec.epoch = epoch_of_step;
      rec.loss = loss_value;
      rec.lr = lr;
      rec.grad_norm = grad_norm;
      rec.samples_per_s = since_start > 0 ? static_cast<double>(state.samples_seen - samples_at_start) / since_start : 0;
      rec.tokens = state.tokens_seen;
      rec.tokens_per_s = since_start > 0 ? static_cast<double>(state.tokens_seen - tokens_at_start) / since_start : 0;
      rec.elapsed_s = state.elapsed_s;
      for (const auto& [name, v] : totals.sums) rec.extra[name] = totals.weight > 0 ? v / totals.weight : 0.0;
      if (run_log) run_log->write(rec);
      progress.update(state.step, "loss " + format_significant(loss_value) + " lr " + format_significant(lr, 2) + " " +
                                      format_significant(rec.samples_per_s, 3) + " samples/s");

      if ((o.eval_every > 0 && state.step % o.eval_every == 0) || (o.eval_every == 0 && epoch_ended)) {
        progress.finish();
        if (hooks_->agree_any(evaluate_and_save())) {
          log->info("early stopping: no improvement in {} evaluations", o.patience);
          result.early_stopped = true;
          stop = true;
        }
      }
      const bool asked = (o.stop_after_step && o.stop_after_step(state.step)) || ctx_.stop.requested();
      if (!stop && hooks_->agree_any(asked)) return interrupt();
      if (chunk_done) break;
    }
    if (epoch_ended) {
      if (batches_this_epoch == 0) throw DataError(objective_.empty_epoch_message());
      batches_this_epoch = 0;
      // An epoch that ended without a step (its last chunk was empty) is measured here.
      if (o.eval_every == 0 && !evaluated_at_current_step && state.step > 0) {
        progress.finish();
        evaluate_and_save();
      }
    }
  }
  progress.finish();
  if (!state.finished) {
    if (!evaluated_at_current_step && !result.early_stopped) evaluate_and_save();
    state.finished = true;
    save(run_dir_.last(), false);
  }
  if (run_log) run_log->flush();
  result.steps = state.step;
  result.metric_name = state.metric_name;
  result.best_metric = state.best_metric;
  result.best_step = state.best_step;
  return result;
}

}  // namespace dqe::training
