#include "deploy/deploy.h"

#include <regex>

#include "dqe/errors.h"

namespace dqe {

void fold_label_scaling(TaskSpec& task, std::map<std::string, torch::Tensor>& tensors) {
  if (task.task != Task::kRegression) return;
  torch::NoGradGuard no_grad;
  torch::Tensor& w = tensors.at("classifier.weight");
  torch::Tensor& b = tensors.at("classifier.bias");
  w = w.detach().to(torch::kFloat64).mul(task.label_std).to(torch::kFloat32);
  b = b.detach().to(torch::kFloat64).mul(task.label_std).add(task.label_mean).to(torch::kFloat32);
  task.label_mean = 0;
  task.label_std = 1;
}

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
  if (spec.lora || spec.bottleneck) throw ModelError("keeping layers of an adapter: merge it first (a bug)");
  std::map<std::string, torch::Tensor> tensors;
  for (auto& [name, t] : checkpoint_weights(model, spec.mlm_encoder)) tensors.emplace(name, t.detach().clone());
  keep_layers(spec.bert, tensors, layers);
  SequenceModel kept(spec.bert, spec.task.num_outputs(), featurizer.side_dims(), std::nullopt, spec.task.fusion);
  init_weights(kept, spec.bert);
  load_weights(kept, std::move(tensors), "--keep-layers", /*allow_new_head=*/spec.mlm_encoder);
  kept->to(device_of(*model));
  return kept;
}

std::string hf_incompatibility(const LoadedModel& model) {
  const TaskSpec& task = model.spec.task;
  if (task.match_types)
    return "its inputs mark shared words with token types 2 and 3, which BertTokenizer never produces; train it with "
           "--match-types off";
  if (task.lexical_features || !model.featurizer->side_inputs().empty())
    return "it adds side inputs (lexical features) to its logits, which BertForSequenceClassification has no place "
           "for; train it without --lexical-features";
  if (model.spec.bottleneck)
    return "it holds bottleneck adapters, which BertForSequenceClassification has no place for; train it with "
           "--peft lora or in full";
  if (model.tokenizer->kind() != "wordpiece")
    return "its tokenizer is " + model.tokenizer->kind() +
           ", which BertTokenizer cannot read; train it with a WordPiece vocab.txt (--tokenizer vocab.txt, or the "
           "vocabulary dqe builds)";
  return "";
}

}  // namespace dqe
