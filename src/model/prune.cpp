#include "model/prune.h"

#include <regex>

#include "dqe/errors.h"
#include "model/heads/task_head.h"
#include "model/weights.h"

namespace dqe {

std::vector<int64_t> layers_to_keep(int64_t n, int64_t k, const std::string& choice) {
  if (k < 1 || k > n)
    throw ConfigError("--keep-layers must be between 1 and the model's " + std::to_string(n) + " layers, got " +
                      std::to_string(k));
  std::vector<int64_t> out;
  if (choice == "bottom") {
    for (int64_t i = 0; i < k; ++i) out.push_back(i);
  } else if (choice == "alternate") {
    // From the top down, one every n/k (rounded down), so that the top layer, which the pooler
    // was trained on, stays.
    for (int64_t i = k - 1; i >= 0; --i) out.push_back(n - 1 - i * (n / k));
  } else {
    throw ConfigError("--keep-which must be bottom or alternate, got " + choice);
  }
  return out;
}

void keep_layers(BertConfig& bert, std::map<std::string, torch::Tensor>& tensors, const std::vector<int64_t>& layers) {
  static const std::regex layer_name(R"(^bert\.encoder\.layer\.(\d+)\.(.*)$)");
  std::map<std::string, torch::Tensor> out;
  for (auto& [name, t] : tensors) {
    std::smatch m;
    if (!std::regex_match(name, m, layer_name)) {
      out.emplace(name, t);
      continue;
    }
    const int64_t index = std::stoll(m[1].str());
    for (size_t j = 0; j < layers.size(); ++j)
      if (layers[j] == index) out.emplace("bert.encoder.layer." + std::to_string(j) + "." + m[2].str(), t);
  }
  tensors = std::move(out);
  bert.num_hidden_layers = static_cast<int64_t>(layers.size());
}

SequenceModel keep_model_layers(ModelSpec& spec, SequenceModel& model, const Featurizer& featurizer,
                                const std::vector<int64_t>& layers) {
  if (spec.adapter) throw ModelError("keeping layers of an adapter: merge it first (a bug)");
  std::map<std::string, torch::Tensor> tensors;
  for (auto& [name, t] : checkpoint_weights(model, spec.mlm_encoder)) tensors.emplace(name, t.detach().clone());
  keep_layers(spec.bert, tensors, layers);
  SequenceModel kept(spec.bert, task_head(spec.task.task).num_outputs(spec.task), featurizer.side_dims(), nullptr,
                     spec.task.fusion);
  init_weights(kept, spec.bert);
  load_weights(kept, std::move(tensors), "--keep-layers", /*allow_new_head=*/spec.mlm_encoder);
  kept->to(device_of(*model));
  return kept;
}

}  // namespace dqe
