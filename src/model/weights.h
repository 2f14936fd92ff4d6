// A model's weights by role: BERT's initialisation, loading by Hugging Face name, what a
// checkpoint saves, freezing, sharing an adapter's base, dropout.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include <torch/torch.h>

#include "model/bert_config.h"
#include "model/roles.h"
#include "model/sequence_model.h"

namespace dqe {

// BERT's initialisation of every Linear, Embedding and LayerNorm inside module.
void bert_init(torch::nn::Module& module, double initializer_range, int64_t pad_token_id);

// BERT's initialisation by role: N(0, initializer_range) for the Linear and Embedding weights
// of the encoder and heads (the padding row zeroed), zero biases, LayerNorm weight 1 and bias
// 0; side heads then get SideHead::reset_side_head() and the adapter its kind's reset().
void init_weights(SequenceModel& model, const BertConfig& config);

struct LoadReport {
  std::vector<std::string> missing;     // parameters left at their initial values
  std::vector<std::string> unexpected;  // tensors in the file that the model does not use
};

// Copies tensors into the model by Hugging Face name. Accepts names with or without the
// "bert." prefix and the old "gamma"/"beta" LayerNorm names. Embeddings and encoder must be
// in the file; a missing pooler or LoRA update (an adapter is in its own file) is reported. Heads (sequence and side) missing or with another
// shape are allowed when allow_new_head (they stay as initialised), and so are token type
// embeddings with fewer rows than the config (widened, see TaskSpec::match_types); anything
// else throws ModelError naming origin and the tensor.
LoadReport load_weights(SequenceModel& model, std::map<std::string, torch::Tensor> tensors,
                        const std::string& origin, bool allow_new_head);

// The tensors a checkpoint saves, by Hugging Face name: every role but the adapter (saved in
// its own file, see model/peft/adapter.h) and, for a pretrained encoder (mlm_encoder: its classifier was
// never trained), the sequence head.
std::vector<std::pair<std::string, torch::Tensor>> checkpoint_weights(SequenceModel& model, bool mlm_encoder);

// Sets requires_grad of every parameter with one of these roles.
void set_trainable(SequenceModel& model, const std::vector<Role>& roles, bool trainable);

// Makes `model` use `from`'s encoder weights (embeddings, layers and pooler: the same tensors,
// not copies), so that several adapters of one base hold the base once in memory. The caller
// vouches that both were loaded from the same base (same directory and weights hash); shapes
// and dtypes are checked. Shared weights must not be written afterwards (merge_lora would
// change every sharer's base). Returns the bytes that are no longer held twice.
int64_t share_encoder_weights(SequenceModel& from, SequenceModel& model);


// Sets every dropout probability of the model (hidden states, attention and classifier) to p
// and records it in config, so that saved checkpoints carry it.
void set_dropout(SequenceModel& model, BertConfig& config, double p);

// Maps a checkpoint's tensor name onto ours: adds the "bert." prefix of a bare BertModel's
// names and renames TensorFlow-era LayerNorm gamma/beta.
std::string canonical_name(std::string name);

}  // namespace dqe
