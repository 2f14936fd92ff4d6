// Masked-language-model inputs: BERT's 15% / 80-10-10 masking, per token or per whole word.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include "dqe/tokenizer.h"

namespace dqe {

// Label of a position that is not predicted (PyTorch's cross_entropy ignore_index).
constexpr int64_t kIgnoreLabel = -100;

struct MaskingOptions {
  // Fraction of a sequence's maskable tokens chosen for prediction (at least one).
  double mask_prob = 0.15;
  // Of the chosen tokens: this fraction becomes [MASK], as many again get a random token,
  // the rest are kept (BERT's 80% / 10% / 10%).
  double mask_token_fraction = 0.8;
  // Choose whole words: all pieces of a word are masked together.
  bool whole_word = false;
};

// What the masker needs to know about a vocabulary.
struct MaskingVocab {
  int64_t mask_id = -1;
  int64_t vocab_size = 0;
  // Per id: 1 when the piece continues a word ("##ing", or a SentencePiece piece without "▁").
  std::vector<char> continues_word;
  // Per id: 1 for special tokens, which are never chosen and never drawn as random tokens.
  std::vector<char> special;

  // Throws ModelError when the tokenizer has no mask token.
  static MaskingVocab from_tokenizer(const Tokenizer& tokenizer);
};

struct MaskedSequence {
  std::vector<int64_t> ids;     // the input with chosen tokens replaced
  std::vector<int64_t> labels;  // original ids at chosen positions, kIgnoreLabel elsewhere
};

// Masks one sequence (special tokens included, as the model sees it). Deterministic for
// the same rng state.
MaskedSequence mask_sequence(const std::vector<int64_t>& ids, const MaskingVocab& vocab, const MaskingOptions& options,
                             std::mt19937_64& rng);

}  // namespace dqe
