#include "model/sequence_model.h"

#include "dqe/errors.h"

namespace dqe {
namespace nn = torch::nn;

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
                                     const AdapterSpec* adapter_spec, Fusion fusion_kind) {
  bert = register_module("bert", BertModel(c));
  dropout = register_module("dropout", nn::Dropout(c.classifier_dropout.value_or(c.hidden_dropout_prob)));
  classifier = register_module("classifier", nn::Linear(c.hidden_size, num_outputs));
  const int64_t encoded = encoded_width(fusion_kind, c.hidden_size, num_outputs);
  for (const auto& [name, dim] : side_inputs) side_heads_.emplace_back(name, register_module(name, SideHead(dim, encoded)));
  if (fusion_kind != Fusion::kAdd && !side_inputs.empty())
    fusion = register_module("fusion", FusionLayers(fusion_kind, c.hidden_size, encoded, side_inputs, num_outputs));
  if (adapter_spec) {
    adapter = register_module("adapter", adapter_spec->make_module(*bert, c));
    bert->adapter = adapter.get();
  }
}

std::vector<SequenceModelImpl::Part> SequenceModelImpl::parts() {
  std::vector<Part> out = {{Role::kEmbeddings, "bert.embeddings.", bert->embeddings.get()},
                           {Role::kEncoder, "bert.encoder.", bert->encoder},
                           {Role::kPooler, "bert.pooler.", bert->pooler},
                           {Role::kSequenceHead, "classifier.", classifier.get()}};
  for (auto& [name, head] : side_heads_) out.push_back({Role::kSideHead, name + ".", head.get()});
  if (fusion) out.push_back({Role::kSideHead, "fusion.", fusion.get()});
  if (adapter) out.push_back({Role::kAdapter, "bert.", adapter.get()});
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

void add_adapter(SequenceModel& model, const BertConfig& config, const AdapterSpec& spec) {
  if (model->adapter) throw ModelError("the model has an adapter already (a bug)");
  model->adapter = model->register_module("adapter", spec.make_module(*model->bert, config));
  model->bert->adapter = model->adapter.get();
}

void merge_adapter(SequenceModel& model, const std::string& origin) {
  if (!model->adapter) return;
  model->adapter->merge_into(*model->bert);
  // Finite updates on finite weights can still overflow float32 when added (a huge lora_alpha):
  // a model written with infinite weights would score nothing.
  for (const auto& p : model->bert->named_parameters())
    if (!torch::isfinite(p.value()).all().item<bool>())
      throw ModelError(origin + ": merging the adapter into its base gives infinite or NaN values in bert." + p.key() +
                       " (its updates are too large to fold into float32 weights)");
  model->bert->adapter = nullptr;
  model->unregister_module("adapter");
  model->adapter.reset();
}

c10::Device device_of(const nn::Module& module) {
  for (const auto& p : module.parameters()) return p.device();
  return c10::Device(c10::kCPU);
}

}  // namespace dqe
