#include "model/roles.h"

namespace dqe {

std::string role_name(Role role) {
  switch (role) {
    case Role::kEmbeddings: return "embeddings";
    case Role::kEncoder: return "encoder";
    case Role::kPooler: return "pooler";
    case Role::kSequenceHead: return "sequence head";
    case Role::kSideHead: return "side head";
    case Role::kMlmHead: return "MLM head";
    case Role::kAdapter: return "adapter";
  }
  return "?";
}

bool is_base_role(Role role) { return role == Role::kEmbeddings || role == Role::kEncoder || role == Role::kPooler; }

bool is_head_role(Role role) { return role == Role::kSequenceHead || role == Role::kSideHead; }

void append_parameters(torch::nn::Module& module, const std::string& prefix, Role role, std::vector<RoleParameter>& out) {
  for (const auto& item : module.named_modules(/*name_prefix=*/"", /*include_self=*/true)) {
    const bool norm = item.value()->as<torch::nn::LayerNorm>() != nullptr;
    const std::string path = item.key().empty() ? prefix : prefix + item.key() + ".";
    for (const auto& p : item.value()->named_parameters(/*recurse=*/false))
      out.push_back({path + p.key(), p.value(), role, !norm && p.key() != "bias"});
  }
}

}  // namespace dqe
