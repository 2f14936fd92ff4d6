#include "dqe/trainer.h"

#include <atomic>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string_view>

#include "detail/log.h"
#include "detail/train_util.h"
#include "dqe/checkpoint.h"
#include "dqe/dataset.h"
#include "dqe/errors.h"
#include "dqe/evaluator.h"
#include "dqe/output.h"
#include "dqe/progress.h"
#include "dqe/runtime.h"
#include "dqe/vocab_builder.h"
#include "dqe/wordpiece_tokenizer.h"

namespace dqe {
namespace fs = std::filesystem;
using detail::fmt_double;

namespace {

std::atomic<int> g_stop_signal{0};

}  // namespace

void request_stop(int signal_number) { g_stop_signal.store(signal_number); }
int stop_signal() { return g_stop_signal.load(); }

void TrainConfig::validate() const {
  if (train_path.empty()) throw ConfigError("--train is required");
  if (dev_path.empty()) throw ConfigError("--dev is required");
  if (out_dir.empty()) throw ConfigError("--out is required");
  parse_task(task);
  if (!init.empty() && !tokenizer.empty()) throw ConfigError("--tokenizer cannot be combined with --init (the model has its own)");
  if (resume && !init.empty()) throw ConfigError("--resume continues from --out; do not also give --init");
  if (layers <= 0) throw ConfigError("--layers must be > 0");
  if (hidden <= 0 || heads <= 0 || hidden % heads != 0) throw ConfigError("--hidden must be a positive multiple of --heads");
  if (intermediate <= 0) throw ConfigError("--intermediate must be > 0");
  if (vocab_size < 10) throw ConfigError("--vocab-size must be >= 10");
  if (dropout && (*dropout < 0 || *dropout >= 1)) throw ConfigError("--dropout must be in [0, 1)");
  if (epochs <= 0 && max_steps <= 0) throw ConfigError("--epochs or --max-steps must be > 0");
  if (max_steps < 0) throw ConfigError("--max-steps must be >= 0");
  if (batch_size <= 0) throw ConfigError("--batch-size must be > 0");
  if (grad_accum <= 0) throw ConfigError("--grad-accum must be > 0");
  if (!(lr > 0) || !std::isfinite(lr)) throw ConfigError("--lr must be > 0");
  if (warmup_ratio < 0 || warmup_ratio >= 1) throw ConfigError("--warmup-ratio must be in [0, 1)");
  if (weight_decay < 0) throw ConfigError("--weight-decay must be >= 0");
  if (max_grad_norm < 0) throw ConfigError("--max-grad-norm must be >= 0");
  if (max_len != 0 && max_len < 3) throw ConfigError("--max-len must be >= 3");
  if (eval_every < 0) throw ConfigError("--eval-every must be >= 0");
  if (patience < 0) throw ConfigError("--patience must be >= 0");
  if (eval_batch_size <= 0) throw ConfigError("--eval-batch-size must be > 0");
  if (max_bad_lines < 0) throw ConfigError("--max-bad-lines must be >= 0");
  if (fields.text.empty()) throw ConfigError("--text-fields needs at least one field");
  if (!labels.empty()) {
    if (task == "regression") throw ConfigError("--labels applies to classification and binary tasks");
    if (labels.size() < 2 || (task == "binary" && labels.size() != 2))
      throw ConfigError("--labels needs " + std::string(task == "binary" ? "exactly 2" : "at least 2") + " class names");
    for (size_t i = 0; i < labels.size(); ++i)
      for (size_t j = i + 1; j < labels.size(); ++j)
        if (labels[i] == labels[j]) throw ConfigError("--labels names \"" + labels[i] + "\" twice");
  }
  resolve_precision(precision, resolve_device(device));
  if (match_types != "auto" && match_types != "on" && match_types != "off")
    throw ConfigError("--match-types must be auto, on or off");
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
  j["layers"] = layers;
  j["hidden"] = hidden;
  j["heads"] = heads;
  j["intermediate"] = intermediate;
  j["vocab-size"] = vocab_size;
  if (dropout || init.empty()) j["dropout"] = dropout.value_or(kDefaultDropout);
  j["match-types"] = match_types;
  j["lexical-features"] = lexical_features;
  j["lower-case"] = lower_case;
  j["epochs"] = epochs;
  j["max-steps"] = max_steps;
  j["batch-size"] = batch_size;
  j["grad-accum"] = grad_accum;
  j["lr"] = lr;
  j["warmup-ratio"] = warmup_ratio;
  j["weight-decay"] = weight_decay;
  j["max-grad-norm"] = max_grad_norm;
  j["max-len"] = max_len;
  j["seed"] = seed;
  j["threads"] = threads;
  j["precision"] = precision;
  j["device"] = device;
  j["eval-every"] = eval_every;
  j["patience"] = patience;
  j["eval-batch-size"] = eval_batch_size;
  j["query-field"] = fields.query;
  j["text-fields"] = fields.text;
  j["label-field"] = fields.label;
  j["query-id-field"] = fields.query_id;
  j["max-bad-lines"] = max_bad_lines;
  return j;
}

TrainResult train(const TrainConfig& cfg) {
  cfg.validate();
  check_no_aliases({{"--rejects", cfg.rejects, true},
                    {"--rejects' dev file", cfg.rejects.empty() ? "" : cfg.rejects + ".dev", true},
                    {"--train", cfg.train_path, false},
                    {"--dev", cfg.dev_path, false}});
  g_stop_signal.store(0);
  auto log = detail::logger("train");
  const fs::path out(cfg.out_dir);
  const fs::path last_dir = out / "last", best_dir = out / "best";
  if (cfg.resume) {
    recover_checkpoint(last_dir.string());
    recover_checkpoint(best_dir.string());
    if (!fs::exists(last_dir / "trainer_state.json"))
      throw ConfigError("--resume: " + last_dir.string() + " holds no training checkpoint to continue from");
  } else if (fs::exists(last_dir) || fs::exists(best_dir)) {
    throw ConfigError("--out " + cfg.out_dir + " already holds a run: add --resume to continue it, or choose another directory");
  }
  detail::check_writable(out);  // fail now, not after an hour of training
  const c10::Device device = resolve_device(cfg.device);
  const Precision precision = resolve_precision(cfg.precision, device);
  const int threads = configure_threads(cfg.threads);
  log->info(runtime_description() + ", " + device.str() + ", " + precision_name(precision));

  ReaderOptions ro;
  ro.fields = cfg.fields;
  ro.require_label = true;
  ro.max_bad_lines = cfg.max_bad_lines;
  ro.rejects_path = cfg.rejects;
  std::vector<Record> train_records = read_jsonl(cfg.train_path, ro);
  if (!cfg.rejects.empty()) ro.rejects_path = cfg.rejects + ".dev";
  std::vector<Record> dev_records = read_jsonl(cfg.dev_path, ro);
  log->info("{}: {} examples; {}: {} examples", cfg.train_path, train_records.size(), cfg.dev_path,
            dev_records.size());

  // The spec, tokenizer and weights come from last/ (resume), --init, or are built fresh.
  ModelSpec spec;
  std::unique_ptr<Tokenizer> tokenizer;
  SequenceModel model{nullptr};
  const Task task = parse_task(cfg.task);
  // Every weight not loaded (a new model, or a head the --init model lacks) is drawn from the
  // seed, so that a run is reproducible; the default generator is seeded at random.
  torch::manual_seed(cfg.seed);
  if (cfg.resume) {
    LoadedModel loaded = load_model(last_dir.string());
    spec = loaded.spec;
    tokenizer = std::move(loaded.tokenizer);
    model = loaded.model;
    if (spec.task.task != task) throw ConfigError("--task " + cfg.task + " differs from the run's task " + task_name(spec.task.task));
    detail::apply_dropout_flag(cfg.dropout, /*resume=*/true, model, spec.bert, *log);
  } else {
    TaskSpec ts;
    ts.task = task;
    ts.fields = cfg.fields;
    ts.lower_case = cfg.lower_case;
    std::optional<ModelSpec> init_spec;
    if (!cfg.init.empty()) {
      init_spec = load_model_spec(resolve_model_dir(cfg.init));
      ts.lower_case = init_spec->task.lower_case;
      ts.match_types = cfg.match_types == "on" || (cfg.match_types == "auto" && init_spec->task.match_types);
      ts.lexical_features = cfg.lexical_features || (!init_spec->mlm_encoder && init_spec->task.lexical_features);
    } else {
      ts.match_types = cfg.match_types != "off";
      ts.lexical_features = cfg.lexical_features;
    }
    if (!cfg.labels.empty()) {
      ts.labels = cfg.labels;
    } else if (task == Task::kClassification) {
      ts.labels = collect_class_labels(train_records, cfg.train_path);
      // Keep a fine-tuned head when it already knows the same classes.
      if (init_spec && init_spec->task.task == Task::kClassification && init_spec->task.labels.size() >= ts.labels.size() &&
          std::all_of(ts.labels.begin(), ts.labels.end(), [&](const std::string& l) {
            return std::find(init_spec->task.labels.begin(), init_spec->task.labels.end(), l) != init_spec->task.labels.end();
          }))
        ts.labels = init_spec->task.labels;
    } else if (task == Task::kRegression) {
      if (init_spec && init_spec->has_dqe_section && !init_spec->mlm_encoder && init_spec->task.task == Task::kRegression) {
        ts.label_mean = init_spec->task.label_mean;
        ts.label_std = init_spec->task.label_std;
      } else {
        double sum = 0, sq = 0;
        for (const auto& r : train_records) {
          const double v = encode_label(r, ts, cfg.train_path);
          sum += v;
          sq += v * v;
        }
        const double n = static_cast<double>(train_records.size());
        ts.label_mean = sum / n;
        ts.label_std = std::sqrt(std::max(0.0, sq / n - ts.label_mean * ts.label_mean));
        if (!(ts.label_std > 1e-12)) ts.label_std = 1.0;  // constant labels: nothing to scale
      }
    }
    if (init_spec) {
      ts.max_len = cfg.max_len > 0 ? cfg.max_len : init_spec->task.max_len;
      if (ts.max_len > init_spec->bert.max_position_embeddings)
        throw ConfigError("--max-len " + std::to_string(ts.max_len) + " exceeds the model's max_position_embeddings (" +
                          std::to_string(init_spec->bert.max_position_embeddings) + ")");
      LoadedModel loaded = load_model(cfg.init, /*allow_new_head=*/true, ts,
                                      ts.match_types ? std::optional<int64_t>(4) : std::nullopt);
      spec = loaded.spec;
      tokenizer = std::move(loaded.tokenizer);
      model = loaded.model;
      for (const auto& name : loaded.report.missing) log->info("{}: {} is newly initialised", cfg.init, name);
      detail::apply_dropout_flag(cfg.dropout, /*resume=*/false, model, spec.bert, *log);
      if (!loaded.report.unexpected.empty())
        log->info("{}: {} tensors not used by the model (e.g. {})", cfg.init, loaded.report.unexpected.size(),
                  loaded.report.unexpected.front());
    } else {
      ts.max_len = cfg.max_len > 0 ? cfg.max_len : 128;
      if (!cfg.tokenizer.empty()) {
        tokenizer = load_tokenizer_file(cfg.tokenizer, ts.lower_case);
      } else {
        std::vector<std::string> texts;
        texts.reserve(train_records.size() * 2);
        for (const auto& r : train_records) {
          texts.push_back(r.query);
          texts.push_back(r.text);
        }
        VocabBuilderOptions vo;
        vo.vocab_size = cfg.vocab_size;
        vo.lower_case = ts.lower_case;
        auto t0 = std::chrono::steady_clock::now();
        tokenizer = std::make_unique<WordPieceTokenizer>(build_wordpiece_vocab(texts, vo), ts.lower_case, "built vocab");
        log->info("built a WordPiece vocabulary of {} tokens from {} in {:.1f}s", tokenizer->vocab_size(),
                  cfg.train_path, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      }
      BertConfig& b = spec.bert;
      b.vocab_size = tokenizer->vocab_size();
      b.hidden_size = cfg.hidden;
      b.num_hidden_layers = cfg.layers;
      b.num_attention_heads = cfg.heads;
      b.intermediate_size = cfg.intermediate;
      b.hidden_dropout_prob = b.attention_probs_dropout_prob = cfg.dropout.value_or(kDefaultDropout);
      b.max_position_embeddings = std::max<int64_t>(512, ts.max_len);
      b.type_vocab_size = ts.match_types ? 4 : 2;
      b.pad_token_id = tokenizer->pad_id();
      b.validate("model shape");
      spec.has_dqe_section = true;
      spec.task = ts;
      model = SequenceModel(b, ts.num_outputs(), ts.lexical_features ? kNumLexicalFeatures : 0);
      init_bert_weights(model, b.initializer_range, b.pad_token_id);
    }
  }
  if (spec.task.lexical_features && !model->lexical_stats) {
    std::vector<std::string_view> texts;
    texts.reserve(train_records.size());
    for (const auto& r : train_records) texts.emplace_back(r.text);
    model->lexical_stats = std::make_shared<const LexicalStats>(LexicalStats::build(texts));
    log->info("lexical features on: word statistics of {} distinct results in {}", model->lexical_stats->docs,
              cfg.train_path);
  }
  model->to(device);  // before the optimizer takes the parameters
  const TaskSpec& ts = spec.task;
  int64_t num_params = 0;
  for (const auto& p : model->parameters()) num_params += p.numel();
  log->info("model: {} layers x {} hidden x {} heads, {:.1f}M parameters; task {}{}; max length {}",
            spec.bert.num_hidden_layers, spec.bert.hidden_size, spec.bert.num_attention_heads, num_params / 1e6,
            task_name(ts.task), ts.task == Task::kClassification ? " (" + std::to_string(ts.labels.size()) + " classes)" : "",
            ts.max_len);

  EncodedSet train_set =
      encode_records(train_records, *tokenizer, ts, cfg.train_path, true, threads, model->lexical_stats.get());
  EncodedSet dev_set = encode_records(dev_records, *tokenizer, ts, cfg.dev_path, true, threads, model->lexical_stats.get());
  train_records.clear();
  train_records.shrink_to_fit();
  std::vector<float> targets(train_set.labels.begin(), train_set.labels.end());
  if (ts.task == Task::kRegression)
    for (auto& t : targets) t = static_cast<float>((t - ts.label_mean) / ts.label_std);
  const std::vector<size_t> lengths = lengths_of(train_set.inputs);

  std::vector<std::pair<std::string, torch::Tensor>> params;
  for (const auto& item : model->named_parameters()) params.emplace_back(item.key(), item.value());
  auto optimizer_ptr = detail::make_adamw(params, cfg.lr, cfg.weight_decay);
  torch::optim::AdamW& optimizer = *optimizer_ptr;

  const int64_t batches_per_epoch = (static_cast<int64_t>(lengths.size()) + cfg.batch_size - 1) / cfg.batch_size;
  const int64_t steps_per_epoch = (batches_per_epoch + cfg.grad_accum - 1) / cfg.grad_accum;
  TrainerState state;
  if (cfg.resume) {
    state = load_trainer_state(last_dir.string(), &optimizer);
    if (state.finished) log->info("{} already finished at step {}; nothing to do", cfg.out_dir, state.step);
    else log->info("resuming {} at step {} (epoch {}, batch {})", cfg.out_dir, state.step, state.epoch + 1, state.batch_in_epoch);
  } else {
    state.seed = cfg.seed;
    state.total_steps = cfg.max_steps > 0 ? cfg.max_steps : cfg.epochs * steps_per_epoch;
    state.config = cfg.to_json();
  }
  const int64_t total_steps = state.total_steps;
  const int64_t warmup = static_cast<int64_t>(std::llround(cfg.warmup_ratio * static_cast<double>(total_steps)));

  detail::truncate_log(out / "train_log.jsonl", cfg.resume ? state.step : -1);
  detail::truncate_log(out / "eval_log.jsonl", cfg.resume ? state.step : -1);
  std::ofstream train_log(out / "train_log.jsonl", std::ios::app);
  std::ofstream eval_log(out / "eval_log.jsonl", std::ios::app);
  if (!train_log || !eval_log) throw IoError(cfg.out_dir + ": cannot write the run's logs");

  TrainResult result;
  result.best_dir = best_dir.string();
  result.last_dir = last_dir.string();

  auto evaluate_and_save = [&]() -> bool {
    torch::Tensor logits = predict_logits(model, dev_set.inputs, cfg.eval_batch_size, tokenizer->pad_id(), precision);
    Predictions predictions = predictions_from_logits(logits, ts);
    EvalResult ev = compute_metrics(ts, predictions, dev_set.labels, dev_set.query_ids);
    state.metric_name = ev.primary_name;
    state.higher_is_better = ev.higher_is_better;
    const bool improved = std::isfinite(ev.primary) &&
                          (!state.best_metric || (ev.higher_is_better ? ev.primary > *state.best_metric
                                                                      : ev.primary < *state.best_metric));
    if (improved) {
      state.best_metric = ev.primary;
      state.best_step = state.step;
      state.evals_without_improvement = 0;
    } else {
      ++state.evals_without_improvement;
    }
    nlohmann::ordered_json rec;
    rec["step"] = state.step;
    rec["epoch"] = static_cast<double>(state.step) / static_cast<double>(std::max<int64_t>(1, steps_per_epoch));
    rec["metric"] = ev.primary_name;
    rec["value"] = ev.primary;
    rec["best"] = state.best_metric ? nlohmann::ordered_json(*state.best_metric) : nlohmann::ordered_json(nullptr);
    rec["improved"] = improved;
    rec["metrics"] = ev.metrics;
    eval_log << rec.dump() << "\n";
    eval_log.flush();
    train_log.flush();
    log->info("step {}: dev {} {}{} (best {} at step {})", state.step, ev.primary_name, fmt_double(ev.primary),
              improved ? " *" : "", fmt_double(state.best_metric.value_or(NAN)), state.best_step);
    result.final_metrics = ev.metrics;
    if (improved) {
      const ScoreReference reference = make_score_reference(predictions.scores);
      save_checkpoint(best_dir.string(), spec, model, *tokenizer, &state, &optimizer, &reference);
    }
    save_checkpoint(last_dir.string(), spec, model, *tokenizer, &state, &optimizer);
    return cfg.patience > 0 && state.evals_without_improvement >= cfg.patience;
  };

  Progress progress("train", total_steps, "step");
  auto t_start = std::chrono::steady_clock::now();
  int64_t samples_at_start = state.samples_seen;
  int64_t tokens_seen = 0;  // padded positions computed since this process started
  int non_finite_in_a_row = 0;
  bool stop = state.finished;
  bool evaluated_at_current_step = false;
  model->train();
  while (!stop && state.step < total_steps) {
    if (cfg.max_steps == 0 && state.epoch >= cfg.epochs) break;
    const auto batches = plan_training_batches(lengths, cfg.batch_size, cfg.seed + 1000003ULL * static_cast<uint64_t>(state.epoch));
    while (!stop && state.batch_in_epoch < static_cast<int64_t>(batches.size()) && state.step < total_steps) {
      const int64_t first = state.batch_in_epoch;
      const int64_t count = std::min<int64_t>(cfg.grad_accum, static_cast<int64_t>(batches.size()) - first);
      optimizer.zero_grad();
      double loss_sum = 0;
      int64_t samples = 0;
      for (int64_t k = 0; k < count; ++k) {
        // Dropout draws depend only on (seed, step, micro-batch), so a resumed run repeats them.
        torch::manual_seed(cfg.seed * 6364136223846793005ULL + static_cast<uint64_t>(state.step) * 1442695040888963407ULL +
                           static_cast<uint64_t>(k));
        const auto& rows = batches[static_cast<size_t>(first + k)];
        Batch batch = collate(train_set.inputs, rows, tokenizer->pad_id(), device);
        std::vector<float> y;
        y.reserve(rows.size());
        for (size_t r : rows) y.push_back(targets[r]);
        torch::Tensor target = torch::tensor(y).to(device);
        torch::Tensor logits;
        {
          AutocastGuard autocast(precision, device);
          logits = model->forward(batch.ids, batch.type_ids, batch.mask, batch.features).to(torch::kFloat32);
        }
        torch::Tensor loss;
        if (ts.task == Task::kRegression) loss = torch::mse_loss(logits.squeeze(1), target);
        else if (ts.task == Task::kBinary) loss = torch::binary_cross_entropy_with_logits(logits.squeeze(1), target);
        else loss = torch::cross_entropy_loss(logits, target.to(torch::kInt64));
        (loss / static_cast<double>(count)).backward();
        loss_sum += loss.item<double>();
        samples += static_cast<int64_t>(rows.size());
        tokens_seen += batch.ids.numel();
      }
      const double loss_value = loss_sum / static_cast<double>(count);
      double grad_norm = 0;
      if (cfg.max_grad_norm > 0) grad_norm = torch::nn::utils::clip_grad_norm_(model->parameters(), cfg.max_grad_norm);
      else {
        double sq = 0;
        for (const auto& p : model->parameters())
          if (p.grad().defined()) sq += p.grad().pow(2).sum().item<double>();
        grad_norm = std::sqrt(sq);
      }
      const double lr = detail::linear_schedule(cfg.lr, state.step, total_steps, warmup);
      state.batch_in_epoch = first + count;
      const bool epoch_end = state.batch_in_epoch >= static_cast<int64_t>(batches.size());
      if (epoch_end) {
        ++state.epoch;
        state.batch_in_epoch = 0;
      }
      if (!std::isfinite(loss_value) || !std::isfinite(grad_norm)) {
        optimizer.zero_grad();
        log->warn("step {}: loss or gradient is not finite; step skipped", state.step + 1);
        if (++non_finite_in_a_row >= detail::kMaxNonFiniteSteps)
          throw Error("training diverged: " + std::to_string(detail::kMaxNonFiniteSteps) +
                      " steps in a row had a non-finite loss or gradient; lower --lr or check the labels (the last good "
                      "checkpoint is in " + last_dir.string() + ")");
        if (epoch_end) break;
        continue;
      }
      non_finite_in_a_row = 0;
      detail::set_learning_rate(optimizer, lr);
      optimizer.step();
      ++state.step;
      state.samples_seen += samples;
      evaluated_at_current_step = false;

      const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
      const double sps = elapsed > 0 ? static_cast<double>(state.samples_seen - samples_at_start) / elapsed : 0;
      nlohmann::ordered_json rec;
      rec["step"] = state.step;
      rec["epoch"] = state.epoch;
      rec["loss"] = loss_value;
      rec["lr"] = lr;
      rec["grad_norm"] = grad_norm;
      rec["samples_per_s"] = sps;
      rec["tokens"] = tokens_seen;
      rec["elapsed_s"] = elapsed;
      train_log << rec.dump() << "\n";
      progress.update(state.step, "loss " + fmt_double(loss_value) + " lr " + fmt_double(lr, 2) + " " +
                                      fmt_double(sps, 3) + " samples/s");

      if ((cfg.eval_every > 0 && state.step % cfg.eval_every == 0) || (cfg.eval_every == 0 && epoch_end)) {
        progress.finish();
        evaluated_at_current_step = true;
        if (evaluate_and_save()) {
          log->info("early stopping: no improvement in {} evaluations", cfg.patience);
          result.early_stopped = true;
          stop = true;
        }
      }
      if (!stop && ((cfg.stop_after_step && cfg.stop_after_step(state.step)) || g_stop_signal.load() != 0)) {
        progress.finish();
        save_checkpoint(last_dir.string(), spec, model, *tokenizer, &state, &optimizer);
        train_log.flush();
        log->info("stopped at step {}; checkpoint written to {}; continue with the same command plus --resume",
                  state.step, last_dir.string());
        result.interrupted = true;
        result.steps = state.step;
        return result;
      }
      if (epoch_end) break;
    }
  }
  progress.finish();
  if (!state.finished) {
    if (!evaluated_at_current_step && !result.early_stopped) evaluate_and_save();
    state.finished = true;
    save_checkpoint(last_dir.string(), spec, model, *tokenizer, &state, &optimizer);
  }
  train_log.flush();
  result.steps = state.step;
  result.metric_name = state.metric_name;
  result.best_metric = state.best_metric.value_or(NAN);
  result.best_step = state.best_step;
  log->info("done: {} steps; best dev {} {} at step {}; best model in {}", state.step, state.metric_name,
            fmt_double(result.best_metric), state.best_step, best_dir.string());
  return result;
}

}  // namespace dqe
