// Streaming reader of JSONL query-result pairs. Every problem with a line is reported as
// "file:line: problem"; up to max_bad_lines such lines can be skipped, each written to the
// rejects file, instead of stopping the run.
#pragma once

#include <cstdint>
#include <fstream>
#include <istream>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace dqe {

// Which JSON fields hold what. Defaults are the documented schema.
struct FieldMap {
  std::string query = "query";
  // Joined with a single space, in this order. The first is required; the others are optional
  // (absent or null is skipped).
  std::vector<std::string> text = {"title", "description"};
  std::string label = "label";
  std::string query_id = "query_id";  // absent: the query text
  std::string id = "id";              // optional; a number is kept as its JSON text
};

enum class LabelKind { kNone, kNumber, kString };

struct Record {
  size_t line = 0;  // 1-based line number in the input
  std::string query;
  std::string text;
  std::string query_id;
  std::string id;
  LabelKind label_kind = LabelKind::kNone;
  double label_number = 0;   // kNumber (true/false read as 1/0)
  std::string label_string;  // kString
  // The whole input object, in its field order; filled only when ReaderOptions::keep_object.
  nlohmann::ordered_json object;
};

struct ReaderOptions {
  FieldMap fields;
  // A line without the label field is an error (train, eval).
  bool require_label = false;
  // How many bad lines may be skipped before the run stops with DataBudgetError.
  int64_t max_bad_lines = 0;
  // When set, each skipped line is appended as {"line","error","raw"} JSON.
  std::string rejects_path;
  bool keep_object = false;
  // Longer lines are bad lines (they are never held whole in memory).
  size_t max_line_bytes = 1 << 20;
  // Deeper JSON nesting is a bad line (protects the parser's stack).
  int max_depth = 64;
};

class JsonlReader {
 public:
  // path "-" reads standard input. Throws IoError naming the path when it cannot be opened
  // or is a directory.
  JsonlReader(std::string path, ReaderOptions options);
  ~JsonlReader();
  JsonlReader(const JsonlReader&) = delete;
  JsonlReader& operator=(const JsonlReader&) = delete;

  // Fills out with the next good record; false at end of input. Lines holding only
  // whitespace are not records and are skipped. A bad line throws DataError
  // ("path:line: problem") when the budget is spent, else is counted and skipped.
  // When more than max_bad_lines have been seen, throws DataBudgetError.
  bool next(Record& out);

  const std::string& path() const { return path_; }
  int64_t lines_read() const { return static_cast<int64_t>(line_); }
  int64_t records_read() const { return records_; }
  int64_t bad_lines() const { return bad_lines_; }

 private:
  // Parses one line into out; returns an error message or "" on success.
  std::string parse_line(const std::string& text, Record& out) const;
  void reject(const std::string& raw, const std::string& error);

  std::string path_;
  ReaderOptions options_;
  std::unique_ptr<std::ifstream> file_;
  std::istream* in_ = nullptr;
  std::unique_ptr<std::ofstream> rejects_;
  size_t line_ = 0;
  int64_t records_ = 0;
  int64_t bad_lines_ = 0;
};

// Reads every record of a file. Throws DataError naming the file when it holds no record.
std::vector<Record> read_jsonl(const std::string& path, const ReaderOptions& options);

}  // namespace dqe
