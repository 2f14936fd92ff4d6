#include "text/sentencepiece_tokenizer.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <unordered_map>

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include "dqe/errors.h"

namespace dqe {
namespace {

// sentencepiece's messages start with where in its sources they come from
// ("trainer_interface.cc(336) [!sentences_.empty()] "): that part means nothing to a user.
std::string readable(const std::string& message) {
  const size_t source = message.find(".cc(");
  if (source == std::string::npos) return message;
  const size_t end = message.find("] ", source);
  return end == std::string::npos ? message : message.substr(end + 2);
}

constexpr const char* kModelFile = "tokenizer.model";
// sentencepiece's max_sentence_length (its default): longer lines are skipped in training.
constexpr size_t kMaxSentenceBytes = 4192;

std::string read_model(const std::string& path) {
  if (!std::filesystem::is_regular_file(path)) throw ModelError(path + ": no such SentencePiece model");
  std::ifstream in(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw ModelError(path + ": cannot read SentencePiece model");
  return bytes;
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.close();
  if (!out) throw IoError(path + ": cannot write");
}

// Feeds the trainer line by line from several files, so that file names need no
// escaping (the trainer's own "input" option splits on commas). A file that cannot be
// read ends the iteration with an error status rather than an exception, which would
// have to unwind through the library.
class FileLines : public sentencepiece::SentenceIterator {
 public:
  explicit FileLines(const std::vector<std::string>& files) : files_(files) { Next(); }

  bool done() const override { return file_ == files_.size(); }
  const std::string& value() const override { return line_; }
  sentencepiece::util::Status status() const override {
    if (error_.empty()) return {};
    return {sentencepiece::util::StatusCode::kNotFound, error_};
  }
  const std::string& error() const { return error_; }
  // Lines sentencepiece can learn from: neither blank nor longer than it reads.
  int64_t usable() const { return lines_ - blank_ - too_long_; }
  // "3 lines: 1 blank, 2 longer than 4192 bytes".
  std::string summary() const {
    return std::to_string(lines_) + (lines_ == 1 ? " line: " : " lines: ") + std::to_string(blank_) + " blank, " +
           std::to_string(too_long_) +
           " longer than the " + std::to_string(kMaxSentenceBytes) + " bytes sentencepiece reads";
  }

  void Next() override {
    while (file_ < files_.size()) {
      if (!in_.is_open()) {
        in_.open(files_[file_], std::ios::binary);
        if (!in_) return fail(files_[file_] + ": cannot open corpus file");
      }
      if (std::getline(in_, line_)) {
        if (!line_.empty() && line_.back() == '\r') line_.pop_back();
        ++lines_;
        if (line_.find_first_not_of(" \t") == std::string::npos) ++blank_;
        else if (line_.size() > kMaxSentenceBytes) ++too_long_;
        return;
      }
      if (in_.bad()) return fail(files_[file_] + ": cannot read corpus file");
      in_.close();
      ++file_;
    }
  }

 private:
  void fail(std::string message) {
    error_ = std::move(message);
    file_ = files_.size();
  }

  const std::vector<std::string>& files_;
  size_t file_ = 0;
  std::ifstream in_;
  std::string line_;
  std::string error_;
  int64_t lines_ = 0, blank_ = 0, too_long_ = 0;
};

}  // namespace

SentencePieceTokenizer::SentencePieceTokenizer(const std::string& model_path)
    : sp_(std::make_unique<sentencepiece::SentencePieceProcessor>()), model_bytes_(read_model(model_path)) {
  const auto status = sp_->LoadFromSerializedProto(model_bytes_);
  if (!status.ok()) throw ModelError(model_path + ": invalid SentencePiece model: " + readable(status.message()));

  // PieceToId answers unk for unknown pieces, so check that the piece is really there.
  auto find = [&](const char* piece) -> int64_t {
    const int id = sp_->PieceToId(piece);
    return sp_->IdToPiece(id) == piece ? id : -1;
  };
  auto find_or = [&](const char* piece, int fallback) -> int64_t {
    const int64_t id = find(piece);
    return id >= 0 ? id : fallback;
  };
  unk_id_ = sp_->unk_id();
  cls_id_ = find_or("[CLS]", sp_->bos_id());
  sep_id_ = find_or("[SEP]", sp_->eos_id());
  pad_id_ = std::max<int64_t>(find_or("[PAD]", sp_->pad_id()), 0);
  mask_id_ = find("[MASK]");
  if (cls_id_ < 0 || sep_id_ < 0) throw ModelError(model_path + ": model has neither [CLS]/[SEP] nor <s>/</s>");
}

SentencePieceTokenizer::~SentencePieceTokenizer() = default;

std::vector<int64_t> SentencePieceTokenizer::encode(std::string_view text) const {
  std::vector<int> ids;
  const auto status = sp_->Encode(absl::string_view(text.data(), text.size()), &ids);
  if (!status.ok()) throw Error(std::string("sentencepiece: ") + status.message());
  return {ids.begin(), ids.end()};
}

std::vector<std::string> SentencePieceTokenizer::tokenize(std::string_view text) const {
  std::vector<std::string> pieces;
  const auto status = sp_->Encode(absl::string_view(text.data(), text.size()), &pieces);
  if (!status.ok()) throw Error(std::string("sentencepiece: ") + status.message());
  return pieces;
}

int64_t SentencePieceTokenizer::vocab_size() const { return sp_->GetPieceSize(); }

std::string SentencePieceTokenizer::id_to_piece(int64_t id) const {
  if (id < 0 || id >= vocab_size()) return "";
  return sp_->IdToPiece(static_cast<int>(id));
}

std::string SentencePieceTokenizer::save(const std::string& dir) const {
  write_file((std::filesystem::path(dir) / kModelFile).string(), model_bytes_);
  return kModelFile;
}

void train_sentencepiece(const std::vector<std::string>& corpus_files, const std::string& model_path,
                         int vocab_size, const std::string& type, bool lower_case) {
  if (type != "unigram" && type != "bpe") {
    throw ConfigError("sentencepiece model type must be unigram or bpe, got \"" + type + "\"");
  }
  if (vocab_size <= 0) throw ConfigError("--vocab-size must be > 0, got " + std::to_string(vocab_size));
  if (corpus_files.empty()) throw ConfigError("sentencepiece training needs at least one corpus file");

  const std::unordered_map<std::string, std::string> options = {
      {"model_type", type},
      {"vocab_size", std::to_string(vocab_size)},
      {"user_defined_symbols", "[PAD],[CLS],[SEP],[MASK]"},
      // A small corpus may not support vocab_size pieces; take what it gives.
      {"hard_vocab_limit", "false"},
      // One thread: the unigram EM sums per-thread statistics, so results would
      // otherwise depend on the machine's core count.
      {"num_threads", "1"},
      // Errors only, and those come back as the status: its INFO lines are a page per run,
      // and its warnings name its own sources ("bpe_model_trainer.cc(242) LOG(WARNING) ...").
      {"minloglevel", "2"},
      {"normalization_rule_name", lower_case ? "nmt_nfkc_cf" : "nmt_nfkc"},
      {"max_sentence_length", std::to_string(kMaxSentenceBytes)},
  };
  std::string corpus;
  for (const auto& f : corpus_files) corpus += (corpus.empty() ? "" : ", ") + f;
  // sentencepiece aborts the process (a failed CHECK) when no line is left to learn from: look
  // for one first, which in any real corpus is the first line.
  FileLines probe(corpus_files);
  while (!probe.done() && probe.usable() == 0) probe.Next();
  if (!probe.error().empty()) throw IoError(probe.error());
  if (probe.usable() == 0) throw DataError(corpus + ": no line of text to learn from (" + probe.summary() + ")");
  FileLines lines(corpus_files);
  std::string model;
  const auto status = sentencepiece::SentencePieceTrainer::Train(options, &lines, &model);
  if (!lines.error().empty()) throw IoError(lines.error());
  if (!status.ok()) {
    const std::string why = readable(status.message());
    throw Error(corpus + ": sentencepiece training failed: " + (why.empty() ? "it gave no reason" : why));
  }
  write_file(model_path, model);
}

}  // namespace dqe
