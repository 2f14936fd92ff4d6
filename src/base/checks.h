// Checks of a configuration value and the bounds shared by the commands' knobs.
#pragma once

#include <cstdint>
#include <string>

#include "dqe/knobs.h"  // the shared bounds (kMaxBatchSize ...)

namespace dqe {

// Throws ConfigError "FLAG must be RULE, got VALUE" unless ok. Write ok so that NaN fails it
// (x >= 0 && x < 1, not !(x < 0)).
void check_flag(bool ok, const std::string& flag, const std::string& rule, double value);
void check_flag(bool ok, const std::string& flag, const std::string& rule, int64_t value);

// --threads, --precision and --device of every command that runs a model.
void check_compute_flags(int threads, const std::string& precision, const std::string& device);

}  // namespace dqe
