#include "dqe/session.h"

#include <algorithm>

#include "data/log_inputs.h"
#include "dqe/errors.h"
#include "dqe/evaluator.h"

namespace dqe {

void LineOptions::set_fields(const std::vector<std::string>& names, const std::string& flag) {
  add_score = add_pred = add_probs = add_keep = false;
  for (const auto& f : names) {
    if (f == "score") add_score = true;
    else if (f == "pred") add_pred = true;
    else if (f == "probs") add_probs = true;
    else if (f == "keep") add_keep = true;
    else throw ConfigError(flag + ": unknown field \"" + f + "\" (choose among score, pred, probs, keep)");
  }
}

InferenceSession::InferenceSession(const SessionConfig& config, const RunContext& ctx)
    : ctx_(ctx),
      ensemble_(load_ensemble(config.models, config.max_len, config.fields, ctx, config.batch_size, config.base)) {
  if (!config.detect) return;
  if (ensemble_.members.size() > 1)
    throw ConfigError("--detect reads one model's detection statistics; give a single --model");
  const std::string& dir = ensemble_.members.front().dir;
  detection_ = load_detection_stats(dir);
  if (!detection_)
    throw ModelError(dir + ": no detection statistics (" + kDetectStatsFile +
                     "); --detect needs a model trained by dqe train with --detect-fpr > 0");
  if (config.detect_fpr) detection_->calibration = calibrate(detection_->dev, *config.detect_fpr);
}

Predictions InferenceSession::predict(const std::vector<Record>& records, const std::string& source, bool normalize,
                                      const std::function<void(int64_t done)>& on_batch,
                                      std::vector<SignalValues>* signals) const {
  Predictions p;
  if (signals) {
    if (!detection_) throw Error("InferenceSession::predict: signals asked of a session without detection (a bug)");
    DetectionRun d = run_detection(ensemble_.predictors.front(), *detection_, records, ctx_.threads, normalize);
    p = std::move(d.predictions);
    *signals = std::move(d.signals);
  } else {
    p = predict_ensemble(ensemble_, normalize ? normalized_records(records) : records, ctx_.threads, on_batch);
  }
  require_finite(p, records, source);
  return p;
}

LabelledRun InferenceSession::run_labelled(const std::vector<Record>& records, const std::string& source,
                                           const std::function<void(int64_t done)>& on_batch) const {
  LabelledRun run;
  run.labels = labels_of(records, task(), source);
  run.predictions = predict(records, source, /*normalize=*/false, on_batch);
  run.result = compute_metrics(task(), run.predictions, run.labels.labels, run.labels.query_ids,
                               ensemble_.members.front().spec.has_dqe_section);
  return run;
}

EvalResult InferenceSession::evaluate_records(const std::vector<Record>& records, const std::string& source,
                                              const std::function<void(int64_t done)>& on_batch) const {
  EvalResult result = run_labelled(records, source, on_batch).result;
  result.metrics["data"] = source;
  if (ensemble_.members.size() == 1) result.metrics["model"] = ensemble_.members.front().dir;
  else result.metrics["model"] = ensemble_.dirs();
  return result;
}

ScoredLines InferenceSession::score_records(const std::vector<Record>& records, const LineOptions& options,
                                            const std::string& source,
                                            const std::function<void(int64_t done)>& on_batch) const {
  if (options.detect && !detection_)
    throw Error("InferenceSession::score_records: detect asked of a session loaded without it (a bug)");
  const TaskSpec& spec = task();
  const TaskHead& head = task_head(spec.task);
  ScoredLines out;
  std::vector<SignalValues> signals;
  out.predictions = predict(records, source, options.normalize, on_batch, options.detect ? &signals : nullptr);
  const Predictions& p = out.predictions;
  if (options.detect)
    for (const char* name : signal_names()) out.suspect_counts.emplace_back(name, 0);
  out.lines.reserve(records.size());
  std::vector<std::pair<std::string, std::string>> added;
  for (size_t i = 0; i < records.size(); ++i) {
    added.clear();
    if (options.add_score) added.emplace_back("score", nlohmann::json(p.scores[i]).dump());
    head.line_fields(p, i, spec, options.add_pred, options.add_probs, added);
    if (options.detect) {
      const std::vector<std::string> reasons = suspect_reasons(signals[i], detection_->calibration.thresholds);
      added.emplace_back("suspect", reasons.empty() ? "false" : "true");
      added.emplace_back("suspect_reasons", nlohmann::json(reasons).dump());
      out.suspects += !reasons.empty();
      for (auto& [name, count] : out.suspect_counts)
        count += std::find(reasons.begin(), reasons.end(), name) != reasons.end();
    }
    if (options.threshold) {
      const bool keep = p.scores[i] >= *options.threshold;
      if (options.add_keep) added.emplace_back("keep", keep ? "true" : "false");
      out.kept += keep;
      if (!keep && options.filter) {
        ++out.filtered;
        continue;
      }
    }
    // The line as read with the fields spliced in: every other byte (big integers, escapes,
    // spacing, an id nlohmann would round to a double) goes out as it came in.
    out.lines.push_back(set_members(records[i].raw, added));
  }
  return out;
}

std::string InferenceSession::unseen_inputs_summary() const {
  for (const auto& predictor : ensemble_.predictors)
    if (std::string unseen = unseen_feature_summary(predictor.featurizer().side_inputs()); !unseen.empty())
      return unseen;
  return "";
}

}  // namespace dqe
