// Tokenizers turn a (query, result text) pair into BERT inputs:
// [CLS] query [SEP] text [SEP] with token type ids, truncated longest-first.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace dqe {

// Model inputs for one pair (or one text), unpadded.
struct Encoding {
  std::vector<int64_t> ids;
  std::vector<int64_t> type_ids;
  // Tokens cut off to fit the length limit.
  int64_t truncated = 0;
};

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Token ids of one text, without special tokens.
  virtual std::vector<int64_t> encode(std::string_view text) const = 0;
  // Surface pieces of one text (for tests and debugging), without special tokens.
  virtual std::vector<std::string> tokenize(std::string_view text) const = 0;

  virtual int64_t cls_id() const = 0;
  virtual int64_t sep_id() const = 0;
  virtual int64_t pad_id() const = 0;
  virtual int64_t unk_id() const = 0;
  // -1 when the vocabulary has no mask token.
  virtual int64_t mask_id() const = 0;
  virtual int64_t vocab_size() const = 0;
  // Piece for an id ("" when out of range).
  virtual std::string id_to_piece(int64_t id) const = 0;

  // Writes the tokenizer's own file into dir and returns its file name
  // ("vocab.txt" for WordPiece, "tokenizer.model" for SentencePiece).
  virtual std::string save(const std::string& dir) const = 0;
  // "wordpiece" or "sentencepiece".
  virtual std::string kind() const = 0;

  // [CLS] a [SEP] b [SEP]; while too long, drop the last token of the longer side
  // (of b when equal), as Hugging Face's longest_first truncation does.
  // max_len counts the special tokens and must be >= 3.
  Encoding encode_pair(std::string_view a, std::string_view b, size_t max_len) const;
  // Same, from already-encoded sides (lets callers cache per-text ids).
  Encoding encode_pair_ids(std::vector<int64_t> a, std::vector<int64_t> b, size_t max_len) const;
};

// Loads the tokenizer stored in a model directory: vocab.txt (WordPiece) or
// tokenizer.model / spiece.model / sentencepiece.bpe.model (SentencePiece).
// lower_case applies to WordPiece only. Throws ModelError naming the directory
// when neither exists.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& dir, bool lower_case);
// Whether dir holds one of the files load_tokenizer reads.
bool has_tokenizer(const std::string& dir);

// Loads a tokenizer from a single file: a .model file is SentencePiece, anything else
// a WordPiece vocab.txt.
std::unique_ptr<Tokenizer> load_tokenizer_file(const std::string& path, bool lower_case);

}  // namespace dqe
