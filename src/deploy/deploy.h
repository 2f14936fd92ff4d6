// The checks that a model is one Hugging Face's BertForSequenceClassification and BertTokenizer
// compute exactly (dqe export --format hf).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "model/model_dir.h"
#include "model/model_spec.h"

namespace dqe {

// Why Hugging Face cannot reproduce this model's scores (one line, with what to train instead),
// or "" when it can: match token types, side inputs (lexical features), bottleneck adapters, a
// SentencePiece tokenizer. A LoRA adapter can be: export merges it.
std::string hf_incompatibility(const LoadedModel& model);
// The same of a model being built (train says it when a run starts).
std::string hf_incompatibility(const ModelSpec& spec, const Featurizer& featurizer);

}  // namespace dqe
