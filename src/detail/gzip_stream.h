// zlib-backed stream buffers, so that inputs and outputs named *.gz are read and written
// compressed without the rest of the code knowing.
#pragma once

#include <zlib.h>

#include <streambuf>
#include <string>
#include <vector>

namespace dqe::detail {

bool has_gz_suffix(const std::string& path);

// Reads a gzip file (or, as zlib does, a plain one). Throws IoError naming the file when it
// cannot be opened or its compressed data is corrupt or truncated.
class GzipReadBuf : public std::streambuf {
 public:
  explicit GzipReadBuf(std::string path);
  ~GzipReadBuf() override;

 protected:
  int_type underflow() override;

 private:
  std::string path_;
  gzFile file_ = nullptr;
  std::vector<char> buffer_;
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
