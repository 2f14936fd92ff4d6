#include "io/gzip_stream.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "dqe/errors.h"

namespace dqe::detail {
namespace {
constexpr size_t kBufferBytes = 1 << 16;

bool starts_gzip_member(const unsigned char* p, size_t n) { return n >= 2 && p[0] == 0x1f && p[1] == 0x8b; }

}  // namespace

bool has_gz_suffix(const std::string& path) { return path.size() > 3 && path.compare(path.size() - 3, 3, ".gz") == 0; }

GzipReadBuf::GzipReadBuf(std::string path) : path_(std::move(path)), in_(kBufferBytes), out_(kBufferBytes) {
  fd_ = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0) throw IoError(path_ + ": cannot open (" + std::strerror(errno) + ")");
  zs_.next_in = in_.data();
  zs_.avail_in = 0;
  while (zs_.avail_in < 2 && refill()) {
  }
  plain_ = !starts_gzip_member(zs_.next_in, zs_.avail_in);
  if (plain_) return;
  // 16 + window bits: gzip wrapper only, so that a zlib or raw stream is not taken for one.
  if (inflateInit2(&zs_, 16 + MAX_WBITS) != Z_OK) fail("cannot start gzip decompression");
  zs_ready_ = true;
}

GzipReadBuf::~GzipReadBuf() {
  if (zs_ready_) inflateEnd(&zs_);
  if (fd_ >= 0) ::close(fd_);
}

void GzipReadBuf::fail(const std::string& problem) const { throw IoError(path_ + ": " + problem); }

bool GzipReadBuf::refill() {
  if (file_ended_) return false;
  if (zs_.avail_in > 0 && zs_.next_in != in_.data()) std::memmove(in_.data(), zs_.next_in, zs_.avail_in);
  zs_.next_in = in_.data();
  ssize_t n;
  do {
    n = ::read(fd_, in_.data() + zs_.avail_in, in_.size() - zs_.avail_in);
  } while (n < 0 && errno == EINTR);
  if (n < 0) fail(std::string("read error (") + std::strerror(errno) + ")");
  if (n == 0) {
    file_ended_ = true;
    return false;
  }
  zs_.avail_in += static_cast<uInt>(n);
  file_read_ += n;
  return true;
}

GzipReadBuf::int_type GzipReadBuf::underflow() {
  if (gptr() < egptr()) return traits_type::to_int_type(*gptr());
  if (plain_) {
    size_t n = zs_.avail_in;
    if (n > 0) {
      std::memcpy(out_.data(), zs_.next_in, n);
      zs_.avail_in = 0;
    } else {
      if (!refill()) return traits_type::eof();
      n = zs_.avail_in;
      std::memcpy(out_.data(), zs_.next_in, n);
      zs_.avail_in = 0;
    }
    setg(out_.data(), out_.data(), out_.data() + n);
    return traits_type::to_int_type(*gptr());
  }
  for (;;) {
    if (member_ended_) {
      // Another member may follow (concatenated files are valid gzip); anything else is
      // not data dqe can vouch for.
      if (zs_.avail_in < 2 && !file_ended_) {
        refill();
        continue;
      }
      if (zs_.avail_in == 0) return traits_type::eof();
      if (!starts_gzip_member(zs_.next_in, zs_.avail_in)) fail("trailing data after the last gzip member");
      if (inflateReset(&zs_) != Z_OK) fail("cannot restart gzip decompression");
      member_ended_ = false;
    }
    if (zs_.avail_in == 0 && !refill())
      fail("truncated gzip stream (the file ends inside a member: cut short or missing its trailer)");
    zs_.next_out = reinterpret_cast<Bytef*>(out_.data());
    zs_.avail_out = static_cast<uInt>(out_.size());
    const int ret = inflate(&zs_, Z_NO_FLUSH);
    if (ret == Z_STREAM_END) {
      member_ended_ = true;
    } else if (ret == Z_MEM_ERROR) {
      fail("out of memory while decompressing");
    } else if (ret != Z_OK && !(ret == Z_BUF_ERROR && zs_.avail_in == 0)) {
      fail(std::string("corrupt gzip data (") + (zs_.msg != nullptr ? zs_.msg : "inflate error") + ")");
    }
    const size_t produced = out_.size() - zs_.avail_out;
    if (produced > 0) {
      setg(out_.data(), out_.data(), out_.data() + produced);
      return traits_type::to_int_type(*gptr());
    }
  }
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
