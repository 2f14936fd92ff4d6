#include "dqe/model.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "dqe/errors.h"

namespace dqe {
namespace nn = torch::nn;

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

torch::Tensor BertEmbeddingsImpl::forward(const torch::Tensor& ids, const torch::Tensor& type_ids) {
  auto positions = torch::arange(ids.size(1), ids.options()).unsqueeze(0);
  auto x = word_embeddings(ids) + position_embeddings(positions) + token_type_embeddings(type_ids);
  return dropout(LayerNorm(x));
}

BertSelfAttentionImpl::BertSelfAttentionImpl(const BertConfig& c) : num_heads(c.num_attention_heads) {
  query = register_module("query", nn::Linear(c.hidden_size, c.hidden_size));
  key = register_module("key", nn::Linear(c.hidden_size, c.hidden_size));
  value = register_module("value", nn::Linear(c.hidden_size, c.hidden_size));
  dropout = register_module("dropout", nn::Dropout(c.attention_probs_dropout_prob));
}

torch::Tensor BertSelfAttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& mask_add) {
  const int64_t b = x.size(0), t = x.size(1), h = x.size(2), d = h / num_heads;
  auto split = [&](const torch::Tensor& y) { return y.view({b, t, num_heads, d}).transpose(1, 2); };
  auto q = split(query(x)), k = split(key(x)), v = split(value(x));
  auto scores = torch::matmul(q, k.transpose(-1, -2)) / std::sqrt(static_cast<double>(d)) + mask_add;
  auto context = torch::matmul(dropout(scores.softmax(-1)), v);
  return context.transpose(1, 2).reshape({b, t, h});
}

BertAddNormImpl::BertAddNormImpl(const BertConfig& c, int64_t fan_in) {
  dense = register_module("dense", nn::Linear(fan_in, c.hidden_size));
  LayerNorm = register_module(
      "LayerNorm", nn::LayerNorm(nn::LayerNormOptions({c.hidden_size}).eps(c.layer_norm_eps)));
  dropout = register_module("dropout", nn::Dropout(c.hidden_dropout_prob));
}

torch::Tensor BertAddNormImpl::forward(const torch::Tensor& x, const torch::Tensor& residual) {
  return LayerNorm(dropout(dense(x)) + residual);
}

BertAttentionImpl::BertAttentionImpl(const BertConfig& c) {
  self = register_module("self", BertSelfAttention(c));
  output = register_module("output", BertAddNorm(c, c.hidden_size));
}

torch::Tensor BertAttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& mask_add) {
  return output(self(x, mask_add), x);
}

BertLayerImpl::BertLayerImpl(const BertConfig& c) : act(c.hidden_act) {
  attention = register_module("attention", BertAttention(c));
  // HF nests the intermediate Linear one level down; a holder module keeps that name.
  auto intermediate = register_module("intermediate", std::make_shared<nn::Module>());
  intermediate_dense = intermediate->register_module("dense", nn::Linear(c.hidden_size, c.intermediate_size));
  output = register_module("output", BertAddNorm(c, c.intermediate_size));
}

torch::Tensor BertLayerImpl::forward(const torch::Tensor& x, const torch::Tensor& mask_add) {
  auto a = attention(x, mask_add);
  auto h = intermediate_dense(a);
  if (act == "gelu") h = torch::gelu(h);
  else if (act == "relu") h = torch::relu(h);
  else h = torch::gelu(h, "tanh");
  return output(h, a);
}

BertModelImpl::BertModelImpl(const BertConfig& c) {
  embeddings = register_module("embeddings", BertEmbeddings(c));
  auto encoder = register_module("encoder", std::make_shared<nn::Module>());
  layers = encoder->register_module("layer", nn::ModuleList());
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) layers->push_back(BertLayer(c));
  auto pooler = register_module("pooler", std::make_shared<nn::Module>());
  pooler_dense = pooler->register_module("dense", nn::Linear(c.hidden_size, c.hidden_size));
}

torch::Tensor BertModelImpl::encode(const torch::Tensor& ids, const torch::Tensor& type_ids,
                                    const torch::Tensor& mask) {
  auto x = embeddings(ids, type_ids);
  // Padding gets the most negative float, so softmax gives it exactly zero weight.
  auto mask_add = (1.0 - mask.unsqueeze(1).unsqueeze(2).to(x.scalar_type())) *
                  std::numeric_limits<float>::lowest();
  for (const auto& layer : *layers) x = layer->as<BertLayer>()->forward(x, mask_add);
  return x;
}

