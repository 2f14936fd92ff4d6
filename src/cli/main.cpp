#include <unistd.h>

#include <cstdlib>

#include "cli/app.h"
#include "dqe/runtime.h"

int main(int argc, char** argv) {
  // OpenBLAS picks its kernels when it loads; when it fell back to the slowest ones on a
  // modern CPU, start again with the right core named (once: the variable is then set).
  if (std::getenv("OPENBLAS_CORETYPE") == nullptr) {
    const std::string core = dqe::recommended_openblas_core();
    if (!core.empty()) {
      ::setenv("OPENBLAS_CORETYPE", core.c_str(), 1);
      ::execv("/proc/self/exe", argv);  // returns only on failure: carry on with slow kernels
    }
  }
  return dqe::cli::run(argc, argv);
}
