#include "model/peft/peft.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "base/hash.h"
#include "dqe/errors.h"

namespace dqe {
namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string strip_peft_prefix(const std::string& name) {
  const std::string prefix = kPeftPrefix;
  return name.rfind(prefix, 0) == 0 ? name.substr(prefix.size()) : name;
}

std::string shape_text(torch::IntArrayRef s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? "," : "") + std::to_string(s[i]);
  return out + "]";
}

std::string joined(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}


}  // namespace

bool is_adapter_dir(const std::string& dir) {
  return std::filesystem::is_regular_file(std::filesystem::path(dir) / kAdapterConfigFile);
}

const std::vector<std::string>& lora_target_names() {
  static const std::vector<std::string> names = {"query",         "key",    "value", "dense", "attention.output.dense",
                                                 "intermediate.dense", "output.dense", "pooler.dense", "all-linear"};
  return names;
}

std::vector<std::string> lora_modules(const std::vector<std::string>& targets, int64_t num_layers) {
  if (targets.empty()) throw ConfigError("--lora-targets needs at least one module name");
  const std::vector<std::string> names = encoder_linear_names(num_layers);
  std::vector<bool> selected(names.size(), false);
  for (const std::string& target : targets) {
    if (target == "all-linear") {
      if (targets.size() != 1) throw ConfigError("--lora-targets all-linear stands alone (it selects every Linear)");
      selected.assign(names.size(), true);
      continue;
    }
    bool any = false;
    for (size_t i = 0; i < names.size(); ++i) {
      if (!target.empty() && (names[i] == target || ends_with(names[i], "." + target))) {
        selected[i] = true;
        any = true;
      }
    }
    if (!any)
      throw ConfigError("--lora-targets: \"" + target + "\" names no Linear of the encoder; valid names: " +
                        joined(lora_target_names()) + " (or a longer end of a module's name, such as layer.0.output.dense)");
  }
  std::vector<std::string> out;
  for (size_t i = 0; i < names.size(); ++i)
    if (selected[i]) out.push_back(names[i]);
  return out;
}

std::vector<std::string> peft_target_modules(const std::vector<std::string>& targets,
                                             const std::vector<std::string>& modules) {
  if (targets.size() == 1 && targets.front() == "all-linear") {
    std::vector<std::string> sorted = modules;
    std::sort(sorted.begin(), sorted.end());
    return sorted;
  }
  return targets;
}

std::pair<int64_t, int64_t> linear_shape(const BertConfig& config, const std::string& name) {
  const int64_t h = config.hidden_size, i = config.intermediate_size;
  if (ends_with(name, "intermediate.dense")) return {i, h};
  if (ends_with(name, "attention.output.dense")) return {h, h};
  if (ends_with(name, "output.dense")) return {h, i};  // the feed-forward output
  return {h, h};
}

std::vector<std::string> modules_to_save(SequenceModel& model) {
  std::vector<std::string> out = {"classifier"};
  for (const auto& [name, head] : model->side_heads()) out.push_back(name);
  if (model->fusion) out.push_back("fusion");
  return out;
}

std::vector<std::pair<std::string, torch::Tensor>> adapter_tensors(SequenceModel& model) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (auto& p : model->role_parameters())
    if (p.role == Role::kAdapter || p.role == Role::kBottleneck || p.role == Role::kSequenceHead ||
        p.role == Role::kSideHead)
      out.emplace_back(kPeftPrefix + p.name, p.tensor);
  return out;
}

