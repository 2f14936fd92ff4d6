// BERT as parts: an encoder (embeddings, transformer layers, pooler), a sequence head, side
// heads for the featurizer's side inputs (data/lexical.h), LoRA updates beside the encoder's Linears
// (an adapter) or bottleneck adapters after them (model/peft/bottleneck.h), and the masked-language-model
// head. Each
// parameter has a role, and the role, not a name prefix, decides how it is initialised,
// whether it must be in a file being loaded, whether it is saved, frozen and decayed.
// Registered module names are Hugging Face's BertForSequenceClassification / BertForMaskedLM
// names ("bert.encoder.layer.0.attention.self.query.weight", "classifier.weight",
// "cls.predictions.bias"): those names are the checkpoint format.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <torch/torch.h>

#include "data/side_input.h"
#include "model/model_spec.h"
#include "model/peft/bottleneck.h"

namespace dqe {

// What a parameter is for.
enum class Role {
  kEmbeddings,    // bert.embeddings.*
  kEncoder,       // bert.encoder.*: the transformer layers
  kPooler,        // bert.pooler.*: tanh(dense([CLS]))
  kSequenceHead,  // classifier.*: the task's logits
  kSideHead,      // one per side input ("lexical.*"): added to the logits
  kMlmHead,       // cls.predictions.*: pretraining only
  kAdapter,       // LoRA's updates beside frozen Linears ("bert.encoder.layer.0.attention.self.query.lora_A.weight";
                  // AdaLoRA's "...query.lora_A", "...query.lora_E", "...query.lora_B")
  kBottleneck,    // bottleneck adapters after frozen Linears ("bert.encoder.layer.0.output.adapter.down.weight")
};
std::string role_name(Role role);

struct RoleParameter {
  std::string name;  // Hugging Face name
  torch::Tensor tensor;
  Role role;
  // AdamW's weight decay applies (not to biases and LayerNorm, as BERT training does).
  bool decay;
};

// LoRA's update beside a Linear (PEFT's lora.Linear): scaling * B(A(dropout(x))), with A
// [r, in] and B [out, r] registered as "lora_A" and "lora_B", PEFT's names. With an AdaLoRA
// spec it is PEFT's adalora.SVDLinear instead: scaling * dropout(x) (A * E)^T B^T, the
// parameters svd_A [r, in], svd_E [r, 1] and svd_B [out, r] registered as "lora_A", "lora_E"
// and "lora_B" (PEFT's names, without ".weight"), and lora_A, lora_B left null.
struct LoraLinearImpl : torch::nn::Module {
  LoraLinearImpl(int64_t in_features, int64_t out_features, const LoraSpec& spec);
  torch::Tensor forward(const torch::Tensor& x);
  // PEFT's initialisation: A as torch.nn.Linear's default (kaiming-uniform, a = sqrt(5)) and
  // B zero, so that the update starts at zero and the model at first is its base. AdaLoRA's:
  // E zero, A and B drawn from N(0, 0.02).
  void reset_lora();
  // scaling * B A (AdaLoRA: scaling * B (A * E)), the update in the shape of the Linear's weight.
  torch::Tensor delta_weight() const;
  bool is_adalora() const { return svd_E.defined(); }

  torch::nn::Linear lora_A{nullptr}, lora_B{nullptr};
  torch::Tensor svd_A, svd_E, svd_B;
  double scaling;
  // Applied functionally, so that set_dropout (the encoder's dropout) leaves it alone.
  double dropout;
};
TORCH_MODULE(LoraLinear);

// A Linear's int8 twin, for inference: the weight as int8 with one scale per output row (an
// int8 export's), packed once for LibTorch's quantized engine, and run by its dynamic int8
// linear (the input quantized per call, an int8 matmul, a float32 output). The float Linear
// beside it stays, for training and for passes that need gradients.
class Int8Linear {
 public:
  Int8Linear(const torch::Tensor& int8_weight, const torch::Tensor& scales, const torch::Tensor& bias);
  torch::Tensor forward(const torch::Tensor& x) const;

