// The masked-language-model head of pretraining (Hugging Face's BertOnlyMLMHead).
#pragma once

#include <map>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "model/bert_config.h"
#include "model/roles.h"

namespace dqe {

// Hugging Face's BertOnlyMLMHead ("cls.predictions.*"): dense, activation and LayerNorm,
// then scores against the word embeddings (tied, as BERT does) plus a bias per token.
struct BertLmHeadImpl : torch::nn::Module {
  explicit BertLmHeadImpl(const BertConfig& c);
  // hidden: [n, hidden] states at the masked positions; returns [n, vocab] logits.
  torch::Tensor forward(const torch::Tensor& hidden, const torch::Tensor& word_embeddings);
  // Its parameters under their Hugging Face names ("cls.predictions.bias", ...), role kMlmHead.
  std::vector<RoleParameter> role_parameters();

  torch::nn::Linear transform_dense{nullptr};        // "predictions.transform.dense"
  torch::nn::LayerNorm transform_LayerNorm{nullptr};  // "predictions.transform.LayerNorm"
  torch::Tensor bias;                                 // "predictions.bias"
  std::string act;
};
TORCH_MODULE(BertLmHead);

// Copies "cls.predictions.*" tensors into head. Returns false (head untouched) when the
// file has none; throws ModelError naming origin when some are missing or misshapen.
bool load_lm_head(BertLmHead& head, const std::map<std::string, torch::Tensor>& tensors, const std::string& origin);

// BERT's initialisation of the head (model/weights.h's rule).
void init_weights(BertLmHead& head, const BertConfig& config);

}  // namespace dqe
