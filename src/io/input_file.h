// Input files that are read more than once (a corpus), and so must be regular files.
#pragma once

#include <string>

namespace dqe {

// Throws IoError naming path when it is missing ("no such WHAT file"), a directory, or not a
// regular file (a FIFO or a device, which a second pass could not read again; why says what
// the passes are).
void check_regular_input(const std::string& path, const std::string& what, const std::string& why);

}  // namespace dqe
