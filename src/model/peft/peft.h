// Hugging Face PEFT's LoRA adapters: which Linears a target name selects (PEFT's rule), the
// tensors of adapter_model.safetensors under PEFT's names, and the content hash that ties an
// adapter to its base. The model's LoRA part is model/model.h's; the directory layout model/model_dir.h's.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <torch/torch.h>

#include "model/model.h"
#include "model/model_spec.h"

namespace dqe {

constexpr const char* kAdapterConfigFile = "adapter_config.json";
constexpr const char* kAdapterWeightsFile = "adapter_model.safetensors";
// PEFT's prefix of every tensor name: its PeftModel wraps a LoraModel that wraps the model.
constexpr const char* kPeftPrefix = "base_model.model.";

// Whether dir holds a PEFT adapter (adapter_config.json).
bool is_adapter_dir(const std::string& dir);

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

// The heads an adapter trains in full and saves (PEFT's modules_to_save): "classifier" and
// the side heads.
std::vector<std::string> modules_to_save(SequenceModel& model);

// What adapter_model.safetensors holds: the LoRA updates (or the bottleneck adapters,
// model/peft/bottleneck.h) and the heads, under PEFT's names
// ("base_model.model.bert.encoder.layer.0.attention.self.query.lora_A.weight",
// "base_model.model.classifier.weight").
std::vector<std::pair<std::string, torch::Tensor>> adapter_tensors(SequenceModel& model);

// The modules an adapter file's lora_A/lora_B (AdaLoRA: and lora_E) tensors adapt, in the encoder's order. Throws
// ModelError naming origin and the tensor for one that adapts no Linear of the encoder.
std::vector<std::string> adapted_modules(const std::map<std::string, torch::Tensor>& tensors, int64_t num_layers,
                                         const std::string& origin);

// Copies an adapter file's tensors into a model built with its modules: every update (LoRA's or
// a bottleneck adapter's) must be
// there; heads in the file replace what the model holds (a head of another shape is left as
// it was when allow_new_head). Returns the heads' parameter names it loaded. Throws ModelError
// naming origin and the tensor for a missing, misshapen, non-finite or unknown one.
std::vector<std::string> load_adapter_tensors(SequenceModel& model, const std::map<std::string, torch::Tensor>& tensors,
                                              const std::string& origin, bool allow_new_head);

// A content hash of the model's encoder weights (embeddings, layers, pooler): their names,
// shapes and float32 values. An adapter records its base's and refuses a base whose differs.
std::string encoder_weights_hash(SequenceModel& model);

}  // namespace dqe
