// Model and task configuration. BertConfig carries Hugging Face's config.json keys;
// TaskSpec is dqe's own "dqe" section of the same file (what the head predicts and how
// inputs are built), so a checkpoint directory describes itself completely.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/checks.h"
#include "base/json_depth.h"
#include "data/task_spec.h"
#include "io/json_file.h"

namespace dqe {

// BERT's dropout, for models that dqe builds from scratch.
constexpr double kDefaultDropout = 0.1;

struct BertConfig {
  int64_t vocab_size = 30522;
  int64_t hidden_size = 768;
  int64_t num_hidden_layers = 12;
  int64_t num_attention_heads = 12;
  int64_t intermediate_size = 3072;
  // "gelu" (erf), "gelu_new"/"gelu_pytorch_tanh" (tanh approximation) or "relu".
  std::string hidden_act = "gelu";
  double hidden_dropout_prob = kDefaultDropout;
  double attention_probs_dropout_prob = kDefaultDropout;
  int64_t max_position_embeddings = 512;
  int64_t type_vocab_size = 2;
  double layer_norm_eps = 1e-12;
  double initializer_range = 0.02;
  int64_t pad_token_id = 0;
  // Dropout before the head; hidden_dropout_prob when absent (as Hugging Face does).
  std::optional<double> classifier_dropout;

  // Throws ModelError (prefixed with origin) when sizes are inconsistent.
  void validate(const std::string& origin) const;
};




// AdaLoRA (Zhang et al., 2023) as PEFT's AdaLoraConfig describes it: each update is P Λ Q in
// PEFT's names (lora_B [out, r], lora_E [r, 1], lora_A [r, in]) at init_r, pruned by importance
// to target_r per module on average over a cubic budget schedule (model/peft/adalora.h).
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

// A LoRA adapter (Hu et al., 2021) as Hugging Face PEFT describes it in adapter_config.json,
// with the base model it adapts. Each adapted Linear computes W x + scaling * B A x, with A
// [r, in] and B [out, r].
struct LoraSpec {
  int64_t r = 8;
  double alpha = 16;
  // Dropout on the input of the update (training only).
  double dropout = 0.1;
  // rsLoRA's scaling, alpha / sqrt(r), instead of alpha / r (PEFT's use_rslora).
  bool rslora = false;
  // PEFT's target_modules as written: names that select a module when its name is one of
  // them or ends with "." + one of them.
  std::vector<std::string> target_modules;
  // Hugging Face names of the adapted Linears, in the model's order
  // ("bert.encoder.layer.0.attention.self.query").
  std::vector<std::string> modules;
  // The base: base_model_name_or_path (the path as given when the adapter was made), the
  // model directory it was loaded from (absolute), and a content hash of its encoder weights.
  // base_dir and base_hash are empty for an adapter that dqe did not write.
  std::string base;
  std::string base_dir;
  std::string base_hash;
  // AdaLoRA's form of the updates (PEFT's ADALORA adapters); r is then its init_r.
  std::optional<AdaLoraSpec> adalora;

  // alpha / r (rsLoRA: alpha / sqrt(r); AdaLoRA: alpha / (init_r + 1e-5), as PEFT's ranknum).
  double scaling() const;
};

// Reads PEFT's adapter_config.json (a LoRA or AdaLoRA adapter of a sequence classifier, as
// save_pretrained writes it): r, lora_alpha, lora_dropout, use_rslora, target_modules,
// base_model_name_or_path, and AdaLoRA's init_r, target_r, ..., rank_pattern.
// Throws ModelError naming origin for another peft_type or a LoRA variant dqe does not compute
// (biases, fan_in_fan_out, DoRA, per-module ranks). modules is left empty: the weights say
// which modules are adapted.
LoraSpec lora_spec_from_adapter_config(const nlohmann::json& j, const std::string& origin);
// adapter_config.json as PEFT writes it, with modules_to_save (the heads trained in full).
nlohmann::json adapter_config_json(const LoraSpec& spec, const std::vector<std::string>& modules_to_save);

// Bottleneck adapters (Houlsby et al., 2019), dqe's own kind of adapter: after the attention
// output and the feed-forward output Linear of every layer, h + up(act(down(h))) with down
// [size, hidden] and up [hidden, size] (model/peft/bottleneck.h). Recorded with its base as LoraSpec is.
struct BottleneckSpec {
  int64_t size = 64;
  // The base, as LoraSpec records it: the path as given, the directory it was loaded from
  // (absolute) and a content hash of its encoder weights.
  std::string base;
  std::string base_dir;
  std::string base_hash;
};

// Everything config.json holds.
struct ModelSpec {
  BertConfig bert;
  TaskSpec task;
  // Whether the file had a "dqe" section (false for a plain Hugging Face directory).
  bool has_dqe_section = false;
  // Written by `dqe pretrain`: an encoder with a masked-language-model head ("cls.*") and no
  // task head yet. Saved as "objective": "mlm"; TaskSpec then only says how inputs are built.
  bool mlm_encoder = false;
  // A LoRA adapter's directory: the weights are the adapter's (adapter_config.json and
  // adapter_model.safetensors) on top of its base's. config.json records the base in the
  // "dqe" section ("adapter"); the rest comes from adapter_config.json.
  std::optional<LoraSpec> lora;
  // A bottleneck adapter's directory: as for LoRA, adapter_config.json ("peft_type"
  // "BOTTLENECK", dqe's own) and adapter_model.safetensors on top of the recorded base.
  std::optional<BottleneckSpec> bottleneck;
};

// Reads DIR/config.json (and, for a Hugging Face directory, DIR/tokenizer_config.json for
// do_lower_case and model_max_length). Throws ModelError/IoError naming the file.
ModelSpec load_model_spec(const std::string& dir);
nlohmann::ordered_json to_json(const ModelSpec& spec);
ModelSpec model_spec_from_json(const nlohmann::json& j, const std::string& origin);



}  // namespace dqe