torch::Tensor BertModelImpl::forward(const torch::Tensor& ids, const torch::Tensor& type_ids,
                                     const torch::Tensor& mask) {
  auto hidden = encode(ids, type_ids, mask);
  return torch::tanh(pooler_dense(hidden.select(1, 0)));
}

SequenceModelImpl::SequenceModelImpl(const BertConfig& c, int64_t num_outputs, int64_t num_lexical_features) {
  bert = register_module("bert", BertModel(c));
  dropout = register_module("dropout", nn::Dropout(c.classifier_dropout.value_or(c.hidden_dropout_prob)));
  classifier = register_module("classifier", nn::Linear(c.hidden_size, num_outputs));
  if (num_lexical_features > 0)
    lexical = register_module("lexical", nn::Sequential(nn::Linear(num_lexical_features, 64), nn::GELU(),
                                                        nn::Linear(64, num_outputs)));
}

torch::Tensor SequenceModelImpl::forward(const torch::Tensor& ids, const torch::Tensor& type_ids,
                                         const torch::Tensor& mask, const torch::Tensor& features) {
  torch::Tensor logits = classifier(dropout(bert(ids, type_ids, mask)));
  if (!lexical) return logits;
  TORCH_CHECK(features.defined(), "this model needs the pairs' lexical features");
  return logits + lexical->forward(features).to(logits.scalar_type());
}

namespace {

// The task heads on top of the encoder, with what their absence means. Fine-tuning may start
// them afresh; a model used as it is must have them.
struct Head {
  const char* prefix;
  const char* missing;
};
constexpr Head kHeads[] = {
    {"classifier.", "has no classifier head"},
    {"lexical.", "the config asks for lexical features but the lexical.* weights are missing"},
};

bool starts_with(const std::string& s, const char* prefix) { return s.rfind(prefix, 0) == 0; }

const Head* head_of(const std::string& name) {
  for (const Head& h : kHeads)
    if (starts_with(name, h.prefix)) return &h;
  return nullptr;
}

// Maps a checkpoint's tensor name onto ours: adds the "bert." prefix of a bare BertModel
// and renames TensorFlow-era LayerNorm gamma/beta.
std::string canonical_name(std::string name) {
  auto ends_with = [&](const std::string& s) {
    return name.size() >= s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0;
  };
  if (ends_with("LayerNorm.gamma")) name.replace(name.size() - 5, 5, "weight");
  else if (ends_with("LayerNorm.beta")) name.replace(name.size() - 4, 4, "bias");
  if (!starts_with(name, "bert.") && !starts_with(name, "cls.") && !head_of(name)) name = "bert." + name;
  return name;
}

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
  auto h = transform_dense(hidden);
  if (act == "gelu") h = torch::gelu(h);
  else if (act == "relu") h = torch::relu(h);
  else h = torch::gelu(h, "tanh");
  // Under bf16 autocast the activation is bf16 while LayerNorm's parameters stay fp32.
  h = transform_LayerNorm(h.to(transform_LayerNorm->weight.scalar_type()));
  return torch::matmul(h, word_embeddings.t()) + bias;
}

std::vector<std::pair<std::string, torch::Tensor>> lm_head_weights(BertLmHead& head) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& item : head->named_parameters()) out.emplace_back("cls." + item.key(), item.value());
  return out;
}

bool load_lm_head(BertLmHead& head, const std::map<std::string, torch::Tensor>& file_tensors, const std::string& origin) {
  std::map<std::string, torch::Tensor> tensors;
  for (const auto& [name, t] : file_tensors) tensors[canonical_name(name)] = t;
  const bool any = std::any_of(tensors.begin(), tensors.end(),
                               [](const auto& kv) { return starts_with(kv.first, "cls.predictions."); });
  if (!any) return false;
  torch::NoGradGuard no_grad;
  for (auto& item : head->named_parameters()) {
    std::string name = "cls." + item.key();
    auto it = tensors.find(name);
    // Some exports keep the output bias only as the decoder's.
    if (it == tensors.end() && name == "cls.predictions.bias") it = tensors.find("cls.predictions.decoder.bias");
    if (it == tensors.end()) throw ModelError(origin + ": missing tensor \"" + name + "\"");
    if (it->second.sizes() != item.value().sizes())
      throw ModelError(origin + ": tensor \"" + name + "\" does not fit the model's shape");
    item.value().copy_(it->second.to(item.value().dtype()));
  }
  return true;
}

