// What each parameter of a model is for. The role, not a name prefix, decides how a parameter
// is initialised, whether it must be in a file being loaded, whether it is saved, frozen and
// decayed. Names are Hugging Face's: they are the checkpoint format.
#pragma once

#include <string>
#include <vector>

#include <torch/torch.h>

namespace dqe {

enum class Role {
  kEmbeddings,    // bert.embeddings.*
  kEncoder,       // bert.encoder.*: the transformer layers
  kPooler,        // bert.pooler.*: tanh(dense([CLS]))
  kSequenceHead,  // classifier.*: the task's logits
  kSideHead,      // one per side input ("lexical.*"), and the fusion layers ("fusion.*")
  kMlmHead,       // cls.predictions.*: pretraining only
  kAdapter,       // a parameter-efficient adapter's own parameters (model/peft): LoRA's updates
                  // ("bert.encoder.layer.0.attention.self.query.lora_A.weight"), bottleneck adapters
                  // ("bert.encoder.layer.0.output.adapter.down.weight")
};
std::string role_name(Role role);

// The roles of the pretrained encoder: what an adapter's base provides and keeps frozen.
bool is_base_role(Role role);
// The roles trained in full under an adapter and saved with it (PEFT's modules_to_save).
bool is_head_role(Role role);

struct RoleParameter {
  std::string name;  // Hugging Face name
  torch::Tensor tensor;
  Role role;
  // AdamW's weight decay applies (not to biases and LayerNorm, as BERT training does).
  bool decay;
};

// The parameters of module, named prefix + their path, with the role and BERT's decay rule.
void append_parameters(torch::nn::Module& module, const std::string& prefix, Role role, std::vector<RoleParameter>& out);

}  // namespace dqe
