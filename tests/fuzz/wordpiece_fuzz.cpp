// Fuzzes the WordPiece tokenizer two ways on each input:
//  - as text: the fixture vocabulary (cased and uncased) tokenizes both halves of the input,
//    alone and as a pair (encode, tokenize, basic_tokenize, encode_pair, encode_pair_ids);
//  - as a vocabulary file: WordPieceTokenizer::from_file reads it; when it is accepted, it
//    tokenizes the input and must survive save() and a reload unchanged.
// Rejections are dqe::Error; anything else escaping, a crash or a sanitizer report is a bug.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <unistd.h>

#include "dqe/errors.h"
#include "text/wordpiece_tokenizer.h"

namespace {

// A documented property of the tokenizer does not hold: report it as a crash.
#define FUZZ_CHECK(cond)                                                         \
  do {                                                                           \
    if (!(cond)) {                                                               \
      std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                              \
    }                                                                            \
  } while (0)

namespace fs = std::filesystem;

// $TMPDIR when set (scripts/check/fuzz.sh points it into a directory it removes, so that nothing
// is left behind when a target crashes), else /dev/shm, which keeps the per-input rewrite off
// the disk.
std::string temp_dir() {
  const char* tmpdir = std::getenv("TMPDIR");
  if (tmpdir != nullptr && *tmpdir != '\0') return tmpdir;
  return access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
}

// One directory for the whole run: the vocab file rewritten per input, and save()'s output.
class TempDir {
 public:
  TempDir() {
    std::string templ = temp_dir() + "/dqe-fuzz-wordpiece-XXXXXX";
    if (mkdtemp(templ.data()) == nullptr) {
      std::perror("mkdtemp");
      std::abort();
    }
    path_ = templ;
    fs::create_directory(path_ / "saved");
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string path(const char* name) const { return (path_ / name).string(); }

 private:
  fs::path path_;
};

void write_file(const std::string& path, const char* data, size_t size) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(data, static_cast<std::streamsize>(size));
  if (!out) std::abort();
}

void check_ids(const dqe::WordPieceTokenizer& tok, const std::vector<int64_t>& ids) {
  for (int64_t id : ids) FUZZ_CHECK(id >= 0 && id < tok.vocab_size());
}

// [CLS] a [SEP] b [SEP], within max_len, with matching token types.
void check_encoding(const dqe::WordPieceTokenizer& tok, const dqe::Encoding& enc, size_t max_len) {
  FUZZ_CHECK(enc.ids.size() >= 3 && enc.ids.size() <= max_len);
  FUZZ_CHECK(enc.type_ids.size() == enc.ids.size());
  FUZZ_CHECK(enc.ids.front() == tok.cls_id() && enc.ids.back() == tok.sep_id());
  FUZZ_CHECK(enc.type_ids.front() == 0 && enc.type_ids.back() == 1);
}

// Each half is tokenized a different way; the pair goes through both entry points.
void check_tokenizer(const dqe::WordPieceTokenizer& tok, std::string_view a, std::string_view b) {
  const std::vector<int64_t> ids_a = tok.encode(a);
  const std::vector<int64_t> ids_b = tok.encode(b);
  check_ids(tok, ids_a);
  check_ids(tok, ids_b);
  // tokenize() names the pieces encode() returns.
  const std::vector<std::string> pieces_a = tok.tokenize(a);
  FUZZ_CHECK(pieces_a.size() == ids_a.size());
  for (size_t i = 0; i < ids_a.size(); ++i) FUZZ_CHECK(tok.id_to_piece(ids_a[i]) == pieces_a[i]);
  // A word is one or more pieces, so there are never fewer pieces than words.
  FUZZ_CHECK(ids_b.size() >= tok.basic_tokenize(b).size());

  const dqe::Encoding pair = tok.encode_pair(a, b, 512);
  check_encoding(tok, pair, 512);
  const dqe::Encoding from_ids = tok.encode_pair_ids(ids_a, ids_b, 512);
  FUZZ_CHECK(pair.ids == from_ids.ids && pair.type_ids == from_ids.type_ids);
  for (size_t max_len : {size_t{3}, size_t{8}}) check_encoding(tok, tok.encode_pair_ids(ids_a, ids_b, max_len), max_len);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string kVocab = std::string(DQE_SHARED_DIR) + "/fixtures/tiny-bert-hf/vocab.txt";
  static const std::unique_ptr<dqe::WordPieceTokenizer> uncased = dqe::WordPieceTokenizer::from_file(kVocab, true);
  static const std::unique_ptr<dqe::WordPieceTokenizer> cased = dqe::WordPieceTokenizer::from_file(kVocab, false);
  static TempDir dir;

  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const std::string_view a = input.substr(0, size / 2);
  const std::string_view b = input.substr(size / 2);
  for (const auto* tok : {uncased.get(), cased.get()}) check_tokenizer(*tok, a, b);

  const std::string vocab_path = dir.path("vocab-in.txt");
  write_file(vocab_path, input.data(), input.size());
  std::unique_ptr<dqe::WordPieceTokenizer> fuzzed;
  try {
    fuzzed = dqe::WordPieceTokenizer::from_file(vocab_path, (size & 1) != 0);
  } catch (const dqe::Error&) {
    return 0;  // not a usable vocabulary: rejected as documented
  }
  check_tokenizer(*fuzzed, a, b);

  // A checkpoint stores the vocabulary with save(); reading it back must give the same ids.
  const std::string saved_dir = dir.path("saved");
  const std::string name = fuzzed->save(saved_dir);
  const auto reloaded = dqe::WordPieceTokenizer::from_file(saved_dir + "/" + name, fuzzed->lower_case());
  FUZZ_CHECK(reloaded->vocab() == fuzzed->vocab());
  FUZZ_CHECK(reloaded->encode(input) == fuzzed->encode(input));
  return 0;
}
