#include "base/checks.h"

#include "base/format.h"
#include "dqe/errors.h"
#include "dqe/runtime.h"

namespace dqe {

void check_flag(bool ok, const std::string& flag, const std::string& rule, double value) {
  if (!ok) throw ConfigError(flag + " must be " + rule + ", got " + format_significant(value, 6));
}

void check_flag(bool ok, const std::string& flag, const std::string& rule, int64_t value) {
  if (!ok) throw ConfigError(flag + " must be " + rule + ", got " + std::to_string(value));
}

void check_compute_flags(int threads, const std::string& precision, const std::string& device) {
  check_flag(threads >= 0 && threads <= kMaxThreads, "--threads", "between 0 (the CPUs this process may use) and " + std::to_string(kMaxThreads),
             static_cast<int64_t>(threads));
  resolve_precision(precision, resolve_device(device));
}

}  // namespace dqe
