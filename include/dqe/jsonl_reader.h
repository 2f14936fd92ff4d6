// Streaming reader of JSONL query-result pairs. Every problem with a line is reported as
// "file:line: problem"; up to max_bad_lines such lines can be skipped, each written to the
// rejects file, instead of stopping the run. Also the two pieces of raw JSON text handling
// that keep what dqe carries through byte for byte: reading a member's value as written, and
// setting members in a line without rewriting the rest of it.
#pragma once

#include <cstdint>
#include <memory>
#include <streambuf>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace dqe {

namespace detail {
class GzipReadBuf;
class OutputFile;
}

// Which JSON fields hold what. Defaults are the documented schema.
struct FieldMap {
  std::string query = "query";
  // Joined with a single space, in this order, empty strings adding nothing. The first is
  // required; the others are optional (absent or null is skipped).
  std::vector<std::string> text = {"title", "description"};
  std::string label = "label";
  // String or number; absent or null: the query text. A number is kept as written
  // (12345678901234567890123 stays that, not a double), so that ids compare as written.
  std::string query_id = "query_id";
  // Optional; string or number, a number kept as written.
  std::string id = "id";
  // Side inputs beside the text (data/log_inputs.h), each optional on a line: an object of named
  // numbers, an object of named strings, an array of floats. An empty name: not read (a
  // model trained without that input ignores the field).
  std::string features = "features";
  std::string attributes = "attributes";
  std::string image = "image_embedding";
  // The length every image vector must have; 0: fixed by the first line that has one.
  int64_t image_dim = 0;
};

enum class LabelKind { kNone, kNumber, kString };

struct Record {
  size_t line = 0;  // 1-based line number in the input
  std::string query;
  std::string text;
  std::string query_id;
  std::string id;
  // ReaderOptions::route_field's value (a number as written); empty without that option.
  std::string route;
  LabelKind label_kind = LabelKind::kNone;
  // kNumber (true/false read as 1/0). Always finite: a number that overflows a double
  // (1e999) makes the line a bad line, as nlohmann's parser rejects it.
  double label_number = 0;
  std::string label_string;  // kString
  // Side inputs (FieldMap::features, attributes, image), in the line's order; a null value
  // is absent. image is empty when the line has none.
  std::vector<std::pair<std::string, double>> features;
  std::vector<std::pair<std::string, std::string>> attributes;
  std::vector<float> image;
  // The line as read (without its '\n'); filled only when ReaderOptions::keep_raw.
  std::string raw;
};

struct ReaderOptions {
  FieldMap fields;
  // A line without the label field (or with a null label) is an error (train, eval).
  bool require_label = false;
  // How many bad lines may be skipped before the run stops with DataBudgetError.
  int64_t max_bad_lines = 0;
  // When set, each skipped line is written there as {"line","error","raw"} JSON. raw has
  // invalid UTF-8 replaced by U+FFFD and, for an over-long line, holds its first
  // max_line_bytes. The file is written afresh by each reader (through the output writer,
  // so it appears complete): when the input is read to its end, or when the bad-line budget
  // stops the run (the rejects then explain why); an empty file when no line was skipped.
  std::string rejects_path;
  // Keep each line's text in Record::raw, for writing it back unchanged.
  bool keep_raw = false;
  // When set, the field (string or number) naming the model that judges the line, read into
  // Record::route (score and eval's --adapter-field); a line without it is a bad line.
  std::string route_field;
  // Longer lines are bad lines (they are never held whole in memory).
  size_t max_line_bytes = 1 << 20;
  // Deeper JSON nesting is a bad line (protects the parser's stack).
  int max_depth = 64;
};

class JsonlReader {
 public:
  // path "-" reads standard input; a path ending in .gz is read through gzip. Throws IoError
  // naming the path when it cannot be opened or is a directory, or when the rejects file
  // cannot be written; ConfigError when max_bad_lines < 0 or no text field is given.
  JsonlReader(std::string path, ReaderOptions options);
  // Reads text held in memory (a request's body), naming it `name` in messages
  // ("request:3: problem"); options.rejects_path must be empty.
  static JsonlReader of_text(std::string name, std::string text, ReaderOptions options);
  ~JsonlReader();
  JsonlReader(JsonlReader&&) noexcept;
  JsonlReader(const JsonlReader&) = delete;
  JsonlReader& operator=(const JsonlReader&) = delete;

