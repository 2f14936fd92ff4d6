#include "dqe/pretrainer.h"

#include <cmath>
#include <filesystem>

#include "base/format.h"
#include "base/log.h"
#include "dqe/engine.h"
#include "dqe/errors.h"
#include "io/input_file.h"
#include "train/data_parallel.h"
#include "train/flag_checks.h"
#include "train/mlm_objective.h"
#include "train/run_log.h"

namespace dqe {
namespace fs = std::filesystem;

void PretrainConfig::validate() const {
  check_knobs(*this);  // each knob's own check: required, bounds
  if (!init.empty() && !tokenizer.empty()) throw ConfigError("--tokenizer cannot be combined with --init (the model has its own)");
  check_model_shape_flags(*this);
  check_schedule_flags(*this);
  check_compute_flags(threads, precision, device);
}

nlohmann::ordered_json PretrainConfig::to_json() const {
  nlohmann::ordered_json j = knobs_json(*this);
  record_dropout(j, *this);
  return j;
}

PretrainResult pretrain(const PretrainConfig& config, const StopToken& stop) {
  config.validate();
  PretrainConfig cfg = config;
  cfg.resume = resume_from_checkpoint(cfg.out_dir, cfg.resume, "pretrain");
  if (config.resume && !cfg.resume) cfg.validate();  // as the fresh run it now is
  auto log = detail::logger("pretrain");
  check_regular_input(cfg.corpus, "corpus", "the corpus is read once per epoch, and once more to count it");
  std::unique_ptr<DataParallel> group = DataParallel::from_environment(cfg.distributed);  // null: one process
  std::unique_ptr<training::RunDirectory> run_dir_owner = open_run_directory(group.get(), cfg.out_dir, cfg.resume);
  training::RunDirectory& run_dir = *run_dir_owner;
  // Refused before the data are read: a resumed run continues as it was started.
  if (cfg.resume) run_dir.check_resume_config(cfg.to_json(), knobs_resume_may_change<PretrainConfig>());
  RunContext ctx = make_run_context(cfg.device, cfg.precision, cfg.threads, stop, cfg.seed,
                                    group ? group->environment().local_world_size : 1);
  log->info(ctx.describe());
  training::EngineOptions options = training::schedule_of(cfg);
  options.component = "pretrain";
  options.evaluate_at_start = true;  // the untrained (or --init) model's score: what pretraining gained
  options.may_change_on_resume = knobs_resume_may_change<PretrainConfig>();
  apply_data_parallel(group.get(), run_dir, cfg.resume, cfg.batch_size, ctx, options);
  training::MlmObjective objective(cfg, ctx, run_dir.last());

  training::Engine engine(std::move(options), ctx, run_dir, objective, nullptr,
                          group ? data_parallel_hooks(*group, cfg.distributed.bucket_mb) : nullptr);
  const training::EngineResult r = engine.run();

  PretrainResult result = objective.counts();
  result.steps = r.steps;
  result.interrupted = r.interrupted;
  result.interrupt_signal = r.interrupt_signal;
  result.best_step = r.best_step;
  result.best_dir = r.best_dir;
  result.last_dir = r.last_dir;
  if (r.interrupted) return result;
  // First and best evaluations, from the log (a resumed run did not see the first).
  const auto evals = read_eval_log((fs::path(cfg.out_dir) / "eval_log.jsonl").string());
  auto metric = [](const EvalLogRecord& e, const char* key) {
    auto it = e.metrics.find(key);
    return it != e.metrics.end() && it->is_number() ? it->get<double>() : NAN;
  };
  if (!evals.empty()) {
    result.initial_loss = metric(evals.front(), "mlm_loss");
    result.initial_accuracy = metric(evals.front(), "mlm_accuracy");
  }
  for (const auto& e : evals) {
    if (e.step != r.best_step) continue;
    result.best_loss = metric(e, "mlm_loss");
    result.best_accuracy = metric(e, "mlm_accuracy");
  }
  log->info("done: {} steps; held-back MLM accuracy {} -> {} (loss {} -> {}); best encoder in {}", r.steps,
            format_significant(result.initial_accuracy), format_significant(result.best_accuracy),
            format_significant(result.initial_loss), format_significant(result.best_loss), r.best_dir);
  return result;
}

}  // namespace dqe
