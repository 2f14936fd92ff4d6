// Fuzzes JsonlReader on arbitrary file contents. Bad lines must be rejected with a dqe::Error
// (DataError without a budget, counted and skipped with one); anything else escaping, a
// crash, a hang or a sanitizer report is a bug. JsonlReader reads a path, so each input is
// written to one temporary file, created once and rewritten per input.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "dqe/errors.h"
#include "dqe/jsonl_reader.h"

namespace {

// A documented property of the reader does not hold: report it as a crash.
#define FUZZ_CHECK(cond)                                                         \
  do {                                                                           \
    if (!(cond)) {                                                               \
      std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                              \
    }                                                                            \
  } while (0)

// $TMPDIR when set (scripts/check/fuzz.sh points it into a directory it removes, so that nothing
// is left behind when a target crashes), else /dev/shm, which keeps the per-input rewrite off
// the disk.
std::string temp_dir() {
  const char* tmpdir = std::getenv("TMPDIR");
  if (tmpdir != nullptr && *tmpdir != '\0') return tmpdir;
  return access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
}

class TempFile {
 public:
  explicit TempFile(const std::string& suffix) {
    path_ = temp_dir() + "/dqe-fuzz-jsonl-XXXXXX" + suffix;
    fd_ = mkstemps(path_.data(), static_cast<int>(suffix.size()));
    if (fd_ < 0) {
      std::perror("mkstemp");
      std::abort();
    }
  }
  ~TempFile() {
    close(fd_);
    unlink(path_.c_str());
  }
  void write(const char* data, size_t size) {
    if (ftruncate(fd_, 0) != 0 || pwrite(fd_, data, size, 0) != static_cast<ssize_t>(size)) {
      std::perror("write");
      std::abort();
    }
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  int fd_ = -1;
};

// Small limits, so that inputs of a few KiB reach the over-long line and depth checks.
dqe::ReaderOptions small_options() {
  dqe::ReaderOptions options;
  options.max_line_bytes = 4096;
  options.max_depth = 64;
  options.keep_raw = true;
  return options;
}

// Reads every record, appending the line numbers of the good ones to lines (filled as far
// as it got when the reader throws).
void read_all(const std::string& path, const dqe::ReaderOptions& options, std::vector<size_t>& lines) {
  dqe::JsonlReader reader(path, options);
  dqe::Record record;
  while (reader.next(record)) {
    FUZZ_CHECK(record.line > (lines.empty() ? 0 : lines.back()));
    FUZZ_CHECK(static_cast<int64_t>(record.line) == reader.lines_read());
    if (record.label_kind == dqe::LabelKind::kNumber) FUZZ_CHECK(std::isfinite(record.label_number));
    if (options.keep_raw) {
      // Splicing a member into any line the reader accepted gives an object holding it.
      const std::string spliced = dqe::set_members(record.raw, {{"score", "0.5"}});
      FUZZ_CHECK(nlohmann::json::parse(spliced, nullptr, false).is_object());
      FUZZ_CHECK(dqe::raw_member(spliced, "score") == "0.5");
    }
    if (options.require_label) FUZZ_CHECK(record.label_kind != dqe::LabelKind::kNone);
    lines.push_back(record.line);
  }
  FUZZ_CHECK(reader.records_read() == static_cast<int64_t>(lines.size()));
  FUZZ_CHECK(reader.records_read() + reader.bad_lines() <= reader.lines_read());
}

// With a bad-line budget that cannot run out, nothing in the data may make the reader throw.
void read_all_lenient(const std::string& path, const dqe::ReaderOptions& options, std::vector<size_t>& lines) {
  try {
    read_all(path, options, lines);
  } catch (const dqe::Error& e) {
    std::fprintf(stderr, "unexpected error with a bad-line budget: %s\n", e.what());
    std::abort();
  }
}

// One over-long (bad) line that fills the reader's 64 KiB chunk up to 'offset' bytes before
// its end, so that the input's first line straddles a chunk boundary. Over-long lines are not
// scanned, so this costs little per input.
std::string chunk_padding(size_t offset) {
  std::string pad((size_t{1} << 16) - offset - 1, ' ');
  pad.push_back('\n');
  return pad;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static TempFile file(".jsonl");
  static TempFile gz_file(".jsonl.gz");
  const char* bytes = reinterpret_cast<const char*>(data);
  file.write(bytes, size);

  // With a budget no bad line is fatal: every line is either a record or counted and skipped,
  // and each skipped one is written to the rejects file.
  dqe::ReaderOptions lenient = small_options();
  lenient.max_bad_lines = int64_t{1} << 40;
  lenient.rejects_path = "/dev/null";
  std::vector<size_t> good_lines;
  read_all_lenient(file.path(), lenient, good_lines);

  // Without one, the first bad line throws DataError, after the same records as above.
  std::vector<size_t> strict_lines;
  try {
    read_all(file.path(), small_options(), strict_lines);
    FUZZ_CHECK(strict_lines == good_lines);
  } catch (const dqe::DataError&) {
    FUZZ_CHECK(strict_lines.size() <= good_lines.size());
    FUZZ_CHECK(std::equal(strict_lines.begin(), strict_lines.end(), good_lines.begin()));
  }

  // Without keeping the raw line, with labels required.
  dqe::ReaderOptions labelled = small_options();
  labelled.keep_raw = false;
  labelled.require_label = true;
  labelled.max_bad_lines = int64_t{1} << 40;
  std::vector<size_t> labelled_lines;
  read_all_lenient(file.path(), labelled, labelled_lines);
  FUZZ_CHECK(labelled_lines.size() <= good_lines.size());

  // A *.gz path goes through zlib, which reads data without the gzip magic as it is: then
  // the records are the same. Corrupt gzip data is an IoError, not a bad line.
  gz_file.write(bytes, size);
  std::vector<size_t> gz_lines;
  try {
    read_all(gz_file.path(), lenient, gz_lines);
    if (size < 2 || data[0] != 0x1f || data[1] != 0x8b) FUZZ_CHECK(gz_lines == good_lines);
  } catch (const dqe::IoError&) {
    FUZZ_CHECK(size >= 2 && data[0] == 0x1f && data[1] == 0x8b);
  }

  // The same records when a chunk boundary falls inside the input (first byte: where).
  if (size > 0) {
    dqe::ReaderOptions quiet = lenient;
    quiet.rejects_path.clear();
    const std::string padded = chunk_padding(data[0]) + std::string(bytes + 1, size - 1);
    file.write(padded.data(), padded.size());
    std::vector<size_t> padded_lines;
    read_all_lenient(file.path(), quiet, padded_lines);
    file.write(bytes + 1, size - 1);
    std::vector<size_t> unpadded_lines;
    read_all_lenient(file.path(), quiet, unpadded_lines);
    FUZZ_CHECK(padded_lines.size() == unpadded_lines.size());
    for (size_t i = 0; i < padded_lines.size(); ++i) FUZZ_CHECK(padded_lines[i] == unpadded_lines[i] + 1);
  }
  return 0;
}
