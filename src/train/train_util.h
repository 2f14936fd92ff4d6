// Small pieces shared by the training objectives.
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>

#include <memory>
#include <vector>

#include <spdlog/logger.h>

#include "base/hash.h"
#include "dqe/tokenizer.h"
#include "model/sequence_model.h"
#include "model/weights.h"

namespace dqe::detail {

// What --dropout (when given) does to a loaded model: on a new run from --init it sets the
// model's dropout (set_dropout) and logs the model's own; on --resume a value other than
// the run's is a ConfigError, since a resumed run continues as it was.
void apply_dropout_flag(const std::optional<double>& dropout, bool resume, SequenceModel& model, BertConfig& config,
                        spdlog::logger& log);

// The tokenizer of a model built from scratch: --tokenizer (a vocab.txt, a SentencePiece
// .model or a `dqe tokenizer train` directory), else a WordPiece vocabulary of vocab_size
// built from texts (logged as built from `source`).
std::shared_ptr<const Tokenizer> new_tokenizer(const std::string& tokenizer_flag, bool lower_case, int64_t vocab_size,
                                               const std::vector<std::string>& texts, const std::string& source,
                                               spdlog::logger& log);

// The shape of a model built from scratch, from the shape flags that train and pretrain share.
template <typename Config>
BertConfig new_model_shape(const Config& flags, const Tokenizer& tokenizer, int64_t max_len, int64_t type_vocab_size) {
  BertConfig b;
  b.vocab_size = tokenizer.vocab_size();
  b.hidden_size = flags.hidden;
  b.num_hidden_layers = flags.layers;
  b.num_attention_heads = flags.heads;
  b.intermediate_size = flags.intermediate;
  b.hidden_dropout_prob = b.attention_probs_dropout_prob = flags.dropout.value_or(kDefaultDropout);
  b.max_position_embeddings = std::max<int64_t>(512, max_len);
  b.type_vocab_size = type_vocab_size;
  b.pad_token_id = tokenizer.pad_id();
  b.validate("model shape");
  return b;
}


}  // namespace dqe::detail
