// Checks of a configuration value and the bounds shared by the commands' knobs.
#pragma once

#include <cstdint>
#include <string>

namespace dqe {

// Throws ConfigError "FLAG must be RULE, got VALUE" unless ok. Write ok so that NaN fails it
// (x >= 0 && x < 1, not !(x < 0)).
void check_flag(bool ok, const std::string& flag, const std::string& rule, double value);
void check_flag(bool ok, const std::string& flag, const std::string& rule, int64_t value);

// Bounds shared by the commands' flags: beyond them a value is a mistake, and some would
// overflow (a batch of 2^63 - 1 examples plans zero steps).
constexpr int64_t kMaxBatchSize = int64_t{1} << 24;
constexpr int64_t kMaxGradAccum = int64_t{1} << 20;
constexpr int64_t kMaxEpochs = 1000000;
constexpr int64_t kMaxSequenceLength = int64_t{1} << 16;
constexpr int kMaxThreads = 1024;

// --threads, --precision and --device of every command that runs a model.
void check_compute_flags(int threads, const std::string& precision, const std::string& device);

}  // namespace dqe
