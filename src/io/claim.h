// Outputs that two processes must not both write: a new directory published whole (export),
// and a directory claimed for the length of a run that adds to it (tokenizer train). Given the
// same output at once, exactly one dqe process writes it; the other stops with one line, and
// nothing of the first's (or of the user's) is replaced.
#pragma once

#include <functional>
#include <string>

namespace dqe {

// Writes the new directory dir: fill writes into a fresh, uniquely named directory beside it
// (".NAME.new-XXXXXX"), which then takes dir's place only where dir is still absent or an
// empty directory, in one rename that refuses to replace (renameat2's RENAME_NOREPLACE, so no
// other process can slip in between a check and the rename). When another process wrote dir
// meanwhile, the work is removed and ConfigError names `flag` and dir. If fill throws, the
// temporary directory is removed and the exception goes on. A crash leaves dir as it was.
void write_new_directory(const std::string& dir, const std::string& flag,
                         const std::function<void(const std::string& tmp_dir)>& fill);

// Moves the file `from` to `to` unless `to` exists; false (and `from` left) when it does.
// Throws IoError naming `to` for another failure.
bool rename_no_replace(const std::string& from, const std::string& to);

// An exclusive claim on an existing directory for this object's life (flock: released when it
// goes away, or when the process dies). Throws ConfigError naming `flag` when another process
// holds it, IoError when the directory cannot be opened.
class DirectoryClaim {
 public:
  DirectoryClaim(const std::string& dir, const std::string& flag);
  ~DirectoryClaim();
  DirectoryClaim(const DirectoryClaim&) = delete;
  DirectoryClaim& operator=(const DirectoryClaim&) = delete;

 private:
  int fd_ = -1;
};

}  // namespace dqe
