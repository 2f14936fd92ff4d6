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

// Writes a gzip file. close() flushes and reports whether everything was written.
class GzipWriteBuf : public std::streambuf {
 public:
  explicit GzipWriteBuf(std::string path);  // throws IoError
  ~GzipWriteBuf() override;
  bool close();

 protected:
  int_type overflow(int_type ch) override;
  int sync() override;

 private:
  bool flush_buffer();

  std::string path_;
  gzFile file_ = nullptr;
  std::vector<char> buffer_;
  bool ok_ = true;
};

}  // namespace dqe::detail
