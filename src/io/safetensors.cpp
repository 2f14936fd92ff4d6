#include "io/safetensors.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>

#include <nlohmann/json.hpp>

#include "base/json_depth.h"
#include "dqe/errors.h"
#include "io/output.h"

namespace dqe {
namespace {

// Headers larger than this are not plausible for any model and would only waste memory.
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

struct DtypeInfo {
  const char* name;
  torch::ScalarType type;
  int64_t bytes;
};

const DtypeInfo kDtypes[] = {
    {"F32", torch::kFloat32, 4}, {"F16", torch::kFloat16, 2}, {"BF16", torch::kBFloat16, 2},
    {"F64", torch::kFloat64, 8}, {"I64", torch::kInt64, 8},   {"I32", torch::kInt32, 4},
    {"I16", torch::kInt16, 2},   {"I8", torch::kInt8, 1},     {"U8", torch::kUInt8, 1},
    {"BOOL", torch::kBool, 1},
};

const DtypeInfo* find_dtype(const std::string& name) {
  for (const auto& d : kDtypes)
    if (name == d.name) return &d;
  return nullptr;
}

struct Entry {
  std::string name;
  const DtypeInfo* dtype;
  std::vector<int64_t> shape;
  uint64_t begin, end;
};

// text with its bytes outside printable ASCII written as \xHH, so that a message never sends a
// file's raw bytes to the terminal.
std::string printable(const std::string& text) {
  std::string out;
  for (unsigned char c : text) {
    if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      const char* digits = "0123456789abcdef";
      out += "\\x";
      out += digits[c >> 4];
      out += digits[c & 15];
    }
  }
  return out;
}

}  // namespace

std::map<std::string, torch::Tensor> load_safetensors(const std::string& path) {
  // An ifstream opens a directory and then reads nonsense from it; a FIFO would block.
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  if (std::filesystem::is_directory(status)) throw IoError(path + ": is a directory, not a safetensors file");
  if (std::filesystem::exists(status) && !std::filesystem::is_regular_file(status))
    throw IoError(path + ": not a regular file, so not a safetensors file");
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) throw IoError(path + ": cannot open (" + std::strerror(errno) + ")");
  const uint64_t file_size = static_cast<uint64_t>(in.tellg());
  in.seekg(0);
  auto fail = [&](const std::string& what) { throw ModelError(path + ": " + what); };
  if (file_size < 8) fail("too short to be a safetensors file");

  unsigned char len_bytes[8];
  in.read(reinterpret_cast<char*>(len_bytes), 8);
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | len_bytes[i];
  if (header_len > kMaxHeaderBytes) fail("header length " + std::to_string(header_len) + " is implausibly large");
  if (header_len > file_size - 8) fail("header length runs past the end of the file");

  std::string header_text(header_len, '\0');
  in.read(header_text.data(), static_cast<std::streamsize>(header_len));
  if (!in) fail("cannot read header");
  nlohmann::json header;
  // A name given twice would be read as its last entry, the first dropped without a word.
  std::set<std::string> names;
  std::string repeated;
  const nlohmann::json::parser_callback_t note_names = [&](int depth, nlohmann::json::parse_event_t event,
                                                           nlohmann::json& parsed) {
    if (depth == 1 && event == nlohmann::json::parse_event_t::key && parsed.is_string() &&
        !names.insert(parsed.get<std::string>()).second && repeated.empty())
      repeated = parsed.get<std::string>();
    return true;
  };
  try {
    header = nlohmann::json::parse(header_text, note_names);
  } catch (const nlohmann::json::exception& e) {
    fail("header is not valid JSON (" + printable(e.what()) + ")");
  }
  if (!repeated.empty()) fail("header names tensor \"" + printable(repeated) + "\" twice");
  if (!header.is_object()) fail("header is not a JSON object");

  const uint64_t data_size = file_size - 8 - header_len;
  std::vector<Entry> entries;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") continue;
    const std::string& name = it.key();
    auto bad = [&](const std::string& what) { fail("tensor \"" + printable(name) + "\": " + what); };
    const auto& info = *it;
    if (!info.is_object() || !info.contains("dtype") || !info.contains("shape") || !info.contains("data_offsets"))
      bad("entry needs dtype, shape and data_offsets");
    if (!info["dtype"].is_string()) bad("dtype is not a string");
    Entry e{name, find_dtype(info["dtype"].get<std::string>()), {}, 0, 0};
    if (!e.dtype) bad("unknown dtype \"" + printable(info["dtype"].get<std::string>()) + "\"");
    const auto& shape = info["shape"];
    if (!shape.is_array() || shape.size() > 8) bad("shape must be an array of at most 8 sizes");
    uint64_t numel = 1;
    for (const auto& d : shape) {
      if (!d.is_number_unsigned()) bad("shape holds a negative or non-integer size");
      uint64_t v = d.get<uint64_t>();
      if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) bad("shape size overflows");
      if (v != 0 && numel > std::numeric_limits<uint64_t>::max() / v) bad("shape size overflows");
      numel *= v;
      e.shape.push_back(static_cast<int64_t>(v));
    }
    if (numel > std::numeric_limits<uint64_t>::max() / static_cast<uint64_t>(e.dtype->bytes))
      bad("shape size overflows");
    const auto& off = info["data_offsets"];
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
      bad("data_offsets must be two non-negative integers");
    e.begin = off[0].get<uint64_t>();
    e.end = off[1].get<uint64_t>();
    if (e.begin > e.end || e.end > data_size) bad("data_offsets out of bounds");
    if (e.end - e.begin != numel * static_cast<uint64_t>(e.dtype->bytes))
      bad("shape does not match its " + std::to_string(e.end - e.begin) + " data bytes");
    entries.push_back(std::move(e));
  }
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) { return a.begin < b.begin; });
  for (size_t i = 1; i < entries.size(); ++i)
    if (entries[i].begin < entries[i - 1].end)
      fail("tensors \"" + printable(entries[i - 1].name) + "\" and \"" + printable(entries[i].name) + "\" overlap");

  std::map<std::string, torch::Tensor> out;
  const uint64_t data_start = 8 + header_len;
  for (const auto& e : entries) {
    torch::Tensor raw = torch::empty(e.shape, torch::TensorOptions().dtype(e.dtype->type));
    in.seekg(static_cast<std::streamoff>(data_start + e.begin));
    in.read(static_cast<char*>(raw.data_ptr()), static_cast<std::streamsize>(e.end - e.begin));
    if (!in) fail("tensor \"" + printable(e.name) + "\": cannot read data");
    out[e.name] = raw.is_floating_point() ? raw.to(torch::kFloat32) : raw.to(torch::kInt64);
  }
  return out;
}

