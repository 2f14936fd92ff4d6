// Directories replaced whole: a checkpoint (or an export) is written into DIR.tmp and renamed
// into place, so that DIR is always complete.
#pragma once

#include <functional>
#include <string>

namespace dqe {

// Replaces the directory dir atomically with what fill writes into a fresh temporary
// directory beside it (DIR.tmp, renamed into place; a crash between the renames leaves the
// previous complete one as DIR.old, see recover_checkpoint).
void write_checkpoint(const std::string& dir, const std::function<void(const std::string& tmp_dir)>& fill);

// Makes sure a checkpoint written by write_checkpoint is in place: when a crash hit between
// its two renames, DIR is missing and DIR.old holds the previous complete checkpoint.
void recover_checkpoint(const std::string& dir);

// fsync of a file or directory by path (best effort: errors are ignored).
void fsync_path(const std::string& path);

}  // namespace dqe
