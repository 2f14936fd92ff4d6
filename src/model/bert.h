// The BERT encoder (Hugging Face's BertModel): embeddings, transformer layers and pooler,
// registered under Hugging Face's names ("encoder.layer.0.attention.self.query"), which are
// the checkpoint format. A parameter-efficient adapter (model/peft/) plugs in through one
// interface, EncoderAdapterImpl, at the points the encoder calls it; an int8 twin can stand in
// for each Linear at inference (model/int8.h).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "model/bert_config.h"

namespace dqe {

class Int8Linear;
using Int8Slot = std::shared_ptr<const Int8Linear>;
struct BertModelImpl;

// What a parameter-efficient adapter adds to the encoder, at the points the encoder calls it.
// Each kind (LoRA, AdaLoRA, bottleneck adapters, prefix tuning) overrides the points it uses;
// the others leave the encoder as it is. Its parameters are registered under Hugging Face
// names below "bert." (the model's adapter part, Role::kAdapter).
class EncoderAdapterImpl : public torch::nn::Module {
 public:
  // The output y of the encoder's Linear number `slot` (in BertModelImpl::linear_slots' order)
  // on its input x.
  virtual torch::Tensor linear(size_t slot, const torch::Tensor& x, const torch::Tensor& y) { return y; }
  // The output h of sublayer `index` (layer i's attention output is 2i, its feed-forward
  // output 2i + 1) after its Linear and dropout, before the residual sum and LayerNorm.
  virtual torch::Tensor sublayer(size_t index, const torch::Tensor& h) { return h; }
  // Layer `layer`'s keys and values [batch, heads, time, head_dim] and its additive mask
  // [batch, 1, 1, time], before attention: prefix tuning puts its own in front.
  virtual void attention_inputs(size_t layer, torch::Tensor& keys, torch::Tensor& values, torch::Tensor& mask_add) {}
  // The first position id of the text (prefix tuning: after its virtual tokens).
  virtual int64_t first_position() const { return 0; }
  // The kind's own initialisation (an adapter starts as a no-op on its base, unless its spec
  // says otherwise: AdapterSpec::starts_as_base).
  virtual void reset() = 0;
  // Folds the adapter into the encoder's weights, so that the encoder alone computes what the
  // adapted one did. Throws ModelError for a kind that cannot be folded.
  virtual void merge_into(BertModelImpl& bert);
};

struct BertEmbeddingsImpl : torch::nn::Module {
  explicit BertEmbeddingsImpl(const BertConfig& c);
  // Word embeddings of the ids, [batch, time, hidden]: what adversarial training perturbs.
  torch::Tensor embed(const torch::Tensor& ids);
  // Adds position (from first_position on) and token type embeddings to word embeddings, then
  // LayerNorm and dropout.
  torch::Tensor forward(const torch::Tensor& word_embeds, const torch::Tensor& type_ids, int64_t first_position = 0);

  torch::nn::Embedding word_embeddings{nullptr}, position_embeddings{nullptr}, token_type_embeddings{nullptr};
  torch::nn::LayerNorm LayerNorm{nullptr};
  torch::nn::Dropout dropout{nullptr};
};
TORCH_MODULE(BertEmbeddings);

struct BertSelfAttentionImpl : torch::nn::Module {
  BertSelfAttentionImpl(const BertConfig& c, int64_t layer);
  // mask_add: [batch, 1, 1, time], 0 for real tokens and a large negative for padding.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& mask_add, EncoderAdapterImpl* adapter);

  torch::nn::Linear query{nullptr}, key{nullptr}, value{nullptr};
  torch::nn::Dropout dropout{nullptr};
  int64_t num_heads;
  int64_t layer;
  // The Linears' int8 twins, when an int8 model is loaded for inference.
  Int8Slot query_int8, key_int8, value_int8;
};
TORCH_MODULE(BertSelfAttention);

// Linear, dropout, then LayerNorm of the sum with the residual (HF's BertSelfOutput and BertOutput).
struct BertAddNormImpl : torch::nn::Module {
  // slot: the Linear's number in linear_slots(); sublayer: its number for the adapter.
  BertAddNormImpl(const BertConfig& c, int64_t fan_in, int64_t slot, int64_t sublayer);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& residual, EncoderAdapterImpl* adapter);

