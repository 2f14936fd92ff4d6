#include "dqe/trainer.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "base/format.h"
#include "base/log.h"
#include "base/process_stop.h"
#include "dqe/engine.h"
#include "dqe/errors.h"
#include "dqe/metrics.h"
#include "dqe/runtime.h"
#include "infer/detect.h"
#include "io/output.h"
#include "model/model_dir.h"
#include "model/peft/adapter.h"
#include "model/peft/lora.h"
#include "train/adversarial_step.h"
#include "train/data_parallel.h"
#include "train/finetune_objective.h"
#include "train/flag_checks.h"

namespace dqe {

namespace {

// The step strategy --adv asks for, or null for the engine's plain one.
std::unique_ptr<training::AdversarialStep> adversarial_step_of(const TrainConfig& c) {
  if (c.adv == "none") return nullptr;
  training::AdversarialOptions o;
  o.method = c.adv;
  o.eps = c.adv_eps;
  o.steps = c.adv_steps;
  o.alpha = c.adv_alpha;
  o.relative = c.adv_relative;
  return std::make_unique<training::AdversarialStep>(o);
}

void log_adversarial_cost(const TrainConfig& c, const training::AdversarialStep& step, spdlog::logger& log) {
  const double clean = step.clean_seconds(), adversarial = step.adversarial_seconds();
  if (clean <= 0) return;
  log.info("adversarial training ({} eps {}{}): {:.1f} s of clean passes and {:.1f} s of adversarial ones; a step "
           "costs {:.2f}x a plain one",
           c.adv, format_significant(c.adv_eps) + (c.adv_relative ? " of each example's norm" : ""),
           c.adv == "pgd" ? " steps " + std::to_string(c.adv_steps) + " alpha " + format_significant(c.adv_alpha) : "",
           clean, adversarial, (clean + adversarial) / clean);
}

// Fits the detection statistics of the model in dir on the run's data and saves them there.
void write_detection_stats(const TrainConfig& c, const RunContext& ctx, const std::string& dir, spdlog::logger& log) {
  ReaderOptions ro;
  ro.fields = c.fields;
  ro.require_label = true;
  ro.max_bad_lines = c.max_bad_lines;
  const std::vector<Record> train = read_jsonl(c.train_path, ro);
  const std::vector<Record> dev = read_jsonl(c.dev_path, ro);
  LoadOptions lo;
  lo.base = c.base;
  LoadedModel loaded = load_model(dir, lo);
  loaded.model->to(ctx.device);
  const Predictor predictor(loaded.model, loaded.featurizer, ctx.precision, c.eval_batch_size, ctx.stop);
  const DetectionStats stats = fit_detection(predictor, train, dev, ctx.threads, c.detect_fpr, c.detect_sample, c.seed);
  save_detection_stats(dir, stats);
  log.info("detection statistics in {}: thresholds for {}% false positives on dev ({}% flagged)", dir,
           format_significant(100 * c.detect_fpr), format_significant(100 * stats.calibration.achieved));
}

}  // namespace

std::pair<int64_t, int64_t> adalora_phases(const TrainConfig& c, int64_t total_steps) {
  const int64_t tinit = c.adalora_tinit >= 0 ? c.adalora_tinit : total_steps / 10;
  const int64_t tfinal = c.adalora_tfinal >= 1 ? c.adalora_tfinal : std::max<int64_t>(1, total_steps * 3 / 10);
  if (tinit + tfinal >= total_steps)
    throw ConfigError("--adalora-tinit " + std::to_string(tinit) + " and --adalora-tfinal " + std::to_string(tfinal) +
                      (c.adalora_tinit < 0 || c.adalora_tfinal < 0 ? " (with defaults for the run's length)" : "") +
                      " leave no step to prune in: the run has " + std::to_string(total_steps) +
                      " steps, and tinit + tfinal must be fewer");
  return {tinit, tfinal};
}

void TrainConfig::validate() const {
  check_knobs(*this);  // each knob's own check: required, choices, bounds
  if (!init.empty() && !tokenizer.empty()) throw ConfigError("--tokenizer cannot be combined with --init (the model has its own)");
  check_model_shape_flags(*this);
  check_schedule_flags(*this);
  if (fields.text.empty()) throw ConfigError("--text-fields needs at least one field");
  if (!labels.empty()) {
    if (task == "regression") throw ConfigError("--labels applies to classification and binary tasks");
    if (labels.size() < 2 || (task == "binary" && labels.size() != 2))
      throw ConfigError("--labels needs " + std::string(task == "binary" ? "exactly 2" : "at least 2") + " class names");
    for (size_t i = 0; i < labels.size(); ++i)
      for (size_t j = i + 1; j < labels.size(); ++j)
        if (labels[i] == labels[j]) throw ConfigError("--labels names \"" + labels[i] + "\" twice");
  }
  check_compute_flags(threads, precision, device);
  if (!select_metric.empty()) {
    const MetricInfo* metric = find_metric(select_metric);
    if (metric == nullptr || metric->direction == Direction::kNeither) {
      std::string keys;
      for (const MetricInfo& m : metric_registry())
        if (m.direction != Direction::kNeither) keys += (keys.empty() ? "" : ", ") + m.key;
      throw ConfigError("--select-metric: \"" + select_metric + "\" is not a metric that can select a model (choose "
                        "among " + keys + ")");
    }
  }
  if (rank_loss != "none") {
    if (rank_group_cap > batch_size)
      throw ConfigError("--rank-group-cap " + std::to_string(rank_group_cap) + " exceeds --batch-size " +
                        std::to_string(batch_size) + ": a batch holds whole query groups");
    if (!unlabeled.empty())
      throw ConfigError("--rank-loss ranks judged results: --unlabeled pairs have no label to rank by");
  }
  if (peft != "none" && init.empty() && !resume)
    throw ConfigError("--peft " + peft + " needs --init: the base model to adapt");
  lora_modules(lora_targets, 1000);  // names that select a Linear of some encoder
  // The init rank's bound by the base, and tinit + tfinal against the run's steps when they come
  // from epochs, are checked once the data and the base are loaded.
  if (adalora_target_r > adalora_init_r)
    throw ConfigError("--adalora-target-r " + std::to_string(adalora_target_r) + " exceeds --adalora-init-r " +
                      std::to_string(adalora_init_r) + " (pruning only lowers ranks)");
  if (peft == "adalora" && max_steps > 0) adalora_phases(*this, max_steps);
  if (!unlabeled.empty() && teachers.empty())
    throw ConfigError("--unlabeled needs --teacher: only a teacher can label its pairs");
  if (keep_layers > 0 && init.empty()) throw ConfigError("--keep-layers needs --init: the model whose layers to keep");
  if (keep_layers > 0 && peft != "none")
    throw ConfigError("--keep-layers applies to full fine-tuning (--peft none): an adapter keeps its base whole");
}

nlohmann::ordered_json TrainConfig::to_json() const {
  nlohmann::ordered_json j = knobs_json(*this);
  record_dropout(j, *this);
  return j;
}

namespace {

// What the constant predictor scores beside the best model, so that a run that learned nothing
// does not look fine: regression's RMSE of predicting the training mean on dev, and a warning
// when the best dev RMSE is not at least 1% under it.
void log_against_the_constant(const TrainResult& r, spdlog::logger& log) {
  const auto constant = r.final_metrics.find("train_mean_rmse");
  if (constant == r.final_metrics.end() || !constant->is_number()) return;
  const double baseline = constant->get<double>();
  if (r.metric_name != "rmse") {
    log.info("predicting the training mean gives dev rmse {} (the last evaluation's model: {})",
             format_significant(baseline), format_significant(r.final_metrics.value("rmse", NAN)));
    return;
  }
  log.info("predicting the training mean gives dev rmse {}: the best model is {:.1f}% under it",
           format_significant(baseline), 100 * (1 - r.best_metric / baseline));
  if (!(r.best_metric < 0.99 * baseline))
    log.warn("the best dev rmse {} is within 1% of predicting the training mean ({}): the model learned little "
             "(check --lr, the steps, and that the labels follow the text)",
             format_significant(r.best_metric), format_significant(baseline));
}

}  // namespace

namespace {

// The knobs set away from their defaults for a mode the run is not in (--lora-rank without
// --peft lora, --distill-alpha without --teacher): they change nothing, which the user should
// hear. "--lora-rank 4 applies to --peft lora; this run has --peft none", one per knob.
std::vector<std::string> knobs_of_other_modes(const TrainConfig& c) {
  const nlohmann::ordered_json given = knobs_json(c), defaults = knobs_json(TrainConfig{});
  auto starts = [](const std::string& s, const char* prefix) { return s.rfind(prefix, 0) == 0; };
  std::vector<std::string> out;
  for (auto it = given.begin(); it != given.end(); ++it) {
    const std::string& name = it.key();
    if (*it == defaults.at(name)) continue;
    std::string needs;
    if (name == "lora-rank" && c.peft != "lora") needs = "--peft lora";
    else if (starts(name, "lora-") && c.peft != "lora" && c.peft != "adalora") needs = "--peft lora or adalora";
    else if (starts(name, "adalora-") && c.peft != "adalora") needs = "--peft adalora";
    else if (name == "adapter-size" && c.peft != "adapter") needs = "--peft adapter";
    else if (starts(name, "prefix-") && c.peft != "prefix") needs = "--peft prefix";
    if (!needs.empty()) out.push_back("--" + name + " applies to " + needs + "; this run has --peft " + c.peft);
    if (starts(name, "adv-") && c.adv == "none")
      out.push_back("--" + name + " applies with --adv fgm or pgd, and this run has --adv none");
    if (starts(name, "distill-") && c.teachers.empty())
      out.push_back("--" + name + " applies with --teacher, and this run has none");
  }
  return out;
}

}  // namespace

TrainResult train(const TrainConfig& config, const StopToken& stop) {
  config.validate();
  TrainConfig cfg = config;
  cfg.resume = resume_from_checkpoint(cfg.out_dir, cfg.resume, "train");
  if (config.resume && !cfg.resume) cfg.validate();  // as the fresh run it now is
  check_no_aliases({{"--rejects", cfg.rejects, true},
                    {"--rejects' dev file", cfg.rejects.empty() ? "" : cfg.rejects + ".dev", true},
                    {"--train", cfg.train_path, false},
                    {"--dev", cfg.dev_path, false}});
  auto log = detail::logger("train");
  for (const std::string& unused : knobs_of_other_modes(cfg)) log->warn("{}: it changes nothing", unused);
  std::unique_ptr<DataParallel> group = DataParallel::from_environment(cfg.distributed);  // null: one process
  std::unique_ptr<training::RunDirectory> run_dir_owner = open_run_directory(group.get(), cfg.out_dir, cfg.resume);
  training::RunDirectory& run_dir = *run_dir_owner;
  // Refused before the data are read: a resumed run continues as it was started.
  if (cfg.resume) run_dir.check_resume_config(cfg.to_json(), knobs_resume_may_change<TrainConfig>());
  // The step budget may change on --resume (the engine re-plans the learning rate), except for
  // AdaLoRA, whose rank budget is planned over the run's length (adalora_phases).
  if (cfg.resume && cfg.peft == "adalora") {
    const nlohmann::ordered_json now = cfg.to_json();
    const nlohmann::ordered_json& was = run_dir.resumed_state().config;
    for (const char* key : {"max-steps", "epochs"})
      if (was.is_object() && was.contains(key) && now.contains(key) && was[key] != now[key])
        throw ConfigError(std::string("--resume: --") + key + " " + now[key].dump() + " differs from the run's " +
                          was[key].dump() + ": an AdaLoRA run's rank schedule is planned over its whole length, "
                          "which cannot change");
  }
  RunContext ctx = make_run_context(cfg.device, cfg.precision, cfg.threads, stop, cfg.seed,
                                    group ? group->environment().local_world_size : 1);
  log->info(ctx.describe());
  training::EngineOptions options = training::schedule_of(cfg);
  options.component = "train";
  options.patience = cfg.patience;
  options.may_change_on_resume = knobs_resume_may_change<TrainConfig>();
  apply_data_parallel(group.get(), run_dir, cfg.resume, cfg.batch_size, ctx, options);
  training::FinetuneObjective objective(cfg, ctx, run_dir.last());

  std::unique_ptr<training::AdversarialStep> adversarial = adversarial_step_of(cfg);
  training::AdversarialStep* adversarial_view = adversarial.get();
  training::Engine engine(std::move(options), ctx, run_dir, objective, std::move(adversarial),
                          group ? data_parallel_hooks(*group, cfg.distributed.bucket_mb) : nullptr);
  const training::EngineResult r = engine.run();
  if (adversarial_view) log_adversarial_cost(cfg, *adversarial_view, *log);
  // Rank 0 alone writes into the run directory (the others are done).
  // A stop asked now ends the calibration between batches (it was finished and the signal lost).
  if (!r.interrupted && cfg.detect_fpr > 0 && !r.best_dir.empty() && ctx.is_primary()) {
    try {
      ctx.stop.check("");
      write_detection_stats(cfg, ctx, r.best_dir, *log);
    } catch (const Interrupted& e) {
      throw_interrupted(e.signal_number(), "before the detection statistics were written; " + r.best_dir +
                                           " is complete without them, and the same command plus --resume writes them");
    }
  }

  TrainResult result;
  result.steps = r.steps;
  result.trainable_parameters = r.trainable_parameters;
  result.interrupted = r.interrupted;
  result.interrupt_signal = r.interrupt_signal;
  result.early_stopped = r.early_stopped;
  result.metric_name = r.metric_name;
  result.best_metric = r.best_metric.value_or(NAN);
  result.best_step = r.best_step;
  result.final_metrics = r.final_metrics;
  result.best_dir = r.best_dir;
  result.last_dir = r.last_dir;
  result.adalora_ranks = objective.adalora_ranks();
  if (!result.adalora_ranks.empty()) {
    std::string ranks;
    int64_t total = 0;
    for (const auto& [module, rank] : result.adalora_ranks) {
      const std::string encoder = "bert.encoder.";  // "layer.0.attention.self.query"; "bert.pooler.dense" stays
      const std::string name = module.rfind(encoder, 0) == 0 ? module.substr(encoder.size()) : module;
      ranks += (ranks.empty() ? "" : ", ") + name + " " + std::to_string(rank);
      total += rank;
    }
    log->info("AdaLoRA ranks{}: {} (total {}, target {} x {} modules)", r.interrupted ? " so far" : "", ranks, total,
              cfg.adalora_target_r, result.adalora_ranks.size());
  }
  if (!r.interrupted) {
    log->info("done: {} steps; best dev {} {} at step {}; best model in {}", r.steps, r.metric_name,
              format_significant(result.best_metric), r.best_step, r.best_dir);
    log_against_the_constant(result, *log);
  }
  return result;
}

}  // namespace dqe
