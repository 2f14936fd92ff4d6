#include "dqe/session.h"

#include <algorithm>

#include "base/format.h"
#include "data/log_inputs.h"
#include "dqe/errors.h"
#include "dqe/evaluator.h"

namespace dqe {

void LineOptions::set_fields(const std::vector<std::string>& names, const std::string& flag) {
  add_score = add_pred = add_probs = add_keep = add_logits = false;
  for (const auto& f : names) {
    if (f == "score") add_score = true;
    else if (f == "pred") add_pred = true;
    else if (f == "probs") add_probs = true;
    else if (f == "keep") add_keep = true;
    else if (f == "logits") add_logits = true;
    else throw ConfigError(flag + ": unknown field \"" + f + "\" (choose among score, pred, probs, keep, logits)");
  }
}

InferenceSession::InferenceSession(const SessionConfig& config, const RunContext& ctx)
    : ctx_(ctx),
      ensemble_(load_ensemble(config.models, config.max_len, config.fields, ctx, config.batch_size, config.base)),
      route_field_(config.route_field) {
  if (!route_field_.empty()) {
    // One route per --model argument: the members of an ensemble directory share its name; two
    // arguments may not.
    size_t m = 0;
    for (const std::string& arg : config.models) {
      const size_t count = ensemble_members(parse_model_arg(arg).dir).size();
      const std::string& name = ensemble_.names.at(m);
      for (const auto& [seen, members] : routes_)
        if (seen == name)
          throw ConfigError("--model: two models are named \"" + name + "\" (" + ensemble_.members[members.front()].dir +
                            " and " + ensemble_.members[m].dir + "); name them apart with --model NAME=DIR");
      routes_.push_back({name, {}});
      for (size_t k = 0; k < count; ++k) routes_.back().second.push_back(m++);
    }
  }
  if (!config.detect) return;
  // The statistics describe one model's scores: an ensemble's average is another model's.
  if (config.models.size() == 1 && ensemble_.members.size() > 1)
    throw ConfigError("--detect reads one model's detection statistics, and " + config.models.front() +
                      " is an ensemble of " + std::to_string(ensemble_.members.size()) +
                      " models: give one of its members as --model");
  if (ensemble_.members.size() > 1)
    throw ConfigError("--detect reads one model's detection statistics; give a single --model");
  const std::string& dir = ensemble_.members.front().dir;
  detection_ = load_detection_stats(dir);
  if (!detection_)
    throw ModelError(dir + ": no detection statistics (" + kDetectStatsFile +
                     "): dqe train fits them (--detect-fpr > 0, the default), dqe export keeps them, and an int8, "
                     "bf16 or pruned export fits them anew when given --train and --dev");
  if (config.detect_fpr) detection_->calibration = calibrate(detection_->dev, *config.detect_fpr);
}

ReaderOptions InferenceSession::reader_options() const {
  ReaderOptions ro;
  ro.fields = read_fields();
  ro.route_field = route_field_;
  return ro;
}

const std::vector<size_t>& InferenceSession::route_members(const Record& record, const std::string& source) const {
  for (const auto& [name, members] : routes_)
    if (name == record.route) return members;
  std::string have;
  for (const auto& route : routes_) have += (have.empty() ? "" : ", ") + route.first;
  throw DataError(source + ":" + std::to_string(record.line) + ": " + route_field_ + " " +
                  nlohmann::json(record.route).dump() + " names no --model (have: " + have + ")");
}

namespace {

// Moves record i of part into row `row` of all (sized like the whole input).
void place(Predictions& all, Predictions& part, size_t i, size_t row, size_t rows) {
  all.scores.resize(rows);
  all.scores[row] = part.scores[i];
  if (!part.classes.empty()) {
    all.classes.resize(rows);
    all.classes[row] = part.classes[i];
  }
  if (!part.probs.empty()) {
    all.probs.resize(rows);
    all.probs[row] = std::move(part.probs[i]);
  }
  if (!part.logits.empty()) {
    all.logits.resize(rows);
    all.logits[row] = std::move(part.logits[i]);
  }
}

}  // namespace

Predictions InferenceSession::predict(const std::vector<Record>& records, const std::string& source, bool normalize,
                                      const std::function<void(int64_t done)>& on_batch,
                                      std::vector<SignalValues>* signals) const {
  Predictions p;
  if (signals) {
    if (!detection_) throw Error("InferenceSession::predict: signals asked of a session without detection (a bug)");
    // One model: a route can only name it, but a line naming another is still an error.
    for (const Record& r : records)
      if (!routes_.empty()) route_members(r, source);
    DetectionRun d = run_detection(ensemble_.predictors.front(), *detection_, records, ctx_.threads, normalize);
    p = std::move(d.predictions);
    *signals = std::move(d.signals);
  } else if (routes_.empty()) {
    const int64_t members = static_cast<int64_t>(ensemble_.predictors.size());
    auto progress = on_batch ? std::function<void(int64_t)>([&](int64_t done) { on_batch(done / members); }) : nullptr;
    p = predict_ensemble(ensemble_, normalize ? normalized_records(records) : records, ctx_.threads, progress);
  } else {
    // Each route's records through its members alone, then back in input order. Every route
    // is looked up before any work, so that a line naming no model fails at once.
    std::vector<std::vector<size_t>> rows(routes_.size());
    for (size_t i = 0; i < records.size(); ++i) {
      const std::vector<size_t>& members = route_members(records[i], source);
      for (size_t r = 0; r < routes_.size(); ++r)
        if (&routes_[r].second == &members) rows[r].push_back(i);
    }
    int64_t done_before = 0;
    for (size_t r = 0; r < routes_.size(); ++r) {
      if (rows[r].empty()) continue;
      std::vector<Record> part;
      part.reserve(rows[r].size());
      for (const size_t i : rows[r]) part.push_back(records[i]);
      if (normalize) part = normalized_records(part);
      const int64_t members = static_cast<int64_t>(routes_[r].second.size());
      auto progress = on_batch ? std::function<void(int64_t)>(
                                     [&](int64_t done) { on_batch(done_before + done / members); })
                               : nullptr;
      Predictions got = predict_ensemble(ensemble_, part, ctx_.threads, progress, routes_[r].second);
      for (size_t j = 0; j < rows[r].size(); ++j) place(p, got, j, rows[r][j], records.size());
      done_before += static_cast<int64_t>(rows[r].size());
    }
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
  LabelledRun run = run_labelled(records, source, on_batch);
  EvalResult result = std::move(run.result);
  result.metrics["data"] = source;
  if (ensemble_.members.size() == 1) result.metrics["model"] = ensemble_.members.front().dir;
  else result.metrics["model"] = ensemble_.dirs();
  if (routes_.empty()) return result;
  // Each model's records, measured as they would be alone.
  nlohmann::ordered_json by = nlohmann::ordered_json::object();
  std::string table = "by model (" + route_field_ + "):\n";
  for (const auto& [name, members] : routes_) {
    Predictions part;
    LabelledSet labels;
    for (size_t i = 0; i < records.size(); ++i) {
      if (records[i].route != name) continue;
      part.scores.push_back(run.predictions.scores[i]);
      if (!run.predictions.classes.empty()) part.classes.push_back(run.predictions.classes[i]);
      if (!run.predictions.probs.empty()) part.probs.push_back(run.predictions.probs[i]);
      labels.labels.push_back(run.labels.labels[i]);
      labels.query_ids.push_back(run.labels.query_ids[i]);
    }
    if (labels.labels.empty()) {
      by[name] = {{"records", 0}};
      table += "  " + name + ": no records\n";
      continue;
    }
    const LoadedModel& first = ensemble_.members[members.front()];
    EvalResult own = compute_metrics(task(), part, labels.labels, labels.query_ids, first.spec.has_dqe_section);
    own.metrics["records"] = labels.labels.size();
    by[name] = std::move(own.metrics);
    table += "  " + name + " (" + std::to_string(labels.labels.size()) + " records): " + own.primary_name + " " +
             format_fixed(own.primary, 4) + "\n";
  }
  result.metrics["by_adapter"] = std::move(by);
  result.table += table;
  return result;
}

ScoredLines InferenceSession::score_records(const std::vector<Record>& records, const LineOptions& options,
                                            const std::string& source,
                                            const std::function<void(int64_t done)>& on_batch) const {
  if (options.detect && !detection_)
    throw Error("InferenceSession::score_records: detect asked of a session loaded without it (a bug)");
  std::vector<SignalValues> signals;
  Predictions predictions = predict(records, source, options.normalize, on_batch, options.detect ? &signals : nullptr);
  return render_lines(records, std::move(predictions), signals, options);
}

ScoredLines InferenceSession::render_lines(const std::vector<Record>& records, Predictions predictions,
                                           const std::vector<SignalValues>& signals,
                                           const LineOptions& options) const {
  if (options.detect && (!detection_ || signals.size() != records.size()))
    throw Error("InferenceSession::render_lines: detect without detection signals (a bug)");
  const TaskSpec& spec = task();
  const TaskHead& head = task_head(spec.task);
  if (options.add_logits) {
    if (const std::string why = logits_refusal(); !why.empty()) throw ConfigError("logits: " + why);
    if (predictions.logits.size() != records.size())
      throw Error("InferenceSession::render_lines: logits asked of predictions without them (a bug)");
  }
  ScoredLines out;
  out.predictions = std::move(predictions);
  const Predictions& p = out.predictions;
  if (options.detect)
    for (const char* name : signal_names()) out.suspect_counts.emplace_back(name, 0);
  for (const auto& route : routes_) {
    int64_t count = 0;
    for (const Record& r : records) count += r.route == route.first;
    out.routed.emplace_back(route.first, count);
  }
  out.lines.reserve(records.size());
  std::vector<std::pair<std::string, std::string>> added;
  for (size_t i = 0; i < records.size(); ++i) {
    added.clear();
    if (options.add_score) added.emplace_back("score", nlohmann::json(p.scores[i]).dump());
    head.line_fields(p, i, spec, options.add_pred, options.add_probs, added);
    if (options.add_logits) added.emplace_back("logits", nlohmann::json(p.logits[i]).dump());
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

std::string InferenceSession::logits_refusal() const {
  // Without routing every line is the average of all members; with it, of its route's.
  const size_t judges = routes_.empty() ? 1 : routes_.size();
  if (ensemble_.members.size() <= judges) return "";
  return "a line judged by an ensemble's average has no logits (each member's are on its own scale); give one "
         "model per --model";
}

std::string InferenceSession::unseen_inputs_summary() const {
  for (const auto& predictor : ensemble_.predictors)
    if (std::string unseen = unseen_feature_summary(predictor.featurizer().side_inputs()); !unseen.empty())
      return unseen;
  return "";
}

}  // namespace dqe
