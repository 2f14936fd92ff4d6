#include "dqe/trainer.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "base/format.h"
#include "base/log.h"
#include "dqe/engine.h"
#include "dqe/errors.h"
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

// What may differ on --resume: where and how the run computes, not what it learns.
const std::vector<std::string> kMayChangeOnResume = {"train", "dev", "out", "resume", "threads", "precision", "device",
                                                    "eval-batch-size", "max-bad-lines", "rejects", "base",
                                                    "dist-timeout", "bucket-mb", "detect-fpr", "detect-sample"};

// The step strategy --adv asks for, or null for the engine's plain one.
std::unique_ptr<training::AdversarialStep> adversarial_step_of(const TrainConfig& c) {
  if (c.adv == "none") return nullptr;
  training::AdversarialOptions o;
  o.method = c.adv;
  o.eps = c.adv_eps;
  o.steps = c.adv_steps;
  o.alpha = c.adv_alpha;
  return std::make_unique<training::AdversarialStep>(o);
}

void log_adversarial_cost(const TrainConfig& c, const training::AdversarialStep& step, spdlog::logger& log) {
  const double clean = step.clean_seconds(), adversarial = step.adversarial_seconds();
  if (clean <= 0) return;
  log.info("adversarial training ({} eps {}{}): {:.1f} s of clean passes and {:.1f} s of adversarial ones; a step "
           "costs {:.2f}x a plain one",
           c.adv, format_significant(c.adv_eps),
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
  const Predictor predictor(loaded.model, loaded.featurizer, ctx.precision, c.eval_batch_size);
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
  if (train_path.empty()) throw ConfigError("--train is required");
  if (dev_path.empty()) throw ConfigError("--dev is required");
  if (out_dir.empty()) throw ConfigError("--out is required");
  parse_task(task);
  if (!init.empty() && !tokenizer.empty()) throw ConfigError("--tokenizer cannot be combined with --init (the model has its own)");
  check_model_shape_flags(*this);
  check_flag(!dropout || (*dropout >= 0 && *dropout < 1), "--dropout", "in [0, 1)", dropout.value_or(0));
  parse_fusion(fusion);
  check_flag(modality_dropout >= 0 && modality_dropout < 1, "--modality-dropout", "in [0, 1)", modality_dropout);
  check_schedule_flags(*this);
  check_flag(max_len == 0 || (max_len >= 3 && max_len <= kMaxSequenceLength), "--max-len",
             "0 (the model's) or between 3 and " + std::to_string(kMaxSequenceLength), max_len);
  check_flag(patience >= 0, "--patience", ">= 0", patience);
  check_flag(max_bad_lines >= 0, "--max-bad-lines", ">= 0", max_bad_lines);
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
  distributed.validate();
  if (match_types != "auto" && match_types != "on" && match_types != "off")
    throw ConfigError("--match-types must be auto, on or off");
  if (peft != "none" && peft != "lora" && peft != "adalora" && peft != "adapter")
    throw ConfigError("--peft must be none, lora, adalora or adapter, got \"" + peft + "\"");
  if (peft != "none" && init.empty() && !resume)
    throw ConfigError("--peft " + peft + " needs --init: the base model to adapt");
  // The rank's bound by the base's dimensions is checked once the base is loaded.
  check_flag(lora_rank >= 1 && lora_rank <= 65536, "--lora-rank", "between 1 and 65536", lora_rank);
  check_flag(lora_alpha > 0 && lora_alpha <= 1e6, "--lora-alpha", "in (0, 10^6]", lora_alpha);
  check_flag(lora_dropout >= 0 && lora_dropout < 1, "--lora-dropout", "in [0, 1)", lora_dropout);
  lora_modules(lora_targets, 1000);  // names that select a Linear of some encoder
  // Its bound by the base's hidden size is checked once the base is loaded.
  check_flag(adapter_size >= 1 && adapter_size <= 65536, "--adapter-size", "between 1 and 65536", adapter_size);
  // The init rank's bound by the base, and tinit + tfinal against the run's steps when they come
  // from epochs, are checked once the data and the base are loaded.
  check_flag(adalora_init_r >= 1 && adalora_init_r <= 65536, "--adalora-init-r", "between 1 and 65536", adalora_init_r);
  check_flag(adalora_target_r >= 1, "--adalora-target-r", ">= 1", adalora_target_r);
  if (adalora_target_r > adalora_init_r)
    throw ConfigError("--adalora-target-r " + std::to_string(adalora_target_r) + " exceeds --adalora-init-r " +
                      std::to_string(adalora_init_r) + " (pruning only lowers ranks)");
  constexpr int64_t kMaxSteps = 1000000000000;  // --max-steps' bound
  check_flag(adalora_tinit >= -1 && adalora_tinit <= kMaxSteps, "--adalora-tinit",
             "between 0 and 10^12 (or -1: a tenth of the steps)", adalora_tinit);
  check_flag(adalora_tfinal == -1 || (adalora_tfinal >= 1 && adalora_tfinal <= kMaxSteps), "--adalora-tfinal",
             "between 1 and 10^12 (or -1: 30% of the steps)", adalora_tfinal);
  check_flag(adalora_delta_t >= 1 && adalora_delta_t <= kMaxSteps, "--adalora-delta-t", "between 1 and 10^12",
             adalora_delta_t);
  check_flag(adalora_beta1 > 0 && adalora_beta1 < 1, "--adalora-beta1", "in (0, 1)", adalora_beta1);
  check_flag(adalora_beta2 > 0 && adalora_beta2 < 1, "--adalora-beta2", "in (0, 1)", adalora_beta2);
  check_flag(adalora_orth_reg_weight >= 0 && adalora_orth_reg_weight <= 1e6, "--adalora-orth-reg-weight",
             "in [0, 10^6]", adalora_orth_reg_weight);
  if (peft == "adalora" && max_steps > 0) adalora_phases(*this, max_steps);
  check_flag(distill_temperature > 0 && distill_temperature <= 1e3, "--distill-temperature", "in (0, 1000]",
             distill_temperature);
  check_flag(distill_alpha > 0 && distill_alpha <= 1, "--distill-alpha", "in (0, 1] (0 would ignore the teacher)",
             distill_alpha);
  if (!unlabeled.empty() && teachers.empty())
    throw ConfigError("--unlabeled needs --teacher: only a teacher can label its pairs");
  check_flag(keep_layers >= 0, "--keep-layers", ">= 0", keep_layers);
  if (keep_layers > 0 && init.empty()) throw ConfigError("--keep-layers needs --init: the model whose layers to keep");
  if (keep_layers > 0 && peft != "none")
    throw ConfigError("--keep-layers applies to full fine-tuning (--peft none): an adapter keeps its base whole");
  if (keep_which != "bottom" && keep_which != "alternate")
    throw ConfigError("--keep-which must be bottom or alternate, got " + keep_which);
  if (adv != "none" && adv != "fgm" && adv != "pgd") throw ConfigError("--adv must be none, fgm or pgd, got \"" + adv + "\"");
  check_flag(adv_eps > 0 && adv_eps <= 1e6, "--adv-eps", "in (0, 10^6]", adv_eps);
  check_flag(adv_steps >= 1 && adv_steps <= 100, "--adv-steps", "between 1 and 100", adv_steps);
  check_flag(adv_alpha > 0 && adv_alpha <= 1e6, "--adv-alpha", "in (0, 10^6]", adv_alpha);
  check_flag(augment >= 0 && augment <= 1, "--augment", "in [0, 1] (0: off)", augment);
  check_flag(detect_fpr >= 0 && detect_fpr < 1, "--detect-fpr", "in [0, 1) (0: no detection statistics)", detect_fpr);
  check_flag(detect_sample >= 2 && detect_sample <= 10000000, "--detect-sample", "between 2 and 10^7", detect_sample);
}

nlohmann::ordered_json TrainConfig::to_json() const {
  nlohmann::ordered_json j;
  j["train"] = train_path;
  j["dev"] = dev_path;
  j["out"] = out_dir;
  j["init"] = init;
  j["tokenizer"] = tokenizer;
  j["task"] = task;
  j["labels"] = labels;
  write_model_shape_flags(j, *this);
  j["match-types"] = match_types;
  j["lexical-features"] = lexical_features;
  j["fusion"] = fusion;
  j["modality-dropout"] = modality_dropout;
  j["lower-case"] = lower_case;
  j["peft"] = peft;
  j["lora-rank"] = lora_rank;
  j["lora-alpha"] = lora_alpha;
  j["lora-dropout"] = lora_dropout;
  j["lora-targets"] = lora_targets;
  j["adapter-size"] = adapter_size;
  j["teacher"] = teachers;
  j["distill-temperature"] = distill_temperature;
  j["distill-alpha"] = distill_alpha;
  j["unlabeled"] = unlabeled;
  j["keep-layers"] = keep_layers;
  j["keep-which"] = keep_which;
  j["adalora-init-r"] = adalora_init_r;
  j["adalora-target-r"] = adalora_target_r;
  j["adalora-tinit"] = adalora_tinit;
  j["adalora-tfinal"] = adalora_tfinal;
  j["adalora-delta-t"] = adalora_delta_t;
  j["adalora-beta1"] = adalora_beta1;
  j["adalora-beta2"] = adalora_beta2;
  j["adalora-orth-reg-weight"] = adalora_orth_reg_weight;
  j["base"] = base;
  write_schedule_flags(j, *this);
  j["adv"] = adv;
  j["adv-eps"] = adv_eps;
  j["adv-steps"] = adv_steps;
  j["adv-alpha"] = adv_alpha;
  j["augment"] = augment;
  j["detect-fpr"] = detect_fpr;
  j["detect-sample"] = detect_sample;
  j["eval-every"] = eval_every;
  j["patience"] = patience;
  j["eval-batch-size"] = eval_batch_size;
  j["resume"] = resume;
  distributed.write_json(j);
  j["query-field"] = fields.query;
  j["text-fields"] = fields.text;
  j["label-field"] = fields.label;
  j["query-id-field"] = fields.query_id;
  j["id-field"] = fields.id;
  j["features-field"] = fields.features;
  j["attributes-field"] = fields.attributes;
  j["image-field"] = fields.image;
  j["max-bad-lines"] = max_bad_lines;
  j["rejects"] = rejects;
  return j;
}

TrainResult train(const TrainConfig& cfg, const StopToken& stop) {
  cfg.validate();
  check_no_aliases({{"--rejects", cfg.rejects, true},
                    {"--rejects' dev file", cfg.rejects.empty() ? "" : cfg.rejects + ".dev", true},
                    {"--train", cfg.train_path, false},
                    {"--dev", cfg.dev_path, false}});
  auto log = detail::logger("train");
  std::unique_ptr<DataParallel> group = DataParallel::from_environment(cfg.distributed);  // null: one process
  std::unique_ptr<training::RunDirectory> run_dir_owner = open_run_directory(group.get(), cfg.out_dir, cfg.resume);
  training::RunDirectory& run_dir = *run_dir_owner;
  // Refused before the data are read: a resumed run continues as it was started.
  if (cfg.resume) run_dir.check_resume_config(cfg.to_json(), kMayChangeOnResume);
  RunContext ctx = make_run_context(cfg.device, cfg.precision, cfg.threads, stop, cfg.seed,
                                    group ? group->environment().local_world_size : 1);
  log->info(ctx.describe());
  training::EngineOptions options = training::schedule_of(cfg);
  options.component = "train";
  options.patience = cfg.patience;
  options.may_change_on_resume = kMayChangeOnResume;
  apply_data_parallel(group.get(), run_dir, cfg.resume, cfg.batch_size, ctx, options);
  training::FinetuneObjective objective(cfg, ctx, run_dir.last());

  std::unique_ptr<training::AdversarialStep> adversarial = adversarial_step_of(cfg);
  training::AdversarialStep* adversarial_view = adversarial.get();
  training::Engine engine(std::move(options), ctx, run_dir, objective, std::move(adversarial),
                          group ? data_parallel_hooks(*group, cfg.distributed.bucket_mb) : nullptr);
  const training::EngineResult r = engine.run();
  if (adversarial_view) log_adversarial_cost(cfg, *adversarial_view, *log);
  // Rank 0 alone writes into the run directory (the others are done).
  if (!r.interrupted && cfg.detect_fpr > 0 && !r.best_dir.empty() && ctx.is_primary())
    write_detection_stats(cfg, ctx, r.best_dir, *log);

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
  if (!r.interrupted)
    log->info("done: {} steps; best dev {} {} at step {}; best model in {}", r.steps, r.metric_name,
              format_significant(result.best_metric), r.best_step, r.best_dir);
  return result;
}

}  // namespace dqe
