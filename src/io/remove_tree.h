// Removing a directory tree without std::filesystem::remove_all.
#pragma once

#include <ftw.h>

#include <cstdio>
#include <string>

namespace dqe::detail {

// Removes a file or a whole directory tree, as `rm -rf` does, and is quiet when nothing is
// there. Best effort: what cannot be removed is left. Not std::filesystem::remove_all: dqe
// built against a PyTorch wheel's LibTorch (torch 2.11, GCC 13.3, on a GPU machine) died with
// SIGSEGV exactly where it called remove_all (replacing a checkpoint, removing a test's temp
// directory), and ran clean with this. Why remove_all failed there was not pinned down.
inline void remove_tree(const std::string& path) {
  auto remove_one = [](const char* p, const struct stat*, int, struct FTW*) {
    std::remove(p);
    return 0;  // go on with the rest
  };
  ::nftw(path.c_str(), remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

}  // namespace dqe::detail
