#include "dqe/runtime.h"

#include <dlfcn.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include <ATen/autocast_mode.h>

#include <ATen/Parallel.h>
#include <torch/torch.h>
#include <torch/version.h>

#include "base/cpu_budget.h"
#include "base/log.h"
#include "dqe/errors.h"

namespace dqe {
namespace {

// Where the thread count in use came from, for runtime_description().
std::string& thread_source() {
  static std::string source;
  return source;
}

// Looked up at run time: Debian's LibTorch links libblas.so.3, which the alternatives
// system points at OpenBLAS, BLIS or the slow reference implementation.
template <typename Fn>
Fn find_symbol(const char* name) {
  return reinterpret_cast<Fn>(dlsym(RTLD_DEFAULT, name));
}

}  // namespace

int configure_threads(int threads, int processes_per_node) {
  const CpuBudget budget = cpu_budget();
  const int cores = budget.cpus;
  processes_per_node = std::max(1, processes_per_node);
  if (threads <= 0) {
    threads = std::max(1, cores / processes_per_node);
    thread_source() = budget.source;
    if (processes_per_node > 1)
      thread_source() += ", shared by " + std::to_string(processes_per_node) + " processes on this node";
  } else {
    thread_source() = "--threads";
  }
  // More threads than cores only makes them wait for each other (1000 threads on 2 cores
  // never finished a 20-line score).
  if (threads > cores) {
    detail::logger("dqe")->warn("--threads {} is more than the {} cores available to this process ({}); using {}",
                                threads, cores, budget.source, cores);
    threads = cores;
    thread_source() = budget.source;
  }
  at::set_num_threads(threads);
  // Matmuls run inside BLAS, whose pool is separate from LibTorch's.
  if (auto set = find_symbol<void (*)(int)>("openblas_set_num_threads")) set(threads);
  return threads;
}

namespace {
// Set when dqe chose the wait policy, to what it saw, so that the log can say who chose it.
constexpr const char* kOmpChoiceMarker = "DQE_OMP_WAIT_CHOICE";
}  // namespace

bool wait_passively(int others) { return others >= 1; }

bool choose_omp_wait_policy() {
  if (std::getenv("OMP_WAIT_POLICY") || std::getenv("GOMP_SPINCOUNT") || std::getenv(kOmpChoiceMarker)) return false;
  const int others = runnable_elsewhere();
  if (!wait_passively(others)) return false;
  ::setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
  const std::string why = std::to_string(others) + " threads of other processes were runnable at start";
  ::setenv(kOmpChoiceMarker, why.c_str(), 1);
  return true;
}

std::string omp_wait_description() {
  const char* policy = std::getenv("OMP_WAIT_POLICY");
  const char* spin = std::getenv("GOMP_SPINCOUNT");
  const char* why = std::getenv(kOmpChoiceMarker);
  std::string s = "OpenMP waits: ";
  if (!policy && !spin) return s + "libgomp's default (spinning)";
  if (policy) s += std::string("OMP_WAIT_POLICY=") + policy + (spin ? ", " : "");
  if (spin) s += std::string("GOMP_SPINCOUNT=") + spin;
  if (why && !spin && policy && std::string(policy) == "PASSIVE") return s + " (dqe's choice: " + why + ")";
  return s + " (from the environment)";
}

std::string blas_name() {
  if (auto config = find_symbol<char* (*)()>("openblas_get_config")) return config();  // "OpenBLAS 0.3.21 ..."
  if (find_symbol<void*>("bli_info_get_version_str")) return "BLIS";
  if (find_symbol<void*>("MKL_Get_Version_String")) return "MKL";
  return "reference BLAS (slow: install libopenblas0-pthread)";
}

std::string recommended_openblas_core() {
  auto corename = find_symbol<char* (*)()>("openblas_get_corename");
  if (!corename) return "";
  const std::string core = corename();
  if (core != "Prescott" && core != "Unknown" && core != "Katmai" && core != "Core2") return "";
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512bf16")) return "Cooperlake";
  if (__builtin_cpu_supports("avx512f")) return "SkylakeX";
  if (__builtin_cpu_supports("avx2")) return "Haswell";
  return "";
}

std::string runtime_description() {
  std::string s = "LibTorch " TORCH_VERSION ", BLAS " + blas_name() + ", " +
                  std::to_string(at::get_num_threads()) + " threads";
  if (!thread_source().empty()) s += " (" + thread_source() + ")";
  s += ", " + omp_wait_description();
  s += at::hasMKLDNN() ? ", oneDNN on" : ", oneDNN off";
  s += torch::cuda::is_available() ? ", CUDA available" : ", CPU only";
  return s;
}

bool cpu_has_native_bf16() {
  static const bool has = [] {
    std::ifstream in("/proc/cpuinfo");
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind("flags", 0) != 0) continue;
      std::istringstream words(line);
      std::string w;
      while (words >> w)
        if (w == "avx512_bf16" || w == "amx_bf16") return true;
      return false;
    }
    return false;
  }();
  return has;
}

