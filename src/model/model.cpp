#include "model/model.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include <ATen/native/quantized/PackedParams.h>
#include <ATen/core/dispatch/Dispatcher.h>

#include "dqe/errors.h"

namespace dqe {
namespace nn = torch::nn;

std::string role_name(Role role) {
  switch (role) {
    case Role::kEmbeddings: return "embeddings";
    case Role::kEncoder: return "encoder";
    case Role::kPooler: return "pooler";
    case Role::kSequenceHead: return "sequence head";
    case Role::kSideHead: return "side head";
    case Role::kMlmHead: return "MLM head";
    case Role::kAdapter: return "adapter";
    case Role::kBottleneck: return "bottleneck adapter";
  }
  return "?";
}

namespace {

torch::Tensor activation(const std::string& act, const torch::Tensor& h) {
  if (act == "gelu") return torch::gelu(h);
  if (act == "relu") return torch::relu(h);
  return torch::gelu(h, "tanh");
}

// The parameters of module, prefixed, with BERT's decay rule: none on LayerNorm and biases.
void append_parameters(nn::Module& module, const std::string& prefix, Role role, std::vector<RoleParameter>& out) {
  for (const auto& item : module.named_modules(/*name_prefix=*/"", /*include_self=*/true)) {
    const bool norm = item.value()->as<nn::LayerNorm>() != nullptr;
    const std::string path = item.key().empty() ? prefix : prefix + item.key() + ".";
    for (const auto& p : item.value()->named_parameters(/*recurse=*/false))
      out.push_back({path + p.key(), p.value(), role, !norm && p.key() != "bias"});
  }
}

// BERT's initialisation of every Linear, Embedding and LayerNorm inside module.
void bert_init(nn::Module& module, double initializer_range, int64_t pad_token_id) {
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

bool starts_with(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }

// Maps a checkpoint's tensor name onto ours: adds the "bert." prefix of a bare BertModel's
// names and renames TensorFlow-era LayerNorm gamma/beta.
std::string canonical_name(std::string name) {
  auto ends_with = [&](const std::string& s) {
    return name.size() >= s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0;
  };
  if (ends_with("LayerNorm.gamma")) name.replace(name.size() - 5, 5, "weight");
  else if (ends_with("LayerNorm.beta")) name.replace(name.size() - 4, 4, "bias");
  for (const char* bare : {"embeddings.", "encoder.", "pooler."})
    if (starts_with(name, bare)) return "bert." + name;
  return name;
}

std::string shape_text(torch::IntArrayRef s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? "," : "") + std::to_string(s[i]);
  return out + "]";
}

bool is_head(Role role) { return role == Role::kSequenceHead || role == Role::kSideHead; }

// linear(x), plus its LoRA update when it has one. An int8 twin computes it instead when no
// gradient is wanted (inference) on the CPU.
torch::Tensor adapted(nn::Linear& linear, LoraLinear& lora, const Int8Slot& int8, const torch::Tensor& x) {
  torch::Tensor y = int8 && !torch::GradMode::is_enabled() && x.device().is_cpu() ? int8->forward(x) : linear->forward(x);
  return lora ? y + lora->forward(x) : y;
}

// The child of module named `name`, made as an empty holder when it does not exist yet.
std::shared_ptr<nn::Module> holder(nn::Module& module, const std::string& name) {
  for (const auto& child : module.named_children())
    if (child.key() == name) return child.value();
  return module.register_module(name, std::make_shared<nn::Module>());
}

}  // namespace

LoraLinearImpl::LoraLinearImpl(int64_t in_features, int64_t out_features, const LoraSpec& spec)
    : scaling(spec.scaling()), dropout(spec.dropout) {
  if (spec.adalora) {
    // Registered in PEFT's order (lora_E, lora_A, lora_B), the optimizer's order too.
    svd_E = register_parameter("lora_E", torch::zeros({spec.r, 1}));
    svd_A = register_parameter("lora_A", torch::zeros({spec.r, in_features}));
    svd_B = register_parameter("lora_B", torch::zeros({out_features, spec.r}));
  } else {
    lora_A = register_module("lora_A", nn::Linear(nn::LinearOptions(in_features, spec.r).bias(false)));
    lora_B = register_module("lora_B", nn::Linear(nn::LinearOptions(spec.r, out_features).bias(false)));
  }
  reset_lora();
}

torch::Tensor LoraLinearImpl::forward(const torch::Tensor& x) {
  const torch::Tensor in = dropout > 0 ? torch::dropout(x, dropout, is_training()) : x;
  if (is_adalora()) return torch::matmul(torch::matmul(in, (svd_A * svd_E).t()), svd_B.t()) * scaling;
  return lora_B(lora_A(in)) * scaling;
}

void LoraLinearImpl::reset_lora() {
  torch::NoGradGuard no_grad;
  if (is_adalora()) {
    svd_E.zero_();
    svd_A.normal_(0.0, 0.02);
    svd_B.normal_(0.0, 0.02);
    return;
  }
  nn::init::kaiming_uniform_(lora_A->weight, std::sqrt(5.0));
  lora_B->weight.zero_();
}

torch::Tensor LoraLinearImpl::delta_weight() const {
  if (is_adalora()) return torch::matmul(svd_B, svd_A * svd_E) * scaling;
  return torch::matmul(lora_B->weight, lora_A->weight) * scaling;
}

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

torch::Tensor BertEmbeddingsImpl::forward(const torch::Tensor& word_embeds, const torch::Tensor& type_ids) {
  auto positions = torch::arange(word_embeds.size(1), type_ids.options()).unsqueeze(0);
  auto x = word_embeds + position_embeddings(positions) + token_type_embeddings(type_ids);
  return dropout(LayerNorm(x));
}

struct Int8Linear::Packed {
  c10::intrusive_ptr<LinearPackedParamsBase> params;
  int64_t in_features = 0;
};

Int8Linear::Int8Linear(const torch::Tensor& int8_weight, const torch::Tensor& scales, const torch::Tensor& bias) {
  auto packed = std::make_shared<Packed>();
  packed->in_features = int8_weight.size(1);
  // Symmetric per-row int8 (model/quantize.h): zero points 0, the rows are axis 0.
  const torch::Tensor q = at::_make_per_channel_quantized_tensor(
      int8_weight.to(torch::kChar).contiguous(), scales.to(torch::kDouble).contiguous(),
      torch::zeros({int8_weight.size(0)}, torch::kLong), 0);
  static auto prepack =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("quantized::linear_prepack", "")
          .typed<c10::intrusive_ptr<LinearPackedParamsBase>(at::Tensor, c10::optional<at::Tensor>)>();
  packed->params = prepack.call(q, bias.defined() ? c10::optional<at::Tensor>(bias.to(torch::kFloat)) : c10::nullopt);
  packed_ = std::move(packed);
}

torch::Tensor Int8Linear::forward(const torch::Tensor& x) const {
  // The kernel takes float32 rows; under bf16 autocast the input is bf16.
  std::vector<int64_t> shape = x.sizes().vec();
  const torch::Tensor rows = x.to(torch::kFloat).reshape({-1, packed_->in_features}).contiguous();
  torch::Tensor y = packed_->params->apply_dynamic(rows, /*reduce_range=*/false);
  shape.back() = y.size(1);
  return y.view(shape);
}

std::string select_int8_engine() {
  const auto& engines = at::globalContext().supportedQEngines();
  if (std::find(engines.begin(), engines.end(), at::QEngine::ONEDNN) == engines.end()) return "";
  at::globalContext().setQEngine(at::QEngine::ONEDNN);
  return "onednn";
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
  auto q = split(adapted(query, query_lora, query_int8, x)), k = split(adapted(key, key_lora, key_int8, x)),
       v = split(adapted(value, value_lora, value_int8, x));
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
  torch::Tensor h = dropout(adapted(dense, dense_lora, dense_int8, x));
  if (adapter) h = h + adapter(h);
  return LayerNorm(h + residual);
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
  return output(activation(act, adapted(intermediate_dense, intermediate_lora, intermediate_int8, a)), a);
}

BertModelImpl::BertModelImpl(const BertConfig& c) {
  embeddings = register_module("embeddings", BertEmbeddings(c));
  auto encoder_holder = register_module("encoder", std::make_shared<nn::Module>());
  encoder = encoder_holder.get();
  layers = encoder_holder->register_module("layer", nn::ModuleList());
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) layers->push_back(BertLayer(c));
  auto pooler_holder = register_module("pooler", std::make_shared<nn::Module>());
  pooler = pooler_holder.get();
  pooler_dense = pooler_holder->register_module("dense", nn::Linear(c.hidden_size, c.hidden_size));
}

