// Parameter-efficient adapters on one interface. An adapter's directory holds Hugging Face
// PEFT's adapter_config.json and adapter_model.safetensors (its own parameters and the heads,
// under PEFT's names) on top of a base model, which it records (path, directory, weights hash).
// Each kind (LoRA and AdaLoRA in lora.h, bottleneck adapters in bottleneck.h, prefix tuning in
// prefix.h) is an
// AdapterSpec that reads and writes its adapter_config.json and builds the module the encoder
// calls (model/bert.h, EncoderAdapterImpl); adapter_kinds() lists them, so that a new kind is a
// new file and one line there.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "model/bert_config.h"

namespace dqe {

class EncoderAdapterImpl;
struct BertModelImpl;
struct SequenceModelImpl;

constexpr const char* kAdapterConfigFile = "adapter_config.json";
constexpr const char* kAdapterWeightsFile = "adapter_model.safetensors";
// PEFT's prefix of every tensor name: its PeftModel wraps a LoraModel that wraps the model.
constexpr const char* kPeftPrefix = "base_model.model.";

// What an adapter records of the base it adapts.
struct BaseRecord {
  // base_model_name_or_path: the path as given when the adapter was made.
  std::string path;
  // The model directory it was loaded from (absolute); empty for an adapter dqe did not write.
  std::string dir;
  // A content hash of its encoder weights (encoder_weights_hash); empty when not recorded.
  std::string hash;
};

// One adapter: its kind, settings and base.
class AdapterSpec {
 public:
  virtual ~AdapterSpec() = default;
  virtual std::unique_ptr<AdapterSpec> clone() const = 0;

  // The --peft name of the kind: "lora", "adalora", "adapter".
  virtual std::string kind() const = 0;
  // PEFT's peft_type ("LORA", "ADALORA"; dqe's own kinds have their own: "BOTTLENECK").
  virtual std::string peft_type() const = 0;
  // What it is, for the log: "LoRA r 8 alpha 16 dropout 0.1 on 8 Linears (query,value)".
  virtual std::string describe() const = 0;

  // The module the encoder calls, in its initial state (a no-op on the base).
  virtual std::shared_ptr<EncoderAdapterImpl> make_module(BertModelImpl& bert, const BertConfig& config) const = 0;
  // Throws ModelError naming origin when the adapter does not fit a base of this shape.
  virtual void check_base(const BertConfig& base, const std::string& origin) const {}
  // Whether a new adapter of the kind leaves its base's outputs as they were (a prefix does not:
  // its virtual tokens take attention and positions from the first step on).
  virtual bool starts_as_base() const { return true; }
  // Position ids the adapter takes before the text's (prefix tuning: its virtual tokens), which
  // the text then cannot use: max_len is at most max_position_embeddings less these.
  virtual int64_t positions_taken() const { return 0; }

  // adapter_config.json as written, with PEFT's modules_to_save (the heads trained in full).
  virtual nlohmann::json adapter_config(const std::vector<std::string>& modules_to_save, const BertConfig& base) const = 0;
  // An adapter file's tensors (their saved names) as loaded into a base of num_layers layers:
  // what the file says of the spec is filled in (LoRA: the adapted modules), and the tensors
  // are put in the model's shapes (AdaLoRA: expanded to init_r). Throws ModelError naming origin.
  virtual void read_tensors(std::map<std::string, torch::Tensor>& tensors, int64_t num_layers,
                            const std::string& origin) {}
  // The tensors as saved (AdaLoRA: resized by its rank pattern).
  virtual std::vector<std::pair<std::string, torch::Tensor>> tensors_to_save(
      std::vector<std::pair<std::string, torch::Tensor>> tensors) const {
    return tensors;
  }

  // Why the adapter cannot be folded into its base's weights, or "" when it can: a phrase that
  // follows the adapter's name ("holds bottleneck adapters, which are nonlinear ...").
  virtual std::string why_not_mergeable() const { return ""; }
  // An adapter that a run continues takes these of the run's own settings (LoRA: its dropout).
  virtual void continue_with(const AdapterSpec& run) {}

