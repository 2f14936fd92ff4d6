#include <iostream>

#include "base/format.h"
#include "cli/app.h"
#include "dqe/exporter.h"

namespace dqe::cli {

void add_export_command(CLI::App& app, CliState& state) {
  ExportConfig& c = state.exporter;
  CLI::App* cmd = app.add_subcommand(
      "export",
      "Write a model anew without training state: --merge folds a LoRA adapter into its base; --format hf, --dtype "
      "and --keep-layers make it ready to deploy");
  state.export_cmd = cmd;
  cmd->add_option("--model", c.model,
                  "Model: checkpoint, run directory (its best), Hugging Face directory, PEFT LoRA adapter or dqe "
                  "bottleneck adapter")
      ->required();
  cmd->add_option("--out", c.out, "Directory for the exported model (new or empty)")->required();
  cmd->add_flag("--merge", c.merge,
                "Fold a LoRA adapter's updates into its base's weights (W + alpha/r B A; AdaLoRA: its P Lambda Q): a "
                "plain checkpoint that loads wherever a dqe or Hugging Face BERT does; bottleneck adapters, being "
                "nonlinear, are refused");
  cmd->add_option("--base", c.base, "The base model of an adapter, when it moved from where it recorded it");
  const char* deploy = "Deployment";
  cmd->add_option("--format", c.format,
                  "dqe, or hf: a directory that Hugging Face's BertForSequenceClassification and BertTokenizer "
                  "reproduce exactly (regression label scaling folded into the head, LoRA merged); models it cannot "
                  "reproduce (match token types, lexical features, SentencePiece) are refused")
      ->capture_default_str()
      ->check(CLI::IsMember({"dqe", "hf"}))
      ->group(deploy);
  cmd->add_option("--dtype", c.dtype,
                  "Stored weights: fp32, bf16 (half the file) or int8 (encoder, pooler and word embedding matrices "
                  "with per-row scales, dequantized when loaded)")
      ->capture_default_str()
      ->check(CLI::IsMember({"fp32", "bf16", "int8"}))
      ->group(deploy);
  cmd->add_option("--keep-layers", c.keep_layers, "Encoder layers to keep (0: all)")->capture_default_str()->group(deploy);
  cmd->add_option("--keep-which", c.keep_which,
                  "Which layers --keep-layers keeps: bottom (the top ones dropped) or alternate (the top layer and "
                  "every n/k-th below it)")
      ->capture_default_str()
      ->check(CLI::IsMember({"bottom", "alternate"}))
      ->group(deploy);
  cmd->add_option("--dev", c.dev, "Labelled JSONL: the dev metric is measured before and after the export")
      ->group(deploy);
  cmd->add_option("--max-drop", c.max_drop,
                  "With --dev: the largest relative loss of the dev metric accepted; beyond it nothing is written")
      ->capture_default_str()
      ->group(deploy);
  cmd->add_option("--threads", c.threads, "Threads for the --dev check (0: the CPUs this process may use)")->capture_default_str()->group(deploy);
  cmd->add_option("--batch-size", c.batch_size, "Batch size of the --dev check")->capture_default_str()->group(deploy);
  cmd->add_option("--max-bad-lines", c.max_bad_lines, "Bad --dev lines skipped before failing")
      ->capture_default_str()
      ->group(deploy);
}

int run_export(CliState& state) {
  const ExportResult r = export_model(state.exporter);
  if (!r.refusal.empty()) {
    std::cerr << "dqe: " << r.refusal << "\n";
    return kGateFailed;
  }
  std::cout << r.model_dir;
  if (r.merged_modules > 0) std::cout << " merged into its base " << r.base_dir << " (" << r.merged_modules << " LoRA updates)";
  else if (r.adapter) std::cout << " (an adapter of " << r.base_dir << ")";
  std::cout << " -> " << state.exporter.out << " (" << state.exporter.format << ", " << state.exporter.dtype;
  if (!r.kept_layers.empty()) {
    std::cout << ", layers";
    for (int64_t l : r.kept_layers) std::cout << " " << l;
  }
  std::cout << ", " << format_significant(static_cast<double>(r.weights_bytes) / 1e6, 4) << " MB of weights)\n";
  if (r.metric_before)
    std::cout << "dev " << r.metric_name << " " << format_significant(*r.metric_before, 5) << " -> "
              << format_significant(*r.metric_after, 5) << "\n";
  return kOk;
}

}  // namespace dqe::cli