torch::Tensor BertModelImpl::embed(const torch::Tensor& ids) { return embeddings->embed(ids); }

torch::Tensor BertModelImpl::encode_embeds(const torch::Tensor& word_embeds, const torch::Tensor& type_ids,
                                           const torch::Tensor& mask) {
  auto x = embeddings(word_embeds, type_ids);
  // Padding gets the most negative float, so softmax gives it exactly zero weight.
  auto mask_add = (1.0 - mask.unsqueeze(1).unsqueeze(2).to(x.scalar_type())) *
                  std::numeric_limits<float>::lowest();
  for (const auto& layer : *layers) x = layer->as<BertLayer>()->forward(x, mask_add);
  return x;
}

torch::Tensor BertModelImpl::encode(const torch::Tensor& ids, const torch::Tensor& type_ids, const torch::Tensor& mask) {
  return encode_embeds(embed(ids), type_ids, mask);
}

torch::Tensor BertModelImpl::pool(const torch::Tensor& hidden) {
  return torch::tanh(adapted(pooler_dense, pooler_lora, pooler_int8, hidden.select(1, 0)));
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
    out.push_back({at + "attention.self.query", self.query, &self.query_lora, &self.query_int8});
    out.push_back({at + "attention.self.key", self.key, &self.key_lora, &self.key_int8});
    out.push_back({at + "attention.self.value", self.value, &self.value_lora, &self.value_int8});
    auto& attention_output = *layer->attention->output;
    out.push_back({at + "attention.output.dense", attention_output.dense, &attention_output.dense_lora,
                   &attention_output.dense_int8});
    out.push_back({at + "intermediate.dense", layer->intermediate_dense, &layer->intermediate_lora,
                   &layer->intermediate_int8});
    out.push_back({at + "output.dense", layer->output->dense, &layer->output->dense_lora, &layer->output->dense_int8});
  }
  out.push_back({"bert.pooler.dense", pooler_dense, &pooler_lora, &pooler_int8});
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

