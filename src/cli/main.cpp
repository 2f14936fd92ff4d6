#include <unistd.h>

#include <cstdlib>
#include <string>

#include "cli/app.h"
#include "dqe/runtime.h"

int main(int argc, char** argv) {
  // OpenBLAS and libgomp read their settings when they load, before main. When OpenBLAS fell
  // back to its slowest kernels on a modern CPU, or OpenMP's wait policy is not chosen yet,
  // start again with the variables set (once: they are then set).
  bool restart = false;
  if (std::getenv("OPENBLAS_CORETYPE") == nullptr) {
    const std::string core = dqe::recommended_openblas_core();
    if (!core.empty()) {
      ::setenv("OPENBLAS_CORETYPE", core.c_str(), 1);
      restart = true;
    }
  }
  if (dqe::choose_omp_wait_policy()) restart = true;
  if (restart) ::execv("/proc/self/exe", argv);  // returns only on failure: carry on as we are
  return dqe::cli::run(argc, argv);
}
