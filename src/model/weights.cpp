#include "model/weights.h"

#include <algorithm>

#include "dqe/errors.h"
#include "model/int8.h"

namespace dqe {
namespace nn = torch::nn;

namespace {

bool starts_with(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }

}  // namespace

void bert_init(nn::Module& module, double initializer_range, int64_t pad_token_id) {
  torch::NoGradGuard no_grad;
  for (auto& m : module.modules(/*include_self=*/true)) {
    if (auto* linear = m->as<nn::Linear>()) {
      linear->weight.normal_(0.0, initializer_range);
      if (linear->bias.defined()) linear->bias.zero_();
    } else if (auto* emb = m->as<nn::Embedding>()) {
      emb->weight.normal_(0.0, initializer_range);
      if (emb->options.padding_idx() && *emb->options.padding_idx() == pad_token_id) emb->weight[pad_token_id].zero_();
    } else if (auto* ln = m->as<nn::LayerNorm>()) {
      ln->weight.fill_(1.0);
      ln->bias.zero_();
    }
  }
}


std::string canonical_name(std::string name) {
  auto ends_with = [&](const std::string& s) {
    return name.size() >= s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0;
  };
  if (ends_with("LayerNorm.gamma")) name.replace(name.size() - 5, 5, "weight");
  else if (ends_with("LayerNorm.beta")) name.replace(name.size() - 4, 4, "bias");
  for (const char* bare : {"embeddings.", "encoder.", "pooler."})
    if (starts_with(name, bare)) return "bert." + name;
  return name;
}

void init_weights(SequenceModel& model, const BertConfig& config) {
  for (const auto& part : model->parts())
    if (part.role != Role::kAdapter) bert_init(*part.module, config.initializer_range, config.pad_token_id);
  for (auto [name, head] : model->side_heads()) head->reset_side_head();
  if (model->fusion) model->fusion->reset_fusion();
  if (model->adapter) model->adapter->reset();
}


LoadReport load_weights(SequenceModel& model, std::map<std::string, torch::Tensor> tensors,
                        const std::string& origin, bool allow_new_head) {
  std::map<std::string, torch::Tensor> by_name;
  for (auto& [name, t] : tensors) by_name[canonical_name(name)] = std::move(t);

  LoadReport report;
  std::vector<const RoleParameter*> missing_heads;
  const std::vector<RoleParameter> params = model->role_parameters();
  torch::NoGradGuard no_grad;
  for (const RoleParameter& p : params) {
    torch::Tensor param = p.tensor;
    auto it = by_name.find(p.name);
    if (it == by_name.end()) {
      if (!is_head_role(p.role) && p.role != Role::kPooler && p.role != Role::kAdapter)
        throw ModelError(origin + ": missing tensor \"" + p.name + "\"");
      report.missing.push_back(p.name);
      if (is_head_role(p.role)) missing_heads.push_back(&p);
      continue;
    }
    const bool widen_types = allow_new_head && p.name == "bert.embeddings.token_type_embeddings.weight" &&
                             it->second.dim() == 2 && it->second.size(1) == param.size(1) &&
                             it->second.size(0) < param.size(0);
    if (widen_types) {
      // New match types start as copies of the plain segment types, so the pretrained
      // model's behaviour is unchanged until fine-tuning teaches it the difference.
      for (int64_t row = 0; row < param.size(0); ++row) param[row].copy_(it->second[row % it->second.size(0)]);
    } else if (it->second.sizes() != param.sizes()) {
      if (!is_head_role(p.role) || !allow_new_head)
        throw ModelError(origin + ": tensor \"" + p.name + "\" has shape " + shape_text(it->second.sizes()) +
                         " but the config needs " + shape_text(param.sizes()));
      report.missing.push_back(p.name);
    } else {
      if (!it->second.is_floating_point() && param.is_floating_point())
        throw ModelError(origin + ": tensor \"" + p.name + "\" is stored with an integer dtype, but the parameter "
                         "is floating point (an int8 weight needs its \"" + p.name + kScaleSuffix + "\" beside it)");
      if (!torch::isfinite(it->second).all().item<bool>())
        throw ModelError(origin + ": tensor \"" + p.name + "\" holds NaN or infinite values");
      param.copy_(it->second.to(param.dtype()));
    }
    by_name.erase(it);
  }
  if (!allow_new_head) {
    for (const RoleParameter* p : missing_heads) {
      if (p->role == Role::kSequenceHead) throw ModelError(origin + ": has no classifier head");
      const std::string side = p->name.substr(0, p->name.find('.'));
      throw ModelError(origin + ": the config asks for the side input \"" + side + "\" but the " + side +
                       ".* weights are missing");
    }
  }
  for (const auto& [name, t] : by_name) {
    if (name == "bert.embeddings.position_ids") continue;  // a buffer that older transformers saved
    // An encoder tensor the model has no place for: config.json and the weights describe two
    // models (a config with fewer layers than the file holds, say), and scores would be wrong.
    if (starts_with(name, "bert."))
      throw ModelError(origin + ": tensor \"" + name + "\" is not a parameter of the model that config.json "
                       "describes (" + std::to_string(model->bert->layers->size()) +
                       " layers): the config and the weights disagree");
    report.unexpected.push_back(name);
  }
  return report;
}

std::vector<std::pair<std::string, torch::Tensor>> checkpoint_weights(SequenceModel& model, bool mlm_encoder) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (auto& p : model->role_parameters())
    if (p.role != Role::kAdapter && !(mlm_encoder && p.role == Role::kSequenceHead))
      out.emplace_back(p.name, p.tensor);
  return out;
}

void set_trainable(SequenceModel& model, const std::vector<Role>& roles, bool trainable) {
  for (auto& p : model->role_parameters())
    if (std::find(roles.begin(), roles.end(), p.role) != roles.end()) p.tensor.requires_grad_(trainable);
}

int64_t share_encoder_weights(SequenceModel& from, SequenceModel& model) {
  std::map<std::string, torch::Tensor> source;
  for (auto& p : from->role_parameters())
    if (is_base_role(p.role)) source.emplace(p.name, p.tensor);
  torch::NoGradGuard no_grad;
  int64_t shared = 0;
  for (auto& p : model->role_parameters()) {
    if (!is_base_role(p.role)) continue;
    auto it = source.find(p.name);
    if (it == source.end() || !it->second.sizes().equals(p.tensor.sizes()) ||
        it->second.scalar_type() != p.tensor.scalar_type())
      throw ModelError("cannot share the base weight " + p.name + " between two models of different shapes (a bug)");
    if (p.tensor.is_same(it->second) || p.tensor.data_ptr() == it->second.data_ptr()) continue;
    shared += p.tensor.numel() * static_cast<int64_t>(p.tensor.element_size());
    p.tensor.set_data(it->second);
  }
  return shared;
}

void set_dropout(SequenceModel& model, BertConfig& config, double p) {
  for (const auto& module : model->modules())
    if (auto* dropout = module->as<nn::DropoutImpl>()) dropout->options.p(p);
  config.hidden_dropout_prob = config.attention_probs_dropout_prob = p;
  config.classifier_dropout.reset();  // falls back to hidden_dropout_prob
}

}  // namespace dqe
