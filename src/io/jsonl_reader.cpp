#include "dqe/jsonl_reader.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string_view>
#include <utility>

#include <nlohmann/json.hpp>

#include "base/json_depth.h"
#include "dqe/errors.h"
#include "io/gzip_stream.h"
#include "io/output_file.h"
#include "io/side_fields.h"

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
  if (json_text_depth(line, max_depth) > max_depth)
    return "JSON nested deeper than " + std::to_string(max_depth) + " levels";
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

// ---- Raw JSON text of an object line the parser has accepted ----

constexpr bool is_json_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

size_t skip_space(std::string_view s, size_t i) {
  while (i < s.size() && is_json_space(s[i])) ++i;
  return i;
}

// Index just past the string that opens at s[i] == '"'; npos when unterminated.
size_t string_end(std::string_view s, size_t i) {
  for (++i; i < s.size(); ++i) {
    if (s[i] == '\\') ++i;
    else if (s[i] == '"') return i + 1;
  }
  return std::string_view::npos;
}

// Index just past the value that starts at s[i]; npos when it does not end.
size_t value_end(std::string_view s, size_t i) {
  if (i >= s.size()) return std::string_view::npos;
  if (s[i] == '"') return string_end(s, i);
  if (s[i] == '{' || s[i] == '[') {
    int depth = 0;
    while (i < s.size()) {
      const char c = s[i];
      if (c == '"') {
        i = string_end(s, i);
        if (i == std::string_view::npos) return i;
        continue;
      }
      if (c == '{' || c == '[') {
        ++depth;
      } else if ((c == '}' || c == ']') && --depth == 0) {
        return i + 1;
      }
      ++i;
    }
    return std::string_view::npos;
  }
  // A number, true, false or null.
  while (i < s.size() && !is_json_space(s[i]) && s[i] != ',' && s[i] != '}' && s[i] != ']') ++i;
  return i;
}

struct RawMember {
  std::string_view key;  // with its quotes and escapes, as written
  size_t value_begin = 0, value_end = 0;
};

struct RawObject {
  size_t open = 0;  // offset of '{'
  std::vector<RawMember> members;
};

// The top-level members of an object line, in order; false when line is not one (which a
// line the parser accepted always is).
bool scan_object(std::string_view s, RawObject& out) {
  size_t i = skip_space(s, 0);
  // The parser skips a byte order mark at the start of its input.
  if (s.substr(i, 3) == "\xEF\xBB\xBF") i = skip_space(s, i + 3);
  if (i >= s.size() || s[i] != '{') return false;
  out.open = i;
  out.members.clear();
  i = skip_space(s, i + 1);
  if (i < s.size() && s[i] == '}') return true;
  for (;;) {
    if (i >= s.size() || s[i] != '"') return false;
    const size_t key_end = string_end(s, i);
    if (key_end == std::string_view::npos) return false;
    RawMember m;
    m.key = s.substr(i, key_end - i);
    i = skip_space(s, key_end);
    if (i >= s.size() || s[i] != ':') return false;
    m.value_begin = skip_space(s, i + 1);
    m.value_end = value_end(s, m.value_begin);
    if (m.value_end == std::string_view::npos || m.value_end == m.value_begin) return false;
    out.members.push_back(m);
    i = skip_space(s, m.value_end);
    if (i < s.size() && s[i] == ',') {
      i = skip_space(s, i + 1);
      continue;
    }
    return i < s.size() && s[i] == '}';
  }
}

bool key_is(std::string_view raw_key, std::string_view key) {
  const std::string_view inner = raw_key.substr(1, raw_key.size() - 2);
  if (inner.find('\\') == std::string_view::npos) return inner == key;
  // Escapes ("\u0069d" is "id") are rare: let the parser decode them.
  const auto decoded = nlohmann::json::parse(raw_key.begin(), raw_key.end(), nullptr, false);
  return decoded.is_string() && decoded.get_ref<const std::string&>() == key;
}

const RawMember* find_last(const RawObject& object, std::string_view key) {
  for (auto it = object.members.rbegin(); it != object.members.rend(); ++it)
    if (key_is(it->key, key)) return &*it;
  return nullptr;
}

// Reads an optional string or number field into out (a number as written in line); present
// is false when the field is absent or null. Returns an error message or "".
std::string read_key(const nlohmann::json& object, std::string_view line, const std::string& field, std::string& out,
                     bool& present) {
  out.clear();
  present = false;
  const auto it = object.find(field);
  if (it == object.end() || it->is_null()) return "";
  present = true;
  if (it->is_string()) {
    out = it->get_ref<const std::string&>();
  } else if (it->is_number()) {
    // The parser reads an integer beyond 64 bits as a double: two ids that differ only in
    // their last digits would become one.
    const std::string_view raw = raw_member(line, field);
    out = raw.empty() ? it->dump() : std::string(raw);
  } else {
    return "field " + quoted(field) + " must be a string or number, got " + it->type_name();
  }
  return "";
}

