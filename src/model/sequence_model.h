// The model dqe trains and runs: Hugging Face's BertForSequenceClassification (the encoder,
// model/bert.h, and a linear head) with side heads for the featurizer's side inputs, the
// fusion layers where they meet the text, and a parameter-efficient adapter (model/peft/).
// Each parameter has a role (model/roles.h); names are Hugging Face's.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <torch/torch.h>

#include "data/side_input.h"
#include "data/task_spec.h"
#include "model/bert.h"
#include "model/peft/adapter.h"
#include "model/roles.h"

namespace dqe {

// A side head: the MLP that encodes a side input (the pair's lexical features, a log's
// features, attributes or image vector). Under Fusion::kAdd its output is added to the logits;
// under kGate and kConcat it is the input's encoding, which meets the pooled text vector
// (FusionLayers). Its output layer starts at zero, so that at first the model is the text
// model alone.
struct SideHeadImpl : torch::nn::Module {
  SideHeadImpl(int64_t input_dim, int64_t num_outputs);
  torch::Tensor forward(const torch::Tensor& features);
  // PyTorch's default initialisation for the hidden layer (BERT's N(0, 0.02) would leave it
  // nearly flat on features in [0, 1]) and zeros for the output layer.
  void reset_side_head();

  // Registered as "0" and "2", the names of torch.nn.Sequential(Linear, GELU, Linear).
  torch::nn::Linear hidden{nullptr}, output{nullptr};
};
TORCH_MODULE(SideHead);

// Where the encoded side inputs meet the pooled text vector (registered as "fusion", role
// kSideHead: trained in full, as the heads are, under parameter-efficient fine-tuning).
// kGate: per side input s a gate g_s = sigmoid(W_s [pooled; e_s] + b_s) ("fusion.<s>_gate"),
// and the head reads pooled + sum_s g_s * e_s. kConcat: the logits gain
// "fusion.2"(gelu("fusion.0"([pooled; e_1; ...]))), "fusion.2" starting at zero.
struct FusionLayersImpl : torch::nn::Module {
  FusionLayersImpl(Fusion fusion, int64_t hidden, int64_t encoded, const SideInputDims& side_inputs, int64_t num_outputs);
  // Resets what BERT's initialisation set: the concatenation's output layer to zero.
  void reset_fusion();

  Fusion fusion;
  std::vector<torch::nn::Linear> gates;  // kGate, one per side input
  torch::nn::Linear hidden_layer{nullptr}, output{nullptr};  // kConcat
};
TORCH_MODULE(FusionLayers);

// The width of a side input's encoding under each fusion.
int64_t encoded_width(Fusion fusion, int64_t hidden, int64_t num_outputs);

struct ModelOutput {
  torch::Tensor logits;  // [batch, num_outputs]
  torch::Tensor pooled;  // [batch, hidden]
};

// BertForSequenceClassification plus side heads: encoder, dropout, a linear head with
// num_outputs logits, for each side input an MLP (added to the logits, or met by the fusion
// layers), and, given an adapter's spec, its module, which the encoder calls (the adapter part).
struct SequenceModelImpl : torch::nn::Module {
  SequenceModelImpl(const BertConfig& c, int64_t num_outputs, const SideInputDims& side_inputs = {},
                    const AdapterSpec* adapter = nullptr, Fusion fusion = Fusion::kAdd);

  // Logits and pooled vector. side: the batch's side input tensors by name, [batch, dim] each.
  ModelOutput run(const torch::Tensor& ids, const torch::Tensor& type_ids, const torch::Tensor& mask,
                  const std::map<std::string, torch::Tensor>& side = {});
  // The same from word embeddings (BertModel::embed, perturbed or not).
  ModelOutput run_embeds(const torch::Tensor& word_embeds, const torch::Tensor& type_ids, const torch::Tensor& mask,
                         const std::map<std::string, torch::Tensor>& side = {});
  // Logits of run().
  torch::Tensor forward(const torch::Tensor& ids, const torch::Tensor& type_ids, const torch::Tensor& mask,
                        const std::map<std::string, torch::Tensor>& side = {});

  // The parts in registration order, each with its role and name prefix.
  struct Part {
    Role role;
    std::string prefix;  // "bert.embeddings.", "classifier.", "lexical." ...
    torch::nn::Module* module;
  };
  std::vector<Part> parts();
  // Every parameter with its role, in registration order (the optimizer's order).
  std::vector<RoleParameter> role_parameters();
  // The side head reading `name`, or null.
  SideHead side_head(const std::string& name) const;
  const std::vector<std::pair<std::string, SideHead>>& side_heads() const { return side_heads_; }

  BertModel bert{nullptr};
  torch::nn::Dropout dropout{nullptr};
  torch::nn::Linear classifier{nullptr};
  // The adapter (registered as "adapter"; its parameters are named below "bert."), or null.
  std::shared_ptr<EncoderAdapterImpl> adapter;
  // Where the side inputs meet the text (kGate, kConcat with side inputs), or null.
  FusionLayers fusion{nullptr};
  // Training only: the probability that a whole side input is dropped from a line (its
  // encoding zeroed, as for a line that lacks it), so that the model learns to do without.
  double modality_dropout = 0.0;

 private:
  std::vector<std::pair<std::string, SideHead>> side_heads_;  // registered under their names
};
TORCH_MODULE(SequenceModel);

// Adds the adapter's module to a model without one (the adapter part), in its initial state: the
// model computes what it did.
void add_adapter(SequenceModel& model, const BertConfig& config, const AdapterSpec& spec);
// Folds the adapter into the encoder's weights and removes it: the model is then a plain one
// that computes what the adapted one did. Throws ModelError naming origin for a kind that cannot
// be folded, or weights that overflow when it is.
void merge_adapter(SequenceModel& model, const std::string& origin);

// The device of the module's first parameter (the CPU for a module without parameters).
c10::Device device_of(const torch::nn::Module& module);

}  // namespace dqe