LoraAdapterImpl::LoraAdapterImpl(BertModelImpl& bert, const LoraSpec& spec) {
  std::vector<BertModelImpl::LinearSlot> slots = bert.linear_slots();
  for (const std::string& name : spec.modules)
    if (std::none_of(slots.begin(), slots.end(), [&](const auto& s) { return s.name == name; }))
      throw ModelError("LoRA: \"" + name + "\" is not a Linear of the encoder");
  for (auto& slot : slots) {
    if (std::find(spec.modules.begin(), spec.modules.end(), slot.name) == spec.modules.end()) continue;
    const auto& weight = slot.linear->weight;
    LoraLinear update(weight.size(1), weight.size(0), spec);
    // Registered under the Linear's name below "bert.", one holder module per dotted part.
    std::string path = slot.name.substr(std::string("bert.").size());
    nn::Module* parent = this;
    std::shared_ptr<nn::Module> keep;
    for (size_t dot; (dot = path.find('.')) != std::string::npos; path = path.substr(dot + 1)) {
      keep = holder(*parent, path.substr(0, dot));
      parent = keep.get();
    }
    parent->register_module(path, update);
    *slot.lora = update;
    updates.emplace_back(slot.name, update);
  }
}

SideHeadImpl::SideHeadImpl(int64_t input_dim, int64_t num_outputs) {
  hidden = register_module("0", nn::Linear(input_dim, 64));
  output = register_module("2", nn::Linear(64, num_outputs));
}

torch::Tensor SideHeadImpl::forward(const torch::Tensor& features) { return output(torch::gelu(hidden(features))); }

