// BERT's shape and hyperparameters: Hugging Face's config.json keys.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace dqe {

// BERT's dropout, for models that dqe builds from scratch.
constexpr double kDefaultDropout = 0.1;

struct BertConfig {
  int64_t vocab_size = 30522;
  int64_t hidden_size = 768;
  int64_t num_hidden_layers = 12;
  int64_t num_attention_heads = 12;
  int64_t intermediate_size = 3072;
  // "gelu" (erf), "gelu_new"/"gelu_pytorch_tanh" (tanh approximation) or "relu".
  std::string hidden_act = "gelu";
  double hidden_dropout_prob = kDefaultDropout;
  double attention_probs_dropout_prob = kDefaultDropout;
  int64_t max_position_embeddings = 512;
  int64_t type_vocab_size = 2;
  double layer_norm_eps = 1e-12;
  double initializer_range = 0.02;
  int64_t pad_token_id = 0;
  // Dropout before the head; hidden_dropout_prob when absent (as Hugging Face does).
  std::optional<double> classifier_dropout;

  // Throws ModelError (prefixed with origin) when sizes are inconsistent.
  void validate(const std::string& origin) const;
};

}  // namespace dqe
