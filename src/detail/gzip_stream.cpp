#include "detail/gzip_stream.h"

#include <cerrno>
#include <cstring>

#include "dqe/errors.h"

namespace dqe::detail {
namespace {
constexpr size_t kBufferBytes = 1 << 16;
}  // namespace

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

GzipWriteBuf::GzipWriteBuf(std::streambuf& sink) : sink_(sink), buffer_(kBufferBytes), compressed_(kBufferBytes) {
  if (deflateInit2(&zs_, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    throw IoError("cannot start gzip compression");
  open_ = true;
  setp(buffer_.data(), buffer_.data() + buffer_.size());
}

GzipWriteBuf::~GzipWriteBuf() {
  if (open_) deflateEnd(&zs_);
}

bool GzipWriteBuf::deflate_pending(int flush) {
  zs_.next_in = reinterpret_cast<Bytef*>(pbase());
  zs_.avail_in = static_cast<uInt>(pptr() - pbase());
  int ret = Z_OK;
  do {
    zs_.next_out = reinterpret_cast<Bytef*>(compressed_.data());
    zs_.avail_out = static_cast<uInt>(compressed_.size());
    ret = deflate(&zs_, flush);
    if (ret == Z_STREAM_ERROR) ok_ = false;
    const auto n = static_cast<std::streamsize>(compressed_.size() - zs_.avail_out);
    if (n > 0 && sink_.sputn(compressed_.data(), n) != n) ok_ = false;
  } while (ok_ && (zs_.avail_out == 0 || (flush == Z_FINISH && ret != Z_STREAM_END)));
  setp(buffer_.data(), buffer_.data() + buffer_.size());
  return ok_;
}

GzipWriteBuf::int_type GzipWriteBuf::overflow(int_type ch) {
  if (!open_ || !ok_ || !deflate_pending(Z_NO_FLUSH)) return traits_type::eof();
  if (!traits_type::eq_int_type(ch, traits_type::eof())) {
    *pptr() = traits_type::to_char_type(ch);
    pbump(1);
  }
  return traits_type::not_eof(ch);
}

// Hands zlib what is pending without forcing a flush point, which would cost compression;
// what zlib emits reaches the sink, so a failing sink is seen.
int GzipWriteBuf::sync() {
  if (!open_) return ok_ ? 0 : -1;
  return ok_ && deflate_pending(Z_NO_FLUSH) && sink_.pubsync() == 0 ? 0 : -1;
}

bool GzipWriteBuf::close() {
  if (!open_) return ok_;
  if (ok_) deflate_pending(Z_FINISH);
  deflateEnd(&zs_);
  open_ = false;
  if (sink_.pubsync() != 0) ok_ = false;
  return ok_;
}

}  // namespace dqe::detail
