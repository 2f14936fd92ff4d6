#include "model/bert.h"

#include <cmath>
#include <limits>

#include "dqe/errors.h"
#include "model/int8.h"

namespace dqe {
namespace nn = torch::nn;

torch::Tensor activation(const std::string& act, const torch::Tensor& h) {
  if (act == "gelu") return torch::gelu(h);
  if (act == "relu") return torch::relu(h);
  return torch::gelu(h, "tanh");
}

std::string shape_text(torch::IntArrayRef s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? "," : "") + std::to_string(s[i]);
  return out + "]";
}

std::shared_ptr<nn::Module> holder_module(nn::Module& module, const std::string& name) {
  for (const auto& child : module.named_children())
    if (child.key() == name) return child.value();
  return module.register_module(name, std::make_shared<nn::Module>());
}

void EncoderAdapterImpl::merge_into(BertModelImpl& /*bert*/) {
  throw ModelError("this adapter cannot be folded into its base's weights");
}

namespace {

// The output of the encoder's Linear `slot` on x: its int8 twin's when there is one and no
// gradient is wanted (inference on the CPU), then what the adapter adds.
torch::Tensor linear_output(nn::Linear& linear, const Int8Slot& int8, int64_t slot, const torch::Tensor& x,
                            EncoderAdapterImpl* adapter) {
  torch::Tensor y = int8 && !torch::GradMode::is_enabled() && x.device().is_cpu() ? int8->forward(x) : linear->forward(x);
  return adapter ? adapter->linear(static_cast<size_t>(slot), x, y) : y;
}

}  // namespace

BertEmbeddingsImpl::BertEmbeddingsImpl(const BertConfig& c) {
  word_embeddings = register_module(
      "word_embeddings", nn::Embedding(nn::EmbeddingOptions(c.vocab_size, c.hidden_size).padding_idx(c.pad_token_id)));
  position_embeddings =
      register_module("position_embeddings", nn::Embedding(c.max_position_embeddings, c.hidden_size));
  token_type_embeddings = register_module("token_type_embeddings", nn::Embedding(c.type_vocab_size, c.hidden_size));
  LayerNorm = register_module(
      "LayerNorm", nn::LayerNorm(nn::LayerNormOptions({c.hidden_size}).eps(c.layer_norm_eps)));
  dropout = register_module("dropout", nn::Dropout(c.hidden_dropout_prob));
}

torch::Tensor BertEmbeddingsImpl::embed(const torch::Tensor& ids) { return word_embeddings(ids); }

torch::Tensor BertEmbeddingsImpl::forward(const torch::Tensor& word_embeds, const torch::Tensor& type_ids,
                                          int64_t first_position) {
  auto positions = torch::arange(first_position, first_position + word_embeds.size(1), type_ids.options()).unsqueeze(0);
  auto x = word_embeds + position_embeddings(positions) + token_type_embeddings(type_ids);
  return dropout(LayerNorm(x));
}

BertSelfAttentionImpl::BertSelfAttentionImpl(const BertConfig& c, int64_t layer_index)
    : num_heads(c.num_attention_heads), layer(layer_index) {
  query = register_module("query", nn::Linear(c.hidden_size, c.hidden_size));
  key = register_module("key", nn::Linear(c.hidden_size, c.hidden_size));
  value = register_module("value", nn::Linear(c.hidden_size, c.hidden_size));
  dropout = register_module("dropout", nn::Dropout(c.attention_probs_dropout_prob));
}

torch::Tensor BertSelfAttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& mask_add,
                                             EncoderAdapterImpl* adapter) {
  const int64_t b = x.size(0), t = x.size(1), h = x.size(2), d = h / num_heads;
  const int64_t first = layer * kLinearsPerLayer;
  auto split = [&](const torch::Tensor& y) { return y.view({b, t, num_heads, d}).transpose(1, 2); };
  auto q = split(linear_output(query, query_int8, first, x, adapter));
  auto k = split(linear_output(key, key_int8, first + 1, x, adapter));
  auto v = split(linear_output(value, value_int8, first + 2, x, adapter));
  torch::Tensor mask = mask_add;
  if (adapter) adapter->attention_inputs(static_cast<size_t>(layer), k, v, mask);
  auto scores = torch::matmul(q, k.transpose(-1, -2)) / std::sqrt(static_cast<double>(d)) + mask;
  auto context = torch::matmul(dropout(scores.softmax(-1)), v);
  return context.transpose(1, 2).reshape({b, t, h});
}

BertAddNormImpl::BertAddNormImpl(const BertConfig& c, int64_t fan_in, int64_t slot_index, int64_t sublayer_index)
    : slot(slot_index), sublayer(sublayer_index) {
  dense = register_module("dense", nn::Linear(fan_in, c.hidden_size));
  LayerNorm = register_module(
      "LayerNorm", nn::LayerNorm(nn::LayerNormOptions({c.hidden_size}).eps(c.layer_norm_eps)));
  dropout = register_module("dropout", nn::Dropout(c.hidden_dropout_prob));
}

torch::Tensor BertAddNormImpl::forward(const torch::Tensor& x, const torch::Tensor& residual,
                                       EncoderAdapterImpl* adapter) {
  torch::Tensor h = dropout(linear_output(dense, dense_int8, slot, x, adapter));
  if (adapter) h = adapter->sublayer(static_cast<size_t>(sublayer), h);
  return LayerNorm(h + residual);
}