void init_bert_weights(SequenceModel& model, double initializer_range, int64_t pad_token_id) {
  init_bert_weights(*model, initializer_range, pad_token_id);
  if (model->lexical) {
    // PyTorch's default init for the hidden layer (BERT's N(0, 0.02) would leave it nearly
    // flat on features in [0, 1]); the output layer starts at zero, so at first the model is
    // the text model alone.
    torch::NoGradGuard no_grad;
    model->lexical->ptr(0)->as<nn::Linear>()->reset_parameters();
    auto out = model->lexical->ptr(2)->as<nn::Linear>();
    out->weight.zero_();
    out->bias.zero_();
  }
}

void init_bert_weights(nn::Module& module, double initializer_range, int64_t pad_token_id) {
  torch::NoGradGuard no_grad;
  for (auto& m : module.modules(/*include_self=*/true)) {
    if (auto* linear = m->as<nn::Linear>()) {
      linear->weight.normal_(0.0, initializer_range);
      if (linear->bias.defined()) linear->bias.zero_();
    } else if (auto* emb = m->as<nn::Embedding>()) {
      emb->weight.normal_(0.0, initializer_range);
      if (emb->options.padding_idx() && *emb->options.padding_idx() == pad_token_id) emb->weight[pad_token_id].zero_();
    } else if (auto* ln = m->as<nn::LayerNorm>()) {
      ln->weight.fill_(1.0);
      ln->bias.zero_();
    }
  }
}


LoadReport load_weights(SequenceModel& model, std::map<std::string, torch::Tensor> tensors,
                        const std::string& origin, bool allow_new_head) {
  std::map<std::string, torch::Tensor> by_name;
  for (auto& [name, t] : tensors) by_name[canonical_name(name)] = std::move(t);

  LoadReport report;
  torch::NoGradGuard no_grad;
  for (auto& item : model->named_parameters()) {
    const std::string& name = item.key();
    torch::Tensor& param = item.value();
    const bool is_head = head_of(name) != nullptr;
    auto it = by_name.find(name);
    if (it == by_name.end()) {
      if (!is_head && !starts_with(name, "bert.pooler."))
        throw ModelError(origin + ": missing tensor \"" + name + "\"");
      report.missing.push_back(name);
      continue;
    }
    const bool widen_types = allow_new_head && name == "bert.embeddings.token_type_embeddings.weight" &&
                             it->second.dim() == 2 && it->second.size(1) == param.size(1) &&
                             it->second.size(0) < param.size(0);
    if (widen_types) {
      // New match types start as copies of the plain segment types, so the pretrained
      // model's behaviour is unchanged until fine-tuning teaches it the difference.
      for (int64_t row = 0; row < param.size(0); ++row) param[row].copy_(it->second[row % it->second.size(0)]);
    } else if (it->second.sizes() != param.sizes()) {
      auto shape = [](torch::IntArrayRef s) {
        std::string out = "[";
        for (size_t i = 0; i < s.size(); ++i) out += (i ? "," : "") + std::to_string(s[i]);
        return out + "]";
      };
      if (is_head && allow_new_head) {
        report.missing.push_back(name);
      } else {
        throw ModelError(origin + ": tensor \"" + name + "\" has shape " + shape(it->second.sizes()) +
                         " but the config needs " + shape(param.sizes()));
      }
    } else {
      param.copy_(it->second.to(param.dtype()));
    }
    by_name.erase(it);
  }
  if (!allow_new_head)
    for (const Head& h : kHeads)
      if (std::any_of(report.missing.begin(), report.missing.end(), [&](const std::string& n) { return starts_with(n, h.prefix); }))
        throw ModelError(origin + ": " + h.missing);
  for (const auto& [name, t] : by_name)
    if (name != "bert.embeddings.position_ids") report.unexpected.push_back(name);
  return report;
}

void set_dropout(SequenceModel& model, BertConfig& config, double p) {
  for (const auto& module : model->modules())
    if (auto* dropout = module->as<nn::DropoutImpl>()) dropout->options.p(p);
  config.hidden_dropout_prob = config.attention_probs_dropout_prob = p;
  config.classifier_dropout.reset();  // falls back to hidden_dropout_prob
}

c10::Device device_of(const nn::Module& module) {
  for (const auto& p : module.parameters()) return p.device();
  return c10::Device(c10::kCPU);
}

std::vector<std::pair<std::string, torch::Tensor>> named_weights(SequenceModel& model) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& item : model->named_parameters()) out.emplace_back(item.key(), item.value());
  return out;
}

}  // namespace dqe
