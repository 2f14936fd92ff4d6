// Data-parallel training on LibTorch's c10d: the launcher's environment (torchrun, Slurm, or
// a shell loop setting the same variables), a TCPStore rendezvous, a Gloo process group, and
// the engine hook that all-reduces gradients in buckets and takes the job's decisions
// together. Without RANK/WORLD_SIZE (or a Slurm job of several tasks) nothing here runs and a
// run is exactly a single-process run.
//
// How a data-parallel run divides its work: every process reads the whole training file (or
// corpus chunk) and tokenises its share of it; the job gathers the encodings (shares.h), so
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

#include <nlohmann/json.hpp>

#include "dqe/run_context.h"

namespace dqe {
namespace training {
class Hooks;
class RunDirectory;
struct EngineOptions;
}  // namespace training

// The data-parallel knobs of train and pretrain: how the job computes, not what it learns
// (they may change on --resume).
struct DistributedOptions {
  // Seconds the rendezvous and each collective wait for the other processes: a process that
  // died or hangs stops the others within this time. Rank 0 writes checkpoints while the
  // others wait for the next step, so it must outlast a checkpoint write.
  double timeout_s = 600;
  // Gradients are all-reduced in buckets of up to this many MiB (one collective per bucket),
  // and in 4 buckets at least, so that a small model's all-reduce overlaps the backward pass.
  double bucket_mb = 25;

  // Throws ConfigError naming --dist-timeout or --bucket-mb.
  void validate() const;
  void write_json(nlohmann::ordered_json& j) const;
};

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

  // The engine's hook: bucketed gradient all-reduce (weighted mean) overlapping the backward
  // pass, rank 0 primary, decisions taken by any.
  std::unique_ptr<training::Hooks> hooks(double bucket_mb);

 private:
  struct Impl;
  LaunchEnvironment env_;
  DistributedOptions options_;
  std::unique_ptr<Impl> impl_;
};

// Opens the run directory: in a single process as RunDirectory does; in a job, rank 0 first
// (it locks, checks, recovers and marks the directory), then the others read it without
// taking its lock. Resuming on several machines needs out_dir on a shared file system.
std::unique_ptr<training::RunDirectory> open_run_directory(DataParallel* group, const std::string& out_dir,
                                                           bool resume);

// Sets the context's rank and world size and the world size the run's global batch is
// planned for (recorded in the run's configuration as "data-parallel-ranks", kept on
// --resume, so a run resumed at another world size continues the same batches), and logs
// the global batch. Adds the recorded key to options.config when it is not 1.
void apply_data_parallel(DataParallel* group, const training::RunDirectory& run_dir, bool resume, int64_t batch_size,
                         RunContext& ctx, training::EngineOptions& options);

}  // namespace dqe
