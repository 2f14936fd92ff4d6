// `dqe export`: a model's files written anew, without training state. With merge, a LoRA
// adapter is folded into its base (W + scaling * B A) as a plain checkpoint that loads
// anywhere a dqe or Hugging Face BERT does; without it, an adapter stays an adapter. Bottleneck
// adapters are nonlinear: merging them is a ConfigError, and nothing is written.
#pragma once

#include <cstdint>
#include <string>

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

  // Throws ConfigError naming the flag.
  void validate() const;
};

struct ExportResult {
  std::string model_dir;  // the model read (a run directory's best/)
  std::string base_dir;   // an adapter's base, or empty
  int64_t merged_modules = 0;  // Linears whose LoRA updates were folded in
  bool adapter = false;        // the output is an adapter (an adapter exported without merge)
};

// Reads the model and writes it to config.out (atomically: out.tmp, then renamed). Throws
// ConfigError for an --out that exists and is not empty, ModelError/IoError naming the file.
ExportResult export_model(const ExportConfig& config);

}  // namespace dqe
