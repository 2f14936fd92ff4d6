#include "base/log.h"

#include <mutex>

namespace dqe::detail {

std::shared_ptr<spdlog::logger> logger(const std::string& component) {
  // spdlog's registry refuses a second logger of one name: get and create under one lock, so
  // that two threads asking for a new component's logger at once both get it.
  static std::mutex mutex;
  std::lock_guard<std::mutex> lock(mutex);
  if (auto existing = spdlog::get(component)) return existing;
  auto created = spdlog::stderr_logger_mt(component);
  created->set_pattern("[%n] %v");
  return created;
}

}  // namespace dqe::detail
