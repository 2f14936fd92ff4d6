// Process-wide compute settings: thread counts and a description of the math backend,
// so that every run says which BLAS it uses and how many threads.
#pragma once

#include <string>

#include <c10/core/Device.h>

namespace dqe {

// Sets LibTorch's intra-op threads and, when OpenBLAS is the BLAS, its thread pool.
// threads <= 0 means the CPUs this process may use (its affinity mask capped by its cgroup's
// CPU quota) divided among processes_per_node (a data-parallel job's processes on one node);
// more than those CPUs is capped to them (with a warning). Returns the count in use;
// runtime_description() says where it came from.
int configure_threads(int threads, int processes_per_node = 1);

// OpenMP threads spin at every barrier waiting for the others; beside other busy processes a descheduled thread makes its peers spin away
// their time slices (a 2-thread train got 0.15 of its alone speed beside two busy loops).
// libgomp and OpenBLAS read their settings when they load, so the CLI calls this first and,
// when it returns true, re-executes itself. When other processes keep the CPUs busy at start
// (runnable_elsewhere() >= 1 beside a run that uses every CPU), threads wait passively
// (OMP_WAIT_POLICY=PASSIVE). On a quiet machine nothing changes (no re-execution, libgomp's
// spinning: the fastest alone). The user's OMP_WAIT_POLICY or GOMP_SPINCOUNT always wins.
// (OpenBLAS's own idle threads are left as they are: its shortest spin,
// OPENBLAS_THREAD_TIMEOUT=4, halved the median speed beside busy loops in
// scripts/bench/contention.sh.)
bool choose_omp_wait_policy();
// The rule itself: whether `others` runnable threads of other processes make dqe's threads wait
// passively.
bool wait_passively(int others);
// "OpenMP waits: ..." with the policy in force and who chose it.
std::string omp_wait_description();

// One line, e.g. "LibTorch 1.13.1, BLAS OpenBLAS 0.3.21 (Haswell, pthread), 2 threads, oneDNN on".
std::string runtime_description();

// The BLAS library that serves LibTorch's matmuls ("reference BLAS" when none is optimised).
std::string blas_name();

// OpenBLAS 0.3.21 does not recognise recent Xeons and falls back to its slowest (Prescott)
// kernels, about 5x slower here. Returns the core to ask for through OPENBLAS_CORETYPE when
// that happened on a CPU with AVX2/AVX-512, else "". The variable is read when OpenBLAS
// loads, so the CLI re-executes itself with it set.
std::string recommended_openblas_core();

// Arithmetic for the model's matmuls. bf16 autocast runs linear layers and attention
// matmuls in bfloat16 (fp32 accumulation in oneDNN) and keeps LayerNorm, softmax and the
// losses in fp32.
enum class Precision { kFp32, kBf16 };

// Whether the CPU multiplies bfloat16 natively (avx512_bf16 or AMX); without it bf16 is slow.
bool cpu_has_native_bf16();
// "fp32", "bf16", or "auto": bf16 on a GPU, and on a CPU when cpu_has_native_bf16(); fp32
// otherwise. Throws ConfigError naming flag for anything else.
Precision resolve_precision(const std::string& name, const c10::Device& device = c10::Device(c10::kCPU),
                            const std::string& flag = "--precision");
std::string precision_name(Precision precision);

// Where the model runs: "cpu", "cuda", "cuda:N", or "auto" (the first GPU when this dqe was
// built against a CUDA LibTorch and a GPU is visible, else the CPU). Throws ConfigError
// naming flag for an unknown name, or for a GPU that this build or machine does not have.
c10::Device resolve_device(const std::string& name, const std::string& flag = "--device");

// Turns autocast on for its lifetime, on the device's backend, when precision is bf16
// (no-op for fp32).
class AutocastGuard {
 public:
  explicit AutocastGuard(Precision precision, const c10::Device& device = c10::Device(c10::kCPU));
  ~AutocastGuard();
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  bool active_ = false;
  bool cuda_ = false;
  bool previous_enabled_ = false;
};

}  // namespace dqe
