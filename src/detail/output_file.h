// An output file that appears under its final name only when complete: writes go to a
// temporary file beside it, renamed into place by commit(). "-" writes to stdout; a path
// ending in .gz is written gzip-compressed.
#pragma once

#include <fstream>
#include <memory>
#include <ostream>
#include <string>

namespace dqe::detail {

class OutputFile {
 public:
  // Throws IoError naming path when the temporary file cannot be created.
  explicit OutputFile(std::string path);
  ~OutputFile();  // removes the temporary file unless committed
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;

  std::ostream& stream() { return *out_; }
  // Flushes, syncs and renames into place. Throws IoError when any write failed.
  void commit();

 private:
  std::string path_, tmp_;
  std::unique_ptr<std::streambuf> buf_;  // a filebuf, or a GzipWriteBuf for *.gz
  std::unique_ptr<std::ostream> file_;
  std::ostream* out_;
  bool committed_ = false;
};

}  // namespace dqe::detail