BertAttentionImpl::BertAttentionImpl(const BertConfig& c, int64_t layer) {
  self = register_module("self", BertSelfAttention(c, layer));
  output = register_module("output", BertAddNorm(c, c.hidden_size, layer * kLinearsPerLayer + 3, 2 * layer));
}

torch::Tensor BertAttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& mask_add,
                                         EncoderAdapterImpl* adapter) {
  return output(self(x, mask_add, adapter), x, adapter);
}

BertLayerImpl::BertLayerImpl(const BertConfig& c, int64_t layer_index) : act(c.hidden_act), index(layer_index) {
  attention = register_module("attention", BertAttention(c, index));
  // HF nests the intermediate Linear one level down; a holder module keeps that name.
  auto intermediate = register_module("intermediate", std::make_shared<nn::Module>());
  intermediate_dense = intermediate->register_module("dense", nn::Linear(c.hidden_size, c.intermediate_size));
  output = register_module("output", BertAddNorm(c, c.intermediate_size, index * kLinearsPerLayer + 5, 2 * index + 1));
}

torch::Tensor BertLayerImpl::forward(const torch::Tensor& x, const torch::Tensor& mask_add,
                                     EncoderAdapterImpl* adapter) {
  auto a = attention(x, mask_add, adapter);
  const torch::Tensor inner =
      linear_output(intermediate_dense, intermediate_int8, index * kLinearsPerLayer + 4, a, adapter);
  return output(activation(act, inner), a, adapter);
}

BertModelImpl::BertModelImpl(const BertConfig& c) {
  embeddings = register_module("embeddings", BertEmbeddings(c));
  auto encoder_holder = register_module("encoder", std::make_shared<nn::Module>());
  encoder = encoder_holder.get();
  layers = encoder_holder->register_module("layer", nn::ModuleList());
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) layers->push_back(BertLayer(c, i));
  auto pooler_holder = register_module("pooler", std::make_shared<nn::Module>());
  pooler = pooler_holder.get();
  pooler_dense = pooler_holder->register_module("dense", nn::Linear(c.hidden_size, c.hidden_size));
}

torch::Tensor BertModelImpl::embed(const torch::Tensor& ids) { return embeddings->embed(ids); }

torch::Tensor BertModelImpl::encode_embeds(const torch::Tensor& word_embeds, const torch::Tensor& type_ids,
                                           const torch::Tensor& mask) {
  auto x = embeddings(word_embeds, type_ids, adapter ? adapter->first_position() : 0);
  // Padding gets the most negative float, so softmax gives it exactly zero weight.
  auto mask_add = (1.0 - mask.unsqueeze(1).unsqueeze(2).to(x.scalar_type())) *
                  std::numeric_limits<float>::lowest();
  for (const auto& layer : *layers) x = layer->as<BertLayer>()->forward(x, mask_add, adapter);
  return x;
}

torch::Tensor BertModelImpl::encode(const torch::Tensor& ids, const torch::Tensor& type_ids, const torch::Tensor& mask) {
  return encode_embeds(embed(ids), type_ids, mask);
}

torch::Tensor BertModelImpl::pool(const torch::Tensor& hidden) {
  const int64_t slot = pooler_slot(static_cast<int64_t>(layers->size()));
  return torch::tanh(linear_output(pooler_dense, pooler_int8, slot, hidden.select(1, 0), adapter));
}

torch::Tensor BertModelImpl::forward(const torch::Tensor& ids, const torch::Tensor& type_ids, const torch::Tensor& mask) {
  return pool(encode(ids, type_ids, mask));
}

std::vector<BertModelImpl::LinearSlot> BertModelImpl::linear_slots() {
  std::vector<LinearSlot> out;
  for (size_t i = 0; i < layers->size(); ++i) {
    auto layer = layers->ptr<BertLayerImpl>(i);
    const std::string at = "bert.encoder.layer." + std::to_string(i) + ".";
    auto& self = *layer->attention->self;
    out.push_back({at + "attention.self.query", self.query, &self.query_int8});
    out.push_back({at + "attention.self.key", self.key, &self.key_int8});
    out.push_back({at + "attention.self.value", self.value, &self.value_int8});
    auto& attention_output = *layer->attention->output;
    out.push_back({at + "attention.output.dense", attention_output.dense, &attention_output.dense_int8});
    out.push_back({at + "intermediate.dense", layer->intermediate_dense, &layer->intermediate_int8});
    out.push_back({at + "output.dense", layer->output->dense, &layer->output->dense_int8});
  }
  out.push_back({"bert.pooler.dense", pooler_dense, &pooler_int8});
  return out;
}

std::vector<std::string> encoder_linear_names(int64_t num_layers) {
  std::vector<std::string> out;
  for (int64_t i = 0; i < num_layers; ++i) {
    const std::string at = "bert.encoder.layer." + std::to_string(i) + ".";
    for (const char* name : {"attention.self.query", "attention.self.key", "attention.self.value",
                             "attention.output.dense", "intermediate.dense", "output.dense"})
      out.push_back(at + name);
  }
  out.push_back("bert.pooler.dense");
  return out;
}

}  // namespace dqe