 private:
  struct Packed;
  std::shared_ptr<const Packed> packed_;
};
using Int8Slot = std::shared_ptr<const Int8Linear>;

// The quantized engine Int8Linear runs on: onednn where this LibTorch has it (x86), else
// none (""), and int8 weights are then dequantized and run in float32. Selects it.
std::string select_int8_engine();

struct BertEmbeddingsImpl : torch::nn::Module {
  explicit BertEmbeddingsImpl(const BertConfig& c);
  // Word embeddings of the ids, [batch, time, hidden]: what adversarial training perturbs.
  torch::Tensor embed(const torch::Tensor& ids);
  // Adds position and token type embeddings to word embeddings, then LayerNorm and dropout.
  torch::Tensor forward(const torch::Tensor& word_embeds, const torch::Tensor& type_ids);

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
  // LoRA updates of the Linears, when adapted (registered in the model's adapter part, not here).
  LoraLinear query_lora{nullptr}, key_lora{nullptr}, value_lora{nullptr};
  // The Linears' int8 twins, when an int8 model is loaded for inference.
  Int8Slot query_int8, key_int8, value_int8;
};
TORCH_MODULE(BertSelfAttention);

// Linear, dropout, then LayerNorm of the sum with the residual (HF's BertSelfOutput and BertOutput);
// a bottleneck adapter, when there is one, adds its output after the dropout.
struct BertAddNormImpl : torch::nn::Module {
  BertAddNormImpl(const BertConfig& c, int64_t fan_in);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& residual);

  torch::nn::Linear dense{nullptr};
  torch::nn::LayerNorm LayerNorm{nullptr};
  torch::nn::Dropout dropout{nullptr};
  LoraLinear dense_lora{nullptr};
  Int8Slot dense_int8;
  BottleneckAdapter adapter{nullptr};  // registered in the model's bottleneck part, not here
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
  LoraLinear intermediate_lora{nullptr};
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
  // ("bert.encoder.layer.0.attention.self.query"), with the slots of its LoRA update and of
  // its int8 twin.
  struct LinearSlot {
    std::string name;
    torch::nn::Linear linear;
    LoraLinear* lora;
    Int8Slot* int8;
  };
  // Every Linear of the encoder, in registration order.
  std::vector<LinearSlot> linear_slots();

  BertEmbeddings embeddings{nullptr};
  torch::nn::Module* encoder = nullptr;  // holder of "encoder.layer"
  torch::nn::ModuleList layers{nullptr};
  torch::nn::Module* pooler = nullptr;  // holder of "pooler.dense"
  torch::nn::Linear pooler_dense{nullptr};
  LoraLinear pooler_lora{nullptr};
  Int8Slot pooler_int8;
};
TORCH_MODULE(BertModel);

// The Hugging Face names of every Linear of a BERT encoder with this many layers, in
// registration order (what BertModel::linear_slots names).
std::vector<std::string> encoder_linear_names(int64_t num_layers);

// The LoRA updates of a model: one LoraLinear per adapted Linear, registered under the
// Linear's name ("encoder.layer.0.attention.self.query.lora_A" below the part's "bert." prefix)
// and attached to the Linear's slot, so that the encoder adds it to the Linear's output.
struct LoraAdapterImpl : torch::nn::Module {
  // Throws ModelError for a module name that is not a Linear of the encoder.
  LoraAdapterImpl(BertModelImpl& bert, const LoraSpec& spec);

