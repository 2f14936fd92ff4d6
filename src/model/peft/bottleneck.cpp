#include "model/peft/bottleneck.h"

#include <cmath>
#include <tuple>

#include "dqe/errors.h"
#include "model/model.h"

namespace dqe {
namespace nn = torch::nn;

namespace {

// The encoder's activation (model.cpp's rule): erf GELU, ReLU, or the tanh approximation.
torch::Tensor activation(const std::string& act, const torch::Tensor& h) {
  if (act == "gelu") return torch::gelu(h);
  if (act == "relu") return torch::relu(h);
  return torch::gelu(h, "tanh");
}

// The child of module named `name`, made as an empty holder when it does not exist yet.
std::shared_ptr<nn::Module> holder(nn::Module& module, const std::string& name) {
  for (const auto& child : module.named_children())
    if (child.key() == name) return child.value();
  return module.register_module(name, std::make_shared<nn::Module>());
}

}  // namespace

BottleneckAdapterImpl::BottleneckAdapterImpl(int64_t hidden_size, int64_t size, std::string act_name)
    : act(std::move(act_name)) {
  down = register_module("down", nn::Linear(hidden_size, size));
  up = register_module("up", nn::Linear(size, hidden_size));
  reset_adapter();
}

torch::Tensor BottleneckAdapterImpl::forward(const torch::Tensor& h) { return up(activation(act, down(h))); }

void BottleneckAdapterImpl::reset_adapter() {
  torch::NoGradGuard no_grad;
  down->reset_parameters();
  up->weight.zero_();
  up->bias.zero_();
}

BottleneckAdaptersImpl::BottleneckAdaptersImpl(BertModelImpl& bert, const BertConfig& config,
                                               const BottleneckSpec& spec) {
  check_adapter_size(spec.size, config.hidden_size);
  for (size_t i = 0; i < bert.layers->size(); ++i) {
    auto layer = bert.layers->ptr<BertLayerImpl>(i);
    auto layer_holder = holder(*holder(*holder(*this, "encoder"), "layer"), std::to_string(i));
    const std::string at = "bert.encoder.layer." + std::to_string(i) + ".";
    // Registered under the adapted block's name, one holder module per dotted part.
    auto attention_output = holder(*holder(*layer_holder, "attention"), "output");
    auto output = holder(*layer_holder, "output");
    const std::vector<std::tuple<std::string, BertAddNorm, std::shared_ptr<nn::Module>>> sites = {
        {"attention.output", layer->attention->output, attention_output}, {"output", layer->output, output}};
    for (auto [site, add_norm, parent] : sites) {
      BottleneckAdapter adapter(config.hidden_size, spec.size, config.hidden_act);
      parent->register_module("adapter", adapter);
      add_norm->adapter = adapter;
      adapters.emplace_back(at + site + ".adapter", adapter);
    }
  }
}

void check_adapter_size(int64_t size, int64_t hidden_size) {
  check_flag(size >= 1 && size <= hidden_size, "--adapter-size",
             "between 1 and the base's hidden size " + std::to_string(hidden_size), size);
}

int64_t bottleneck_parameter_count(const BertConfig& config, int64_t size) {
  const int64_t h = config.hidden_size;
  return 2 * config.num_hidden_layers * (h * size + size + size * h + h);
}

BottleneckSpec bottleneck_spec_from_adapter_config(const nlohmann::json& j, const std::string& origin) {
  if (!j.is_object()) throw ModelError(origin + ": expected a JSON object");
  BottleneckSpec s;
  try {
    if (j.value("peft_type", std::string()) != "BOTTLENECK")
      throw ModelError(origin + ": not a bottleneck adapter (peft_type \"BOTTLENECK\")");
    const auto size = j.find("adapter_size");
    if (size == j.end() || !size->is_number_integer() || size->get<int64_t>() < 1)
      throw ModelError(origin + ": adapter_size must be an integer >= 1");
    s.size = size->get<int64_t>();
    const auto base = j.find("base_model_name_or_path");
    if (base != j.end() && base->is_string()) s.base = base->get<std::string>();
  } catch (const nlohmann::json::exception& e) {
    throw ModelError(origin + ": " + e.what());
  }
  return s;
}

nlohmann::json bottleneck_config_json(const BottleneckSpec& spec, const std::string& act,
                                      const std::vector<std::string>& modules_to_save) {
  // PEFT's keys where they mean the same (base, task, modules_to_save); the rest is dqe's.
  nlohmann::json j;
  j["adapter_size"] = spec.size;
  j["base_model_name_or_path"] = spec.base;
  j["inference_mode"] = true;
  j["init_up_weights"] = "zeros";
  j["locations"] = {"attention.output", "output"};
  j["modules_to_save"] = modules_to_save;
  j["non_linearity"] = act;
  j["peft_type"] = "BOTTLENECK";
  j["task_type"] = "SEQ_CLS";
  return j;
}

}  // namespace dqe
