// Batch scoring of JSONL logs: streams the input in chunks (memory does not grow with it)
// and writes every input line back, in input order, with the model's score added and every
// other byte of the line unchanged.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "dqe/jsonl_reader.h"
#include "dqe/knobs.h"
#include "dqe/run_context.h"

namespace dqe {

// Fewest scored lines for the drift check: below it, ten bins hold a handful of scores each
// and the PSI measures sampling noise, not drift.
constexpr int64_t kMinDriftLines = 100;

struct ScoreConfig {
  // Checkpoint, Hugging Face or run directory; with several, their predictions are averaged.
  std::vector<std::string> models;
  std::string input = "-";   // "-" is stdin
  // "-" is stdout; a regular file appears only when complete; a device or FIFO is written
  // straight through. Must not be the input.
  std::string output = "-";
  int64_t batch_size = 64;
  // Longest input; 0 means the model's own.
  int64_t max_len = 0;
  // When set, adds "keep": score >= threshold.
  std::optional<double> threshold;
  // With a threshold, drops the lines that are not kept.
  bool filter = false;
  int threads = 0;
  // "auto" (bf16 autocast on a GPU or where the CPU has native bf16, else fp32), "fp32"
  // (exact) or "bf16".
  std::string precision = "auto";
  // "auto" (a GPU when there is one), "cpu", "cuda" or "cuda:N".
  std::string device = "auto";
  int64_t max_bad_lines = 0;
  std::string rejects;
  // Where the base of LoRA adapters among the models is, when not where they recorded it.
  std::string base;
  // The field naming, on each line, the model that scores it (a --model NAME=DIR's NAME, or the
  // directory's name): one adapter per category or market, instead of their average. Empty:
  // every model scores every line.
  std::string adapter_field;
  std::optional<FieldMap> fields;
  // What to add to each line, among "score", "pred", "probs" (classification), "keep" (with a
  // threshold; asking for it in another list than this default needs one) and "logits" (the
  // model's raw outputs, as Hugging Face's model(...).logits; one model per line).
  std::vector<std::string> add_fields = {"score", "pred", "probs", "keep"};
  // Warn when the population stability index of the written scores against the model's dev
  // scores exceeds this (0 turns the check off). Needs kMinDriftLines lines.
  double psi_warn = 0.2;
  // "K/N": score only shard K (0-based) of N (infer/shard.h), by line number or by --shard-key's
  // field; the N outputs together are the unsharded output. Empty: every line.
  std::string shard;
  // The field whose value picks the shard, so that a query's lines stay together (e.g.
  // query_id). Empty: by line number.
  std::string shard_key;
  // Fold look-alike letters, remove invisible characters and apply NFKC (text/normalize.h) to the
  // query and result before tokenizing, so that such tricks cannot move the score.
  bool normalize = false;
  // Add "suspect" and "suspect_reasons" (infer/detect.h) to each line; needs one model with
  // detection statistics (saved by dqe train).
  bool detect = false;
  // With detect: the false-positive rate on dev to flag at, instead of the model's own.
  std::optional<double> detect_fpr;
  // Lines read, scored and written per chunk; bounds memory.
  int64_t chunk_lines = 4096;

