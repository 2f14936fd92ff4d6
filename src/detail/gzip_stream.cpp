#include "detail/gzip_stream.h"

#include <cerrno>
#include <cstring>

#include "dqe/errors.h"

namespace dqe::detail {
namespace {
constexpr size_t kBufferBytes = 1 << 16;
}

bool has_gz_suffix(const std::string& path) { return path.size() > 3 && path.compare(path.size() - 3, 3, ".gz") == 0; }

GzipReadBuf::GzipReadBuf(std::string path) : path_(std::move(path)), buffer_(kBufferBytes) {
  errno = 0;
  file_ = gzopen(path_.c_str(), "rb");
  if (!file_) throw IoError(path_ + ": cannot open (" + std::strerror(errno != 0 ? errno : ENOENT) + ")");
  gzbuffer(file_, kBufferBytes);
}

GzipReadBuf::~GzipReadBuf() {
  if (file_) gzclose(file_);
}

GzipReadBuf::int_type GzipReadBuf::underflow() {
  if (gptr() < egptr()) return traits_type::to_int_type(*gptr());
  const int n = gzread(file_, buffer_.data(), static_cast<unsigned>(buffer_.size()));
  if (n < 0) {
    int code = 0;
    const char* message = gzerror(file_, &code);
    throw IoError(path_ + ": corrupt or truncated gzip data (" + message + ")");
  }
  if (n == 0) return traits_type::eof();
  setg(buffer_.data(), buffer_.data(), buffer_.data() + n);
  return traits_type::to_int_type(*gptr());
}

GzipWriteBuf::GzipWriteBuf(std::string path) : path_(std::move(path)), buffer_(kBufferBytes) {
  errno = 0;
  file_ = gzopen(path_.c_str(), "wb6");
  if (!file_) throw IoError(path_ + ": cannot write (" + std::strerror(errno != 0 ? errno : EACCES) + ")");
  setp(buffer_.data(), buffer_.data() + buffer_.size());
}

GzipWriteBuf::~GzipWriteBuf() { close(); }

bool GzipWriteBuf::flush_buffer() {
  const auto n = static_cast<unsigned>(pptr() - pbase());
  if (n > 0 && gzwrite(file_, pbase(), n) != static_cast<int>(n)) ok_ = false;
  setp(buffer_.data(), buffer_.data() + buffer_.size());
  return ok_;
}

GzipWriteBuf::int_type GzipWriteBuf::overflow(int_type ch) {
  if (!file_ || !flush_buffer()) return traits_type::eof();
  if (!traits_type::eq_int_type(ch, traits_type::eof())) {
    *pptr() = traits_type::to_char_type(ch);
    pbump(1);
  }
  return traits_type::not_eof(ch);
}

int GzipWriteBuf::sync() { return file_ && flush_buffer() ? 0 : -1; }

bool GzipWriteBuf::close() {
  if (!file_) return ok_;
  flush_buffer();
  if (gzclose(file_) != Z_OK) ok_ = false;
  file_ = nullptr;
  return ok_;
}

}  // namespace dqe::detail
