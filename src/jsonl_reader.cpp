#include "dqe/jsonl_reader.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string_view>
#include <utility>

#include "detail/gzip_stream.h"
#include "detail/output_file.h"
#include "dqe/errors.h"

namespace dqe {
namespace {

constexpr size_t kChunkBytes = 1 << 16;
// Parser reasons quote the offending token, which can be most of a line.
constexpr size_t kMaxReasonBytes = 160;

// How messages name the input: "-" is standard input.
std::string display_name(const std::string& path) { return path == "-" ? "<stdin>" : path; }

std::string open_error(const std::string& path, int error_number) {
  return path + ": cannot open (" + std::strerror(error_number) + ")";
}

bool is_blank(std::string_view line) { return line.find_first_not_of(" \t\r") == std::string_view::npos; }

// Catches what nlohmann cannot be trusted with: its parser stops silently at a NUL byte
// (the end of a C string) and accepts the line, and copying or dumping a value recurses once
// per nesting level. Brackets inside strings do not count towards the depth.
std::string scan_line(std::string_view line, int max_depth) {
  if (line.find('\0') != std::string_view::npos) return "line contains a NUL byte";
  int depth = 0;
  bool in_string = false;
  bool escaped = false;
  for (char c : line) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      if (++depth > max_depth) return "JSON nested deeper than " + std::to_string(max_depth) + " levels";
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
  return "";
}

// nlohmann's what() reads "[json.exception.parse_error.101] parse error at line 1, column 2:
// syntax error ...; last read: '<token>'". Keeps the part from "column" on, without the
// token: it may be long and may hold invalid UTF-8.
std::string parser_reason(const nlohmann::json::exception& e) {
  std::string_view reason = e.what();
  const size_t tag_end = reason.find("] ");
  if (tag_end != std::string_view::npos) reason.remove_prefix(tag_end + 2);
  constexpr std::string_view kLinePrefix = "parse error at line 1, ";
  if (reason.substr(0, kLinePrefix.size()) == kLinePrefix) reason.remove_prefix(kLinePrefix.size());
  reason = reason.substr(0, reason.find("; last read:"));
  if (reason.size() > kMaxReasonBytes) return std::string(reason.substr(0, kMaxReasonBytes)) + "...";
  return std::string(reason);
}

std::string quoted(const std::string& field) { return "\"" + field + "\""; }

// Reads an optional string or number field into out (a number as its JSON text); present is
// false when the field is absent or null. Returns an error message or "".
template <typename Json>
std::string read_key(const Json& object, const std::string& field, std::string& out, bool& present) {
  out.clear();
  present = false;
  const auto it = object.find(field);
  if (it == object.end() || it->is_null()) return "";
  present = true;
  if (it->is_string()) {
    out = it->template get_ref<const std::string&>();
  } else if (it->is_number()) {
    out = it->dump();
  } else {
    return "field " + quoted(field) + " must be a string or number, got " + it->type_name();
  }
  return "";
}

template <typename Json>
std::string read_record(const Json& object, const ReaderOptions& options, Record& out) {
  if (!object.is_object()) return std::string("expected a JSON object, got ") + object.type_name();
  const FieldMap& fields = options.fields;

  const auto query = object.find(fields.query);
  if (query == object.end()) return "missing string field " + quoted(fields.query);
  if (!query->is_string()) return "field " + quoted(fields.query) + " must be a string, got " + query->type_name();
  out.query = query->template get_ref<const std::string&>();

  out.text.clear();
  for (size_t i = 0; i < fields.text.size(); ++i) {
    const std::string& name = fields.text[i];
    const auto it = object.find(name);
    const bool absent = it == object.end() || (i > 0 && it->is_null());
    if (absent && i == 0) return "missing string field " + quoted(name);
    if (absent) continue;
    if (!it->is_string()) return "field " + quoted(name) + " must be a string, got " + it->type_name();
    const std::string& part = it->template get_ref<const std::string&>();
    if (part.empty()) continue;
    if (!out.text.empty()) out.text += ' ';
    out.text += part;
  }

  bool present = false;
  if (std::string error = read_key(object, fields.query_id, out.query_id, present); !error.empty()) return error;
  if (!present) out.query_id = out.query;
  if (std::string error = read_key(object, fields.id, out.id, present); !error.empty()) return error;

  out.label_kind = LabelKind::kNone;
  out.label_number = 0;
  out.label_string.clear();
  const auto label = object.find(fields.label);
  if (label == object.end() || label->is_null()) {
    if (options.require_label) return "missing field " + quoted(fields.label);
  } else if (label->is_number()) {
    // The parser rejects numbers that overflow a double, so the value is finite.
    out.label_kind = LabelKind::kNumber;
    out.label_number = label->template get<double>();
  } else if (label->is_boolean()) {
    out.label_kind = LabelKind::kNumber;
    out.label_number = label->template get<bool>() ? 1 : 0;
  } else if (label->is_string()) {
    out.label_kind = LabelKind::kString;
    out.label_string = label->template get_ref<const std::string&>();
  } else {
    return "field " + quoted(fields.label) + " must be a number or string, got " + label->type_name();
  }
  return "";
}

}  // namespace

JsonlReader::JsonlReader(std::string path, ReaderOptions options)
    : path_(std::move(path)), name_(display_name(path_)), options_(std::move(options)), chunk_(kChunkBytes) {
  if (options_.max_bad_lines < 0) throw ConfigError("--max-bad-lines must be >= 0");
  if (options_.fields.text.empty()) throw ConfigError("at least one text field is required");
  if (path_ == "-") {
    in_ = std::cin.rdbuf();
  } else {
    open_file();
  }
  // Opened now, so that an unwritable rejects file fails before any work.
  if (!options_.rejects_path.empty()) rejects_ = std::make_unique<detail::OutputFile>(options_.rejects_path);
}

void JsonlReader::open_file() {
  std::error_code ec;
  // An ifstream opens a directory without complaint and then reads nothing.
  if (std::filesystem::is_directory(path_, ec)) throw IoError(open_error(path_, EISDIR));
  if (detail::has_gz_suffix(path_)) {
    file_ = std::make_unique<detail::GzipReadBuf>(path_);
  } else {
    errno = 0;
    auto buf = std::make_unique<std::filebuf>();
    if (!buf->open(path_, std::ios::in | std::ios::binary)) throw IoError(open_error(path_, errno != 0 ? errno : ENOENT));
    file_ = std::move(buf);
  }
  in_ = file_.get();
}

JsonlReader::~JsonlReader() = default;

bool JsonlReader::read_line() {
  line_buffer_.clear();
  line_too_long_ = false;
  bool any_byte = false;
  for (;;) {
    if (chunk_begin_ == chunk_end_) {
      const std::streamsize got = in_->sgetn(chunk_.data(), static_cast<std::streamsize>(chunk_.size()));
      if (got <= 0) return any_byte;
      chunk_begin_ = 0;
      chunk_end_ = static_cast<size_t>(got);
    }
    any_byte = true;
    const char* begin = chunk_.data() + chunk_begin_;
    const size_t available = chunk_end_ - chunk_begin_;
    const char* newline = static_cast<const char*>(std::memchr(begin, '\n', available));
    const size_t length = newline != nullptr ? static_cast<size_t>(newline - begin) : available;
    const size_t room = options_.max_line_bytes - line_buffer_.size();
    if (length > room) line_too_long_ = true;
    // Past the limit the rest of the line is dropped, so memory stays bounded.
    line_buffer_.append(begin, std::min(length, room));
    chunk_begin_ += length;
    if (newline != nullptr) {
      ++chunk_begin_;
      return true;
    }
  }
}

bool JsonlReader::next(Record& out) {
  while (read_line()) {
    ++line_;
    std::string error;
    if (line_too_long_) {
      error = "line longer than " + std::to_string(options_.max_line_bytes) + " bytes";
    } else if (is_blank(line_buffer_)) {
      continue;
    } else {
      error = parse_line(line_buffer_, out);
    }
    if (error.empty()) {
      out.line = line_;
      ++records_;
      return true;
    }
    bad_line(error);
  }
  if (rejects_) rejects_->commit();
  return false;
}

std::string JsonlReader::parse_line(const std::string& text, Record& out) const {
  if (std::string error = scan_line(text, options_.max_depth); !error.empty()) return error;
  try {
    // An ordered object costs more to build; only callers that write the object back need it.
    if (options_.keep_object) {
      out.object = nlohmann::ordered_json::parse(text);
      return read_record(out.object, options_, out);
    }
    return read_record(nlohmann::json::parse(text), options_, out);
  } catch (const nlohmann::json::exception& e) {
    return "not valid JSON (" + parser_reason(e) + ")";
  }
}

void JsonlReader::bad_line(const std::string& problem) {
  ++bad_lines_;
  const std::string where = name_ + ":" + std::to_string(line_) + ": ";
  if (options_.max_bad_lines == 0) throw DataError(where + problem);
  if (bad_lines_ > options_.max_bad_lines) {
    // The lines skipped so far explain the failure: they are kept.
    if (rejects_) rejects_->commit();
    throw DataBudgetError(where + "bad line (" + problem + "); more than " + std::to_string(options_.max_bad_lines) +
                          " bad lines allowed by --max-bad-lines");
  }
  if (rejects_) reject(line_buffer_, problem);
}

void JsonlReader::reject(const std::string& raw, const std::string& error) {
  const nlohmann::ordered_json entry = {{"line", line_}, {"error", error}, {"raw", raw}};
  // Invalid UTF-8 in the raw line becomes U+FFFD, so the rejects file stays valid JSONL.
  rejects_->stream() << entry.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) << '\n';
  // Flushed per line so that a write error is reported at the line that caused it.
  rejects_->flush();
}

std::vector<Record> read_jsonl(const std::string& path, const ReaderOptions& options) {
  JsonlReader reader(path, options);
  std::vector<Record> records;
  Record record;
  while (reader.next(record)) records.push_back(std::move(record));
  if (records.empty()) throw DataError(display_name(path) + ": no records");
  return records;
}

}  // namespace dqe
