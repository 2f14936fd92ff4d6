// Writing dqe's outputs: the rules every output follows (src/detail/output_file.h has the
// writer), and the check that no output of a command is also one of its inputs.
#pragma once

#include <string>
#include <vector>

namespace dqe {

// Writes text to path so that a reader never sees half a file: a regular file (or a new
// path) is written to a uniquely named temporary file beside it, synced and renamed into
// place (through a symlink, the link's target is replaced); "-" is standard output; a
// character device or FIFO is written straight through; a directory, socket or block device
// is refused. A path ending in .gz is written compressed. Throws IoError naming path.
void write_file_atomic(const std::string& path, const std::string& text);

// A file a command reads or writes, and the flag that named it (as messages show it).
struct FileUse {
  std::string flag;  // "--data"
  std::string path;
  bool output = false;
};

// Throws ConfigError "--metrics-out m.json names the same file as --data d.json" when an
// output is also another input or output of the command: the same regular file (device and
// inode, symlinks followed, so two spellings of one file are caught), or, where neither
// exists yet, the same path. Run before any work, so that nothing is read from a file being
// replaced or written twice. Empty paths, character devices and FIFOs never alias (two
// outputs to /dev/null, or reading a terminal while writing it, are fine); standard input
// "-" is not standard output "-", but two outputs "-" alias.
void check_no_aliases(const std::vector<FileUse>& uses);

}  // namespace dqe
