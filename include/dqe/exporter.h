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
// result loads in eval and score.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

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
  // Largest relative loss of the dev metric that is accepted (0.01: 1%).
  double max_drop = 0.01;
  // Threads for the dev check (0: all cores).
  int threads = 0;
  int64_t batch_size = 64;
  int64_t max_bad_lines = 0;

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
  // Why the dev check refused the export (nothing was written), or "".
  std::string refusal;
};

// Reads the model and writes it to config.out (atomically: out.tmp, then renamed). Throws
// ConfigError for an --out that exists and is not empty or a model the format cannot hold,
// ModelError/IoError naming the file. A dev check that fails writes nothing and says why in
// ExportResult::refusal.
ExportResult export_model(const ExportConfig& config);

}  // namespace dqe