void SideHeadImpl::reset_side_head() {
  torch::NoGradGuard no_grad;
  hidden->reset_parameters();
  output->weight.zero_();
  output->bias.zero_();
}

namespace {
// The width of a side input's encoding under concatenation.
constexpr int64_t kConcatEncoding = 64;
}  // namespace

int64_t encoded_width(Fusion fusion, int64_t hidden, int64_t num_outputs) {
  switch (fusion) {
    case Fusion::kAdd: return num_outputs;
    case Fusion::kGate: return hidden;
    case Fusion::kConcat: return kConcatEncoding;
  }
  return num_outputs;
}

FusionLayersImpl::FusionLayersImpl(Fusion f, int64_t hidden, int64_t encoded, const SideInputDims& side_inputs,
                                   int64_t num_outputs)
    : fusion(f) {
  if (fusion == Fusion::kGate) {
    for (const auto& [name, dim] : side_inputs) gates.push_back(register_module(name + "_gate", nn::Linear(2 * hidden, hidden)));
  } else if (fusion == Fusion::kConcat) {
    const int64_t in = hidden + encoded * static_cast<int64_t>(side_inputs.size());
    hidden_layer = register_module("0", nn::Linear(in, hidden));
    output = register_module("2", nn::Linear(hidden, num_outputs));
  }
}

void FusionLayersImpl::reset_fusion() {
  torch::NoGradGuard no_grad;
  if (output) {
    output->weight.zero_();
    output->bias.zero_();
  }
}

SequenceModelImpl::SequenceModelImpl(const BertConfig& c, int64_t num_outputs, const SideInputDims& side_inputs,
                                     const std::optional<LoraSpec>& lora_spec, Fusion fusion_kind) {
  bert = register_module("bert", BertModel(c));
  dropout = register_module("dropout", nn::Dropout(c.classifier_dropout.value_or(c.hidden_dropout_prob)));
  classifier = register_module("classifier", nn::Linear(c.hidden_size, num_outputs));
  const int64_t encoded = encoded_width(fusion_kind, c.hidden_size, num_outputs);
  for (const auto& [name, dim] : side_inputs) side_heads_.emplace_back(name, register_module(name, SideHead(dim, encoded)));
  if (fusion_kind != Fusion::kAdd && !side_inputs.empty())
    fusion = register_module("fusion", FusionLayers(fusion_kind, c.hidden_size, encoded, side_inputs, num_outputs));
  if (lora_spec) lora = register_module("lora", LoraAdapter(*bert, *lora_spec));
}

std::vector<SequenceModelImpl::Part> SequenceModelImpl::parts() {
  std::vector<Part> out = {{Role::kEmbeddings, "bert.embeddings.", bert->embeddings.get()},
                           {Role::kEncoder, "bert.encoder.", bert->encoder},
                           {Role::kPooler, "bert.pooler.", bert->pooler},
                           {Role::kSequenceHead, "classifier.", classifier.get()}};
  for (auto& [name, head] : side_heads_) out.push_back({Role::kSideHead, name + ".", head.get()});
  if (fusion) out.push_back({Role::kSideHead, "fusion.", fusion.get()});
  if (lora) out.push_back({Role::kAdapter, "bert.", lora.get()});
  if (bottleneck) out.push_back({Role::kBottleneck, "bert.", bottleneck.get()});
  return out;
}

std::vector<RoleParameter> SequenceModelImpl::role_parameters() {
  std::vector<RoleParameter> out;
  for (const Part& part : parts()) append_parameters(*part.module, part.prefix, part.role, out);
  return out;
}

SideHead SequenceModelImpl::side_head(const std::string& name) const {
  for (const auto& [n, head] : side_heads_)
    if (n == name) return head;
  return SideHead{nullptr};
}

