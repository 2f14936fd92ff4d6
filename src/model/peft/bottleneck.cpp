#include "model/peft/bottleneck.h"

#include <cmath>
#include <tuple>

#include "base/checks.h"
#include "base/format.h"
#include "dqe/errors.h"
#include "model/sequence_model.h"

namespace dqe {
namespace nn = torch::nn;


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
    auto layer_holder = holder_module(*holder_module(*holder_module(*this, "encoder"), "layer"), std::to_string(i));
    const std::string at = "bert.encoder.layer." + std::to_string(i) + ".";
    // Registered under the adapted block's name, one holder module per dotted part, in
    // sublayer order: the attention output, then the feed-forward output.
    auto attention_output = holder_module(*holder_module(*layer_holder, "attention"), "output");
    auto output = holder_module(*layer_holder, "output");
    for (auto [site, parent] : {std::make_pair(std::string("attention.output"), attention_output),
                                std::make_pair(std::string("output"), output)}) {
      BottleneckAdapter adapter(config.hidden_size, spec.size, config.hidden_act);
      parent->register_module("adapter", adapter);
      adapters.emplace_back(at + site + ".adapter", adapter);
    }
  }
}

torch::Tensor BottleneckAdaptersImpl::sublayer(size_t index, const torch::Tensor& h) {
  return index < adapters.size() ? h + adapters[index].second(h) : h;
}

void BottleneckAdaptersImpl::reset() {
  for (auto& [name, adapter] : adapters) adapter->reset_adapter();
}

BottleneckAdaptersImpl* bottleneck_adapters(SequenceModelImpl& model) {
  return dynamic_cast<BottleneckAdaptersImpl*>(model.adapter.get());
}

std::string BottleneckSpec::describe() const {
  return "bottleneck adapters of size " + std::to_string(size) + " after the attention and feed-forward outputs";
}

std::shared_ptr<EncoderAdapterImpl> BottleneckSpec::make_module(BertModelImpl& bert, const BertConfig& config) const {
  return std::make_shared<BottleneckAdaptersImpl>(bert, config, *this);
}

void BottleneckSpec::check_base(const BertConfig& base, const std::string& origin) const {
  if (size > base.hidden_size)
    throw ModelError(origin + ": adapter_size " + std::to_string(size) + " exceeds the hidden size " +
                     std::to_string(base.hidden_size));
}

std::string BottleneckSpec::why_not_mergeable() const {
  return "holds bottleneck adapters, which are nonlinear (h + up(act(down(h)))) and cannot be folded into its base's "
         "weights";
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
    if (base != j.end() && base->is_string()) s.base.path = base->get<std::string>();
  } catch (const nlohmann::json::exception& e) {
    throw ModelError(origin + ": " + e.what());
  }
  return s;
}

std::unique_ptr<AdapterSpec> read_bottleneck_config(const nlohmann::json& j, const std::string& origin) {
  return std::make_unique<BottleneckSpec>(bottleneck_spec_from_adapter_config(j, origin));
}

nlohmann::json BottleneckSpec::adapter_config(const std::vector<std::string>& modules_to_save,
                                              const BertConfig& base) const {
  const BottleneckSpec& spec = *this;
  const std::string& act = base.hidden_act;
  nlohmann::json j;
  j["adapter_size"] = spec.size;
  j["base_model_name_or_path"] = spec.base.path;
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