  // By module name, in the encoder's order.
  std::vector<std::pair<std::string, LoraLinear>> updates;
};
TORCH_MODULE(LoraAdapter);

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
// num_outputs logits, for each side input an MLP added to the logits, and, given a LoraSpec,
// LoRA updates beside the Linears it names (the adapter part).
struct SequenceModelImpl : torch::nn::Module {
  SequenceModelImpl(const BertConfig& c, int64_t num_outputs, const SideInputDims& side_inputs = {},
                    const std::optional<LoraSpec>& lora = std::nullopt, Fusion fusion = Fusion::kAdd);

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
  // The LoRA updates (registered as "lora"), or null.
  LoraAdapter lora{nullptr};
  // The bottleneck adapters (registered as "bottleneck", see add_bottleneck_adapters), or null.
  BottleneckAdapters bottleneck{nullptr};
  // Where the side inputs meet the text (kGate, kConcat with side inputs), or null.
  FusionLayers fusion{nullptr};
  // Training only: the probability that a whole side input is dropped from a line (its
  // encoding zeroed, as for a line that lacks it), so that the model learns to do without.
  double modality_dropout = 0.0;

 private:
  std::vector<std::pair<std::string, SideHead>> side_heads_;  // registered under their names
};
TORCH_MODULE(SequenceModel);

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

// BERT's initialisation by role: N(0, initializer_range) for the Linear and Embedding weights
// of the encoder and heads (the padding row zeroed), zero biases, LayerNorm weight 1 and bias
// 0; side heads then get SideHead::reset_side_head() and LoRA updates LoraLinear::reset_lora().
void init_weights(SequenceModel& model, const BertConfig& config);
void init_weights(BertLmHead& head, const BertConfig& config);

struct LoadReport {
  std::vector<std::string> missing;     // parameters left at their initial values
  std::vector<std::string> unexpected;  // tensors in the file that the model does not use
};

// Copies tensors into the model by Hugging Face name. Accepts names with or without the
// "bert." prefix and the old "gamma"/"beta" LayerNorm names. Embeddings and encoder must be
// in the file; a missing pooler or LoRA update (an adapter is in its own file) is reported. Heads (sequence and side) missing or with another
// shape are allowed when allow_new_head (they stay as initialised), and so are token type
// embeddings with fewer rows than the config (widened, see TaskSpec::match_types); anything
// else throws ModelError naming origin and the tensor.
LoadReport load_weights(SequenceModel& model, std::map<std::string, torch::Tensor> tensors,
                        const std::string& origin, bool allow_new_head);

// The tensors a checkpoint saves, by Hugging Face name: every role but the adapter (saved in
// its own file, see model/peft/peft.h) and, for a pretrained encoder (mlm_encoder: its classifier was
// never trained), the sequence head.
std::vector<std::pair<std::string, torch::Tensor>> checkpoint_weights(SequenceModel& model, bool mlm_encoder);

// Sets requires_grad of every parameter with one of these roles.
void set_trainable(SequenceModel& model, const std::vector<Role>& roles, bool trainable);

// Makes `model` use `from`'s encoder weights (embeddings, layers and pooler: the same tensors,
// not copies), so that several adapters of one base hold the base once in memory. The caller
// vouches that both were loaded from the same base (same directory and weights hash); shapes
// and dtypes are checked. Shared weights must not be written afterwards (merge_lora would
// change every sharer's base). Returns the bytes that are no longer held twice.
int64_t share_encoder_weights(SequenceModel& from, SequenceModel& model);

// Folds the LoRA updates into the Linears they adapt (W += scaling * B A) and removes the
// adapter part: the model is then a plain one that computes what the adapted one did.
void merge_lora(SequenceModel& model);

// Gives a model without adapters bottleneck adapters of spec.size after the attention output and
// the feed-forward output of every layer (registered as "bottleneck", role kBottleneck), up at
// zero: the model computes what it did. Call before init_weights, which resets them.
void add_bottleneck_adapters(SequenceModel& model, const BertConfig& config, const BottleneckSpec& spec);

// Sets every dropout probability of the model (hidden states, attention and classifier) to p
// and records it in config, so that saved checkpoints carry it.
void set_dropout(SequenceModel& model, BertConfig& config, double p);

// The device of the module's first parameter (the CPU for a module without parameters).
c10::Device device_of(const torch::nn::Module& module);

}  // namespace dqe