ModelOutput SequenceModelImpl::run_embeds(const torch::Tensor& word_embeds, const torch::Tensor& type_ids,
                                          const torch::Tensor& mask, const std::map<std::string, torch::Tensor>& side) {
  ModelOutput out;
  out.pooled = bert->pool(bert->encode_embeds(word_embeds, type_ids, mask));
  // Each side input's encoding, zeroed on the lines that lack the input (and, in training,
  // on those that modality dropout drops it from).
  std::vector<torch::Tensor> encoded;
  for (auto& [name, head] : side_heads_) {
    auto it = side.find(name);
    if (it == side.end() || !it->second.defined())
      throw ModelError("this model reads the side input \"" + name + "\", which the batch does not have");
    torch::Tensor e = head->forward(it->second).to(out.pooled.scalar_type());
    if (auto present = side.find(name + kPresenceSuffix); present != side.end())
      e = e * present->second.to(e.scalar_type());
    if (is_training() && modality_dropout > 0)
      e = e * torch::bernoulli(torch::full({e.size(0), 1}, 1.0 - modality_dropout, e.options()));
    encoded.push_back(e);
  }
  if (!fusion) {
    out.logits = classifier(dropout(out.pooled));
    for (const auto& e : encoded) out.logits = out.logits + e.to(out.logits.scalar_type());
  } else if (fusion->fusion == Fusion::kGate) {
    torch::Tensor h = out.pooled;
    for (size_t s = 0; s < encoded.size(); ++s) {
      const torch::Tensor g = torch::sigmoid(fusion->gates[s](torch::cat({out.pooled, encoded[s]}, 1)));
      h = h + g.to(h.scalar_type()) * encoded[s];
    }
    out.logits = classifier(dropout(h));
  } else {
    std::vector<torch::Tensor> parts = {out.pooled};
    for (const auto& e : encoded) parts.push_back(e);
    out.logits = classifier(dropout(out.pooled));
    const torch::Tensor z = torch::gelu(fusion->hidden_layer(torch::cat(parts, 1)));
    out.logits = out.logits + fusion->output(dropout(z)).to(out.logits.scalar_type());
  }
  return out;
}

ModelOutput SequenceModelImpl::run(const torch::Tensor& ids, const torch::Tensor& type_ids, const torch::Tensor& mask,
                                   const std::map<std::string, torch::Tensor>& side) {
  return run_embeds(bert->embed(ids), type_ids, mask, side);
}

torch::Tensor SequenceModelImpl::forward(const torch::Tensor& ids, const torch::Tensor& type_ids,
                                         const torch::Tensor& mask, const std::map<std::string, torch::Tensor>& side) {
  return run(ids, type_ids, mask, side).logits;
}

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

void init_weights(SequenceModel& model, const BertConfig& config) {
  for (const auto& part : model->parts())
    if (part.role != Role::kAdapter && part.role != Role::kBottleneck)
      bert_init(*part.module, config.initializer_range, config.pad_token_id);
  for (auto [name, head] : model->side_heads()) head->reset_side_head();
  if (model->fusion) model->fusion->reset_fusion();
  if (model->lora)
    for (auto& [name, update] : model->lora->updates) update->reset_lora();
  if (model->bottleneck)
    for (auto& [name, adapter] : model->bottleneck->adapters) adapter->reset_adapter();
}

void init_weights(BertLmHead& head, const BertConfig& config) {
  bert_init(*head, config.initializer_range, config.pad_token_id);
}

