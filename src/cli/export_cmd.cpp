#include <iostream>

#include "base/format.h"
#include "cli/app.h"
#include "dqe/exporter.h"

namespace dqe::cli {

void add_export_command(CLI::App& app, CliState& state) {
  state.export_cmd = app.add_subcommand(
      "export",
      "Write a model anew without training state: --merge folds a LoRA adapter into its base; --format hf, --dtype "
      "and --keep-layers make it ready to deploy");
  bind_knobs(*state.export_cmd, state.exporter);
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
    // "layers 0" read as no layer at all: say how many were kept, then which of the original.
    const size_t n = r.kept_layers.size();
    std::cout << ", kept " << n << (n == 1 ? " layer (the original's layer" : " layers (the original's layers");
    for (size_t i = 0; i < n; ++i) std::cout << (i == 0 ? " " : ", ") << r.kept_layers[i];
    std::cout << ")";
  }
  std::cout << ", " << format_significant(static_cast<double>(r.weights_bytes) / 1e6, 4) << " MB of weights)\n";
  if (r.metric_before)
    std::cout << "dev " << r.metric_name << " " << format_significant(*r.metric_before, 5) << " -> "
              << format_significant(*r.metric_after, 5) << "; scoring " << format_significant(*r.pairs_per_s_before, 3)
              << " -> " << format_significant(*r.pairs_per_s_after, 3) << " pairs/s\n";
  // What went with the model for score's drift check and --detect.
  if (!r.drift_reference.empty() || !r.detection.empty()) {
    if (!r.drift_reference.empty()) std::cout << "drift reference: " << r.drift_reference;
    if (!r.drift_reference.empty() && !r.detection.empty()) std::cout << "; ";
    if (!r.detection.empty()) std::cout << "detection statistics: " << r.detection;
    std::cout << "\n";
  }
  return kOk;
}

}  // namespace dqe::cli
