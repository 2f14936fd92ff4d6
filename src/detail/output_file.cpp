#include "detail/output_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iostream>

#include "detail/gzip_stream.h"
#include "dqe/errors.h"

namespace dqe::detail {

OutputFile::OutputFile(std::string path) : path_(std::move(path)) {
  if (path_ == "-") {
    out_ = &std::cout;
    return;
  }
  tmp_ = path_ + ".tmp-" + std::to_string(::getpid());
  if (has_gz_suffix(path_)) {
    try {
      buf_ = std::make_unique<GzipWriteBuf>(tmp_);
    } catch (const IoError&) {
      throw IoError(path_ + ": cannot write (" + std::strerror(errno != 0 ? errno : EACCES) + ")");
    }
  } else {
    auto buf = std::make_unique<std::filebuf>();
    if (!buf->open(tmp_, std::ios::out | std::ios::binary | std::ios::trunc))
      throw IoError(path_ + ": cannot write (" + std::strerror(errno) + ")");
    buf_ = std::move(buf);
  }
  file_ = std::make_unique<std::ostream>(buf_.get());
  out_ = file_.get();
}

OutputFile::~OutputFile() {
  if (file_ && !committed_) {
    file_.reset();
    buf_.reset();
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
  bool closed = true;
  if (auto* gz = dynamic_cast<GzipWriteBuf*>(buf_.get())) closed = gz->close();
  else closed = static_cast<std::filebuf*>(buf_.get())->close() != nullptr;
  if (!closed) throw IoError(path_ + ": write failed (disk full?)");
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
