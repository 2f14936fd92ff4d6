// Builds a WordPiece vocabulary from raw texts, so that `dqe train` without --init or
// --tokenizer can start from nothing but the training data.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace dqe {

struct VocabBuilderOptions {
  // Target vocabulary size, special tokens included.
  int64_t vocab_size = 8000;
  // Whether texts are lower-cased and accent-stripped before counting (uncased model).
  bool lower_case = true;
  // Pieces seen fewer times than this are not added (single characters always are).
  int64_t min_frequency = 2;
};

// Returns tokens in id order: [PAD] [UNK] [CLS] [SEP] [MASK] first, then every character
// seen, each both as a word start and as a "##" continuation (so no word made of seen
// characters encodes to [UNK]), then pieces learned by WordPiece-style merges (most
// frequent pair first) over the basic-tokenized words, until vocab_size is reached or no
// pair reaches min_frequency. The result exceeds vocab_size only when the characters
// alone do. Deterministic and independent of the texts' order: ties are broken by the
// pieces' bytes. Throws ConfigError when vocab_size leaves no room beyond the special tokens.
std::vector<std::string> build_wordpiece_vocab(const std::vector<std::string>& texts,
                                               const VocabBuilderOptions& options);

}  // namespace dqe
