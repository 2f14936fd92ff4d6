#include "detail/output_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iostream>

#include "dqe/errors.h"

namespace dqe::detail {

OutputFile::OutputFile(std::string path) : path_(std::move(path)) {
  if (path_ == "-") {
    out_ = &std::cout;
    return;
  }
  tmp_ = path_ + ".tmp-" + std::to_string(::getpid());
  file_ = std::make_unique<std::ofstream>(tmp_, std::ios::binary | std::ios::trunc);
  if (!*file_) throw IoError(path_ + ": cannot write (" + std::strerror(errno) + ")");
  out_ = file_.get();
}

OutputFile::~OutputFile() {
  if (file_ && !committed_) {
    file_->close();
    std::remove(tmp_.c_str());
  }
}

void OutputFile::commit() {
  out_->flush();
  if (!*out_) throw IoError(path_ + ": write failed (disk full?)");
  if (!file_) {
    committed_ = true;
    return;
  }
  file_->close();
  if (file_->fail()) throw IoError(path_ + ": write failed (disk full?)");
  int fd = ::open(tmp_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
  if (std::rename(tmp_.c_str(), path_.c_str()) != 0)
    throw IoError(path_ + ": cannot move output into place (" + std::strerror(errno) + ")");
  committed_ = true;
}

}  // namespace dqe::detail
