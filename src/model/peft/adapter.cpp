#include "model/peft/adapter.h"

#include <algorithm>
#include <filesystem>

#include "base/hash.h"
#include "dqe/errors.h"
#include "io/json_file.h"
#include "model/peft/bottleneck.h"
#include "model/peft/lora.h"
#include "model/peft/prefix.h"
#include "model/sequence_model.h"

namespace dqe {
namespace {

std::string joined(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

}  // namespace

const std::vector<AdapterKind>& adapter_kinds() {
  static const std::vector<AdapterKind> kinds = {
      {"lora", "LORA", read_lora_config, [] { return std::unique_ptr<AdapterSpec>(new LoraSpec); }, false},
      {"adalora", "ADALORA", read_lora_config,
       [] {
         auto spec = std::make_unique<LoraSpec>();
         spec->r = spec->adalora.emplace().init_r;  // AdaLoRA's updates start at init_r
         return std::unique_ptr<AdapterSpec>(std::move(spec));
       },
       false},
      {"adapter", "BOTTLENECK", read_bottleneck_config, [] { return std::unique_ptr<AdapterSpec>(new BottleneckSpec); },
       true},
      {"prefix", "PREFIX_TUNING", read_prefix_config, [] { return std::unique_ptr<AdapterSpec>(new PrefixSpec); }, false},
  };
  return kinds;
}

const AdapterKind* adapter_kind_of_peft_type(const std::string& peft_type) {
  for (const auto& kind : adapter_kinds())
    if (kind.peft_type == peft_type) return &kind;
  return nullptr;
}

std::string known_peft_types() {
  std::string out;
  for (const auto& kind : adapter_kinds()) out += (out.empty() ? "" : ", ") + kind.peft_type;
  return out;
}

std::unique_ptr<AdapterSpec> read_adapter_config(const nlohmann::json& j, const std::string& origin) {
  if (!j.is_object()) throw ModelError(origin + ": expected a JSON object");
  std::string peft_type, task_type;
  read_key(j, "peft_type", peft_type, origin);
  const AdapterKind* kind = adapter_kind_of_peft_type(peft_type);
  if (!kind)
    throw ModelError(origin + ": peft_type \"" + peft_type + "\" is not supported (dqe reads " + known_peft_types() +
                     " adapters)");
  read_key(j, "task_type", task_type, origin);
  if (!task_type.empty() && task_type != "SEQ_CLS")
    throw ModelError(origin + ": task_type \"" + task_type + "\" is not supported (dqe reads adapters of sequence "
                     "classifiers, SEQ_CLS)");
  return kind->read(j, origin);
}

std::string strip_peft_prefix(const std::string& name) {
  const std::string prefix = kPeftPrefix;
  return name.rfind(prefix, 0) == 0 ? name.substr(prefix.size()) : name;
}

bool is_adapter_dir(const std::string& dir) {
  return std::filesystem::is_regular_file(std::filesystem::path(dir) / kAdapterConfigFile);
}

std::vector<std::string> modules_to_save(SequenceModelImpl& model) {
  std::vector<std::string> out = {"classifier"};
  for (const auto& [name, head] : model.side_heads()) out.push_back(name);
  if (model.fusion) out.push_back("fusion");
  return out;
}

std::vector<std::pair<std::string, torch::Tensor>> adapter_tensors(SequenceModelImpl& model) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (auto& p : model.role_parameters())
    if (p.role == Role::kAdapter || is_head_role(p.role))
      out.emplace_back(kPeftPrefix + p.name, p.tensor);
  return out;
}

std::vector<std::string> load_adapter_tensors(SequenceModelImpl& model, const std::map<std::string, torch::Tensor>& tensors,
                                              const std::string& origin, bool allow_new_head) {
  std::map<std::string, std::pair<std::string, torch::Tensor>> by_name;  // our name -> (file's name, tensor)
  for (const auto& [name, t] : tensors) by_name[strip_peft_prefix(name)] = {name, t};
  std::vector<std::string> heads;
  torch::NoGradGuard no_grad;
  for (const RoleParameter& p : model.role_parameters()) {
    const bool adapter = p.role == Role::kAdapter;
    if (!adapter && !is_head_role(p.role)) continue;
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
                     "\" is neither a parameter of the adapter nor one of the heads (" +
                     joined(modules_to_save(model)) + ")");
  return heads;
}

std::string encoder_weights_hash(SequenceModelImpl& model) {
  detail::Fnv1a hash;
  for (const RoleParameter& p : model.role_parameters()) {
    if (!is_base_role(p.role)) continue;
    const torch::Tensor values = p.tensor.detach().to(torch::kCPU, torch::kFloat32).contiguous();
    hash.add_bytes(p.name.c_str(), p.name.size() + 1);  // with its terminating NUL
    for (int64_t d : values.sizes()) hash.add_bytes(&d, sizeof d);
    hash.add_bytes(values.data_ptr(), static_cast<size_t>(values.numel()) * sizeof(float));
  }
  return "fnv1a64:" + hash.hex();
}

}  // namespace dqe