std::string read_record(const nlohmann::json& object, std::string_view line, const ReaderOptions& options,
                        Record& out) {
  if (!object.is_object()) return std::string("expected a JSON object, got ") + object.type_name();
  const FieldMap& fields = options.fields;

  const auto query = object.find(fields.query);
  if (query == object.end()) return "missing string field " + quoted(fields.query);
  if (!query->is_string()) return "field " + quoted(fields.query) + " must be a string, got " + query->type_name();
  out.query = query->get_ref<const std::string&>();

  out.text.clear();
  for (size_t i = 0; i < fields.text.size(); ++i) {
    const std::string& name = fields.text[i];
    const auto it = object.find(name);
    const bool absent = it == object.end() || (i > 0 && it->is_null());
    if (absent && i == 0) return "missing string field " + quoted(name);
    if (absent) continue;
    if (!it->is_string()) return "field " + quoted(name) + " must be a string, got " + it->type_name();
    const std::string& part = it->get_ref<const std::string&>();
    if (part.empty()) continue;
    if (!out.text.empty()) out.text += ' ';
    out.text += part;
  }

  bool present = false;
  if (std::string error = read_key(object, line, fields.query_id, out.query_id, present); !error.empty()) return error;
  if (!present) out.query_id = out.query;
  if (std::string error = read_key(object, line, fields.id, out.id, present); !error.empty()) return error;
  if (!options.route_field.empty()) {
    if (std::string error = read_key(object, line, options.route_field, out.route, present); !error.empty())
      return error;
    if (!present)
      return "missing field " + quoted(options.route_field) + ", which names the model for the line (--adapter-field)";
  } else {
    out.route.clear();
  }

  out.label_kind = LabelKind::kNone;
  out.label_number = 0;
  out.label_string.clear();
  const auto label = object.find(fields.label);
  if (label == object.end() || label->is_null()) {
    if (options.require_label) return "missing field " + quoted(fields.label);
  } else if (label->is_number()) {
    // The parser rejects numbers that overflow a double, so the value is finite.
    out.label_kind = LabelKind::kNumber;
    out.label_number = label->get<double>();
  } else if (label->is_boolean()) {
    out.label_kind = LabelKind::kNumber;
    out.label_number = label->get<bool>() ? 1 : 0;
  } else if (label->is_string()) {
    out.label_kind = LabelKind::kString;
    out.label_string = label->get_ref<const std::string&>();
  } else {
    return "field " + quoted(fields.label) + " must be a number or string, got " + label->type_name();
  }
  return read_side_fields(object, fields, out);
}

// Each role names its own JSON field: a side-input or label flag naming the query or a text
// field would otherwise make every line a bad line ("features must be an object"), found as a
// data error at line 1 instead of a usage error naming the flags.
void check_distinct_fields(const FieldMap& f, bool label) {
  std::vector<std::pair<std::string, std::string>> roles = {{"--query-field", f.query}};
  for (const auto& t : f.text) roles.emplace_back("--text-fields", t);
  if (label) roles.emplace_back("--label-field", f.label);
  roles.emplace_back("--features-field", f.features);
  roles.emplace_back("--attributes-field", f.attributes);
  roles.emplace_back("--image-field", f.image);
  for (size_t i = 0; i < roles.size(); ++i)
    for (size_t j = i + 1; j < roles.size(); ++j)
      if (!roles[i].second.empty() && roles[i].second == roles[j].second)
        throw ConfigError(roles[j].first + " \"" + roles[j].second + "\" is also " +
                          (roles[i].first == roles[j].first ? "given twice there" : "the " + roles[i].first + " field") +
                          ": each must name its own JSON field");
}

}  // namespace

JsonlReader::JsonlReader(std::string path, ReaderOptions options)
    : path_(std::move(path)), name_(display_name(path_)), options_(std::move(options)), chunk_(kChunkBytes),
      image_dim_(options_.fields.image_dim) {
  if (options_.max_bad_lines < 0) throw ConfigError("--max-bad-lines must be >= 0");
  if (options_.fields.text.empty()) throw ConfigError("at least one text field is required");
  check_distinct_fields(options_.fields, options_.require_label);
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
    auto gzip = std::make_unique<detail::GzipReadBuf>(path_);
    gzip_ = gzip.get();
    file_ = std::move(gzip);
  } else {
    errno = 0;
    auto buf = std::make_unique<std::filebuf>();
    if (!buf->open(path_, std::ios::in | std::ios::binary)) throw IoError(open_error(path_, errno != 0 ? errno : ENOENT));
    file_ = std::move(buf);
  }
  in_ = file_.get();
  // A FIFO or a device has no size to measure progress against.
  if (std::filesystem::is_regular_file(path_, ec)) {
    const auto size = std::filesystem::file_size(path_, ec);
    if (!ec && size > 0) file_bytes_ = static_cast<int64_t>(size);
  }
}