std::vector<std::string> adapted_modules(const std::map<std::string, torch::Tensor>& tensors, int64_t num_layers,
                                         const std::string& origin) {
  const std::vector<std::string> names = encoder_linear_names(num_layers);
  std::vector<bool> adapted(names.size(), false);
  for (const auto& [file_name, tensor] : tensors) {
    const std::string name = strip_peft_prefix(file_name);
    std::string module;
    // LoRA's Linears ("lora_A.weight"), AdaLoRA's parameters ("lora_A", "lora_E", "lora_B").
    for (const char* suffix : {".lora_A.weight", ".lora_B.weight", ".lora_A", ".lora_B", ".lora_E"})
      if (ends_with(name, suffix)) module = name.substr(0, name.size() - std::strlen(suffix));
    if (module.empty()) continue;
    const auto it = std::find(names.begin(), names.end(), module);
    if (it == names.end())
      throw ModelError(origin + ": tensor \"" + file_name + "\" adapts \"" + module + "\", which is not a Linear of the " +
                       std::to_string(num_layers) + "-layer encoder");
    adapted[static_cast<size_t>(it - names.begin())] = true;
  }
  std::vector<std::string> out;
  for (size_t i = 0; i < names.size(); ++i)
    if (adapted[i]) out.push_back(names[i]);
  if (out.empty()) throw ModelError(origin + ": no LoRA weights (lora_A, lora_B) in the adapter");
  return out;
}

std::vector<std::string> load_adapter_tensors(SequenceModel& model, const std::map<std::string, torch::Tensor>& tensors,
                                              const std::string& origin, bool allow_new_head) {
  std::map<std::string, std::pair<std::string, torch::Tensor>> by_name;  // our name -> (file's name, tensor)
  for (const auto& [name, t] : tensors) by_name[strip_peft_prefix(name)] = {name, t};
  std::vector<std::string> heads;
  torch::NoGradGuard no_grad;
  for (const RoleParameter& p : model->role_parameters()) {
    // A bottleneck adapter's weights are loaded as LoRA's updates are: all of them, in their shapes.
    const bool adapter = p.role == Role::kAdapter || p.role == Role::kBottleneck;
    if (!adapter && p.role != Role::kSequenceHead && p.role != Role::kSideHead) continue;
    auto it = by_name.find(p.name);
    if (it == by_name.end()) {
      if (adapter) throw ModelError(origin + ": missing tensor \"" + kPeftPrefix + p.name + "\"");
      continue;  // the head stays as the base has it
    }
    const auto& [file_name, tensor] = it->second;
    if (tensor.sizes() != p.tensor.sizes()) {
      if (!adapter && allow_new_head) {
        by_name.erase(it);
        continue;
      }
      throw ModelError(origin + ": tensor \"" + file_name + "\" has shape " + shape_text(tensor.sizes()) +
                       " but the model needs " + shape_text(p.tensor.sizes()));
    }
    if (!torch::isfinite(tensor).all().item<bool>())
      throw ModelError(origin + ": tensor \"" + file_name + "\" holds NaN or infinite values");
    p.tensor.copy_(tensor.to(p.tensor.dtype()));
    if (!adapter) heads.push_back(p.name);
    by_name.erase(it);
  }
  if (!by_name.empty())
    throw ModelError(origin + ": tensor \"" + by_name.begin()->second.first +
                     "\" is neither " + (model->bottleneck ? "a bottleneck adapter" : "a LoRA update") +
                     " of the encoder nor one of its heads (" +
                     joined(modules_to_save(model)) + ")");
  return heads;
}

std::string encoder_weights_hash(SequenceModel& model) {
  detail::Fnv1a hash;
  for (const RoleParameter& p : model->role_parameters()) {
    if (p.role != Role::kEmbeddings && p.role != Role::kEncoder && p.role != Role::kPooler) continue;
    const torch::Tensor values = p.tensor.detach().to(torch::kCPU, torch::kFloat32).contiguous();
    hash.add_bytes(p.name.c_str(), p.name.size() + 1);  // with its terminating NUL
    for (int64_t d : values.sizes()) hash.add_bytes(&d, sizeof d);
    hash.add_bytes(values.data_ptr(), static_cast<size_t>(values.numel()) * sizeof(float));
  }
  return "fnv1a64:" + hash.hex();
}

}  // namespace dqe
