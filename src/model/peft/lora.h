// LoRA (Hu et al., 2021) and AdaLoRA (Zhang et al., 2023) adapters as Hugging Face PEFT
// describes them: each adapted Linear of the encoder computes W x + scaling * B A x (AdaLoRA:
// scaling * B (A * E) x, its SVD form), A [r, in] and B [out, r], under PEFT's names; which
// Linears a target name selects (PEFT's rule); PEFT's adapter_config.json. AdaLoRA's training
// (budget schedule, rank allocator, rank pattern) is adalora.h's.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "model/bert.h"
#include "model/peft/adapter.h"

namespace dqe {

// AdaLoRA as PEFT's AdaLoraConfig describes it: each update is P Λ Q in PEFT's names (lora_B
// [out, r], lora_E [r, 1], lora_A [r, in]) at init_r, pruned by importance to target_r per
// module on average over a cubic budget schedule (adalora.h).
struct AdaLoraSpec {
  int64_t init_r = 12;
  int64_t target_r = 8;
  // Steps without pruning at the start, and at the end with the final ranks fixed.
  int64_t tinit = 0;
  int64_t tfinal = 0;
  // Steps between two budget allocations.
  int64_t delta_t = 1;
  // Moving averages of the sensitivity and of its uncertainty.
  double beta1 = 0.85;
  double beta2 = 0.85;
  double orth_reg_weight = 0.5;
  // The run's optimizer steps (PEFT's total_step).
  int64_t total_step = 0;
  // The triplets kept per adapted module, by its Hugging Face name (PEFT's rank_pattern, whose
  // keys are "<module>.lora_E"); empty until the first allocation.
  std::map<std::string, std::vector<bool>> rank_pattern;
};

// A LoRA adapter as PEFT's adapter_config.json describes it (peft_type LORA, or ADALORA with
// adalora set).
// The largest lora_alpha read or trained (--lora-alpha's bound).
constexpr double kMaxLoraAlpha = 1e6;

class LoraSpec : public AdapterSpec {
 public:
  int64_t r = 8;
  double alpha = 16;
  // Dropout on the input of the update (training only).
  double dropout = 0.1;
  // rsLoRA's scaling, alpha / sqrt(r), instead of alpha / r (PEFT's use_rslora).
  bool rslora = false;
  // PEFT's target_modules as written: names that select a module when its name is one of
  // them or ends with "." + one of them; or, written as one string (target_pattern), a regular
  // expression that the whole name must match ("all-linear": every Linear). Empty: PEFT's
  // default for BERT, query and value.
  std::vector<std::string> target_modules;
  bool target_pattern = false;
  // PEFT's layers_to_transform (the layers whose modules target_modules may select; empty:
  // every layer) and layers_pattern (the name before a layer's index; empty: any).
  std::vector<int64_t> layers_to_transform;
  std::vector<std::string> layers_pattern;
  // Hugging Face names of the adapted Linears, in the model's order
  // ("bert.encoder.layer.0.attention.self.query").
  std::vector<std::string> modules;
  // AdaLoRA's form of the updates (PEFT's ADALORA adapters); r is then its init_r.
  std::optional<AdaLoraSpec> adalora;

  // alpha / r (rsLoRA: alpha / sqrt(r); AdaLoRA: alpha / (init_r + 1e-5), as PEFT's ranknum).
  double scaling() const;
  // Whether PEFT would adapt the Linear of this name ("bert.encoder.layer.0.attention.self.query"):
  // target_modules selects it and layers_to_transform keeps its layer. Throws ModelError naming
  // origin for a pattern that is not a regular expression.
  bool selects(const std::string& module, const std::string& origin) const;
  // target_modules and layers_to_transform as the log and errors show them.
  std::string targets_text() const;

