#include "text/wordpiece_tokenizer.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "dqe/errors.h"
#include "text/unicode.h"

namespace dqe {
namespace {

constexpr const char* kVocabFile = "vocab.txt";
// BERT's max_input_chars_per_word: longer words become a single [UNK].
constexpr size_t kMaxWordChars = 100;

// Lines as Python's text mode reads them: "\n", "\r\n" and a lone "\r" all end a line,
// and a final line without a terminator still counts.
std::vector<std::string> read_lines(const std::string& path) {
  if (!std::filesystem::is_regular_file(path)) throw ModelError(path + ": no such vocab file");
  std::ifstream in(path, std::ios::binary);
  const std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw ModelError(path + ": cannot read vocab file");
  std::vector<std::string> lines;
  size_t begin = 0;
  while (begin < data.size()) {
    size_t end = data.find_first_of("\r\n", begin);
    if (end == std::string::npos) end = data.size();
    lines.emplace_back(data, begin, end - begin);
    begin = end + 1;
    if (end + 1 < data.size() && data[end] == '\r' && data[end + 1] == '\n') ++begin;
  }
  return lines;
}

}  // namespace

std::unique_ptr<WordPieceTokenizer> WordPieceTokenizer::from_file(const std::string& vocab_path,
                                                                  bool lower_case) {
  return std::make_unique<WordPieceTokenizer>(read_lines(vocab_path), lower_case, vocab_path);
}

WordPieceTokenizer::WordPieceTokenizer(std::vector<std::string> vocab, bool lower_case, std::string origin)
    : vocab_(std::move(vocab)), lower_case_(lower_case) {
  if (vocab_.empty()) throw ModelError(origin + ": vocab is empty");
  ids_.reserve(vocab_.size());
  for (size_t i = 0; i < vocab_.size(); ++i) {
    // save() writes one token per line, so a line break would shift every later id.
    if (vocab_[i].find_first_of("\r\n") != std::string::npos) {
      throw ModelError(origin + ": token " + std::to_string(i) + " contains a line break");
    }
    ids_[vocab_[i]] = static_cast<int64_t>(i);  // a duplicate keeps its last id, as Python's dict does
    max_piece_bytes_ = std::max(max_piece_bytes_, vocab_[i].size());
  }
  auto find = [&](const char* token) {
    const auto it = ids_.find(token);
    return it == ids_.end() ? int64_t{-1} : it->second;
  };
  auto require = [&](const char* token) {
    const int64_t id = find(token);
    if (id < 0) throw ModelError(origin + ": vocab lacks " + token);
    return id;
  };
  cls_id_ = require("[CLS]");
  sep_id_ = require("[SEP]");
  unk_id_ = require("[UNK]");
  pad_id_ = std::max<int64_t>(find("[PAD]"), 0);
  mask_id_ = find("[MASK]");
}

std::vector<int64_t> WordPieceTokenizer::encode(std::string_view text) const {
  std::vector<int64_t> ids;
  std::string candidate;
  detail::basic_tokenize(text, lower_case_, [&](std::string_view word) { wordpiece(word, candidate, ids); });
  return ids;
}

std::vector<std::string> WordPieceTokenizer::tokenize(std::string_view text) const {
  std::vector<std::string> pieces;
  for (int64_t id : encode(text)) pieces.push_back(vocab_[static_cast<size_t>(id)]);
  return pieces;
}

std::vector<std::string> WordPieceTokenizer::basic_tokenize(std::string_view text) const {
  std::vector<std::string> words;
  detail::basic_tokenize(text, lower_case_, [&](std::string_view word) { words.emplace_back(word); });
  return words;
}

void WordPieceTokenizer::wordpiece(std::string_view word, std::string& candidate,
                                   std::vector<int64_t>& out) const {
  if (detail::utf8_length(word) > kMaxWordChars) {
    out.push_back(unk_id_);
    return;
  }
  const size_t first_piece = out.size();
  for (size_t start = 0; start < word.size();) {
    const std::string_view prefix = start > 0 ? "##" : "";
    // Candidates longer than the longest token cannot match, so start below them.
    size_t end = std::min(word.size(), start + max_piece_bytes_ - std::min(max_piece_bytes_, prefix.size()));
    int64_t id = -1;
    for (; end > start; --end) {
      if (end < word.size() && !detail::is_code_point_start(word, end)) continue;
      candidate.assign(prefix);
      candidate.append(word.substr(start, end - start));
      const auto it = ids_.find(candidate);
      if (it != ids_.end()) {
        id = it->second;
        break;
      }
    }
    if (id < 0) {
      out.resize(first_piece);
      out.push_back(unk_id_);
      return;
    }
    out.push_back(id);
    start = end;
  }
}

std::string WordPieceTokenizer::id_to_piece(int64_t id) const {
  if (id < 0 || id >= vocab_size()) return "";
  return vocab_[static_cast<size_t>(id)];
}

std::string WordPieceTokenizer::save(const std::string& dir) const {
  const std::string path = (std::filesystem::path(dir) / kVocabFile).string();
  std::ofstream out(path, std::ios::binary);
  for (const std::string& token : vocab_) out << token << '\n';
  out.close();
  if (!out) throw IoError(path + ": cannot write vocab");
  return kVocabFile;
}

}  // namespace dqe
