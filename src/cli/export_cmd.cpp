#include <iostream>

#include "cli/app.h"
#include "dqe/exporter.h"

namespace dqe::cli {

void add_export_command(CLI::App& app, CliState& state) {
  ExportConfig& c = state.exporter;
  CLI::App* cmd = app.add_subcommand(
      "export", "Write a model anew without training state; --merge folds a LoRA adapter into its base");
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
}

int run_export(CliState& state) {
  const ExportResult r = export_model(state.exporter);
  std::cout << r.model_dir;
  if (r.merged_modules > 0) std::cout << " merged into its base " << r.base_dir << " (" << r.merged_modules << " LoRA updates)";
  else if (r.adapter) std::cout << " (an adapter of " << r.base_dir << ")";
  std::cout << " -> " << state.exporter.out << "\n";
  return kOk;
}

}  // namespace dqe::cli