Precision resolve_precision(const std::string& name, const c10::Device& device, const std::string& flag) {
  if (name == "fp32") return Precision::kFp32;
  if (name == "bf16") return Precision::kBf16;
  if (name == "auto") return device.is_cuda() || cpu_has_native_bf16() ? Precision::kBf16 : Precision::kFp32;
  throw ConfigError(flag + " must be auto, fp32 or bf16, got \"" + name + "\"");
}

std::string precision_name(Precision precision) { return precision == Precision::kBf16 ? "bf16" : "fp32"; }

c10::Device resolve_device(const std::string& name, const std::string& flag) {
  if (name == "cpu") return c10::Device(c10::kCPU);
  if (name == "auto") return torch::cuda::is_available() ? c10::Device(c10::kCUDA, 0) : c10::Device(c10::kCPU);
  if (name == "cuda" || name.rfind("cuda:", 0) == 0) {
    int64_t index = 0;
    if (name != "cuda") {
      const std::string digits = name.substr(5);
      if (digits.empty() || digits.size() > 3 || digits.find_first_not_of("0123456789") != std::string::npos)
        throw ConfigError(flag + " must be auto, cpu, cuda or cuda:N, got \"" + name + "\"");
      index = std::stoll(digits);
    }
    if (!torch::cuda::is_available())
      throw ConfigError(flag + " " + name + ": no GPU is usable (this dqe is built against a " +
                        (at::hasCUDA() ? "CUDA LibTorch but no GPU is visible" : "CPU-only LibTorch") +
                        "); use --device cpu or auto");
    const int64_t count = static_cast<int64_t>(torch::cuda::device_count());
    if (index >= count)
      throw ConfigError(flag + " " + name + ": only " + std::to_string(count) + " GPU(s) are visible");
    return c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(index));
  }
  throw ConfigError(flag + " must be auto, cpu, cuda or cuda:N, got \"" + name + "\"");
}

// LibTorch 2.4 replaced the per-backend autocast switches with ones taking a device type.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
#define DQE_AUTOCAST_BY_DEVICE_TYPE 1
#endif

AutocastGuard::AutocastGuard(Precision precision, const c10::Device& device) {
  if (precision != Precision::kBf16) return;
  active_ = true;
  cuda_ = device.is_cuda();
#ifdef DQE_AUTOCAST_BY_DEVICE_TYPE
  const c10::DeviceType type = cuda_ ? c10::kCUDA : c10::kCPU;
  previous_enabled_ = at::autocast::is_autocast_enabled(type);
  at::autocast::set_autocast_dtype(type, at::kBFloat16);
  at::autocast::set_autocast_enabled(type, true);
#else
  if (cuda_) {
    previous_enabled_ = at::autocast::is_enabled();
    at::autocast::set_autocast_gpu_dtype(at::kBFloat16);
    at::autocast::set_enabled(true);
  } else {
    previous_enabled_ = at::autocast::is_cpu_enabled();
    at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
    at::autocast::set_cpu_enabled(true);
  }
#endif
  at::autocast::increment_nesting();
}

AutocastGuard::~AutocastGuard() {
  if (!active_) return;
  // The cast-weight cache lives until the outermost region ends, as in PyTorch.
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
#ifdef DQE_AUTOCAST_BY_DEVICE_TYPE
  at::autocast::set_autocast_enabled(cuda_ ? c10::kCUDA : c10::kCPU, previous_enabled_);
#else
  if (cuda_) at::autocast::set_enabled(previous_enabled_);
  else at::autocast::set_cpu_enabled(previous_enabled_);
#endif
}

}  // namespace dqe
