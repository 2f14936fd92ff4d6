#include "io/checkpoint_dir.h"

#include <filesystem>
#include <system_error>

#include <fcntl.h>
#include <unistd.h>

#include "dqe/errors.h"
#include "io/remove_tree.h"

namespace dqe {
namespace fs = std::filesystem;

void fsync_path(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

void recover_checkpoint(const std::string& dir) {
  const std::string old = dir + ".old";
  std::error_code ec;
  if (!fs::exists(dir) && fs::is_directory(old)) fs::rename(old, dir, ec);
}

void write_checkpoint(const std::string& dir, const std::function<void(const std::string& tmp_dir)>& fill) {
  const fs::path target(dir);
  const std::string tmp = dir + ".tmp";
  const std::string old = dir + ".old";
  std::error_code ec;
  detail::remove_tree(tmp);
  if (!fs::create_directories(tmp, ec) && ec)
    throw IoError(tmp + ": cannot create directory (" + ec.message() + ")");
  fill(tmp);
  fsync_path(tmp);

  detail::remove_tree(old);
  if (fs::exists(target)) {
    fs::rename(target, old, ec);
    if (ec) throw IoError(dir + ": cannot replace checkpoint (" + ec.message() + ")");
  }
  fs::rename(tmp, target, ec);
  if (ec) throw IoError(dir + ": cannot move checkpoint into place (" + ec.message() + ")");
  fsync_path(target.parent_path().empty() ? "." : target.parent_path().string());
  detail::remove_tree(old);
}

}  // namespace dqe
