// A loaded model (or ensemble) answering many requests: load once, then evaluate labelled
// records or score lines. eval, score and the scoring service run records through it, so that
// they never disagree on the same model and data. The per-record pipeline: featurize (with
// --normalize's folding), predict, check that every score is finite, detect suspects, decide
// keep/filter at a threshold, and splice the added fields into the line as it was read.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "dqe/evaluator.h"
#include "dqe/jsonl_reader.h"
#include "dqe/metrics.h"
#include "dqe/run_context.h"
#include "infer/detect.h"
#include "infer/predictor.h"

namespace dqe {

struct SessionConfig {
  // Checkpoint, Hugging Face or run directories; with several, their predictions are averaged.
  std::vector<std::string> models;
  // Where the base of adapters among the models is, when not where they recorded it.
  std::string base;
  int64_t max_len = 0;  // 0: the model's own
  int64_t batch_size = 64;
  std::optional<FieldMap> fields;  // overrides the field names saved with the model
  // Load the model's detection statistics (one model only), for LineOptions::detect.
  bool detect = false;
  // With detect: the false-positive rate on dev to flag at, instead of the model's own.
  std::optional<double> detect_fpr;
  // When set, the field whose value (Record::route) names the model that judges each record
  // (Ensemble::names); the models are then not averaged. Names must be distinct.
  std::string route_field;
};

// The session a command's configuration names (eval and score name these alike).
template <typename Config>
SessionConfig session_config_of(const Config& c) {
  SessionConfig s;
  s.models = c.models;
  s.base = c.base;
  s.max_len = c.max_len;
  s.batch_size = c.batch_size;
  s.fields = c.fields;
  s.route_field = c.adapter_field;
  return s;
}

// What scoring adds to each line, and which lines it keeps.
struct LineOptions {
  bool add_score = true, add_pred = false, add_probs = false;
  bool add_keep = false;            // with a threshold only
  bool add_logits = false;          // the model's raw outputs (one model per line only)

  std::optional<double> threshold;  // keep: score >= threshold
  bool filter = false;              // with a threshold, drop the lines not kept
  bool normalize = false;           // fold look-alike text before tokenizing (text/normalize.h)
  bool detect = false;              // add suspect and suspect_reasons (needs SessionConfig::detect)
  // From a list among "score", "pred", "probs", "keep", "logits"; throws ConfigError naming `flag` for
  // another name.
  void set_fields(const std::vector<std::string>& names, const std::string& flag = "--fields");
};

// Labelled records run through the models: their predictions, labels and the task's metrics.
struct LabelledRun {
  Predictions predictions;
  LabelledSet labels;
  EvalResult result;
};

// Scored records: the lines to write, in input order (filtered ones absent), and the counts.
struct ScoredLines {
  std::vector<std::string> lines;  // each without its newline
  Predictions predictions;         // of every record, filtered or not
  int64_t kept = 0, filtered = 0, suspects = 0;
  // Lines flagged by each detection signal (infer/detect.h's order); empty without detection.
  std::vector<std::pair<std::string, int64_t>> suspect_counts;
  // When routing: the records each route name scored, in --model order.
  std::vector<std::pair<std::string, int64_t>> routed;
};

class InferenceSession {
 public:
  // Loads the models onto the context's device at its precision (load_ensemble), and the
  // detection statistics when asked (ModelError when the model has none).
  InferenceSession(const SessionConfig& config, const RunContext& ctx);

  const Ensemble& ensemble() const { return ensemble_; }
  const TaskSpec& task() const { return ensemble_.task(); }
  // How records must be read for these models: JsonlReader's fields, and the routing field.
  const FieldMap& read_fields() const { return ensemble_.read_fields; }
  const std::string& route_field() const { return route_field_; }
  // ReaderOptions with both set.
  ReaderOptions reader_options() const;
  // The detection statistics in use (thresholds calibrated to detect_fpr when given), or null.
  const DetectionStats* detection() const { return detection_ ? &*detection_ : nullptr; }
  const RunContext& context() const { return ctx_; }

  // The models' predictions for records, averaged over an ensemble, or each record's from the
  // model its route names; `source` names the input in errors ("dev.jsonl:12: score is not
  // finite", "dev.jsonl:3: category \"x\" names no --model (have: a, b)"). on_batch(done) gets the
  // records done so far (all members' work on them). With signals, also each record's detection
  // signals (detection needed).
  Predictions predict(const std::vector<Record>& records, const std::string& source, bool normalize = false,
                      const std::function<void(int64_t done)>& on_batch = nullptr,
                      std::vector<SignalValues>* signals = nullptr) const;

  // Labelled records (read with require_label) through the models: predictions, labels and
  // metrics (the report's charts need all three).
  LabelledRun run_labelled(const std::vector<Record>& records, const std::string& source,
                           const std::function<void(int64_t done)>& on_batch = nullptr) const;
  // The task's metrics of labelled records (run_labelled's), with "data" (source) and "model"
  // added; when routing, also "by_adapter": each route's metrics and record count, in --model
  // order, and a line each in the table.
  EvalResult evaluate_records(const std::vector<Record>& records, const std::string& source,
                              const std::function<void(int64_t done)>& on_batch = nullptr) const;

  // score's per-line work on records read with keep_raw: each line as it was read, with the
  // added fields spliced in and every other byte unchanged.
  ScoredLines score_records(const std::vector<Record>& records, const LineOptions& options, const std::string& source,
                            const std::function<void(int64_t done)>& on_batch = nullptr) const;

  // score_records' second half: the lines of records already predicted (predictions and, with
  // options.detect, signals: predict's), so that a caller batching records of several requests
  // into one predict() renders each request's lines with its own options.
  ScoredLines render_lines(const std::vector<Record>& records, Predictions predictions,
                           const std::vector<SignalValues>& signals, const LineOptions& options) const;

  // Why lines cannot carry logits, to follow the flag that asked ("" when each line is judged by
  // one model: no ensemble averages it).
  std::string logits_refusal() const;

  // Side-input names the models did not train on, seen so far (data/log_inputs.h); "" when none.
  std::string unseen_inputs_summary() const;

 private:
  // The members each route name averages (one, unless it names an ensemble directory).
  const std::vector<size_t>& route_members(const Record& record, const std::string& source) const;

  RunContext ctx_;
  Ensemble ensemble_;
  std::optional<DetectionStats> detection_;
  std::string route_field_;
  std::vector<std::pair<std::string, std::vector<size_t>>> routes_;  // in --model order
};

}  // namespace dqe
