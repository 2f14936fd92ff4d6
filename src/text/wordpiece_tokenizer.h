// BERT WordPiece tokenizer, matching Hugging Face's BertTokenizer (BasicTokenizer +
// WordpieceTokenizer) exactly: control characters dropped, CJK characters split out,
// lower-casing with accent stripping when uncased, punctuation split, greedy
// longest-match-first WordPiece with "##" continuations, [UNK] for words over 100 chars.
#pragma once

#include <string>
#include <unordered_map>
#include <vector>

#include "dqe/tokenizer.h"

namespace dqe {

class WordPieceTokenizer : public Tokenizer {
 public:
  // One token per line; the line number (from 0) is the id. Throws ModelError naming
  // the file when it is missing, empty, or lacks [CLS], [SEP] or [UNK].
  static std::unique_ptr<WordPieceTokenizer> from_file(const std::string& vocab_path, bool lower_case);
  // Same checks, from tokens in id order; origin names the source in messages. A token
  // may not contain a line break (save() writes one per line).
  WordPieceTokenizer(std::vector<std::string> vocab, bool lower_case, std::string origin = "vocab");

  std::vector<int64_t> encode(std::string_view text) const override;
  std::vector<std::string> tokenize(std::string_view text) const override;
  int64_t cls_id() const override { return cls_id_; }
  int64_t sep_id() const override { return sep_id_; }
  int64_t pad_id() const override { return pad_id_; }
  int64_t unk_id() const override { return unk_id_; }
  int64_t mask_id() const override { return mask_id_; }
  int64_t vocab_size() const override { return static_cast<int64_t>(vocab_.size()); }
  std::string id_to_piece(int64_t id) const override;
  std::string save(const std::string& dir) const override;
  std::string kind() const override { return "wordpiece"; }

  bool lower_case() const { return lower_case_; }
  const std::vector<std::string>& vocab() const { return vocab_; }

  // BasicTokenizer alone: cleaned, split words (lower-cased and accent-stripped when uncased).
  std::vector<std::string> basic_tokenize(std::string_view text) const;

 private:
  // Appends the WordPiece pieces of one basic word as ids; candidate is scratch space.
  void wordpiece(std::string_view word, std::string& candidate, std::vector<int64_t>& out) const;

  std::vector<std::string> vocab_;
  std::unordered_map<std::string, int64_t> ids_;
  size_t max_piece_bytes_ = 0;  // longest token, bounds the longest-match search
  bool lower_case_;
  int64_t cls_id_ = -1, sep_id_ = -1, pad_id_ = 0, unk_id_ = -1, mask_id_ = -1;
};

}  // namespace dqe
