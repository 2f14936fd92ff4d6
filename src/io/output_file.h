// The one writer of dqe's outputs: score --output, eval --metrics-out, report --out, the
// rejects files, and (through write_file_atomic) checkpoints, logs and metrics. What it does
// depends on what the path names once symlinks are followed:
//   - a regular file, or nothing yet: writes go to a temporary file beside the target, with
//     a unique name created O_EXCL|O_NOFOLLOW (so neither a user's NAME.tmp nor a symlink
//     planted at a guessable name is touched), synced and renamed over the target by
//     commit(), removed otherwise. Through a symlink, the link's target is replaced and the
//     link stays a link. A file that exists keeps its permission bits.
//   - "-" (standard output), a character device (/dev/null, a terminal), a FIFO, or a
//     process's descriptor (/dev/stdout, /proc/self/fd/N): written straight through, never
//     renamed (replacing /dev/null with a file would break the machine).
//   - anything else (a directory, a socket, a block device, a symlink loop): IoError.
// A path ending in .gz is written gzip-compressed, whatever it names.
#pragma once

#include <memory>
#include <ostream>
#include <streambuf>
#include <string>
#include <vector>

namespace dqe::detail {

class GzipWriteBuf;

// A buffered streambuf over a file descriptor that keeps the errno of the first failed write
// (EPIPE, ENOSPC...), which std::filebuf forgets.
class FdWriteBuf : public std::streambuf {
 public:
  explicit FdWriteBuf(int fd);
  int error() const { return error_; }  // 0 while every write succeeded

 protected:
  int_type overflow(int_type ch) override;
  int sync() override;

 private:
  bool drain();

  int fd_;
  int error_ = 0;
  std::vector<char> buffer_;
};

class OutputFile {
 public:
  // Classifies path and opens it (a FIFO's open waits for a reader, as a shell's > does).
  // Throws IoError naming path when it cannot be written or is not a kind of file dqe writes.
  explicit OutputFile(std::string path);
  ~OutputFile();  // a temporary file not committed is removed
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;

  std::ostream& stream() { return *out_; }
  // Throws IoError "<path>: cannot write (<strerror>)" once a write has failed: cheap, so
  // that a writer can call it after every line and stop at the first broken pipe or full
  // disk instead of at the end of its input.
  void check() const;
  // Hands buffered bytes to the file now, then check(): a write error surfaces at the record
  // that caused it.
  void flush();
  // Flushes, syncs and renames into place (a regular file), or flushes (written straight
  // through). Throws IoError when any write failed; the target is then untouched.
  void commit();

  // How messages name the output ("<stdout>" for "-").
  const std::string& name() const { return name_; }
  // Whether bytes go straight to the target (stdout, a device, a FIFO) instead of a
  // temporary file.
  bool direct() const { return tmp_.empty(); }

 private:
  [[noreturn]] void fail(int error_number) const;

  std::string path_, name_;
  std::string target_;  // the regular file renamed over (symlinks resolved)
  std::string tmp_;     // empty when written straight through
  int fd_ = -1;
  bool owns_fd_ = false;  // false for standard output
  std::unique_ptr<FdWriteBuf> fd_buf_;
  std::unique_ptr<GzipWriteBuf> gz_buf_;
  std::unique_ptr<std::ostream> out_;
  bool committed_ = false;
};

}  // namespace dqe::detail