  BaseRecord base;
};

// An adapter spec held by value: copies clone it.
class AdapterSpecPtr {
 public:
  AdapterSpecPtr() = default;
  template <typename T>
  AdapterSpecPtr(std::unique_ptr<T> spec) : spec_(std::move(spec)) {}  // NOLINT: implicit on purpose
  // A copy of spec.
  explicit AdapterSpecPtr(const AdapterSpec& spec) : spec_(spec.clone()) {}
  AdapterSpecPtr(const AdapterSpecPtr& other) : spec_(other.spec_ ? other.spec_->clone() : nullptr) {}
  AdapterSpecPtr(AdapterSpecPtr&&) noexcept = default;
  AdapterSpecPtr& operator=(const AdapterSpecPtr& other) {
    if (this != &other) spec_ = other.spec_ ? other.spec_->clone() : nullptr;
    return *this;
  }
  AdapterSpecPtr& operator=(AdapterSpecPtr&&) noexcept = default;

  explicit operator bool() const { return spec_ != nullptr; }
  AdapterSpec* operator->() const { return spec_.get(); }
  AdapterSpec& operator*() const { return *spec_; }
  AdapterSpec* get() const { return spec_.get(); }
  void reset() { spec_.reset(); }
  // The spec as its kind's type, or null.
  template <typename T>
  T* as() const {
    return dynamic_cast<T*>(spec_.get());
  }

 private:
  std::unique_ptr<AdapterSpec> spec_;
};

// A kind of adapter: its names and how its adapter_config.json is read.
struct AdapterKind {
  std::string name;       // --peft
  std::string peft_type;  // adapter_config.json's "peft_type"
  // Reads an adapter_config.json of this kind; throws ModelError naming origin.
  std::unique_ptr<AdapterSpec> (*read)(const nlohmann::json& config, const std::string& origin);
  // An adapter of this kind with its default settings (what config.json's record of an
  // adapter holds until its adapter_config.json is read).
  std::unique_ptr<AdapterSpec> (*make)();
  // An adapter of this kind made by dqe has its own config.json (the task and inputs) beside
  // its adapter_config.json; one of PEFT's kinds written by PEFT may not, and takes its base's.
  bool dqe_only;
};

// Every kind, in --peft's order.
const std::vector<AdapterKind>& adapter_kinds();
// The kind of a peft_type, or null.
const AdapterKind* adapter_kind_of_peft_type(const std::string& peft_type);
// The peft_types dqe reads: "LORA, ADALORA, BOTTLENECK".
std::string known_peft_types();

// Reads adapter_config.json: the kind its peft_type names. Throws ModelError naming origin for
// another peft_type or a task_type other than SEQ_CLS.
std::unique_ptr<AdapterSpec> read_adapter_config(const nlohmann::json& config, const std::string& origin);

// Whether dir holds a PEFT adapter (adapter_config.json).
bool is_adapter_dir(const std::string& dir);

// The heads an adapter trains in full and saves (PEFT's modules_to_save): "classifier", the
// side heads and the fusion layers.
std::vector<std::string> modules_to_save(SequenceModelImpl& model);

// What adapter_model.safetensors holds: the adapter's own parameters and the heads, under
// PEFT's names ("base_model.model.bert.encoder.layer.0.attention.self.query.lora_A.weight",
// "base_model.model.classifier.weight").
std::vector<std::pair<std::string, torch::Tensor>> adapter_tensors(SequenceModelImpl& model);

// Copies an adapter file's tensors into a model built with its adapter: every adapter
// parameter must be there; heads in the file replace what the model holds (a head of another
// shape is left as it was when allow_new_head). Returns the heads' parameter names it loaded.
// Throws ModelError naming origin and the tensor for a missing, misshapen, non-finite or
// unknown one.
std::vector<std::string> load_adapter_tensors(SequenceModelImpl& model,
                                              const std::map<std::string, torch::Tensor>& tensors,
                                              const std::string& origin, bool allow_new_head);

// A content hash of the model's encoder weights (embeddings, layers, pooler): their names,
// shapes and float32 values. An adapter records its base's and refuses a base whose differs.
std::string encoder_weights_hash(SequenceModelImpl& model);

// The name with PEFT's prefix removed, when it has it.
std::string strip_peft_prefix(const std::string& name);

}  // namespace dqe
