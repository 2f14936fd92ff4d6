#include "dqe/exporter.h"

#include <filesystem>

#include "detail/log.h"
#include "dqe/checkpoint.h"
#include "dqe/errors.h"

namespace dqe {
namespace fs = std::filesystem;

void ExportConfig::validate() const {
  if (model.empty()) throw ConfigError("--model is required");
  if (out.empty()) throw ConfigError("--out is required");
}

ExportResult export_model(const ExportConfig& config) {
  config.validate();
  std::error_code ec;
  // The output replaces nothing of the user's (nor the model it reads).
  if (fs::exists(config.out, ec) && !(fs::is_directory(config.out, ec) && fs::is_empty(config.out, ec)))
    throw ConfigError("--out " + config.out + " exists and is not an empty directory; choose a new one");
  auto log = detail::logger("export");
  LoadOptions lo;
  lo.base = config.base;
  // Refused before anything is loaded or written.
  if (config.merge && model_spec_of(config.model, config.base).bottleneck)
    throw ConfigError("--merge: " + config.model + " holds bottleneck adapters, which are nonlinear (h + up(act(down(h)))) "
                      "and cannot be folded into its base's weights; export it without --merge");
  LoadedModel loaded = load_model(config.model, lo);
  ExportResult result;
  result.model_dir = loaded.dir;
  result.base_dir = loaded.base_dir;
  if (config.merge && loaded.spec.lora) {
    result.merged_modules = static_cast<int64_t>(loaded.spec.lora->modules.size());
    merge_lora(loaded.model);
    loaded.spec.lora.reset();
  } else if (config.merge) {
    log->info("{}: not an adapter; nothing to merge, written as it is", loaded.dir);
  }
  result.adapter = loaded.spec.lora.has_value() || loaded.spec.bottleneck.has_value();
  save_checkpoint(config.out, loaded.spec, loaded.model, *loaded.featurizer,
                  loaded.score_reference ? &*loaded.score_reference : nullptr);
  return result;
}

}  // namespace dqe
