#include "io/output_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <random>
#include <thread>

#include "base/log.h"
#include "base/process_stop.h"
#include "dqe/errors.h"
#include "io/gzip_stream.h"

namespace dqe::detail {
namespace {

constexpr size_t kBufferBytes = 1 << 16;
constexpr int kMaxSymlinkHops = 40;  // as the kernel's own limit

std::string dir_of(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

std::string base_of(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// Whether dir is a process's descriptor table (/proc/self/fd, /dev/fd). Its entries link to
// open files, pipes and sockets: they are written through the descriptor, not resolved (a
// pipe's link reads "pipe:[123]", which names no file).
bool is_descriptor_dir(const std::string& dir) {
  char* real = ::realpath(dir.c_str(), nullptr);
  if (real == nullptr) return false;
  const std::string r(real);
  std::free(real);
  return r.rfind("/proc/", 0) == 0 && r.size() > 3 && r.compare(r.size() - 3, 3, "/fd") == 0;
}

// Opens a path written straight through. A FIFO's open waits for a reader, as a shell's >
// does, but a blocking open(2) would outlast SIGINT and SIGTERM (their handler is installed
// with SA_RESTART): the open is tried without blocking every 20 ms instead, ending with
// Interrupted on the process's stop request, and says once, after 2 s, what it waits for.
// Returns -1 with errno set when the path cannot be opened.
int open_when_read(const std::string& path, const std::string& name, int flags) {
  const auto started = std::chrono::steady_clock::now();
  bool said = false;
  for (;;) {
    const int fd = ::open(path.c_str(), flags | O_NONBLOCK);
    if (fd >= 0) {
      const int now = ::fcntl(fd, F_GETFL);
      if (now == -1 || ::fcntl(fd, F_SETFL, now & ~O_NONBLOCK) == -1) {
        const int err = errno;
        ::close(fd);
        errno = err;
        return -1;
      }
      return fd;
    }
    if (errno == EINTR) continue;
    const int err = errno;
    struct stat st {};
    // ENXIO from a FIFO: no reader yet (from a device it means what it says).
    if (err != ENXIO || ::stat(path.c_str(), &st) != 0 || !S_ISFIFO(st.st_mode)) {
      errno = err;
      return -1;
    }
    process_stop().check(name + ": waiting for a reader of the FIFO");
    if (!said && std::chrono::steady_clock::now() - started > std::chrono::seconds(2)) {
      detail::logger("output")->info("{} is a FIFO: waiting for a reader to open it", name);
      said = true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

enum class Kind {
  kNew,         // nothing there yet: created through a temporary file
  kRegular,     // replaced through a temporary file
  kStreamed,    // a character device or FIFO: written straight through
  kDescriptor,  // /proc/self/fd/N and the like: written straight through, appending
};

struct Resolved {
  Kind kind = Kind::kNew;
  std::string target;  // kNew and kRegular: the file to rename over (symlinks followed)
  mode_t mode = 0;     // kRegular: its permission bits
};

// What path names once symlinks are followed one at a time (so that a link's own directory
// is known, and a descriptor link is seen before it is followed).
Resolved resolve(const std::string& path, const std::string& name) {
  std::string p = path;
  for (int hop = 0; hop <= kMaxSymlinkHops; ++hop) {
    struct stat st {};
    if (::lstat(p.c_str(), &st) != 0) {
      if (errno == ENOENT) return {Kind::kNew, p, 0};
      throw IoError(name + ": cannot write (" + std::strerror(errno) + ")");
    }
    if (S_ISLNK(st.st_mode)) {
      if (is_descriptor_dir(dir_of(p))) return {Kind::kDescriptor, "", 0};
      std::vector<char> link(static_cast<size_t>(st.st_size > 0 ? st.st_size : 255) + 1);
      const ssize_t n = ::readlink(p.c_str(), link.data(), link.size());
      if (n < 0) throw IoError(name + ": cannot write (" + std::strerror(errno) + ")");
      const std::string to(link.data(), static_cast<size_t>(n));
      p = !to.empty() && to[0] == '/' ? to : dir_of(p) + "/" + to;
      continue;
    }
    if (S_ISREG(st.st_mode)) return {Kind::kRegular, p, static_cast<mode_t>(st.st_mode & 07777)};
    if (S_ISCHR(st.st_mode) || S_ISFIFO(st.st_mode)) return {Kind::kStreamed, "", 0};
    const char* what = S_ISDIR(st.st_mode)    ? "a directory"
                       : S_ISSOCK(st.st_mode) ? "a socket"
                       : S_ISBLK(st.st_mode)  ? "a block device"
                                              : "not a regular file";
    throw IoError(name + ": cannot write output to " + what + (p != path ? " (" + p + ")" : std::string()));
  }
  throw IoError(name + ": cannot write (" + std::strerror(ELOOP) + ")");
}

// Creates a file beside target with a name no one can have chosen in advance, exclusively
// and without following a symlink there. Returns its path; fd receives the descriptor.
std::string create_temp_beside(const std::string& target, const std::string& name, int& fd) {
  // A short enough name that ".NAME.tmp-XXXXXXXXXX" stays within NAME_MAX.
  const std::string prefix = dir_of(target) + "/." + base_of(target).substr(0, 200) + ".tmp-";
  static const char kChars[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  std::random_device entropy;
  for (int attempt = 0; attempt < 100; ++attempt) {
    std::string tmp = prefix;
    for (int i = 0; i < 10; ++i) tmp += kChars[entropy() % (sizeof kChars - 1)];
    fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
    if (fd >= 0) return tmp;
    if (errno != EEXIST) {
      const int err = errno;
      const std::string through = target != name ? "; it is a symlink to " + target : std::string();
      throw IoError(name + ": cannot write (" + std::strerror(err) + through + ")");
    }
  }
  throw IoError(name + ": cannot write (no unused temporary name beside it)");
}

}  // namespace

FdWriteBuf::FdWriteBuf(int fd) : fd_(fd), buffer_(kBufferBytes) { setp(buffer_.data(), buffer_.data() + buffer_.size()); }

bool FdWriteBuf::drain() {
  const char* p = pbase();
  size_t left = static_cast<size_t>(pptr() - pbase());
  while (left > 0 && error_ == 0) {
    const ssize_t n = ::write(fd_, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      error_ = n < 0 ? errno : EIO;
      break;
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
  setp(buffer_.data(), buffer_.data() + buffer_.size());
  return error_ == 0;
}

FdWriteBuf::int_type FdWriteBuf::overflow(int_type ch) {
  if (error_ != 0 || !drain()) return traits_type::eof();
  if (!traits_type::eq_int_type(ch, traits_type::eof())) {
    *pptr() = traits_type::to_char_type(ch);
    pbump(1);
  }
  return traits_type::not_eof(ch);
}

int FdWriteBuf::sync() { return drain() ? 0 : -1; }

OutputFile::OutputFile(std::string path) : path_(std::move(path)), name_(path_ == "-" ? "<stdout>" : path_) {
  if (path_.empty()) throw IoError("cannot write output: empty path");
  if (path_ == "-") {
    // Whatever was printed through stdio goes first.
    std::cout.flush();
    std::fflush(stdout);
    fd_ = STDOUT_FILENO;
  } else {
    const Resolved r = resolve(path_, name_);
    owns_fd_ = true;
    if (r.kind == Kind::kStreamed || r.kind == Kind::kDescriptor) {
      // A descriptor may be a file a shell opened with >>: append, never truncate.
      const int flags = O_WRONLY | O_NOCTTY | O_CLOEXEC | (r.kind == Kind::kDescriptor ? O_APPEND : 0);
      fd_ = open_when_read(path_, name_, flags);
      if (fd_ < 0) throw IoError(name_ + ": cannot write (" + std::strerror(errno) + ")");
      struct stat st {};
      // A path swapped for a regular file since it was looked at would be overwritten in place.
      if (r.kind == Kind::kStreamed && (::fstat(fd_, &st) != 0 || !(S_ISCHR(st.st_mode) || S_ISFIFO(st.st_mode)))) {
        ::close(fd_);
        throw IoError(name_ + ": cannot write (changed while being opened)");
      }
    } else {
      target_ = r.target;
      tmp_ = create_temp_beside(target_, name_, fd_);
      // Replacing a file keeps who may read it; a new one gets 0666 less the umask.
      if (r.kind == Kind::kRegular) (void)::fchmod(fd_, r.mode);
    }
  }
  fd_buf_ = std::make_unique<FdWriteBuf>(fd_);
  std::streambuf* top = fd_buf_.get();
  if (has_gz_suffix(path_)) {
    try {
      gz_buf_ = std::make_unique<GzipWriteBuf>(*fd_buf_);
    } catch (const IoError& e) {
      if (owns_fd_) ::close(fd_);
      if (!tmp_.empty()) ::unlink(tmp_.c_str());
      throw IoError(name_ + ": " + e.what());
    }
    top = gz_buf_.get();
  }
  out_ = std::make_unique<std::ostream>(top);
}

OutputFile::~OutputFile() {
  if (committed_) return;
  if (owns_fd_ && fd_ >= 0) ::close(fd_);
  if (!tmp_.empty()) ::unlink(tmp_.c_str());
}

void OutputFile::fail(int error_number) const {
  throw IoError(name_ + ": cannot write (" + std::strerror(error_number) + ")");
}

void OutputFile::check() const {
  if (fd_buf_->error() != 0) fail(fd_buf_->error());
  if ((gz_buf_ && !gz_buf_->ok()) || out_->bad()) fail(EIO);
}

void OutputFile::flush() {
  out_->flush();
  check();
}

void OutputFile::commit() {
  if (committed_) return;
  // Closing the gzip buffer finishes its member and hands it to fd_buf_, which it syncs.
  if (gz_buf_) gz_buf_->close();
  else out_->flush();
  check();
  if (!owns_fd_) {
    committed_ = true;
    return;
  }
  const int fd = fd_;
  fd_ = -1;
  if (direct()) {
    if (::close(fd) != 0) fail(errno);
    committed_ = true;
    return;
  }
  if (::fsync(fd) != 0) {
    const int err = errno;
    ::close(fd);
    fail(err);
  }
  if (::close(fd) != 0) fail(errno);
  if (std::rename(tmp_.c_str(), target_.c_str()) != 0)
    throw IoError(name_ + ": cannot move output into place (" + std::strerror(errno) + ")");
  committed_ = true;
  // The rename itself survives a crash only once the directory is synced.
  const int dir = ::open(dir_of(target_).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir >= 0) {
    ::fsync(dir);
    ::close(dir);
  }
}

}  // namespace dqe::detail
