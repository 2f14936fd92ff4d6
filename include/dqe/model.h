// BERT encoder plus a task head, as LibTorch modules whose registered names are Hugging
// Face's BertForSequenceClassification names ("bert.encoder.layer.0.attention.self.query.weight",
// "classifier.weight", ...): those names are the checkpoint format.
#pragma once

#include <map>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "dqe/config.h"
#include "dqe/lexical.h"

namespace dqe {

struct BertEmbeddingsImpl : torch::nn::Module {
  explicit BertEmbeddingsImpl(const BertConfig& c);
  torch::Tensor forward(const torch::Tensor& ids, const torch::Tensor& type_ids);

  torch::nn::Embedding word_embeddings{nullptr}, position_embeddings{nullptr}, token_type_embeddings{nullptr};
  torch::nn::LayerNorm LayerNorm{nullptr};
  torch::nn::Dropout dropout{nullptr};
};
TORCH_MODULE(BertEmbeddings);

struct BertSelfAttentionImpl : torch::nn::Module {
  explicit BertSelfAttentionImpl(const BertConfig& c);
  // mask_add: [batch, 1, 1, time], 0 for real tokens and a large negative for padding.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& mask_add);

  torch::nn::Linear query{nullptr}, key{nullptr}, value{nullptr};
  torch::nn::Dropout dropout{nullptr};
  int64_t num_heads;
};
TORCH_MODULE(BertSelfAttention);

// Linear, dropout, then LayerNorm of the sum with the residual (HF's BertSelfOutput and BertOutput).
struct BertAddNormImpl : torch::nn::Module {
  BertAddNormImpl(const BertConfig& c, int64_t fan_in);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& residual);

  torch::nn::Linear dense{nullptr};
  torch::nn::LayerNorm LayerNorm{nullptr};
  torch::nn::Dropout dropout{nullptr};
};
TORCH_MODULE(BertAddNorm);

struct BertAttentionImpl : torch::nn::Module {
  explicit BertAttentionImpl(const BertConfig& c);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& mask_add);

  BertSelfAttention self{nullptr};
  BertAddNorm output{nullptr};
};
TORCH_MODULE(BertAttention);

struct BertLayerImpl : torch::nn::Module {
  explicit BertLayerImpl(const BertConfig& c);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& mask_add);

  BertAttention attention{nullptr};
  torch::nn::Linear intermediate_dense{nullptr};  // registered as "intermediate.dense"
  BertAddNorm output{nullptr};
  std::string act;
};
TORCH_MODULE(BertLayer);

struct BertModelImpl : torch::nn::Module {
  explicit BertModelImpl(const BertConfig& c);
  // Returns the pooled [CLS] representation, [batch, hidden].
  torch::Tensor forward(const torch::Tensor& ids, const torch::Tensor& type_ids, const torch::Tensor& mask);
  // Last hidden states, [batch, time, hidden].
  torch::Tensor encode(const torch::Tensor& ids, const torch::Tensor& type_ids, const torch::Tensor& mask);

  BertEmbeddings embeddings{nullptr};
  torch::nn::ModuleList layers{nullptr};  // registered as "encoder.layer"
  torch::nn::Linear pooler_dense{nullptr};  // registered as "pooler.dense"
};
TORCH_MODULE(BertModel);

// BertForSequenceClassification: encoder, dropout, linear head with num_outputs logits.
// With num_lexical_features > 0, a small MLP of the pair's lexical features ("lexical.*",
// its output layer starting at zero) is added to the logits.
struct SequenceModelImpl : torch::nn::Module {
  SequenceModelImpl(const BertConfig& c, int64_t num_outputs, int64_t num_lexical_features = 0);
  // Logits, [batch, num_outputs]. features: [batch, num_lexical_features] when the model has them.
  torch::Tensor forward(const torch::Tensor& ids, const torch::Tensor& type_ids, const torch::Tensor& mask,
                        const torch::Tensor& features = {});

  BertModel bert{nullptr};
  torch::nn::Dropout dropout{nullptr};
  torch::nn::Linear classifier{nullptr};
  torch::nn::Sequential lexical{nullptr};
  // The training results' word statistics the features are computed with (lexical_stats.json).
  std::shared_ptr<const LexicalStats> lexical_stats;
};
TORCH_MODULE(SequenceModel);

// Hugging Face's BertOnlyMLMHead ("cls.predictions.*"): dense, activation and LayerNorm,
// then scores against the word embeddings (tied, as BERT does) plus a bias per token.
struct BertLmHeadImpl : torch::nn::Module {
  explicit BertLmHeadImpl(const BertConfig& c);
  // hidden: [n, hidden] states at the masked positions; returns [n, vocab] logits.
  torch::Tensor forward(const torch::Tensor& hidden, const torch::Tensor& word_embeddings);

  torch::nn::Linear transform_dense{nullptr};        // "predictions.transform.dense"
  torch::nn::LayerNorm transform_LayerNorm{nullptr};  // "predictions.transform.LayerNorm"
  torch::Tensor bias;                                 // "predictions.bias"
  std::string act;
};
TORCH_MODULE(BertLmHead);

// The head's tensors under their Hugging Face names ("cls.predictions.bias", ...).
std::vector<std::pair<std::string, torch::Tensor>> lm_head_weights(BertLmHead& head);
// Copies "cls.predictions.*" tensors into head. Returns false (head untouched) when the
// file has none; throws ModelError naming origin when some are missing or misshapen.
bool load_lm_head(BertLmHead& head, const std::map<std::string, torch::Tensor>& tensors, const std::string& origin);

// BERT's initialisation: N(0, initializer_range) for Linear and Embedding weights (the
// padding row zeroed), zero biases, LayerNorm weight 1 and bias 0.
void init_bert_weights(torch::nn::Module& module, double initializer_range, int64_t pad_token_id);
// The same, and the lexical MLP's output layer at zero.
void init_bert_weights(SequenceModel& model, double initializer_range, int64_t pad_token_id);

struct LoadReport {
  std::vector<std::string> missing;     // parameters left at their initial values
  std::vector<std::string> unexpected;  // tensors in the file that the model does not use
};

// Copies tensors into the model by Hugging Face name. Accepts names with or without the
// "bert." prefix and the old "gamma"/"beta" LayerNorm names. A missing or wrongly shaped
// classifier is allowed when allow_new_head (it stays freshly initialised), and so are
// token type embeddings with fewer rows than the config (widened, see TaskSpec::match_types); any other
// missing encoder weight or shape mismatch throws ModelError naming origin and the tensor.
LoadReport load_weights(SequenceModel& model, std::map<std::string, torch::Tensor> tensors,
                        const std::string& origin, bool allow_new_head);

// Sets every dropout probability of the model (hidden states, attention and classifier) to p
// and records it in config, so that saved checkpoints carry it.
void set_dropout(SequenceModel& model, BertConfig& config, double p);

// The device of the module's first parameter (the CPU for a module without parameters).
c10::Device device_of(const torch::nn::Module& module);

// Named parameters in Hugging Face layout, for saving.
std::vector<std::pair<std::string, torch::Tensor>> named_weights(SequenceModel& model);

}  // namespace dqe
