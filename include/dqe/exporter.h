// `dqe export`: a model's files written anew, without training state. With merge, a LoRA
// adapter is folded into its base (W + scaling * B A) as a plain checkpoint that loads
// anywhere a dqe or Hugging Face BERT does; without it, an adapter stays an adapter. Bottleneck
// adapters are nonlinear: merging them is a ConfigError, and nothing is written.
//
// For deployment (deploy/deploy.h, model/quantize.h): --format hf writes what Hugging Face's
// BertForSequenceClassification and BertTokenizer reproduce exactly (the label scaling folded
// into the head; models it cannot reproduce are refused, saying why); --dtype bf16|int8 stores
// smaller weights; --keep-layers K drops encoder layers; --dev F measures the dev metric before
// and after, and a relative loss beyond --max-drop refuses the export, writing nothing. Every
// result loads in eval and score. The drift reference (score_reference.json) and the detection
// statistics go with the model: copied where the export keeps its scores, made anew from --dev
// (and --train for detection) where it changes them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "dqe/knobs.h"

namespace dqe {

struct ExportConfig {
  // Checkpoint, run directory (its best), Hugging Face directory or PEFT LoRA adapter.
  std::string model;
  // The exported model's directory: new, or empty.
  std::string out;
  // Fold a LoRA adapter's updates into its base's weights.
  bool merge = false;
  // Where an adapter's base is, when it moved from where the adapter recorded it.
  std::string base;
  // "dqe" (dqe's checkpoint) or "hf" (a directory Hugging Face reproduces exactly: label
  // scaling folded into the head, LoRA merged).
  std::string format = "dqe";
  // Stored weights: "fp32", "bf16" (half the file) or "int8" (encoder, pooler and word
  // embedding matrices per-row int8; about 4x smaller there).
  std::string dtype = "fp32";
  // Encoder layers to keep; 0 keeps all.
  int64_t keep_layers = 0;
  // Which layers --keep-layers keeps: "bottom" (the top ones dropped) or "alternate" (the top
  // layer and every n/k-th below it). Not yet settled by a measurement on Home Depot (README,
  // "Deployment"); on a 2-layer toy model alternate lost slightly less.
  std::string keep_which = "bottom";
  // Labelled JSONL on which the dev metric is measured before and after; empty: no check.
  std::string dev;
  // Training data: with dev, the detection statistics of a model that has them are fitted anew
  // for an export that changes its vectors (dtype bf16 or int8, keep_layers); without it such
  // an export leaves them out, with a warning. Other exports copy them as they are.
  std::string train;
  // Largest relative loss of the dev metric that is accepted (0.01: 1%).
  double max_drop = 0.01;
  // Threads for the dev check (0: all cores).
  int threads = 0;
  int64_t batch_size = 64;
  int64_t max_bad_lines = 0;

  // The knob table (dqe/knobs.h), in --help's order. The format's refusals (hf and int8) are
  // checked by validate().
  template <typename Self, typename Visitor>
  static void visit_knobs(Self& c, Visitor&& v) {
    v(Knob("model", "Model: checkpoint, run directory (its best), Hugging Face directory, PEFT LoRA adapter or dqe "
                    "bottleneck adapter")
          .mandatory()
          .hide_default(),
      c.model);
    v(Knob("out", "Directory for the exported model (new or empty)").mandatory().hide_default(), c.out);
    v(Knob("merge", "Fold a LoRA adapter's updates into its base's weights (W + alpha/r B A; AdaLoRA: its P Lambda Q): a "
                    "plain checkpoint that loads wherever a dqe or Hugging Face BERT does; bottleneck adapters, being "
                    "nonlinear, are refused")
          .as_flag(),
      c.merge);
    v(Knob("base", "The base model of an adapter, when it moved from where it recorded it").hide_default(), c.base);
    const char* g = "Deployment";
    v(Knob("format", "dqe, or hf: a directory that Hugging Face's BertForSequenceClassification and BertTokenizer "
                     "reproduce exactly (regression label scaling folded into the head, LoRA merged); models it cannot "
                     "reproduce (match token types, lexical features, SentencePiece) are refused")
          .one_of({"dqe", "hf"})
          .in(g),
      c.format);
    v(Knob("dtype", "Stored weights: fp32, bf16 (half the file) or int8 (encoder, pooler and word embedding matrices "
                    "with per-row scales, dequantized when loaded)")
          .one_of({"fp32", "bf16", "int8"})
          .in(g),
      c.dtype);
    v(Knob("keep-layers", "Encoder layers to keep (0: all)").check(bound::at_least(0), ">= 0").in(g), c.keep_layers);
    v(Knob("keep-which", "Which layers --keep-layers keeps: bottom (the top ones dropped) or alternate (the top layer "
                         "and every n/k-th below it)")
          .one_of({"bottom", "alternate"})
          .in(g),
      c.keep_which);
    v(Knob("dev", "Labelled JSONL: the dev metric is measured before and after the export").hide_default().in(g), c.dev);
    v(Knob("train", "Training JSONL: with --dev, fits the detection statistics anew when --dtype or --keep-layers "
                    "change the model's vectors (without it, they are left out)")
          .hide_default()
          .in(g),
      c.train);
    v(Knob("max-drop", "With --dev: the largest relative loss of the dev metric accepted; beyond it nothing is written")
          .check(bound::closed_open(0, 1e9), ">= 0")
          .in(g),
      c.max_drop);
    v(Knob("threads", "Threads for the --dev check (0: the CPUs this process may use)")
          .check(bound::closed(0, kMaxThreads), "between 0 and " + std::to_string(kMaxThreads))
          .in(g),
      c.threads);
    v(Knob("batch-size", "Batch size of the --dev check")
          .check(bound::closed(1, static_cast<double>(kMaxBatchSize)), "between 1 and 2^24")
          .in(g),
      c.batch_size);
    v(Knob("max-bad-lines", "Bad --dev lines skipped before failing").check(bound::at_least(0), ">= 0").in(g),
      c.max_bad_lines);
  }

  // Throws ConfigError naming the flag.
  void validate() const;
};

struct ExportResult {
  std::string model_dir;  // the model read (a run directory's best/)
  std::string base_dir;   // an adapter's base, or empty
  int64_t merged_modules = 0;  // Linears whose LoRA updates were folded in
  bool adapter = false;        // the output is an adapter (an adapter exported without merge)
  std::vector<int64_t> kept_layers;  // with --keep-layers: the original indices kept
  int64_t weights_bytes = 0;         // size of the written weights file
  // With --dev: the metric and its value before and after.
  std::string metric_name;
  std::optional<double> metric_before, metric_after;
  // With --dev: the pairs scored per second before and after (the same records, threads and
  // batch size, one after the other), so that a smaller export that scores slower on this CPU
  // is seen before it ships.
  std::optional<double> pairs_per_s_before, pairs_per_s_after;
  // Why the dev check refused the export (nothing was written), or "".
  std::string refusal;
  // What the export did with the drift reference and the detection statistics: "copied",
  // "refitted" (on --dev, and --train), "dropped" (the export changed the scores and the data to
  // redo them was not given), or "" (the model had none).
  std::string drift_reference, detection;
};

// Reads the model and writes it to config.out (atomically: out.tmp, then renamed). Throws
// ConfigError for an --out that exists and is not empty or a model the format cannot hold,
// ModelError/IoError naming the file. A dev check that fails writes nothing and says why in
// ExportResult::refusal.
ExportResult export_model(const ExportConfig& config);

}  // namespace dqe