  torch::nn::Linear dense{nullptr};
  torch::nn::LayerNorm LayerNorm{nullptr};
  torch::nn::Dropout dropout{nullptr};
  int64_t slot, sublayer;
  Int8Slot dense_int8;
};
TORCH_MODULE(BertAddNorm);

struct BertAttentionImpl : torch::nn::Module {
  BertAttentionImpl(const BertConfig& c, int64_t layer);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& mask_add, EncoderAdapterImpl* adapter);

  BertSelfAttention self{nullptr};
  BertAddNorm output{nullptr};
};
TORCH_MODULE(BertAttention);

struct BertLayerImpl : torch::nn::Module {
  BertLayerImpl(const BertConfig& c, int64_t index);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& mask_add, EncoderAdapterImpl* adapter);

  BertAttention attention{nullptr};
  torch::nn::Linear intermediate_dense{nullptr};  // registered as "intermediate.dense"
  BertAddNorm output{nullptr};
  std::string act;
  int64_t index;
  Int8Slot intermediate_int8;
};
TORCH_MODULE(BertLayer);

// The encoder: BertModel in Hugging Face's terms.
struct BertModelImpl : torch::nn::Module {
  explicit BertModelImpl(const BertConfig& c);
  // Word embeddings of the ids (BertEmbeddings::embed).
  torch::Tensor embed(const torch::Tensor& ids);
  // Last hidden states [batch, time, hidden] from word embeddings (Hugging Face's inputs_embeds).
  torch::Tensor encode_embeds(const torch::Tensor& word_embeds, const torch::Tensor& type_ids, const torch::Tensor& mask);
  // encode_embeds(embed(ids), ...).
  torch::Tensor encode(const torch::Tensor& ids, const torch::Tensor& type_ids, const torch::Tensor& mask);
  // The pooled [CLS] representation, [batch, hidden], of last hidden states.
  torch::Tensor pool(const torch::Tensor& hidden);
  // pool(encode(...)).
  torch::Tensor forward(const torch::Tensor& ids, const torch::Tensor& type_ids, const torch::Tensor& mask);

  // A Linear of the encoder, by its Hugging Face name in a sequence classifier
  // ("bert.encoder.layer.0.attention.self.query"), with the slot of its int8 twin.
  struct LinearSlot {
    std::string name;
    torch::nn::Linear linear;
    Int8Slot* int8;
  };
  // Every Linear of the encoder, in registration order: 6 per layer (query, key, value,
  // attention.output.dense, intermediate.dense, output.dense), then the pooler's.
  std::vector<LinearSlot> linear_slots();

  BertEmbeddings embeddings{nullptr};
  torch::nn::Module* encoder = nullptr;  // holder of "encoder.layer"
  torch::nn::ModuleList layers{nullptr};
  torch::nn::Module* pooler = nullptr;  // holder of "pooler.dense"
  torch::nn::Linear pooler_dense{nullptr};
  Int8Slot pooler_int8;
  // The adapter the encoder calls, or null (owned and registered by the model holding it).
  EncoderAdapterImpl* adapter = nullptr;
};
TORCH_MODULE(BertModel);

// Linears of one layer in linear_slots(), and the pooler's slot for num_layers layers.
constexpr int64_t kLinearsPerLayer = 6;
inline int64_t pooler_slot(int64_t num_layers) { return num_layers * kLinearsPerLayer; }

// The Hugging Face names of every Linear of a BERT encoder with this many layers, in
// registration order (what BertModel::linear_slots names).
std::vector<std::string> encoder_linear_names(int64_t num_layers);

// The encoder's activation: "gelu" (erf), "relu", else the tanh approximation of GELU.
torch::Tensor activation(const std::string& act, const torch::Tensor& h);

// A tensor's shape as error messages name it: "[5,64]".
std::string shape_text(torch::IntArrayRef shape);

// The child of module named `name`, made as an empty holder when it does not exist yet: what
// registers a parameter under a dotted Hugging Face name.
std::shared_ptr<torch::nn::Module> holder_module(torch::nn::Module& module, const std::string& name);

}  // namespace dqe
