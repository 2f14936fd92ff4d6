// SentencePiece .model files, through the sentencepiece library.
#pragma once

#include <memory>
#include <string>

#include "dqe/tokenizer.h"

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace dqe {

class SentencePieceTokenizer : public Tokenizer {
 public:
  // Throws ModelError naming the file when it cannot be loaded. Special ids: "[CLS]"/"[SEP]"/
  // "[PAD]"/"[MASK]" pieces when the model has them, else the model's <s>/</s>/<pad> ids
  // (pad falls back to 0; a model with neither [CLS] nor <s>, or neither [SEP] nor </s>,
  // is a ModelError), unk from the model.
  explicit SentencePieceTokenizer(const std::string& model_path);
  ~SentencePieceTokenizer() override;

  std::vector<int64_t> encode(std::string_view text) const override;
  std::vector<std::string> tokenize(std::string_view text) const override;
  int64_t cls_id() const override { return cls_id_; }
  int64_t sep_id() const override { return sep_id_; }
  int64_t pad_id() const override { return pad_id_; }
  int64_t unk_id() const override { return unk_id_; }
  int64_t mask_id() const override { return mask_id_; }
  int64_t vocab_size() const override;
  std::string id_to_piece(int64_t id) const override;
  std::string save(const std::string& dir) const override;  // writes "tokenizer.model"
  std::string kind() const override { return "sentencepiece"; }

 private:
  std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
  std::string model_bytes_;  // serialized model, written back by save()
  int64_t cls_id_ = -1, sep_id_ = -1, pad_id_ = 0, unk_id_ = 0, mask_id_ = -1;
};

// Trains a SentencePiece model (type "unigram" or "bpe") on text lines with the library's
// trainer; [PAD] [CLS] [SEP] [MASK] are added as user-defined pieces. Writes model_path.
// Single-threaded, so the model does not depend on the machine; vocab_size is a soft limit
// (a small corpus gives fewer pieces). Throws ConfigError for a bad type or size, IoError
// naming an unreadable corpus file, Error when the trainer fails.
// lower_case folds case in the model's normaliser (nmt_nfkc_cf), so encoding folds too.
void train_sentencepiece(const std::vector<std::string>& corpus_files, const std::string& model_path,
                         int vocab_size, const std::string& type, bool lower_case = false);

}  // namespace dqe
