// Bottleneck adapters (Houlsby et al., 2019): in every layer, after the attention output's
// Linear and after the feed-forward output's (each before its dropout's residual sum and
// LayerNorm), h + up(act(down(h))), down [size, hidden] and up [hidden, size] with biases, act
// the encoder's hidden_act. up starts at zero, so that at first the model is its base. Unlike
// LoRA they are nonlinear and cannot be folded into the base's weights.
//
// The file layout is dqe's own (PEFT has no such adapter type): adapter_config.json with
// "peft_type": "BOTTLENECK" and adapter_model.safetensors with PEFT-style names
// ("base_model.model.bert.encoder.layer.0.attention.output.adapter.down.weight", the heads as
// for LoRA). The model's part is model/model.h's (Role::kBottleneck); the directory model/model_dir.h's.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "model/model_spec.h"

namespace dqe {

struct BertModelImpl;

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

// The adapters of a model, two per layer, registered under "encoder.layer.N.attention.output.adapter"
// and "encoder.layer.N.output.adapter" (below the part's "bert." prefix) and attached to the
// layer's BertAddNorm slots, so that the encoder runs them.
struct BottleneckAdaptersImpl : torch::nn::Module {
  BottleneckAdaptersImpl(BertModelImpl& bert, const BertConfig& config, const BottleneckSpec& spec);

  // By Hugging Face name ("bert.encoder.layer.0.attention.output.adapter"), in the encoder's order.
  std::vector<std::pair<std::string, BottleneckAdapter>> adapters;
};
TORCH_MODULE(BottleneckAdapters);

// The bottleneck's bounds: at least 1, at most the hidden size (a wider one is no bottleneck).
// Throws ConfigError naming --adapter-size.
void check_adapter_size(int64_t size, int64_t hidden_size);

// Trainable parameters of the adapters of an encoder: 2 per layer, each
// hidden * size + size + size * hidden + hidden.
int64_t bottleneck_parameter_count(const BertConfig& config, int64_t size);

// Reads dqe's adapter_config.json of a bottleneck adapter ("peft_type": "BOTTLENECK"):
// adapter_size and base_model_name_or_path. Throws ModelError naming origin.
BottleneckSpec bottleneck_spec_from_adapter_config(const nlohmann::json& j, const std::string& origin);
// dqe's adapter_config.json of a bottleneck adapter, with modules_to_save (the heads trained in
// full) and the activation (the base's hidden_act, for the record).
nlohmann::json bottleneck_config_json(const BottleneckSpec& spec, const std::string& act,
                                      const std::vector<std::string>& modules_to_save);

}  // namespace dqe
