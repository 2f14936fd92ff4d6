// Batch scoring of JSONL logs: streams the input in chunks (memory does not grow with it)
// and writes every input line back, in input order, with the model's score added and every
// other byte of the line unchanged.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "dqe/jsonl_reader.h"
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
  std::optional<FieldMap> fields;
  // What to add to each line, among "score", "pred", "probs" (classification) and "keep"
  // (with a threshold; asking for it in another list than this default needs one).
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
};

// Throws ConfigError before any work when --output or --rejects is the input or each other;
// IoError naming the output at the first write that fails (a closed pipe: "Broken pipe").
// stop is checked between batches (Interrupted: the output is not written).
ScoreSummary score(const ScoreConfig& config, const StopToken& stop = {});

}  // namespace dqe
