#include "io/input_file.h"

#include <filesystem>
#include <system_error>

#include "dqe/errors.h"

namespace dqe {

void check_regular_input(const std::string& path, const std::string& what, const std::string& why) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::file_status status = fs::status(path, ec);
  if (ec && ec != std::errc::no_such_file_or_directory) throw IoError(path + ": " + ec.message());
  if (!fs::exists(status)) throw IoError(path + ": no such " + what + " file");
  if (fs::is_directory(status)) throw IoError(path + ": is a directory, not a " + what + " file");
  if (!fs::is_regular_file(status)) throw IoError(path + ": not a regular file (" + why + ")");
}

}  // namespace dqe
