#include "dqe/runtime.h"

#include <dlfcn.h>
#include <sched.h>

#include <fstream>
#include <sstream>
#include <thread>

#include <ATen/autocast_mode.h>

#include <ATen/Parallel.h>
#include <torch/torch.h>
#include <torch/version.h>

#include "dqe/errors.h"

namespace dqe {
namespace {

int cores_available() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return CPU_COUNT(&set);
  return static_cast<int>(std::thread::hardware_concurrency());
}

// Looked up at run time: Debian's LibTorch links libblas.so.3, which the alternatives
// system points at OpenBLAS, BLIS or the slow reference implementation.
template <typename Fn>
Fn find_symbol(const char* name) {
  return reinterpret_cast<Fn>(dlsym(RTLD_DEFAULT, name));
}

}  // namespace

int configure_threads(int threads) {
  if (threads <= 0) threads = cores_available();
  at::set_num_threads(threads);
  // Matmuls run inside BLAS, whose pool is separate from LibTorch's.
  if (auto set = find_symbol<void (*)(int)>("openblas_set_num_threads")) set(threads);
  return threads;
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

Precision resolve_precision(const std::string& name, const std::string& flag) {
  if (name == "fp32") return Precision::kFp32;
  if (name == "bf16") return Precision::kBf16;
  if (name == "auto") return cpu_has_native_bf16() ? Precision::kBf16 : Precision::kFp32;
  throw ConfigError(flag + " must be auto, fp32 or bf16, got \"" + name + "\"");
}

std::string precision_name(Precision precision) { return precision == Precision::kBf16 ? "bf16" : "fp32"; }

AutocastGuard::AutocastGuard(Precision precision) {
  if (precision != Precision::kBf16) return;
  active_ = true;
  previous_enabled_ = at::autocast::is_cpu_enabled();
  at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
  at::autocast::set_cpu_enabled(true);
  at::autocast::increment_nesting();
}

AutocastGuard::~AutocastGuard() {
  if (!active_) return;
  // The cast-weight cache lives until the outermost region ends, as in PyTorch.
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  at::autocast::set_cpu_enabled(previous_enabled_);
}

}  // namespace dqe
