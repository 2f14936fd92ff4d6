#include "model/lm_head.h"

#include <algorithm>

#include "dqe/errors.h"
#include "model/bert.h"
#include "model/weights.h"

namespace dqe {
namespace nn = torch::nn;

namespace {

bool starts_with(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }

}  // namespace

BertLmHeadImpl::BertLmHeadImpl(const BertConfig& c) : act(c.hidden_act) {
  // HF nests these two levels down ("predictions.transform.dense"); holder modules keep the names.
  auto predictions = register_module("predictions", std::make_shared<nn::Module>());
  auto transform = predictions->register_module("transform", std::make_shared<nn::Module>());
  transform_dense = transform->register_module("dense", nn::Linear(c.hidden_size, c.hidden_size));
  transform_LayerNorm = transform->register_module(
      "LayerNorm", nn::LayerNorm(nn::LayerNormOptions({c.hidden_size}).eps(c.layer_norm_eps)));
  bias = predictions->register_parameter("bias", torch::zeros({c.vocab_size}));
}

torch::Tensor BertLmHeadImpl::forward(const torch::Tensor& hidden, const torch::Tensor& word_embeddings) {
  auto h = activation(act, transform_dense(hidden));
  // Under bf16 autocast the activation is bf16 while LayerNorm's parameters stay fp32.
  h = transform_LayerNorm(h.to(transform_LayerNorm->weight.scalar_type()));
  return torch::matmul(h, word_embeddings.t()) + bias;
}

std::vector<RoleParameter> BertLmHeadImpl::role_parameters() {
  std::vector<RoleParameter> out;
  append_parameters(*this, "cls.", Role::kMlmHead, out);
  return out;
}

bool load_lm_head(BertLmHead& head, const std::map<std::string, torch::Tensor>& file_tensors, const std::string& origin) {
  std::map<std::string, torch::Tensor> tensors;
  for (const auto& [name, t] : file_tensors) tensors[canonical_name(name)] = t;
  const bool any = std::any_of(tensors.begin(), tensors.end(),
                               [](const auto& kv) { return starts_with(kv.first, "cls.predictions."); });
  if (!any) return false;
  torch::NoGradGuard no_grad;
  for (auto& p : head->role_parameters()) {
    auto it = tensors.find(p.name);
    // Some exports keep the output bias only as the decoder's.
    if (it == tensors.end() && p.name == "cls.predictions.bias") it = tensors.find("cls.predictions.decoder.bias");
    if (it == tensors.end()) throw ModelError(origin + ": missing tensor \"" + p.name + "\"");
    if (it->second.sizes() != p.tensor.sizes())
      throw ModelError(origin + ": tensor \"" + p.name + "\" does not fit the model's shape");
    p.tensor.copy_(it->second.to(p.tensor.dtype()));
  }
  return true;
}

void init_weights(BertLmHead& head, const BertConfig& config) {
  bert_init(*head, config.initializer_range, config.pad_token_id);
}

}  // namespace dqe
