// Bottleneck adapters (Houlsby et al., 2019), dqe's own kind of adapter: in every layer, after
// the attention output's Linear and after the feed-forward output's (each after its dropout,
// before the residual sum and LayerNorm), h + up(act(down(h))), down [size, hidden] and up
// [hidden, size] with biases, act the encoder's hidden_act. up starts at zero, so that at first
// the model is its base. Unlike LoRA they are nonlinear and cannot be folded into the base's
// weights.
//
// The file layout is dqe's own (PEFT has no such adapter type): adapter_config.json with
// "peft_type": "BOTTLENECK" and adapter_model.safetensors with PEFT-style names
// ("base_model.model.bert.encoder.layer.0.attention.output.adapter.down.weight", the heads as
// for LoRA).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "model/bert.h"
#include "model/peft/adapter.h"

namespace dqe {

class BottleneckSpec : public AdapterSpec {
 public:
  int64_t size = 64;

  std::unique_ptr<AdapterSpec> clone() const override { return std::make_unique<BottleneckSpec>(*this); }
  std::string kind() const override { return "adapter"; }
  std::string peft_type() const override { return "BOTTLENECK"; }
  std::string describe() const override;
  std::shared_ptr<EncoderAdapterImpl> make_module(BertModelImpl& bert, const BertConfig& config) const override;
  void check_base(const BertConfig& base, const std::string& origin) const override;
  // PEFT's keys where they mean the same (base, task, modules_to_save); the rest is dqe's,
  // the activation (the base's hidden_act) for the record.
  nlohmann::json adapter_config(const std::vector<std::string>& modules_to_save, const BertConfig& base) const override;
  std::string why_not_mergeable() const override;
};

// Reads dqe's adapter_config.json of a bottleneck adapter: adapter_size and
// base_model_name_or_path. Throws ModelError naming origin.
BottleneckSpec bottleneck_spec_from_adapter_config(const nlohmann::json& j, const std::string& origin);
// The same as an AdapterKind reads it (adapter.h).
std::unique_ptr<AdapterSpec> read_bottleneck_config(const nlohmann::json& j, const std::string& origin);

// One adapter: up(act(down(h))), registered as "down" and "up".
struct BottleneckAdapterImpl : torch::nn::Module {
  BottleneckAdapterImpl(int64_t hidden_size, int64_t size, std::string act);
  // The adapter's output, to be added to h.
  torch::Tensor forward(const torch::Tensor& h);
  // down as torch.nn.Linear's default (kaiming-uniform, a = sqrt(5), and its bias rule), up
  // (weight and bias) zero.
  void reset_adapter();

  torch::nn::Linear down{nullptr}, up{nullptr};
  std::string act;
};
TORCH_MODULE(BottleneckAdapter);

// The adapters of a model, two per layer, registered under
// "encoder.layer.N.attention.output.adapter" and "encoder.layer.N.output.adapter" (below the
// part's "bert." prefix), each added to its sublayer's output.
class BottleneckAdaptersImpl : public EncoderAdapterImpl {
 public:
  BottleneckAdaptersImpl(BertModelImpl& bert, const BertConfig& config, const BottleneckSpec& spec);

  torch::Tensor sublayer(size_t index, const torch::Tensor& h) override;
  void reset() override;

  // By Hugging Face name ("bert.encoder.layer.0.attention.output.adapter"), in the encoder's
  // order: sublayer 2i is layer i's attention output, 2i + 1 its feed-forward output.
  std::vector<std::pair<std::string, BottleneckAdapter>> adapters;
};

// The model's bottleneck adapters, or null when its adapter is of another kind or it has none.
BottleneckAdaptersImpl* bottleneck_adapters(SequenceModelImpl& model);

// The bottleneck's bounds: at least 1, at most the hidden size (a wider one is no bottleneck).
// Throws ConfigError naming --adapter-size.
void check_adapter_size(int64_t size, int64_t hidden_size);

// Trainable parameters of the adapters of an encoder: 2 per layer, each
// hidden * size + size + size * hidden + hidden.
int64_t bottleneck_parameter_count(const BertConfig& config, int64_t size);

}  // namespace dqe