void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  std::vector<std::pair<std::string, torch::Tensor>> sorted;
  for (const auto& [name, t] : tensors) {
    torch::Tensor c = t.detach().to(torch::kCPU).contiguous();
    // bf16 and int8 are kept as they are (model/quantize.h's smaller files); the rest is widened.
    if (c.scalar_type() == torch::kBFloat16 || c.scalar_type() == torch::kInt8) {
    } else if (c.is_floating_point()) {
      c = c.to(torch::kFloat32);
    } else {
      c = c.to(torch::kInt64);
    }
    sorted.emplace_back(name, c);
  }
  std::sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) { return a.first < b.first; });

  nlohmann::ordered_json header;
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const auto& [name, t] : sorted) {
    const uint64_t bytes = static_cast<uint64_t>(t.numel()) * t.element_size();
    const char* dtype = t.scalar_type() == torch::kBFloat16 ? "BF16"
                        : t.scalar_type() == torch::kInt8   ? "I8"
                        : t.is_floating_point()             ? "F32"
                                                            : "I64";
    header[name] = {{"dtype", dtype},
                    {"shape", t.sizes().vec()},
                    {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // keeps the data 8-byte aligned

  std::string blob;
  blob.reserve(8 + text.size() + offset);
  uint64_t len = text.size();
  for (int i = 0; i < 8; ++i) blob.push_back(static_cast<char>((len >> (8 * i)) & 0xff));
  blob += text;
  for (const auto& [name, t] : sorted)
    blob.append(static_cast<const char*>(t.data_ptr()), static_cast<size_t>(t.numel()) * t.element_size());
  write_file_atomic(path, blob);
}

}  // namespace dqe
