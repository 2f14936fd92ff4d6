#include "io/claim.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <system_error>
#include <vector>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dqe/errors.h"
#include "io/checkpoint_dir.h"
#include "io/remove_tree.h"

namespace dqe {
namespace fs = std::filesystem;
namespace {

// renameat2 with RENAME_NOREPLACE; where the file system does not offer it, a check and a
// rename (which may then race). 0 or the errno.
int rename_noreplace(const std::string& from, const std::string& to) {
  if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) == 0) return 0;
  if (errno != EINVAL && errno != ENOSYS) return errno;
  struct stat st {};
  if (::lstat(to.c_str(), &st) == 0) return EEXIST;
  return ::rename(from.c_str(), to.c_str()) == 0 ? 0 : errno;
}

}  // namespace

bool rename_no_replace(const std::string& from, const std::string& to) {
  const int err = rename_noreplace(from, to);
  if (err == 0) return true;
  if (err == EEXIST) return false;
  throw IoError(to + ": cannot move into place (" + std::strerror(err) + ")");
}

void write_new_directory(const std::string& dir, const std::string& flag,
                         const std::function<void(const std::string& tmp_dir)>& fill) {
  fs::path target = fs::path(dir).lexically_normal();
  if (target.filename().empty()) target = target.parent_path();  // "out/"
  // A symlink to the (empty) directory to write: the directory takes the work, the link stays.
  std::error_code ec;
  if (fs::is_symlink(target, ec)) {
    target = fs::canonical(target, ec);
    if (ec) throw IoError(dir + ": cannot write through the link (" + ec.message() + ")");
  }
  const fs::path parent = target.parent_path().empty() ? fs::path(".") : target.parent_path();
  std::string pattern = (parent / ("." + target.filename().string().substr(0, 200) + ".new-XXXXXX")).string();
  std::vector<char> name(pattern.begin(), pattern.end());
  name.push_back('\0');
  if (::mkdtemp(name.data()) == nullptr)
    throw IoError(dir + ": cannot create a directory beside it (" + std::strerror(errno) + ")");
  const std::string tmp(name.data());
  try {
    fill(tmp);
  } catch (...) {
    detail::remove_tree(tmp);
    throw;
  }
  fsync_path(tmp);
  auto lost = [&] {
    detail::remove_tree(tmp);
    return ConfigError(flag + " " + dir + " was written by another process while this one ran; it is left as that "
                       "one wrote it, and nothing was written here");
  };
  // An empty directory the user made for the output is taken; one that is no longer empty
  // (rmdir refuses) was written by someone else.
  struct stat st {};
  if (::lstat(target.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode)) throw lost();
    if (::rmdir(target.c_str()) != 0) {
      const int err = errno;
      if (err == ENOTEMPTY || err == EEXIST) throw lost();
      detail::remove_tree(tmp);
      throw IoError(dir + ": cannot take the place of the empty directory (" + std::strerror(err) + ")");
    }
  }
  const int err = rename_noreplace(tmp, target.string());
  if (err == EEXIST || err == ENOTEMPTY) throw lost();
  if (err != 0) {
    detail::remove_tree(tmp);
    throw IoError(dir + ": cannot move into place (" + std::strerror(err) + ")");
  }
  fsync_path(parent.string());
}

DirectoryClaim::DirectoryClaim(const std::string& dir, const std::string& flag) {
  fd_ = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd_ < 0) throw IoError(dir + ": cannot open (" + std::strerror(errno) + ")");
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    ::close(fd_);
    fd_ = -1;
    if (err == EWOULDBLOCK)
      throw ConfigError(flag + " " + dir + " is in use by another dqe process; wait for it or choose another directory");
    throw IoError(dir + ": cannot lock (" + std::strerror(err) + ")");
  }
}

DirectoryClaim::~DirectoryClaim() {
  if (fd_ >= 0) ::close(fd_);  // releases the claim
}

}  // namespace dqe