double JsonlReader::fraction_read() const {
  if (file_bytes_ <= 0) return -1;
  const int64_t consumed =
      gzip_ ? gzip_->compressed_consumed() : bytes_in_ - static_cast<int64_t>(chunk_end_ - chunk_begin_);
  return std::clamp(static_cast<double>(consumed) / static_cast<double>(file_bytes_), 0.0, 1.0);
}

JsonlReader::JsonlReader(InMemory, std::string name, std::string text, ReaderOptions options)
    : path_(name), name_(std::move(name)), options_(std::move(options)), chunk_(kChunkBytes),
      image_dim_(options_.fields.image_dim) {
  if (options_.max_bad_lines < 0) throw ConfigError("--max-bad-lines must be >= 0");
  if (options_.fields.text.empty()) throw ConfigError("at least one text field is required");
  check_distinct_fields(options_.fields, options_.require_label);
  if (!options_.rejects_path.empty())
    throw Error("JsonlReader::of_text: a rejects file for text in memory (a bug)");
  file_ = std::make_unique<std::stringbuf>(std::move(text), std::ios::in);
  in_ = file_.get();
}

JsonlReader JsonlReader::of_text(std::string name, std::string text, ReaderOptions options) {
  return JsonlReader(InMemory{}, std::move(name), std::move(text), std::move(options));
}

JsonlReader::~JsonlReader() = default;
JsonlReader::JsonlReader(JsonlReader&&) noexcept = default;

bool JsonlReader::read_line() {
  line_buffer_.clear();
  line_too_long_ = false;
  bool any_byte = false;
  for (;;) {
    if (chunk_begin_ == chunk_end_) {
      const std::streamsize got = in_->sgetn(chunk_.data(), static_cast<std::streamsize>(chunk_.size()));
      if (got <= 0) return any_byte;
      bytes_in_ += got;
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
    if (error.empty() && !out.image.empty()) {
      const auto dim = static_cast<int64_t>(out.image.size());
      if (image_dim_ == 0) image_dim_ = dim;
      if (dim != image_dim_)
        error = "field \"" + options_.fields.image + "\" has " + std::to_string(dim) + " numbers, expected " +
                std::to_string(image_dim_) + (options_.fields.image_dim > 0 ? " (the model's image dimension)" : " (the first image vector's)");
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
    std::string error = read_record(nlohmann::json::parse(text), text, options_, out);
    if (error.empty() && options_.keep_raw) out.raw = text;
    return error;
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

std::vector<Record> read_jsonl(const std::string& path, const ReaderOptions& options, int64_t* bad_lines) {
  JsonlReader reader(path, options);
  std::vector<Record> records;
  Record record;
  while (reader.next(record)) records.push_back(std::move(record));
  if (bad_lines) *bad_lines = reader.bad_lines();
  if (records.empty()) throw DataError(display_name(path) + ": no records");
  return records;
}

std::string_view raw_member(std::string_view line, std::string_view key) {
  RawObject object;
  if (!scan_object(line, object)) return {};
  const RawMember* m = find_last(object, key);
  return m == nullptr ? std::string_view() : line.substr(m->value_begin, m->value_end - m->value_begin);
}

std::string set_members(std::string_view line, const std::vector<std::pair<std::string, std::string>>& members) {
  RawObject object;
  if (!scan_object(line, object)) {
    // Not reached for a line the parser accepted; rewriting it whole is still correct JSON.
    auto j = nlohmann::ordered_json::parse(line);
    for (const auto& [key, value] : members) j[key] = nlohmann::ordered_json::parse(value);
    return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
  }
  struct Edit {
    size_t begin, end;
    std::string text;
  };
  std::vector<Edit> edits;
  std::string added;
  bool comma = !object.members.empty();
  for (const auto& [key, value] : members) {
    if (const RawMember* m = find_last(object, key)) {
      edits.push_back({m->value_begin, m->value_end, value});
      continue;
    }
    if (comma) added += ',';
    added += nlohmann::json(key).dump() + ":" + value;
    comma = true;
  }
  if (!added.empty()) {
    const size_t at = object.members.empty() ? object.open + 1 : object.members.back().value_end;
    edits.push_back({at, at, std::move(added)});
  }
  std::sort(edits.begin(), edits.end(), [](const Edit& a, const Edit& b) { return a.begin < b.begin; });
  std::string out;
  out.reserve(line.size() + 64);
  size_t cursor = 0;
  for (const Edit& e : edits) {
    out.append(line.substr(cursor, e.begin - cursor));
    out += e.text;
    cursor = e.end;
  }
  out.append(line.substr(cursor));
  return out;
}

}  // namespace dqe
