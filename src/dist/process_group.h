// Data-parallel training on LibTorch's c10d: the launcher's environment (torchrun, Slurm, or
// a shell loop setting the same variables), a TCPStore rendezvous and a Gloo process group
// (gradient_buckets.h all-reduces gradients in buckets; train/data_parallel.h is the engine's
// hook, which also takes the job's decisions together). Without RANK/WORLD_SIZE (or a Slurm job of several tasks) nothing here runs and a
// run is exactly a single-process run.
//
// How a data-parallel run divides its work: every process reads the whole training file (or
// corpus chunk) and tokenises its share of it; the job gathers the encodings (dist/shares.h), so
// every process holds all of them and plans the same global batches of --batch-size x W rows
// (W: the world size the run was started with), and takes its own slice of each. Each step's
// gradients are the weighted mean over the job, so W processes at --batch-size B take the
// steps one process at B x W would. Every process runs the same number of steps: a short last
// batch is split as evenly as the rows allow, and a process whose slice is empty still joins
// the all-reduce with weight 0. Gradients are all-reduced in buckets, sent during the
// backward pass as they become final when one pass completes them (plain steps; after the
// passes otherwise). Only rank 0 writes checkpoints and logs.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "dqe/distributed.h"

namespace dqe {

// Where this process stands in a job, as the launcher said.
struct LaunchEnvironment {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  int local_world_size = 1;
  std::string master_addr;
  int master_port = 0;
  // torchrun's agent already serves the TCPStore at MASTER_ADDR:MASTER_PORT; every rank joins
  // it as a client (TORCHELASTIC_USE_AGENT_STORE).
  bool agent_store = false;
  // torchrun's restart count: keys of an earlier attempt are not read again.
  std::string attempt = "0";
  std::string launcher;  // "torchrun", "slurm", "environment"
};

// The job this process belongs to, from RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE,
// MASTER_ADDR, MASTER_PORT, or Slurm's SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID when RANK is
// unset. nullopt when none is set, or the job has one process: a single-process run.
// getenv is injectable for tests. Throws ConfigError naming the variable that is missing or bad.
std::optional<LaunchEnvironment> launch_environment(
    const std::function<const char*(const char*)>& getenv = nullptr);

// Rows [rank * n / world, (rank + 1) * n / world) of a global batch of n rows: even slices,
// the same on every process.
std::vector<size_t> rows_of_rank(const std::vector<size_t>& global_batch, int rank, int world_size);

// An all-reduce under way (DataParallel::start_sum).
class PendingSum {
 public:
  // Waits for it; returns the summed tensors. Throws Error naming `what` and this rank when a
  // process died, hung past --dist-timeout or lost its connection.
  const std::vector<at::Tensor>& wait(const std::string& what);

 private:
  friend class DataParallel;
  struct Impl;
  std::shared_ptr<Impl> impl_;
  const LaunchEnvironment* env_ = nullptr;
  double timeout_s_ = 0;
};

// A joined c10d process group (TCPStore + Gloo). Every call is collective unless it says not.
class DataParallel {
 public:
  // Rendezvous at MASTER_ADDR:MASTER_PORT (rank 0 serves the store unless torchrun's agent
  // does) and a Gloo group over GLOO_SOCKET_IFNAME's interfaces, or the host's address.
  DataParallel(const LaunchEnvironment& env, const DistributedOptions& options);
  ~DataParallel();
  DataParallel(const DataParallel&) = delete;
  DataParallel& operator=(const DataParallel&) = delete;

  // The process group of the environment, or null for a single-process run.
  static std::unique_ptr<DataParallel> from_environment(const DistributedOptions& options);

  int rank() const { return env_.rank; }
  int world_size() const { return env_.world_size; }
  const LaunchEnvironment& environment() const { return env_; }
  std::string describe() const;

  // Element-wise sums over the job (float64).
  void all_reduce_sum(std::vector<double>& values);
  // Every process's bytes, in rank order (sizes may differ), sent in rounds of up to
  // round_bytes per process.
  std::vector<std::string> all_gather(const std::string& bytes, int64_t round_bytes = int64_t{64} << 20);
  // True when any process says so.
  bool any(bool local);
  // Rank 0 runs `work` while the others wait; then the others run `after`. When rank 0's
  // work throws, the others fail with its message instead of waiting for the timeout. name:
  // this step's own key, used once per job.
  void primary_first(const std::string& name, const std::function<void()>& work, const std::function<void()>& after);

  // Starts an all-reduce (element-wise sum over the job) of the tensors, in place, on Gloo's
  // threads; PendingSum::wait finishes it.
  PendingSum start_sum(std::vector<at::Tensor> tensors);

 private:
  struct Impl;
  LaunchEnvironment env_;
  DistributedOptions options_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dqe
