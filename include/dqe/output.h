// Writing dqe's outputs: the rules every output follows (src/detail/output_file.h has the
// writer).
#pragma once

#include <string>

namespace dqe {

// Writes text to path so that a reader never sees half a file: a regular file (or a new
// path) is written to a uniquely named temporary file beside it, synced and renamed into
// place (through a symlink, the link's target is replaced); "-" is standard output; a
// character device or FIFO is written straight through; a directory, socket or block device
// is refused. A path ending in .gz is written compressed. Throws IoError naming path.
void write_file_atomic(const std::string& path, const std::string& text);

}  // namespace dqe