  // Fills out with the next good record; false at end of input. Lines holding only
  // whitespace (space, tab, CR) are not records: they are skipped silently but still
  // counted in line numbers. With max_bad_lines == 0 a bad line throws DataError
  // ("path:line: problem"); otherwise bad lines are counted, written to the rejects file
  // and skipped, and the (max_bad_lines + 1)-th throws DataBudgetError (and is not
  // written). Messages name standard input "<stdin>". Throws IoError naming the rejects file
  // at the line whose rejection could not be written, and naming the input when a .gz input
  // is corrupt, truncated or followed by junk.
  bool next(Record& out);

  const std::string& path() const { return path_; }
  int64_t lines_read() const { return static_cast<int64_t>(line_); }
  int64_t records_read() const { return records_; }
  int64_t bad_lines() const { return bad_lines_; }
  // How much of a regular file has been read, in [0, 1], by bytes (of a .gz, by compressed
  // bytes); negative when the size is unknown (standard input, a pipe, text in memory).
  double fraction_read() const;

 private:
  struct InMemory {};
  JsonlReader(InMemory, std::string name, std::string text, ReaderOptions options);
  // Opens path_ (plain or .gz) into file_ and in_.
  void open_file();
  // Reads the next physical line into line_buffer_, without its '\n'; false at end of input.
  // Keeps at most max_line_bytes of it and sets line_too_long_ when there was more.
  bool read_line();
  // Parses one line into out; returns an error message or "" on success.
  std::string parse_line(const std::string& text, Record& out) const;
  // Applies the bad-line policy: throw, or count and write to the rejects file.
  void bad_line(const std::string& problem);
  void reject(const std::string& raw, const std::string& error);

  std::string path_;
  std::string name_;  // the path as messages show it ("<stdin>" for "-")
  ReaderOptions options_;
  std::unique_ptr<std::streambuf> file_;  // a filebuf, or a gzip reader for *.gz
  std::streambuf* in_ = nullptr;
  detail::GzipReadBuf* gzip_ = nullptr;   // file_, when it is a gzip reader
  int64_t file_bytes_ = -1;               // the size of a regular input file; -1 when unknown
  int64_t bytes_in_ = 0;                  // bytes taken from in_ into chunk_
  std::unique_ptr<detail::OutputFile> rejects_;
  // Input is read in fixed chunks so that an over-long line is never held whole.
  std::vector<char> chunk_;
  size_t chunk_begin_ = 0;
  size_t chunk_end_ = 0;
  std::string line_buffer_;
  bool line_too_long_ = false;
  size_t line_ = 0;
  int64_t records_ = 0;
  int64_t bad_lines_ = 0;
  // FieldMap::image_dim, or the length of the first image vector read.
  int64_t image_dim_ = 0;
};

// Reads every record of a file. Throws DataError naming the file when it holds no record.
// bad_lines, when given, receives the number of bad lines skipped under max_bad_lines.
std::vector<Record> read_jsonl(const std::string& path, const ReaderOptions& options, int64_t* bad_lines = nullptr);

// The value of the top-level member `key` of a JSON object line (one the parser accepted),
// as written: 12345678901234567890123, "caf\u00e9", {"a": [1]}. Empty when there is no such
// member; of duplicate keys, the last (the one the parser keeps).
std::string_view raw_member(std::string_view line, std::string_view key);

// line (a JSON object the parser accepted) with each (key, JSON value text) member set: an
// existing top-level member's value is replaced where it stands, a new member is added after
// the last one. Every other byte of line (escapes, spacing, number spellings, nested
// objects) is kept as it was.
std::string set_members(std::string_view line, const std::vector<std::pair<std::string, std::string>>& members);

}  // namespace dqe
