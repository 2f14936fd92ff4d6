#include "io/json_file.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "base/json_depth.h"
#include "dqe/errors.h"

namespace dqe {

nlohmann::json read_json_file(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) throw IoError(path + ": is a directory, not a JSON file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError(path + ": cannot open (" + std::strerror(errno) + ")");
  // Read in pieces, never more than the limit: the file may be a device that never ends.
  std::string text;
  char chunk[1 << 16];
  while (in.read(chunk, sizeof chunk) || in.gcount() > 0) {
    text.append(chunk, static_cast<size_t>(in.gcount()));
    if (static_cast<int64_t>(text.size()) > kMaxJsonFileBytes)
      throw IoError(path + ": larger than " + std::to_string(kMaxJsonFileBytes >> 20) + " MiB; not a JSON file dqe reads");
  }
  if (in.bad()) throw IoError(path + ": read error");
  if (json_text_depth(text) > kMaxJsonDepth)
    throw ModelError(path + ": JSON nested deeper than " + std::to_string(kMaxJsonDepth) + " levels");
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw ModelError(path + ": not valid JSON (" + e.what() + ")");
  }
}

}  // namespace dqe
