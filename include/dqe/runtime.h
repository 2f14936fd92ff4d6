// Process-wide compute settings: thread counts and a description of the math backend,
// so that every run says which BLAS it uses and how many threads.
#pragma once

#include <string>

namespace dqe {

// Sets LibTorch's intra-op threads and, when OpenBLAS is the BLAS, its thread pool.
// threads <= 0 means all cores available to this process.
int configure_threads(int threads);

// One line, e.g. "LibTorch 1.13.1, BLAS OpenBLAS 0.3.21 (Haswell, pthread), 2 threads, oneDNN on".
std::string runtime_description();

// The BLAS library that serves LibTorch's matmuls ("reference BLAS" when none is optimised).
std::string blas_name();

// OpenBLAS 0.3.21 does not recognise recent Xeons and falls back to its slowest (Prescott)
// kernels, about 5x slower here. Returns the core to ask for through OPENBLAS_CORETYPE when
// that happened on a CPU with AVX2/AVX-512, else "". The variable is read when OpenBLAS
// loads, so the CLI re-executes itself with it set.
std::string recommended_openblas_core();

}  // namespace dqe
