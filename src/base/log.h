// Component loggers ("[train] ...") on stderr, shared by the library's sources.
#pragma once

#include <memory>
#include <string>

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

namespace dqe::detail {

std::shared_ptr<spdlog::logger> logger(const std::string& component);

}  // namespace dqe::detail
