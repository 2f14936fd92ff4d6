#include "dqe/tokenizer.h"

#include <filesystem>

#include "dqe/errors.h"
#include "text/sentencepiece_tokenizer.h"
#include "text/wordpiece_tokenizer.h"

namespace dqe {

Encoding Tokenizer::encode_pair(std::string_view a, std::string_view b, size_t max_len) const {
  return encode_pair_ids(encode(a), encode(b), max_len);
}

Encoding Tokenizer::encode_pair_ids(std::vector<int64_t> a, std::vector<int64_t> b, size_t max_len) const {
  if (max_len < 3) {
    throw ConfigError("--max-len must be >= 3 ([CLS] a [SEP] b [SEP]), got " + std::to_string(max_len));
  }
  const size_t budget = max_len - 3;
  const size_t before = a.size() + b.size();
  while (a.size() + b.size() > budget) (a.size() > b.size() ? a : b).pop_back();

  Encoding enc;
  enc.truncated = static_cast<int64_t>(before - a.size() - b.size());
  enc.ids.reserve(a.size() + b.size() + 3);
  enc.ids.push_back(cls_id());
  enc.ids.insert(enc.ids.end(), a.begin(), a.end());
  enc.ids.push_back(sep_id());
  enc.type_ids.assign(enc.ids.size(), 0);
  enc.ids.insert(enc.ids.end(), b.begin(), b.end());
  enc.ids.push_back(sep_id());
  enc.type_ids.resize(enc.ids.size(), 1);
  return enc;
}

namespace {

constexpr const char* kTokenizerFiles[] = {"vocab.txt", "tokenizer.model", "spiece.model", "sentencepiece.bpe.model"};

}  // namespace

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& dir, bool lower_case) {
  for (const char* name : kTokenizerFiles) {
    const std::filesystem::path path = std::filesystem::path(dir) / name;
    if (std::filesystem::is_regular_file(path)) return load_tokenizer_file(path.string(), lower_case);
  }
  throw ModelError(dir + ": no tokenizer (vocab.txt, tokenizer.model, spiece.model or sentencepiece.bpe.model)");
}

bool has_tokenizer(const std::string& dir) {
  for (const char* name : kTokenizerFiles)
    if (std::filesystem::is_regular_file(std::filesystem::path(dir) / name)) return true;
  return false;
}

std::unique_ptr<Tokenizer> load_tokenizer_file(const std::string& path, bool lower_case) {
  if (std::filesystem::path(path).extension() == ".model") return std::make_unique<SentencePieceTokenizer>(path);
  return WordPieceTokenizer::from_file(path, lower_case);
}

}  // namespace dqe
