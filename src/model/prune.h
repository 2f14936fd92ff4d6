// Pruning encoder layers: for a student of a model (train --keep-layers) and for export
// (export --keep-layers).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "data/featurizer.h"
#include "model/model_spec.h"
#include "model/sequence_model.h"

namespace dqe {

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

}  // namespace dqe
