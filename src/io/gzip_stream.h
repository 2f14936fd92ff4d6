// zlib-backed stream buffers, so that inputs and outputs named *.gz are read and written
// compressed without the rest of the code knowing.
#pragma once

#include <zlib.h>

#include <cstdint>
#include <streambuf>
#include <string>
#include <vector>

namespace dqe::detail {

bool has_gz_suffix(const std::string& path);

// Reads a gzip file: one member or several concatenated (as `cat a.gz b.gz` makes), or, as
// zlib does, a file that does not start with the gzip magic bytes as it is. Throws IoError
// naming the file when it cannot be opened or read, when its compressed data is corrupt,
// when it ends inside a member ("truncated gzip stream": a copy cut short, a missing
// trailer), or when bytes that are not a gzip member follow the last member. A truncated
// file is never read as a shorter complete one.
class GzipReadBuf : public std::streambuf {
 public:
  explicit GzipReadBuf(std::string path);
  ~GzipReadBuf() override;
  GzipReadBuf(const GzipReadBuf&) = delete;
  GzipReadBuf& operator=(const GzipReadBuf&) = delete;
  // Compressed bytes of the file inflated so far: progress through it, against its size.
  int64_t compressed_consumed() const { return file_read_ - static_cast<int64_t>(zs_.avail_in); }

 protected:
  int_type underflow() override;

 private:
  // Reads more compressed bytes into in_; false at the end of the file.
  bool refill();
  [[noreturn]] void fail(const std::string& problem) const;

  std::string path_;
  int fd_ = -1;
  bool plain_ = false;        // no gzip magic: bytes are passed through
  bool member_ended_ = false;  // between members (or after the last)
  bool file_ended_ = false;
  int64_t file_read_ = 0;  // bytes read from the file
  z_stream zs_{};
  bool zs_ready_ = false;
  std::vector<unsigned char> in_;
  std::vector<char> out_;
};

// Compresses what is written to it into sink as one gzip member. close() finishes the member
// and reports whether everything was handed to sink; a sink that refuses bytes (a broken
// pipe, a full disk) makes it fail.
class GzipWriteBuf : public std::streambuf {
 public:
  explicit GzipWriteBuf(std::streambuf& sink);  // throws IoError when zlib cannot start
  ~GzipWriteBuf() override;
  GzipWriteBuf(const GzipWriteBuf&) = delete;
  GzipWriteBuf& operator=(const GzipWriteBuf&) = delete;
  bool close();
  bool ok() const { return ok_; }

 protected:
  int_type overflow(int_type ch) override;
  int sync() override;

 private:
  // Deflates the put area with `flush` (Z_NO_FLUSH or Z_FINISH) into sink.
  bool deflate_pending(int flush);

  std::streambuf& sink_;
  z_stream zs_{};
  bool open_ = false;
  std::vector<char> buffer_;
  std::vector<char> compressed_;
  bool ok_ = true;
};

}  // namespace dqe::detail
