#include "deploy/export_format.h"

#include <filesystem>

#include "deploy/deploy.h"
#include "dqe/errors.h"
#include "io/output.h"
#include "model/heads/task_head.h"

namespace dqe {
namespace fs = std::filesystem;

namespace {

class DqeFormat : public ExportFormat {
 public:
  std::string name() const override { return "dqe"; }
};

class HuggingFaceFormat : public ExportFormat {
 public:
  std::string name() const override { return "hf"; }
  std::string refuses_dtype(WeightDtype dtype) const override {
    if (dtype != WeightDtype::kInt8) return "";
    return "--dtype int8 is dqe's own layout (int8 weights with per-row scales), which Hugging Face does not read; use "
           "--format hf with fp32 or bf16, or --format dqe with int8";
  }
  bool merges_adapters() const override { return true; }
  std::string incompatibility(const LoadedModel& model) const override {
    const std::string why = hf_incompatibility(model);
    return why.empty() ? "" : "Hugging Face cannot reproduce " + model.dir + ": " + why;
  }
  bool changes_tensors() const override { return true; }
  void transform(ModelSpec& spec, std::map<std::string, torch::Tensor>& tensors) const override {
    task_head(spec.task.task).fold_into_head(spec.task, tensors);
  }
  // config.json for Hugging Face: dqe's (which has its keys and a "dqe" section it ignores) with
  // num_labels always written, the binary head read as one sigmoid output, and the stored dtype.
  void write_extra(const std::string& dir, const ModelSpec& spec, WeightDtype dtype) const override {
    nlohmann::ordered_json j = to_json(spec);
    const TaskHead& head = task_head(spec.task.task);
    j["num_labels"] = head.num_outputs(spec.task);
    head.write_hf_export_keys(spec.task, j);
    j["torch_dtype"] = dtype == WeightDtype::kBf16 ? "bfloat16" : "float32";
    write_file_atomic((fs::path(dir) / "config.json").string(), j.dump(2) + "\n");
  }
};

}  // namespace

const std::vector<const ExportFormat*>& export_formats() {
  static const DqeFormat dqe;
  static const HuggingFaceFormat hf;
  static const std::vector<const ExportFormat*> formats = {&dqe, &hf};
  return formats;
}

const ExportFormat& export_format(const std::string& name) {
  std::string names;
  for (const ExportFormat* format : export_formats()) {
    if (format->name() == name) return *format;
    names += (names.empty() ? "" : " or ") + format->name();
  }
  throw ConfigError("--format must be " + names + ", got " + name);
}

}  // namespace dqe