  // The knob table (dqe/knobs.h), in --help's order; the field names (fields) are bound by the
  // CLI, which sets them only when given.
  template <typename Self, typename Visitor>
  static void visit_knobs(Self& c, Visitor&& v) {
    v(Knob("model", "Model: checkpoint, run directory (its best), Hugging Face directory or PEFT adapter, as DIR or "
                    "NAME=DIR; repeat it to average several (an ensemble) or to route lines (--adapter-field)")
          .mandatory()
          .hide_default(),
      c.models);
    v(Knob("base", "The base model of adapters (LoRA or bottleneck), when it moved from where they recorded it").hide_default(),
      c.base);
    v(Knob("adapter-field", "JSON field naming the --model that scores each line (NAME of --model NAME=DIR, or the "
                            "directory's name), instead of averaging them")
          .hide_default(),
      c.adapter_field);
    v(Knob("input", "JSONL input, - for stdin"), c.input);
    v(Knob("output", "JSONL output, - for stdout (a file appears only when complete)"), c.output);
    v(Knob("batch-size", "Examples per batch")
          .check(bound::closed(1, static_cast<double>(kMaxBatchSize)), "between 1 and " + std::to_string(kMaxBatchSize)),
      c.batch_size);
    v(Knob("max-len", "Longest input in tokens (0: the model's)")
          .check(bound::closed(0, kMaxSequenceLength), "0 (the model's) or between 3 and the model's limit"),
      c.max_len);
    v(Knob("threshold", "Add \"keep\": score >= T (the low-quality filter)")
          .check(bound::finite(), "a finite number")
          .hide_default(),
      c.threshold);
    v(Knob("filter", "With --threshold, drop the lines that are not kept").as_flag(), c.filter);
    v(Knob("fields", "What to add to each line: score, pred, probs, keep, logits (raw outputs, one model per line)").list(','), c.add_fields);
    v(Knob("psi-warn", "Warn when the score distribution's PSI against the model's dev scores exceeds this (0: off)")
          .check(bound::finite_at_least(0), "a finite number >= 0 (0: off)"),
      c.psi_warn);
    v(Knob("shard", "K/N: score only shard K (0-based) of N, by line number or --shard-key; the N outputs together are "
                    "the whole output")
          .hide_default(),
      c.shard);
    v(Knob("shard-key", "With --shard: pick the shard by a hash of this field (e.g. query_id), keeping its lines together")
          .hide_default(),
      c.shard_key);
    v(Knob("normalize",
           "Apply NFKC, remove invisible characters and fold look-alike letters before tokenizing (changes scores)")
          .as_flag(),
      c.normalize);
    v(Knob("detect", "Add \"suspect\" and \"suspect_reasons\" to each line: keyword stuffing, invisible characters, mixed "
                     "scripts, look-alikes, out-of-distribution inputs, instability (needs the model's detection "
                     "statistics)")
          .as_flag(),
      c.detect);
    v(Knob("detect-fpr", "With --detect: flag at this false-positive rate on dev instead of the model's calibrated one")
          .check(bound::open(0, 1), "in (0, 1)")
          .hide_default(),
      c.detect_fpr);
    visit_compute_knobs(c, v);
    v(Knob("max-bad-lines", "Skip up to N malformed lines instead of stopping").check(bound::at_least(0), ">= 0"),
      c.max_bad_lines);
    v(Knob("rejects", "Write skipped lines here").hide_default(), c.rejects);
  }

  // Throws ConfigError naming the flag.
  void validate() const;
};

struct ScoreSummary {
  int64_t lines = 0;     // records read
  int64_t written = 0;   // lines written
  int64_t kept = 0;      // with a threshold: score >= threshold
  int64_t filtered = 0;  // dropped by --filter
  int64_t rejected = 0;  // bad lines skipped under --max-bad-lines
  double seconds = 0;
  // Population stability index against the dev scores saved with the model; NaN without
  // them, for an ensemble (no dev scores of the average were saved), and for fewer than
  // kMinDriftLines lines.
  double psi = 0;
  std::string shift;       // the largest move between bins, in words
  std::string drift_note;  // why a model with dev scores got no drift check, when it did not
  // Feature names the models did not train on, ignored, with how many lines had each
  // (data/log_inputs.h, unseen_feature_summary); "" when none.
  std::string notes;
  bool normalized = false;  // --normalize
  // With --detect: the rate the thresholds were calibrated to, the suspect lines, and the
  // lines flagged by each signal (infer/detect.h's order).
  double detect_fpr = 0;
  int64_t suspects = 0;
  std::vector<std::pair<std::string, int64_t>> suspect_counts;
  // With --adapter-field: the lines each model scored, in --model order.
  std::vector<std::pair<std::string, int64_t>> routed;
};

// Throws ConfigError before any work when --output or --rejects is the input or each other;
// IoError naming the output at the first write that fails (a closed pipe: "Broken pipe").
// stop is checked between batches (Interrupted: the output is not written).
ScoreSummary score(const ScoreConfig& config, const StopToken& stop = {});

}  // namespace dqe
