#include "model/peft/prefix.h"

#include "base/checks.h"
#include "base/json_depth.h"
#include "dqe/errors.h"
#include "io/json_file.h"

namespace dqe {
namespace {

// Where the prefix's tensors sit in the model (below PEFT's prefix, which load_adapter_tensors
// strips) and in the file.
constexpr const char* kTableName = "prompt_embeddings";
constexpr const char* kEncoderPrefix = "prefix_encoder.";         // the file's reparametrisation
constexpr const char* kHeadPrefix = "base_model.";                // the file's heads
const std::string kModelPrefix = std::string(kPeftPrefix) + "bert.";  // the model's prefix tensors
const std::string kReparametrisation[] = {"embedding.weight", "transform.0.weight", "transform.0.bias",
                                          "transform.2.weight", "transform.2.bias"};

bool starts_with(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }

int64_t positive_key(const nlohmann::json& j, const char* key, const std::string& origin) {
  const auto it = j.find(key);
  if (it == j.end() || !it->is_number_integer() || it->get<int64_t>() < 1 || it->get<int64_t>() > 1'000'000)
    throw ModelError(origin + ": " + key + " must be an integer between 1 and 10^6");
  return it->get<int64_t>();
}

}  // namespace

torch::Tensor project_prefix(const torch::Tensor& embedding, const torch::Tensor& w0, const torch::Tensor& b0,
                             const torch::Tensor& w2, const torch::Tensor& b2) {
  return torch::nn::functional::linear(torch::tanh(torch::nn::functional::linear(embedding, w0, b0)), w2, b2);
}

PrefixTuningImpl::PrefixTuningImpl(const BertConfig& config, const PrefixSpec& spec)
    : tokens_(spec.num_virtual_tokens), layers_(config.num_hidden_layers) {
  auto holder = holder_module(*this, "prefix_encoder");
  const int64_t width = layers_ * 2 * config.hidden_size;
  if (spec.projection) {
    embedding_ = holder_module(*holder, "embedding")->register_parameter("weight", torch::empty({tokens_, config.hidden_size}));
    auto transform = holder_module(*holder, "transform");
    transform0_ = transform->register_module("0", torch::nn::Linear(config.hidden_size, spec.projection_width(config)));
    transform2_ = transform->register_module("2", torch::nn::Linear(spec.projection_width(config), width));
  } else {
    table_ = holder->register_parameter(kTableName, torch::empty({tokens_, width}));
  }
  reset();
}

torch::Tensor PrefixTuningImpl::table() {
  if (table_.defined()) return table_;
  return project_prefix(embedding_, transform0_->weight, transform0_->bias, transform2_->weight, transform2_->bias);
}

void PrefixTuningImpl::attention_inputs(size_t layer, torch::Tensor& keys, torch::Tensor& values, torch::Tensor& mask_add) {
  const int64_t batch = keys.size(0), heads = keys.size(1), head_dim = keys.size(3);
  // [tokens, layers * 2, heads, head_dim]: layer i's keys at 2i, its values at 2i + 1.
  const torch::Tensor kv = table().to(keys.scalar_type()).view({tokens_, layers_ * 2, heads, head_dim});
  auto in_front = [&](const torch::Tensor& own, int64_t index) {
    const torch::Tensor prefix = kv.select(1, index).transpose(0, 1).unsqueeze(0).expand({batch, heads, tokens_, head_dim});
    return torch::cat({prefix, own}, 2);
  };
  const int64_t i = static_cast<int64_t>(layer);
  keys = in_front(keys, 2 * i);
  values = in_front(values, 2 * i + 1);
  mask_add = torch::cat({torch::zeros({mask_add.size(0), 1, 1, tokens_}, mask_add.options()), mask_add}, 3);
}

void PrefixTuningImpl::reset() {
  torch::NoGradGuard no_grad;
  if (table_.defined()) {
    table_.normal_(0.0, 1.0);
  } else {
    embedding_.normal_(0.0, 1.0);
    transform0_->reset_parameters();
    transform2_->reset_parameters();
  }
}

std::string PrefixSpec::describe() const {
  std::string out = "prefix of " + std::to_string(num_virtual_tokens) + " virtual tokens in every layer's attention";
  if (projection)
    out += ", reparametrised through an MLP " +
           (projection_size > 0 ? "of width " + std::to_string(projection_size) : std::string("as wide as the hidden size"));
  return out;
}

std::shared_ptr<EncoderAdapterImpl> PrefixSpec::make_module(BertModelImpl& /*bert*/, const BertConfig& config) const {
  return std::make_shared<PrefixTuningImpl>(config, *this);
}

void PrefixSpec::check_base(const BertConfig& base, const std::string& origin) const {
  auto differs = [&](const char* key, int64_t recorded, int64_t actual, const char* what) {
    if (recorded > 0 && recorded != actual)
      throw ModelError(origin + ": " + key + " " + std::to_string(recorded) + " but its base has " +
                       std::to_string(actual) + " " + what);
  };
  differs("token_dim", token_dim, base.hidden_size, "hidden units");
  differs("num_layers", num_layers, base.num_hidden_layers, "layers");
  differs("num_attention_heads", num_attention_heads, base.num_attention_heads, "attention heads");
  if (base.max_position_embeddings - num_virtual_tokens < 3)
    throw ModelError(origin + ": num_virtual_tokens " + std::to_string(num_virtual_tokens) + " leaves fewer than 3 of "
                     "its base's " + std::to_string(base.max_position_embeddings) + " positions to the text");
}

std::string PrefixSpec::why_not_mergeable() const {
  return "holds a prefix (keys and values in front of every layer's attention), which has no weights of its base to be "
         "folded into";
}

nlohmann::json PrefixSpec::adapter_config(const std::vector<std::string>& modules_to_save, const BertConfig& base) const {
  nlohmann::json j;
  j["base_model_name_or_path"] = this->base.path;
  j["encoder_hidden_size"] = projection_width(base);
  j["inference_mode"] = true;
  // PEFT saves the classifier of a sequence classifier by default; dqe's side heads and fusion
  // layers are named where there are any.
  if (modules_to_save.size() == 1 && modules_to_save.front() == "classifier")
    j["modules_to_save"] = nullptr;
  else
    j["modules_to_save"] = modules_to_save;
  j["num_attention_heads"] = base.num_attention_heads;
  j["num_layers"] = base.num_hidden_layers;
  j["num_transformer_submodules"] = 1;
  j["num_virtual_tokens"] = num_virtual_tokens;
  j["peft_type"] = "PREFIX_TUNING";
  j["prefix_projection"] = projection;
  j["revision"] = nullptr;
  j["task_type"] = "SEQ_CLS";
  j["token_dim"] = base.hidden_size;
  return j;
}

PrefixSpec prefix_spec_from_adapter_config(const nlohmann::json& j, const std::string& origin) {
  if (!j.is_object()) throw ModelError(origin + ": expected a JSON object");
  if (json_depth(j) > kMaxJsonDepth) throw ModelError(origin + ": JSON nested too deeply");
  PrefixSpec s;
  try {
    if (j.value("peft_type", std::string()) != "PREFIX_TUNING")
      throw ModelError(origin + ": not a prefix-tuning adapter (peft_type \"PREFIX_TUNING\")");
    s.num_virtual_tokens = positive_key(j, "num_virtual_tokens", origin);
    s.token_dim = positive_key(j, "token_dim", origin);
    s.num_layers = positive_key(j, "num_layers", origin);
    s.num_attention_heads = positive_key(j, "num_attention_heads", origin);
    const auto submodules = j.find("num_transformer_submodules");
    if (submodules != j.end() && !submodules->is_null() && *submodules != 1)
      throw ModelError(origin + ": num_transformer_submodules must be 1 (an encoder has no cross-attention)");
    const auto projection = j.find("prefix_projection");
    if (projection != j.end() && !projection->is_null()) {
      if (!projection->is_boolean()) throw ModelError(origin + ": prefix_projection must be true or false");
      s.projection = projection->get<bool>();
    }
    const auto width = j.find("encoder_hidden_size");
    if (s.projection && width != j.end() && !width->is_null()) s.projection_size = positive_key(j, "encoder_hidden_size", origin);
    const auto base = j.find("base_model_name_or_path");
    if (base != j.end() && base->is_string()) s.base.path = base->get<std::string>();
  } catch (const nlohmann::json::exception& e) {
    throw ModelError(origin + ": " + e.what());
  }
  return s;
}

std::unique_ptr<AdapterSpec> read_prefix_config(const nlohmann::json& j, const std::string& origin) {
  return std::make_unique<PrefixSpec>(prefix_spec_from_adapter_config(j, origin));
}

void PrefixSpec::read_tensors(std::map<std::string, torch::Tensor>& tensors, int64_t layers, const std::string& origin) {
  // The reparametrisation stands in for the table only where the config says the prefix was
  // trained through it and the file holds all of it (PEFT's own files hold the table alone).
  size_t reparametrised = 0;
  for (const auto& name : kReparametrisation) reparametrised += tensors.count(kEncoderPrefix + name);
  if (reparametrised > 0 && reparametrised < std::size(kReparametrisation))
    throw ModelError(origin + ": holds part of a reparametrised prefix (\"" + kEncoderPrefix + "*\"): " +
                     std::to_string(reparametrised) + " of its " + std::to_string(std::size(kReparametrisation)) +
                     " tensors");
  projection = projection && reparametrised > 0;
  if (!projection) {
    const auto table = tensors.find(kTableName);
    if (table == tensors.end()) throw ModelError(origin + ": missing tensor \"" + std::string(kTableName) + "\"");
    const torch::Tensor& t = table->second;
    const int64_t width = layers * 2 * token_dim;
    if (t.dim() != 2 || t.size(0) != num_virtual_tokens || t.size(1) != width)
      throw ModelError(origin + ": tensor \"" + kTableName + "\" has shape " + shape_text(t.sizes()) + " but " +
                       std::to_string(num_virtual_tokens) + " virtual tokens of " + std::to_string(layers) +
                       " layers need [" + std::to_string(num_virtual_tokens) + "," + std::to_string(width) + "]");
  } else {
    projection_size = tensors.at(std::string(kEncoderPrefix) + "transform.0.weight").size(0);
  }
  std::map<std::string, torch::Tensor> renamed;
  for (auto& [name, t] : tensors) {
    if (name == kTableName) {
      if (!projection) renamed[kModelPrefix + "prefix_encoder." + kTableName] = t;  // else derived from the rest
    } else if (projection && starts_with(name, kEncoderPrefix)) {
      renamed[kModelPrefix + name] = t;
    } else if (starts_with(name, kHeadPrefix) && !starts_with(name, kPeftPrefix)) {
      renamed[kPeftPrefix + name.substr(std::string(kHeadPrefix).size())] = t;
    } else {
      renamed[name] = t;  // refused as unknown when loaded
    }
  }
  tensors = std::move(renamed);
}

std::vector<std::pair<std::string, torch::Tensor>> PrefixSpec::tensors_to_save(
    std::vector<std::pair<std::string, torch::Tensor>> tensors) const {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  std::map<std::string, torch::Tensor> encoder;  // the reparametrisation, by its name below prefix_encoder.
  const std::string model_encoder = kModelPrefix + kEncoderPrefix;
  for (auto& [name, t] : tensors) {
    if (starts_with(name, model_encoder)) {
      const std::string own = name.substr(model_encoder.size());
      if (own == kTableName) out.emplace_back(kTableName, t);
      else encoder[own] = t;
    } else if (starts_with(name, kPeftPrefix)) {
      out.emplace_back(kHeadPrefix + name.substr(std::string(kPeftPrefix).size()), t);
    } else {
      out.emplace_back(name, t);
    }
  }
  if (!encoder.empty()) {
    torch::NoGradGuard no_grad;
    // PEFT's inference-mode file: the table as projected, first.
    out.emplace(out.begin(), kTableName,
                project_prefix(encoder.at("embedding.weight"), encoder.at("transform.0.weight"),
                               encoder.at("transform.0.bias"), encoder.at("transform.2.weight"),
                               encoder.at("transform.2.bias"))
                    .detach());
    for (auto& [own, t] : encoder) out.emplace_back(kEncoderPrefix + own, t);
  }
  return out;
}

void check_prefix_tokens(int64_t tokens, const BertConfig& base) {
  check_flag(tokens >= 1 && tokens <= base.max_position_embeddings - 3, "--prefix-tokens",
             "between 1 and the base's max_position_embeddings less 3 (" +
                 std::to_string(base.max_position_embeddings - 3) + ")",
             tokens);
}

}  // namespace dqe
