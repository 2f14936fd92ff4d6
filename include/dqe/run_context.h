// What a run needs from its surroundings, passed down instead of kept in globals: where and
// how it computes (device, precision, threads), its place among data-parallel processes
// (rank, world size), the token that asks it to stop, and the seeds of its random streams.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <c10/core/Device.h>

#include "dqe/runtime.h"

namespace dqe {

// Asks long work to stop at its next safe point. The CLI's signal handler sets the flag it
// points at; the library only reads it. A default token never asks.
class StopToken {
 public:
  StopToken() = default;
  explicit StopToken(const std::atomic<int>* signal_number) : signal_number_(signal_number) {}

  // The signal that asked to stop, or 0.
  int signal_number() const { return signal_number_ ? signal_number_->load(std::memory_order_relaxed) : 0; }
  bool requested() const { return signal_number() != 0; }
  // Throws Interrupted, saying what was stopped, when a stop was asked.
  void check(const std::string& what) const;

 private:
  const std::atomic<int>* signal_number_ = nullptr;
};

// Seeds of a run's random streams, all derived from its --seed, so that the same seed gives
// the same run and a resumed run draws what the uninterrupted one would have.
class SeedStreams {
 public:
  explicit SeedStreams(uint64_t seed = 0) : seed_(seed) {}
  uint64_t seed() const { return seed_; }
  // New weights (heads, a model built from scratch): drawn right after this seeds LibTorch.
  void seed_initialisation() const;
  // The data order of an epoch's chunk (fine-tuning has one chunk per epoch).
  uint64_t data_order(int64_t epoch, int64_t chunk) const;
  // Micro-batch `micro` of optimizer step `step` (0-based, before the step): its dropout
  // and, for pretraining, its masks depend on nothing else.
  uint64_t micro_batch(int64_t step, int64_t micro) const;
  // Seeds LibTorch's generator, which dropout draws from, with value.
  static void seed_torch(uint64_t value);

 private:
  uint64_t seed_;
};

struct RunContext {
  c10::Device device{c10::kCPU};
  Precision precision = Precision::kFp32;
  int threads = 1;
  // Data parallelism: this process's rank among world_size; rank 0 writes checkpoints and logs.
  int rank = 0;
  int world_size = 1;
  // The world size the run's global batch is planned for (the one it started with, kept on
  // --resume): a step takes --batch-size x plan_world_size rows, sliced among world_size
  // processes (dist/process_group.h).
  int plan_world_size = 1;
  // Element-wise sums over the job's processes (a collective: every process calls it at the
  // same point); unset in a single process. Sharded evaluation gathers its shares through it.
  std::function<void(std::vector<double>&)> sum_over_processes;
  // Every process's bytes in rank order (a collective, as above); unset in a single process.
  // The shares each process tokenised of a data set are exchanged through it (dist/shares.h).
  std::function<std::vector<std::string>(const std::string&)> gather_over_processes;
  StopToken stop;
  SeedStreams seeds;

  bool is_primary() const { return rank == 0; }
  // This process's even share [first, second) of n rows, the same split on every process
  // (all n rows in a single process): what it evaluates of a dev set.
  std::pair<size_t, size_t> share_of(size_t n) const {
    const size_t r = static_cast<size_t>(rank), w = static_cast<size_t>(world_size);
    return {r * n / w, (r + 1) * n / w};
  }
  // "cpu, fp32, 2 threads" for the run's first log line.
  std::string describe() const;
};

// Resolves --device and --precision (ConfigError naming them), sets LibTorch's and the BLAS's
// thread pools to `threads` (0: the CPUs this process may use, shared among processes_per_node
// processes of a data-parallel job; see configure_threads) and returns the context.
RunContext make_run_context(const std::string& device, const std::string& precision, int threads,
                            StopToken stop = {}, uint64_t seed = 0, int processes_per_node = 1);

}  // namespace dqe
