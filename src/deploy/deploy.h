// What `dqe export` does to a model on its way out: the label scaling folded into the head
// (so that the logit is the score), layers dropped, and the checks that a model is one Hugging
// Face's BertForSequenceClassification and BertTokenizer compute exactly. Each works on a
// model's spec and its tensors by Hugging Face name.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "model/model_dir.h"
#include "model/model_spec.h"

namespace dqe {

// A regression head's logit is the standardised label; score = logit * label_std + label_mean.
// Scales classifier.weight and classifier.bias so that the logit is the score, and sets
// label_mean 0 and label_std 1. Other tasks are left as they are.
void fold_label_scaling(TaskSpec& task, std::map<std::string, torch::Tensor>& tensors);

// Which of n layers --keep-layers k keeps. "bottom": layers 0..k-1 (the top ones dropped).
// "alternate": the top layer and every (n/k)th below it (n=4, k=2: 1 and 3; n=12, k=6: 1, 3, .. 11),
// as DistilBERT keeps every other layer. Throws ConfigError naming --keep-layers unless 1 <= k <= n.
std::vector<int64_t> layers_to_keep(int64_t n, int64_t k, const std::string& choice);

// Keeps the given encoder layers, renumbered 0.. in order: "bert.encoder.layer.I.*" of a kept I
// becomes "bert.encoder.layer.J.*", those of the others are removed, and num_hidden_layers is
// their count.
void keep_layers(BertConfig& bert, std::map<std::string, torch::Tensor>& tensors, const std::vector<int64_t>& layers);

// The model with only the given encoder layers (keep_layers on its weights), its spec's
// num_hidden_layers set to match. The model must be a plain one (no adapters).
SequenceModel keep_model_layers(ModelSpec& spec, SequenceModel& model, const Featurizer& featurizer,
                                const std::vector<int64_t>& layers);

// Why Hugging Face cannot reproduce this model's scores (one line, with what to train instead),
// or "" when it can: match token types, side inputs (lexical features), bottleneck adapters, a
// SentencePiece tokenizer. A LoRA adapter can be: export merges it.
std::string hf_incompatibility(const LoadedModel& model);

}  // namespace dqe
