#include "model/peft/lora.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <regex>

#include "base/format.h"
#include "base/json_depth.h"
#include "dqe/errors.h"
#include "io/json_file.h"
#include "model/peft/adalora.h"
#include "model/sequence_model.h"

namespace dqe {
namespace nn = torch::nn;

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string joined(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

// AdaLoRA's keys of adapter_config.json (PEFT's AdaLoraConfig); r becomes init_r.
void read_adalora_keys(const nlohmann::json& j, LoraSpec& s, const std::string& origin) {
  AdaLoraSpec& a = s.adalora.emplace();
  read_key(j, "init_r", a.init_r, origin);
  read_key(j, "target_r", a.target_r, origin);
  read_key(j, "tinit", a.tinit, origin);
  read_key(j, "tfinal", a.tfinal, origin);
  read_key(j, "deltaT", a.delta_t, origin);
  read_key(j, "beta1", a.beta1, origin);
  read_key(j, "beta2", a.beta2, origin);
  read_key(j, "orth_reg_weight", a.orth_reg_weight, origin);
  read_key(j, "total_step", a.total_step, origin);
  if (a.init_r < 1 || a.init_r > 65536) throw ModelError(origin + ": init_r must be between 1 and 65536");
  s.r = a.init_r;
  auto it = j.find("rank_pattern");
  if (it == j.end() || it->is_null()) return;
  if (!it->is_object()) throw ModelError(origin + ": rank_pattern must map module names to lists of booleans");
  const std::string suffix = ".lora_E";
  for (auto m = it->begin(); m != it->end(); ++m) {
    std::string module = m.key();
    // PEFT's keys are the lora_E parameters' names ("bert.encoder.layer.0.attention.self.query.lora_E").
    if (module.size() > suffix.size() && module.compare(module.size() - suffix.size(), suffix.size(), suffix) == 0)
      module.resize(module.size() - suffix.size());
    if (!m->is_array()) throw ModelError(origin + ": rank_pattern \"" + m.key() + "\" must be a list of booleans");
    std::vector<bool> keep;
    for (const auto& b : *m) {
      if (!b.is_boolean()) throw ModelError(origin + ": rank_pattern \"" + m.key() + "\" must be a list of booleans");
      keep.push_back(b.get<bool>());
    }
    if (static_cast<int64_t>(keep.size()) != a.init_r)
      throw ModelError(origin + ": rank_pattern \"" + m.key() + "\" has " + std::to_string(keep.size()) +
                       " entries but init_r is " + std::to_string(a.init_r));
    a.rank_pattern[module] = std::move(keep);
  }
}

}  // namespace

double LoraSpec::scaling() const {
  // PEFT's SVDLinear scales by lora_alpha / (ranknum + 1e-5), ranknum its initial rank.
  if (adalora) return alpha / (static_cast<double>(adalora->init_r) + 1e-5);
  return rslora ? alpha / std::sqrt(static_cast<double>(r)) : alpha / static_cast<double>(r);
}

std::string LoraSpec::describe() const {
  std::string targets;
  for (const auto& t : target_modules) targets += (targets.empty() ? "" : ",") + t;
  if (target_modules.size() > 8) targets = std::to_string(target_modules.size()) + " names";
  return std::string(adalora ? "AdaLoRA initial" : "LoRA") + " r " + std::to_string(r) + " alpha " +
         format_significant(alpha) + " dropout " + format_significant(dropout) + " on " +
         std::to_string(modules.size()) + " Linears (" + targets + ")";
}

std::shared_ptr<EncoderAdapterImpl> LoraSpec::make_module(BertModelImpl& bert, const BertConfig& /*config*/) const {
  return std::make_shared<LoraAdapterImpl>(bert, *this);
}

bool LoraSpec::selects(const std::string& module, const std::string& origin) const {
  static const std::vector<std::string> bert_default = {"query", "value"};  // PEFT's for model_type bert
  const std::vector<std::string>& targets = target_modules.empty() ? bert_default : target_modules;
  bool selected = false;
  if (target_pattern && targets.size() == 1) {
    // PEFT: re.fullmatch(target_modules, name); "all-linear" selects every Linear but the head.
    if (targets.front() == "all-linear") {
      selected = true;
    } else {
      try {
        selected = std::regex_match(module, std::regex(targets.front()));
      } catch (const std::regex_error& e) {
        throw ModelError(origin + ": target_modules \"" + targets.front() + "\" is not a regular expression (" +
                         e.what() + ")");
      }
    }
  } else {
    selected = std::any_of(targets.begin(), targets.end(),
                           [&](const std::string& t) { return module == t || ends_with(module, "." + t); });
  }
  if (!selected || layers_to_transform.empty()) return selected;
  // PEFT finds the layer's index as the number after the last ".NAME." before it (NAME one of
  // layers_pattern when given); a module with none (the pooler) is in no layer.
  std::vector<std::string> patterns;
  if (layers_pattern.empty()) patterns.push_back(R"(.*\.[^.]*\.(\d+)\.)");
  for (const std::string& p : layers_pattern) patterns.push_back(R"(.*\.)" + p + R"(\.(\d+)\.)");
  for (const std::string& p : patterns) {
    std::smatch m;
    try {
      if (!std::regex_search(module, m, std::regex(p), std::regex_constants::match_continuous)) continue;
    } catch (const std::regex_error& e) {
      throw ModelError(origin + ": layers_pattern makes \"" + p + "\", not a regular expression (" + e.what() + ")");
    }
    const int64_t layer = std::stoll(m[1].str());
    return std::find(layers_to_transform.begin(), layers_to_transform.end(), layer) != layers_to_transform.end();
  }
  return false;
}

std::string LoraSpec::targets_text() const {
  std::string out = "target_modules " + (target_modules.empty() ? std::string("(absent: query, value)")
                                         : target_pattern      ? "\"" + target_modules.front() + "\""
                                                               : "(" + joined(target_modules) + ")");
  if (!layers_to_transform.empty()) {
    std::vector<std::string> layers;
    for (int64_t l : layers_to_transform) layers.push_back(std::to_string(l));
    out += " and layers_to_transform (" + joined(layers) + ")";
  }
  return out;
}

void LoraSpec::read_tensors(std::map<std::string, torch::Tensor>& tensors, int64_t num_layers, const std::string& origin) {
  modules = adapted_modules(tensors, num_layers, origin);
  // PEFT builds updates only where its config points and leaves out any other tensor the file
  // holds: one applied here would give scores PEFT never computes.
  for (const std::string& module : modules)
    if (!selects(module, origin))
      throw ModelError(origin + ": it holds an update of " + module + ", which " + targets_text() + " in " +
                       kAdapterConfigFile + " do not select: PEFT would leave it out");
  // AdaLoRA's updates are saved pruned to their rank pattern; the model holds them at init_r.
  if (adalora) expand_by_rank_pattern(tensors, *adalora, origin);
}

std::vector<std::pair<std::string, torch::Tensor>> LoraSpec::tensors_to_save(
    std::vector<std::pair<std::string, torch::Tensor>> tensors) const {
  return adalora ? resize_by_rank_pattern(std::move(tensors), *adalora) : tensors;
}

void LoraSpec::continue_with(const AdapterSpec& run) {
  if (const auto* lora = dynamic_cast<const LoraSpec*>(&run)) dropout = lora->dropout;
}

LoraSpec lora_spec_from_adapter_config(const nlohmann::json& j, const std::string& origin) {
  if (!j.is_object()) throw ModelError(origin + ": expected a JSON object");
  if (json_depth(j) > kMaxJsonDepth) throw ModelError(origin + ": JSON nested too deeply");
  std::string peft_type, task_type, bias = "none";
  read_key(j, "peft_type", peft_type, origin);
  if (peft_type != "LORA" && peft_type != "ADALORA")
    throw ModelError(origin + ": peft_type \"" + peft_type + "\" is not supported (dqe reads LORA and ADALORA adapters)");
  read_key(j, "task_type", task_type, origin);
  if (!task_type.empty() && task_type != "SEQ_CLS")
    throw ModelError(origin + ": task_type \"" + task_type + "\" is not supported (dqe reads adapters of sequence "
                     "classifiers, SEQ_CLS)");
  LoraSpec s;
  read_key(j, "r", s.r, origin);
  read_key(j, "lora_alpha", s.alpha, origin);
  read_key(j, "lora_dropout", s.dropout, origin);
  read_key(j, "use_rslora", s.rslora, origin);
  read_key(j, "base_model_name_or_path", s.base.path, origin);
  if (s.r < 1 || s.r > 65536) throw ModelError(origin + ": r must be between 1 and 65536");
  // Far beyond any alpha in use (8 to 64); a larger one makes the update swamp its weight, and
  // merged, overflow it.
  if (!(s.alpha > 0 && s.alpha <= kMaxLoraAlpha))
    throw ModelError(origin + ": lora_alpha must be > 0 and at most " + format_significant(kMaxLoraAlpha) + ", got " +
                     format_significant(s.alpha));
  if (!(s.dropout >= 0 && s.dropout < 1)) throw ModelError(origin + ": lora_dropout must be in [0, 1)");
  // LoRA variants whose computation differs from W x + scaling * B A x.
  read_key(j, "bias", bias, origin);
  if (bias != "none") throw ModelError(origin + ": bias \"" + bias + "\" is not supported (only \"none\": no trained biases)");
  for (const char* flag : {"fan_in_fan_out", "use_dora", "lora_bias"}) {
    bool on = false;
    read_key(j, flag, on, origin);
    if (on) throw ModelError(origin + ": " + flag + " is not supported");
  }
  if (peft_type == "ADALORA") read_adalora_keys(j, s, origin);
  for (const char* pattern : {"rank_pattern", "alpha_pattern"}) {
    if (s.adalora && std::string(pattern) == "rank_pattern") continue;  // AdaLoRA's own, read above
    auto it = j.find(pattern);
    if (it != j.end() && !it->is_null() && !(it->is_object() && it->empty()))
      throw ModelError(origin + ": " + pattern + " is not supported (one rank and alpha for every module)");
  }
  auto targets = j.find("target_modules");
  if (targets != j.end() && targets->is_string()) {
    s.target_modules = {targets->get<std::string>()};
    s.target_pattern = true;
  } else if (targets != j.end() && targets->is_array()) {
    for (const auto& t : *targets) {
      if (!t.is_string()) throw ModelError(origin + ": target_modules must hold names");
      s.target_modules.push_back(t.get<std::string>());
    }
  } else if (targets != j.end() && !targets->is_null()) {
    throw ModelError(origin + ": target_modules must be a name or a list of names");
  }
  // PEFT writes both as null, a number or a list.
  if (auto layers = j.find("layers_to_transform"); layers != j.end() && !layers->is_null()) {
    for (const auto& l : layers->is_array() ? *layers : nlohmann::json::array({*layers})) {
      if (!l.is_number_integer() || l.get<int64_t>() < 0)
        throw ModelError(origin + ": layers_to_transform must be a layer index or a list of them");
      s.layers_to_transform.push_back(l.get<int64_t>());
    }
  }
  if (auto pattern = j.find("layers_pattern"); pattern != j.end() && !pattern->is_null()) {
    for (const auto& p : pattern->is_array() ? *pattern : nlohmann::json::array({*pattern})) {
      if (!p.is_string() || p.get<std::string>().empty())
        throw ModelError(origin + ": layers_pattern must be a name or a list of names");
      s.layers_pattern.push_back(p.get<std::string>());
    }
  }
  if (s.target_pattern) s.selects("", origin);  // a pattern that is not a regular expression is refused here
  return s;
}

std::unique_ptr<AdapterSpec> read_lora_config(const nlohmann::json& j, const std::string& origin) {
  return std::make_unique<LoraSpec>(lora_spec_from_adapter_config(j, origin));
}

nlohmann::json LoraSpec::adapter_config(const std::vector<std::string>& modules_to_save, const BertConfig& /*base*/) const {
  const LoraSpec& spec = *this;
  // Keys as PEFT's save_pretrained writes them for a LoRA sequence classifier (sorted, as it does).
  nlohmann::json j;
  j["base_model_name_or_path"] = spec.base.path;
  j["bias"] = "none";
  j["fan_in_fan_out"] = false;
  j["inference_mode"] = true;
  j["init_lora_weights"] = true;
  if (spec.alpha == std::floor(spec.alpha) && std::abs(spec.alpha) < 1e15) j["lora_alpha"] = static_cast<int64_t>(spec.alpha);
  else j["lora_alpha"] = spec.alpha;
  j["lora_dropout"] = spec.dropout;
  j["modules_to_save"] = modules_to_save;
  j["peft_type"] = spec.adalora ? "ADALORA" : "LORA";
  // AdaLoRA ignores r (init_r is its rank); PEFT's default keeps its loader from warning.
  j["r"] = spec.adalora ? int64_t{8} : spec.r;
  if (spec.target_pattern && spec.target_modules.size() == 1) j["target_modules"] = spec.target_modules.front();
  else j["target_modules"] = spec.target_modules;
  if (!spec.layers_to_transform.empty()) j["layers_to_transform"] = spec.layers_to_transform;
  if (!spec.layers_pattern.empty()) j["layers_pattern"] = spec.layers_pattern;
  j["task_type"] = "SEQ_CLS";
  j["use_rslora"] = spec.rslora;
  if (spec.adalora) {
    // AdaLoraConfig's keys; rank_pattern as save_pretrained leaves it (keys of the lora_E
    // parameters without the adapter's name), null before the first allocation.
    const AdaLoraSpec& a = *spec.adalora;
    j["init_r"] = a.init_r;
    j["target_r"] = a.target_r;
    j["tinit"] = a.tinit;
    j["tfinal"] = a.tfinal;
    j["deltaT"] = a.delta_t;
    j["beta1"] = a.beta1;
    j["beta2"] = a.beta2;
    j["orth_reg_weight"] = a.orth_reg_weight;
    j["total_step"] = a.total_step;
    nlohmann::json pattern = nullptr;
    for (const auto& [module, keep] : a.rank_pattern) pattern[module + ".lora_E"] = keep;
    j["rank_pattern"] = pattern;
  }
  return j;
}

LoraLinearImpl::LoraLinearImpl(int64_t in_features, int64_t out_features, const LoraSpec& spec)
    : scaling(spec.scaling()), dropout(spec.dropout) {
  if (spec.adalora) {
    // Registered in PEFT's order (lora_E, lora_A, lora_B), the optimizer's order too.
    svd_E = register_parameter("lora_E", torch::zeros({spec.r, 1}));
    svd_A = register_parameter("lora_A", torch::zeros({spec.r, in_features}));
    svd_B = register_parameter("lora_B", torch::zeros({out_features, spec.r}));
  } else {
    lora_A = register_module("lora_A", nn::Linear(nn::LinearOptions(in_features, spec.r).bias(false)));
    lora_B = register_module("lora_B", nn::Linear(nn::LinearOptions(spec.r, out_features).bias(false)));
  }
  reset_lora();
}

torch::Tensor LoraLinearImpl::forward(const torch::Tensor& x) {
  const torch::Tensor in = dropout > 0 ? torch::dropout(x, dropout, is_training()) : x;
  if (is_adalora()) return torch::matmul(torch::matmul(in, (svd_A * svd_E).t()), svd_B.t()) * scaling;
  return lora_B(lora_A(in)) * scaling;
}

void LoraLinearImpl::reset_lora() {
  torch::NoGradGuard no_grad;
  if (is_adalora()) {
    svd_E.zero_();
    svd_A.normal_(0.0, 0.02);
    svd_B.normal_(0.0, 0.02);
    return;
  }
  nn::init::kaiming_uniform_(lora_A->weight, std::sqrt(5.0));
  lora_B->weight.zero_();
}

torch::Tensor LoraLinearImpl::delta_weight() const {
  if (is_adalora()) return torch::matmul(svd_B, svd_A * svd_E) * scaling;
  return torch::matmul(lora_B->weight, lora_A->weight) * scaling;
}

LoraAdapterImpl::LoraAdapterImpl(BertModelImpl& bert, const LoraSpec& spec) {
  std::vector<BertModelImpl::LinearSlot> slots = bert.linear_slots();
  for (const std::string& name : spec.modules)
    if (std::none_of(slots.begin(), slots.end(), [&](const auto& s) { return s.name == name; }))
      throw ModelError("LoRA: \"" + name + "\" is not a Linear of the encoder");
  by_slot_.resize(slots.size(), LoraLinear{nullptr});
  for (size_t i = 0; i < slots.size(); ++i) {
    auto& slot = slots[i];
    if (std::find(spec.modules.begin(), spec.modules.end(), slot.name) == spec.modules.end()) continue;
    const auto& weight = slot.linear->weight;
    LoraLinear update(weight.size(1), weight.size(0), spec);
    // Registered under the Linear's name below "bert.", one holder module per dotted part.
    std::string path = slot.name.substr(std::string("bert.").size());
    nn::Module* parent = this;
    std::shared_ptr<nn::Module> keep;
    for (size_t dot; (dot = path.find('.')) != std::string::npos; path = path.substr(dot + 1)) {
      keep = holder_module(*parent, path.substr(0, dot));
      parent = keep.get();
    }
    parent->register_module(path, update);
    by_slot_[i] = update;
    updates.emplace_back(slot.name, update);
  }
}

torch::Tensor LoraAdapterImpl::linear(size_t slot, const torch::Tensor& x, const torch::Tensor& y) {
  if (slot >= by_slot_.size() || !by_slot_[slot]) return y;
  return y + by_slot_[slot]->forward(x);
}

void LoraAdapterImpl::reset() {
  for (auto& [name, update] : updates) update->reset_lora();
}

void LoraAdapterImpl::merge_into(BertModelImpl& bert) {
  torch::NoGradGuard no_grad;
  std::vector<BertModelImpl::LinearSlot> slots = bert.linear_slots();
  for (size_t i = 0; i < slots.size() && i < by_slot_.size(); ++i)
    if (by_slot_[i]) slots[i].linear->weight.add_(by_slot_[i]->delta_weight().to(slots[i].linear->weight.dtype()));
}

LoraAdapterImpl* lora_adapter(SequenceModelImpl& model) { return dynamic_cast<LoraAdapterImpl*>(model.adapter.get()); }

const std::vector<std::string>& lora_target_names() {
  static const std::vector<std::string> names = {"query",         "key",    "value", "dense", "attention.output.dense",
                                                 "intermediate.dense", "output.dense", "pooler.dense", "all-linear"};
  return names;
}

std::vector<std::string> lora_modules(const std::vector<std::string>& targets, int64_t num_layers) {
  if (targets.empty()) throw ConfigError("--lora-targets needs at least one module name");
  const std::vector<std::string> names = encoder_linear_names(num_layers);
  std::vector<bool> selected(names.size(), false);
  for (const std::string& target : targets) {
    if (target == "all-linear") {
      if (targets.size() != 1) throw ConfigError("--lora-targets all-linear stands alone (it selects every Linear)");
      selected.assign(names.size(), true);
      continue;
    }
    bool any = false;
    for (size_t i = 0; i < names.size(); ++i) {
      if (!target.empty() && (names[i] == target || ends_with(names[i], "." + target))) {
        selected[i] = true;
        any = true;
      }
    }
    if (!any)
      throw ConfigError("--lora-targets: \"" + target + "\" names no Linear of the encoder; valid names: " +
                        joined(lora_target_names()) + " (or a longer end of a module's name, such as layer.0.output.dense)");
  }
  std::vector<std::string> out;
  for (size_t i = 0; i < names.size(); ++i)
    if (selected[i]) out.push_back(names[i]);
  return out;
}

std::vector<std::string> peft_target_modules(const std::vector<std::string>& targets,
                                             const std::vector<std::string>& modules) {
  if (targets.size() == 1 && targets.front() == "all-linear") {
    std::vector<std::string> sorted = modules;
    std::sort(sorted.begin(), sorted.end());
    return sorted;
  }
  return targets;
}

std::pair<int64_t, int64_t> linear_shape(const BertConfig& config, const std::string& name) {
  const int64_t h = config.hidden_size, i = config.intermediate_size;
  if (ends_with(name, "intermediate.dense")) return {i, h};
  if (ends_with(name, "attention.output.dense")) return {h, h};
  if (ends_with(name, "output.dense")) return {h, i};  // the feed-forward output
  return {h, h};
}

std::vector<std::string> adapted_modules(const std::map<std::string, torch::Tensor>& tensors, int64_t num_layers,
                                         const std::string& origin) {
  const std::vector<std::string> names = encoder_linear_names(num_layers);
  std::vector<bool> adapted(names.size(), false);
  for (const auto& [file_name, tensor] : tensors) {
    const std::string name = strip_peft_prefix(file_name);
    std::string module;
    // LoRA's Linears ("lora_A.weight"), AdaLoRA's parameters ("lora_A", "lora_E", "lora_B").
    for (const char* suffix : {".lora_A.weight", ".lora_B.weight", ".lora_A", ".lora_B", ".lora_E"})
      if (ends_with(name, suffix)) module = name.substr(0, name.size() - std::strlen(suffix));
    if (module.empty()) continue;
    const auto it = std::find(names.begin(), names.end(), module);
    if (it == names.end())
      throw ModelError(origin + ": tensor \"" + file_name + "\" adapts \"" + module + "\", which is not a Linear of the " +
                       std::to_string(num_layers) + "-layer encoder");
    adapted[static_cast<size_t>(it - names.begin())] = true;
  }
  std::vector<std::string> out;
  for (size_t i = 0; i < names.size(); ++i)
    if (adapted[i]) out.push_back(names[i]);
  if (out.empty()) throw ModelError(origin + ": no LoRA weights (lora_A, lora_B) in the adapter");
  return out;
}

}  // namespace dqe
