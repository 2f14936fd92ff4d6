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

// `dqe tokenizer train`: a WordPiece vocab.txt (ours, for BERT-style models) or a
// SentencePiece unigram/BPE model (the library's trainer) from text files, one text per line.
struct TokenizerTrainConfig {
  std::vector<std::string> corpus;
  // Output directory; receives vocab.txt (+ tokenizer_config.json) or tokenizer.model.
  std::string out_dir;
  // "wordpiece", "unigram" or "bpe".
  std::string type = "wordpiece";
  int64_t vocab_size = 8000;
  bool lower_case = true;
  // WordPiece: pieces seen fewer times are not added.
  int64_t min_frequency = 2;

  // Throws ConfigError naming the flag.
  void validate() const;
};

struct TokenizerTrainResult {
  std::string path;  // the written vocab.txt or tokenizer.model
  int64_t vocab_size = 0;
  int64_t lines = 0;  // non-empty corpus lines (WordPiece; SentencePiece reads its own)
};

// Throws IoError naming an unreadable corpus file or an unwritable output.
TokenizerTrainResult train_tokenizer(const TokenizerTrainConfig& config);

}  // namespace dqe