LoadReport load_weights(SequenceModel& model, std::map<std::string, torch::Tensor> tensors,
                        const std::string& origin, bool allow_new_head) {
  std::map<std::string, torch::Tensor> by_name;
  for (auto& [name, t] : tensors) by_name[canonical_name(name)] = std::move(t);

  LoadReport report;
  std::vector<const RoleParameter*> missing_heads;
  const std::vector<RoleParameter> params = model->role_parameters();
  torch::NoGradGuard no_grad;
  for (const RoleParameter& p : params) {
    torch::Tensor param = p.tensor;
    auto it = by_name.find(p.name);
    if (it == by_name.end()) {
      if (!is_head(p.role) && p.role != Role::kPooler && p.role != Role::kAdapter && p.role != Role::kBottleneck)
        throw ModelError(origin + ": missing tensor \"" + p.name + "\"");
      report.missing.push_back(p.name);
      if (is_head(p.role)) missing_heads.push_back(&p);
      continue;
    }
    const bool widen_types = allow_new_head && p.name == "bert.embeddings.token_type_embeddings.weight" &&
                             it->second.dim() == 2 && it->second.size(1) == param.size(1) &&
                             it->second.size(0) < param.size(0);
    if (widen_types) {
      // New match types start as copies of the plain segment types, so the pretrained
      // model's behaviour is unchanged until fine-tuning teaches it the difference.
      for (int64_t row = 0; row < param.size(0); ++row) param[row].copy_(it->second[row % it->second.size(0)]);
    } else if (it->second.sizes() != param.sizes()) {
      if (!is_head(p.role) || !allow_new_head)
        throw ModelError(origin + ": tensor \"" + p.name + "\" has shape " + shape_text(it->second.sizes()) +
                         " but the config needs " + shape_text(param.sizes()));
      report.missing.push_back(p.name);
    } else {
      if (!torch::isfinite(it->second).all().item<bool>())
        throw ModelError(origin + ": tensor \"" + p.name + "\" holds NaN or infinite values");
      param.copy_(it->second.to(param.dtype()));
    }
    by_name.erase(it);
  }
  if (!allow_new_head) {
    for (const RoleParameter* p : missing_heads) {
      if (p->role == Role::kSequenceHead) throw ModelError(origin + ": has no classifier head");
      const std::string side = p->name.substr(0, p->name.find('.'));
      throw ModelError(origin + ": the config asks for the side input \"" + side + "\" but the " + side +
                       ".* weights are missing");
    }
  }
  for (const auto& [name, t] : by_name)
    if (name != "bert.embeddings.position_ids") report.unexpected.push_back(name);
  return report;
}

std::vector<std::pair<std::string, torch::Tensor>> checkpoint_weights(SequenceModel& model, bool mlm_encoder) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (auto& p : model->role_parameters())
    if (p.role != Role::kAdapter && p.role != Role::kBottleneck && !(mlm_encoder && p.role == Role::kSequenceHead))
      out.emplace_back(p.name, p.tensor);
  return out;
}

void set_trainable(SequenceModel& model, const std::vector<Role>& roles, bool trainable) {
  for (auto& p : model->role_parameters())
    if (std::find(roles.begin(), roles.end(), p.role) != roles.end()) p.tensor.requires_grad_(trainable);
}

int64_t share_encoder_weights(SequenceModel& from, SequenceModel& model) {
  auto is_base = [](Role r) { return r == Role::kEmbeddings || r == Role::kEncoder || r == Role::kPooler; };
  std::map<std::string, torch::Tensor> source;
  for (auto& p : from->role_parameters())
    if (is_base(p.role)) source.emplace(p.name, p.tensor);
  torch::NoGradGuard no_grad;
  int64_t shared = 0;
  for (auto& p : model->role_parameters()) {
    if (!is_base(p.role)) continue;
    auto it = source.find(p.name);
    if (it == source.end() || !it->second.sizes().equals(p.tensor.sizes()) ||
        it->second.scalar_type() != p.tensor.scalar_type())
      throw ModelError("cannot share the base weight " + p.name + " between two models of different shapes (a bug)");
    if (p.tensor.is_same(it->second) || p.tensor.data_ptr() == it->second.data_ptr()) continue;
    shared += p.tensor.numel() * static_cast<int64_t>(p.tensor.element_size());
    p.tensor.set_data(it->second);
  }
  return shared;
}

void merge_lora(SequenceModel& model) {
  if (!model->lora) return;
  torch::NoGradGuard no_grad;
  for (auto& slot : model->bert->linear_slots()) {
    if (!*slot.lora) continue;
    slot.linear->weight.add_((*slot.lora)->delta_weight().to(slot.linear->weight.dtype()));
    *slot.lora = LoraLinear{nullptr};
  }
  model->unregister_module("lora");
  model->lora = LoraAdapter{nullptr};
}

void add_bottleneck_adapters(SequenceModel& model, const BertConfig& config, const BottleneckSpec& spec) {
  if (model->lora || model->bottleneck) throw ModelError("bottleneck adapters: the model has adapters already (a bug)");
  model->bottleneck = model->register_module("bottleneck", BottleneckAdapters(*model->bert, config, spec));
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

}  // namespace dqe