  std::unique_ptr<AdapterSpec> clone() const override { return std::make_unique<LoraSpec>(*this); }
  std::string kind() const override { return adalora ? "adalora" : "lora"; }
  std::string peft_type() const override { return adalora ? "ADALORA" : "LORA"; }
  std::string describe() const override;
  std::shared_ptr<EncoderAdapterImpl> make_module(BertModelImpl& bert, const BertConfig& config) const override;
  nlohmann::json adapter_config(const std::vector<std::string>& modules_to_save, const BertConfig& base) const override;
  void read_tensors(std::map<std::string, torch::Tensor>& tensors, int64_t num_layers,
                    const std::string& origin) override;
  std::vector<std::pair<std::string, torch::Tensor>> tensors_to_save(
      std::vector<std::pair<std::string, torch::Tensor>> tensors) const override;
  void continue_with(const AdapterSpec& run) override;
};

// Reads PEFT's adapter_config.json of a LoRA or AdaLoRA adapter of a sequence classifier, as
// save_pretrained writes it: r, lora_alpha, lora_dropout, use_rslora, target_modules,
// base_model_name_or_path, and AdaLoRA's init_r, target_r, ..., rank_pattern. Throws
// ModelError naming origin for a LoRA variant dqe does not compute (biases, fan_in_fan_out,
// DoRA, per-module ranks). modules is left empty: the weights say which modules are adapted.
LoraSpec lora_spec_from_adapter_config(const nlohmann::json& j, const std::string& origin);
// The same as an AdapterKind reads it (adapter.h).
std::unique_ptr<AdapterSpec> read_lora_config(const nlohmann::json& j, const std::string& origin);

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

// The LoRA updates of a model: one LoraLinear per adapted Linear, registered under the
// Linear's name ("encoder.layer.0.attention.self.query.lora_A" below the part's "bert." prefix)
// and added to that Linear's output.
class LoraAdapterImpl : public EncoderAdapterImpl {
 public:
  // Throws ModelError for a module name that is not a Linear of the encoder.
  LoraAdapterImpl(BertModelImpl& bert, const LoraSpec& spec);

  torch::Tensor linear(size_t slot, const torch::Tensor& x, const torch::Tensor& y) override;
  void reset() override;
  // W += scaling * B A for every adapted Linear.
  void merge_into(BertModelImpl& bert) override;

  // By module name, in the encoder's order.
  std::vector<std::pair<std::string, LoraLinear>> updates;

 private:
  std::vector<LoraLinear> by_slot_;  // null where the Linear is not adapted
};

// The model's LoRA updates, or null when its adapter is of another kind or it has none.
LoraAdapterImpl* lora_adapter(SequenceModelImpl& model);

// The target names to offer: BERT's Linears by the ends of their Hugging Face names, and
// "all-linear".
const std::vector<std::string>& lora_target_names();

// The Linears of an encoder of num_layers layers that the targets select, by PEFT's rule: a
// module is selected when its name is a target or ends with "." + a target ("output.dense"
// selects the attention's output too, as in PEFT); "all-linear" alone selects every Linear of
// the encoder, the pooler's included (the classifier is a head, trained in full). Throws
// ConfigError naming --lora-targets for a target that selects nothing.
std::vector<std::string> lora_modules(const std::vector<std::string>& targets, int64_t num_layers);

// PEFT's target_modules for adapter_config.json: the targets as given, or for all-linear the
// selected modules' full names (what PEFT writes once it has expanded all-linear).
std::vector<std::string> peft_target_modules(const std::vector<std::string>& targets,
                                             const std::vector<std::string>& modules);

// The shape [out, in] of the encoder's Linear of that name.
std::pair<int64_t, int64_t> linear_shape(const BertConfig& config, const std::string& name);

// The modules an adapter file's lora_A/lora_B (AdaLoRA: and lora_E) tensors adapt, in the
// encoder's order. Throws ModelError naming origin and the tensor for one that adapts no
// Linear of the encoder.
std::vector<std::string> adapted_modules(const std::map<std::string, torch::Tensor>& tensors, int64_t num_layers,
                                         const std::string& origin);

}  // namespace dqe
