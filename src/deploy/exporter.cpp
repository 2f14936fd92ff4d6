#include "dqe/exporter.h"

#include <chrono>
#include <cmath>
#include <filesystem>

#include "base/format.h"
#include "base/log.h"
#include "base/progress.h"
#include "base/process_stop.h"
#include "deploy/deploy.h"
#include "deploy/export_format.h"
#include "deploy/quantize.h"
#include "dqe/errors.h"
#include "dqe/evaluator.h"
#include "dqe/run_context.h"
#include "data/drift.h"
#include "infer/detect.h"
#include "infer/predictor.h"
#include "io/claim.h"
#include "io/output.h"
#include "io/safetensors.h"
#include "model/heads/task_head.h"
#include "model/int8.h"
#include "model/model_dir.h"
#include "model/peft/lora.h"
#include "model/prune.h"

namespace dqe {
namespace fs = std::filesystem;

void ExportConfig::validate() const {
  check_knobs(*this);
  const std::string why = export_format(format).refuses_dtype(parse_weight_dtype(dtype));
  if (!why.empty()) throw ConfigError(why);
  if (!train.empty() && dev.empty())
    throw ConfigError("--train needs --dev: the detection statistics fitted on --train are calibrated on --dev");
}

namespace {

// The dev metric of a model: its primary metric (compute_metrics) on the records.
// scores, when given, receives the dev scores.
EvalResult dev_metric(SequenceModel model, std::shared_ptr<const Featurizer> featurizer, const std::vector<Record>& records,
                      const LabelledSet& set, const ExportConfig& config, bool has_training_mean,
                      std::vector<double>* scores = nullptr) {
  torch::InferenceMode guard;
  model->eval();
  const Predictor predictor(model, featurizer, Precision::kFp32, config.batch_size, process_stop());
  Progress progress("export", static_cast<int64_t>(records.size()), "dev line");
  const Predictions p = predictions_from_logits(
      predictor.run(records, config.threads, false, [&](int64_t done) { progress.update(done); }).logits,
      featurizer->task());
  progress.finish();
  require_finite(p, records, config.dev);
  if (scores) *scores = p.scores;
  return compute_metrics(featurizer->task(), p, set.labels, set.query_ids, has_training_mean);
}

// Training records drawn for the detection statistics' vectors (trainer's default).
constexpr int64_t kDetectSample = 4000;
constexpr uint64_t kDetectSeed = 42;

}  // namespace

ExportResult export_model(const ExportConfig& config) {
  config.validate();
  std::error_code ec;
  // The output replaces nothing of the user's (nor the model it reads).
  if (fs::exists(config.out, ec) && !(fs::is_directory(config.out, ec) && fs::is_empty(config.out, ec)))
    throw ConfigError("--out " + config.out + " exists and is not an empty directory; choose a new one");
  if (fs::is_directory(config.model) && ensemble_members(config.model).size() > 1)
    throw ConfigError("--model " + config.model + " is an ensemble (ensemble.json), and export writes one model: distil "
                      "it into one (dqe train --teacher " + config.model + " ...) and export that");
  auto log = detail::logger("export");
  const ExportFormat& format = export_format(config.format);
  const WeightDtype dtype = parse_weight_dtype(config.dtype);
  LoadOptions lo;
  lo.base = config.base;
  // Refused before anything is loaded or written.
  const bool merge = config.merge || format.merges_adapters();
  const std::string merged_by = format.merges_adapters() ? "--format " + format.name() : "--merge";
  if (merge) {
    const AdapterSpecPtr adapter = model_spec_of(config.model, config.base).adapter;
    if (adapter && !adapter->why_not_mergeable().empty())
      throw ConfigError(merged_by + ": " + config.model + " " + adapter->why_not_mergeable() + "; export it without " +
                        merged_by + (format.merges_adapters() ? ", or train it with --peft lora or in full" : ""));
  }
  LoadedModel loaded = load_model(config.model, lo);
  const std::string why = format.incompatibility(loaded);
  if (!why.empty()) throw ConfigError("--format " + format.name() + ": " + why);
  ExportResult result;
  result.model_dir = loaded.dir;
  result.base_dir = loaded.base_dir;
  if (merge && loaded.spec.adapter) {
    if (const auto* lora = loaded.spec.adapter.as<LoraSpec>()) result.merged_modules = static_cast<int64_t>(lora->modules.size());
    merge_adapter(loaded.model, loaded.dir);
    loaded.spec.adapter.reset();
  } else if (config.merge) {
    log->info("{}: not an adapter; nothing to merge, written as it is", loaded.dir);
  }
  result.adapter = static_cast<bool>(loaded.spec.adapter);
  const bool transform = format.changes_tensors() || dtype != WeightDtype::kFp32 || config.keep_layers > 0;
  if (result.adapter && transform)
    throw ConfigError("--dtype and --keep-layers need a plain model, and " + loaded.dir +
                      " is an adapter; export it with --merge first (a LoRA adapter) or train it in full");

  // The exported model: spec, tensors as stored, and the model they load as.
  ModelSpec spec = loaded.spec;
  SequenceModel out_model = loaded.model;
  std::shared_ptr<const Featurizer> out_featurizer = loaded.featurizer;
  std::vector<std::pair<std::string, torch::Tensor>> stored;
  if (transform) {
    std::map<std::string, torch::Tensor> tensors;
    for (auto& [name, t] : checkpoint_weights(loaded.model, false)) tensors.emplace(name, t.detach().clone());
    format.transform(spec, tensors);
    if (config.keep_layers > 0) {
      result.kept_layers = layers_to_keep(spec.bert.num_hidden_layers, config.keep_layers, config.keep_which);
      keep_layers(spec.bert, tensors, result.kept_layers);
    }
    stored = convert_weights({tensors.begin(), tensors.end()}, dtype);
    // What the stored tensors load as, as load_model will read them.
    std::map<std::string, torch::Tensor> reread;
    for (const auto& [name, t] : stored) reread.emplace(name, t.is_floating_point() ? t.to(torch::kFloat32) : t);
    out_featurizer = std::make_shared<const Featurizer>(loaded.featurizer->with_task(spec.task));
    out_model = SequenceModel(spec.bert, task_head(spec.task.task).num_outputs(spec.task), out_featurizer->side_dims(),
                              nullptr, spec.task.fusion);
    init_weights(out_model, spec.bert);
    const std::map<std::string, torch::Tensor> int8 = int8_entries(reread);
    load_weights(out_model, dequantize_weights(std::move(reread), "export"), "export", /*allow_new_head=*/false);
    // The dev check measures what eval and score will run: int8 Linears on int8 kernels.
    attach_int8_kernels(*out_model->bert, int8);
  }

  // The detection statistics describe the model's pooled vectors and scores; the drift
  // reference, its dev scores. Kept as they are where the export keeps both (a copy, a merge,
  // Hugging Face's folded head), made anew where it changes them.
  std::optional<DetectionStats> detection = load_detection_stats(loaded.dir);
  const bool changes_vectors = dtype != WeightDtype::kFp32 || config.keep_layers > 0;
  const bool changes_scores_distribution = config.keep_layers > 0;
  std::optional<ScoreReference> reference = loaded.score_reference;
  if (reference) result.drift_reference = "copied";
  if (detection) result.detection = "copied";
  if (reference && changes_scores_distribution && config.dev.empty()) {
    log->warn("{}'s drift reference (score_reference.json) describes the scores of all its layers: the export leaves it "
              "out; give --dev to make it anew",
              loaded.dir);
    reference.reset();
    result.drift_reference = "dropped";
  }
  if (detection && changes_vectors && (config.train.empty() || config.dev.empty())) {
    log->warn("{}'s detection statistics describe its vectors as trained, which --dtype and --keep-layers change: the "
              "export leaves them out; give --train and --dev to fit them anew",
              loaded.dir);
    detection.reset();
    result.detection = "dropped";
  }

  if (!config.dev.empty()) {
    make_run_context("cpu", "fp32", config.threads);
    ReaderOptions ro;
    ro.fields = loaded.spec.task.fields;
    ro.require_label = true;
    ro.max_bad_lines = config.max_bad_lines;
    const std::vector<Record> records = read_jsonl(config.dev, ro);
    const LabelledSet set = labels_of(records, loaded.spec.task, config.dev);
    EvalResult before, after;
    std::vector<double> dev_scores;
    const auto pairs_per_s = [&](auto&& run) {
      const auto t0 = std::chrono::steady_clock::now();
      run();
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      return seconds > 0 ? static_cast<double>(records.size()) / seconds : 0.0;
    };
    try {
      result.pairs_per_s_before = pairs_per_s(
          [&] { before = dev_metric(loaded.model, loaded.featurizer, records, set, config, loaded.spec.has_dqe_section); });
      result.pairs_per_s_after = pairs_per_s([&] {
        after = dev_metric(out_model, out_featurizer, records, set, config, loaded.spec.has_dqe_section, &dev_scores);
      });
      if (reference && changes_scores_distribution) {
        reference = make_score_reference(dev_scores);
        result.drift_reference = "refitted";
      }
      if (detection && changes_vectors) {
        torch::InferenceMode guard;
        out_model->eval();
        const std::vector<Record> train = read_jsonl(config.train, ro);
        const Predictor predictor(out_model, out_featurizer, Precision::kFp32, config.batch_size, process_stop());
        const double fpr = detection->calibration.fpr;
        detection = fit_detection(predictor, train, records, config.threads, fpr, kDetectSample, kDetectSeed);
        result.detection = "refitted";
        log->info("detection statistics fitted anew on {} and {}: thresholds for {}% false positives on dev ({}% "
                  "flagged)",
                  config.train, config.dev, format_significant(100 * fpr), format_significant(100 * detection->calibration.achieved));
      }
    } catch (const Interrupted& e) {
      throw_interrupted(e.signal_number(), "export, during the --dev check: nothing written");
    }
    result.metric_name = before.primary_name;
    result.metric_before = before.primary;
    result.metric_after = after.primary;
    const double loss = (before.higher_is_better ? before.primary - after.primary : after.primary - before.primary) /
                        std::max(std::abs(before.primary), 1e-12);
    log->info("{}: dev {} {} -> {} ({:+.2f}% loss, --max-drop {}%)", config.dev, before.primary_name,
              format_significant(before.primary, 5), format_significant(after.primary, 5), 100 * loss,
              format_significant(100 * config.max_drop, 4));
    const double speedup = *result.pairs_per_s_after / std::max(*result.pairs_per_s_before, 1e-12);
    log->info("{}: scoring {} -> {} pairs/s ({}x), {} threads", config.dev, format_significant(*result.pairs_per_s_before, 3),
              format_significant(*result.pairs_per_s_after, 3), format_significant(speedup, 3),
              config.threads > 0 ? std::to_string(config.threads) : "all");
    // Under 0.95: slower beyond the noise of one pass each.
    if (speedup < 0.95 && (dtype != WeightDtype::kFp32 || config.keep_layers > 0))
      log->warn("the export scores {}x as fast as the model on this CPU ({} pairs/s against {}): --dtype {} does not "
                "pay off here{}; measure on the machine that will serve it",
                format_significant(speedup, 3), format_significant(*result.pairs_per_s_after, 3),
                format_significant(*result.pairs_per_s_before, 3), config.dtype,
                dtype == WeightDtype::kInt8 ? " (int8 kernels gain on large matrices; a small model spends its time "
                                              "elsewhere)"
                                            : "");
    if (!(loss <= config.max_drop)) {
      result.refusal = "export refused, nothing written: dev " + before.primary_name + " " +
                       format_significant(before.primary, 5) + " -> " + format_significant(after.primary, 5) + " on " +
                       config.dev + " is a relative loss of " + format_significant(100 * loss, 3) +
                       "%, more than --max-drop " + format_significant(100 * config.max_drop, 4) + "%";
      return result;
    }
  }

  // SIGINT/SIGTERM: stopped between the dev check's batches, or here, before anything is written.
  process_stop().check("export: nothing written");
  // Written beside --out and moved into place only if no other process wrote it meanwhile.
  write_new_directory(config.out, "--out", [&](const std::string& tmp) {
    write_model_files(tmp, spec, out_model, *out_featurizer, {}, reference ? &*reference : nullptr);
    if (result.detection == "copied") {
      fs::copy_file(fs::path(loaded.dir) / kDetectStatsFile, fs::path(tmp) / kDetectStatsFile, ec);
      if (ec) throw IoError(loaded.dir + "/" + kDetectStatsFile + ": cannot copy (" + ec.message() + ")");
    } else if (detection) {
      save_detection_stats(tmp, *detection);
    }
    if (!transform) return;
    save_safetensors((fs::path(tmp) / "model.safetensors").string(), stored);
    format.write_extra(tmp, spec, dtype);
  });
  result.weights_bytes = static_cast<int64_t>(
      fs::file_size(fs::path(config.out) / (result.adapter ? "adapter_model.safetensors" : "model.safetensors"), ec));
  return result;
}

}  // namespace dqe
