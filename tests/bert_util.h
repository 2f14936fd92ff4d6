// A small BertConfig for the model tests.
#pragma once

#include <cstdint>

#include "model/model_spec.h"

namespace dqe::test {

// A BertConfig of these sizes; the rest are BERT's defaults.
inline BertConfig tiny_bert_config(int64_t vocab, int64_t hidden, int64_t layers, int64_t heads, int64_t intermediate,
                                   int64_t max_positions = 512) {
  BertConfig c;
  c.vocab_size = vocab;
  c.hidden_size = hidden;
  c.num_hidden_layers = layers;
  c.num_attention_heads = heads;
  c.intermediate_size = intermediate;
  c.max_position_embeddings = max_positions;
  return c;
}

}  // namespace dqe::test
