// LibTorch's c10d declares its Gloo process group only under this macro (PyTorch's own build
// sets it); Debian's libtorch_cpu has the symbols, libgloo-dev the headers.
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO
#endif
#include "dist/process_group.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <future>
#include <thread>

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include "base/checks.h"
#include "base/format.h"
#include "base/log.h"
#include "base/process_stop.h"
#include "dqe/errors.h"

namespace dqe {

void DistributedOptions::validate() const { visit_distributed_knobs(*this, knob_visitors::Checker{}); }

// ---------------------------------------------------------------------------------------
// The launcher's environment

namespace {

// An integer variable's value, or ConfigError naming it.
int int_variable(const char* name, const char* value, int lo, int hi) {
  const std::string text = value ? value : "";
  char* end = nullptr;
  errno = 0;
  const long v = std::strtol(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || errno != 0 || v < lo || v > hi)
    throw ConfigError(std::string("environment variable ") + name + "=\"" + text + "\" must be an integer in [" +
                      std::to_string(lo) + ", " + std::to_string(hi) + "]");
  return static_cast<int>(v);
}

}  // namespace

std::optional<LaunchEnvironment> launch_environment(const std::function<const char*(const char*)>& getenv_fn) {
  auto get = [&](const char* name) -> const char* {
    const char* v = getenv_fn ? getenv_fn(name) : std::getenv(name);
    return v && *v ? v : nullptr;
  };
  auto required = [&](const char* name, const std::string& why) -> const char* {
    const char* v = get(name);
    if (!v) throw ConfigError(std::string("environment variable ") + name + " is not set (" + why + ")");
    return v;
  };
  constexpr int kMaxWorld = 1 << 20;
  LaunchEnvironment env;
  if (get("RANK") || get("WORLD_SIZE")) {
    const std::string why = "a data-parallel job needs RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT";
    env.world_size = int_variable("WORLD_SIZE", required("WORLD_SIZE", why), 1, kMaxWorld);
    env.rank = int_variable("RANK", required("RANK", why), 0, env.world_size - 1);
    env.local_rank = get("LOCAL_RANK") ? int_variable("LOCAL_RANK", get("LOCAL_RANK"), 0, kMaxWorld) : env.rank;
    env.local_world_size =
        get("LOCAL_WORLD_SIZE") ? int_variable("LOCAL_WORLD_SIZE", get("LOCAL_WORLD_SIZE"), 1, kMaxWorld) : env.world_size;
    const char* agent = get("TORCHELASTIC_USE_AGENT_STORE");
    env.agent_store = agent && (std::string(agent) == "True" || std::string(agent) == "true" || std::string(agent) == "1");
    env.launcher = get("TORCHELASTIC_RUN_ID") || agent ? "torchrun" : "environment";
    if (const char* restart = get("TORCHELASTIC_RESTART_COUNT")) env.attempt = restart;
  } else if (get("SLURM_PROCID")) {
    const std::string why = "srun sets SLURM_PROCID, SLURM_NTASKS and SLURM_LOCALID";
    env.world_size = int_variable("SLURM_NTASKS", required("SLURM_NTASKS", why), 1, kMaxWorld);
    env.rank = int_variable("SLURM_PROCID", get("SLURM_PROCID"), 0, env.world_size - 1);
    env.local_rank = get("SLURM_LOCALID") ? int_variable("SLURM_LOCALID", get("SLURM_LOCALID"), 0, kMaxWorld) : 0;
    env.local_world_size = get("SLURM_NTASKS_PER_NODE") && std::string(get("SLURM_NTASKS_PER_NODE")).find_first_not_of(
                                                               "0123456789") == std::string::npos
                               ? int_variable("SLURM_NTASKS_PER_NODE", get("SLURM_NTASKS_PER_NODE"), 1, kMaxWorld)
                               : 1;
    env.launcher = "slurm";
    if (const char* step = get("SLURM_STEP_ID")) env.attempt = step;
  } else {
    return std::nullopt;
  }
  // One process: nothing to rendezvous with.
  if (env.world_size == 1) return std::nullopt;
  const std::string why = "the address and port of rank 0's store, the same on every process";
  env.master_addr = required("MASTER_ADDR", why);
  env.master_port = int_variable("MASTER_PORT", required("MASTER_PORT", why), 1, 65535);
  return env;
}

std::vector<size_t> rows_of_rank(const std::vector<size_t>& global_batch, int rank, int world_size) {
  const size_t n = global_batch.size();
  const size_t r = static_cast<size_t>(rank), w = static_cast<size_t>(world_size);
  return {global_batch.begin() + static_cast<std::ptrdiff_t>(r * n / w),
          global_batch.begin() + static_cast<std::ptrdiff_t>((r + 1) * n / w)};
}

// ---------------------------------------------------------------------------------------
// The process group

struct DataParallel::Impl {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> group;
};

namespace {

// A failed collective or store call, as one line naming this rank and what to look at.
[[noreturn]] void rethrow_collective(const LaunchEnvironment& env, double timeout_s, const std::string& what,
                                     const std::exception& e) {
  std::string cause = e.what();
  if (auto nl = cause.find('\n'); nl != std::string::npos) cause.resize(nl);
  throw Error("data parallel: rank " + std::to_string(env.rank) + " of " + std::to_string(env.world_size) + ": " + what +
              " failed: another process died, hung past --dist-timeout " + format_significant(timeout_s) +
              " s or lost its connection (" + cause + ")");
}

// Gloo's devices: GLOO_SOCKET_IFNAME's interfaces (comma-separated), as PyTorch reads it, or
// the address the host name resolves to.
std::vector<std::shared_ptr<::gloo::transport::Device>> gloo_devices() {
  std::vector<std::shared_ptr<::gloo::transport::Device>> devices;
  const char* ifname = std::getenv("GLOO_SOCKET_IFNAME");
  if (ifname && *ifname) {
    std::string names = ifname;
    size_t start = 0;
    while (start <= names.size()) {
      const size_t comma = std::min(names.find(',', start), names.size());
      const std::string name = names.substr(start, comma - start);
      if (!name.empty()) devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(name));
      start = comma + 1;
    }
  }
  if (devices.empty()) devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
  return devices;
}

}  // namespace

DataParallel::DataParallel(const LaunchEnvironment& env, const DistributedOptions& options)
    : env_(env), options_(options), impl_(std::make_unique<Impl>()) {
  const auto timeout = std::chrono::milliseconds(static_cast<int64_t>(options.timeout_s * 1000));
  try {
    c10d::TCPStoreOptions so;
    so.port = static_cast<uint16_t>(env.master_port);
    so.isServer = !env.agent_store && env.rank == 0;
    if (!env.agent_store) so.numWorkers = static_cast<size_t>(env.world_size);
    so.waitWorkers = !env.agent_store;
    so.timeout = timeout;
    auto tcp = c10::make_intrusive<c10d::TCPStore>(env.master_addr, so);
    // Keys of their own: torchrun's agent keeps its keys in the same store.
    impl_->store = c10::make_intrusive<c10d::PrefixStore>("dqe/" + env.attempt, tcp);
    auto go = c10d::ProcessGroupGloo::Options::create(timeout);
    go->devices = gloo_devices();
    impl_->group = c10::make_intrusive<c10d::ProcessGroupGloo>(impl_->store, env.rank, env.world_size, go);
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    std::string cause = e.what();
    if (auto nl = cause.find('\n'); nl != std::string::npos) cause.resize(nl);
    throw Error("data parallel: rank " + std::to_string(env.rank) + " of " + std::to_string(env.world_size) +
                " could not join the job at " + env.master_addr + ":" + std::to_string(env.master_port) + " within " +
                format_significant(options.timeout_s) + " s (--dist-timeout): " + cause);
  }
}

DataParallel::~DataParallel() = default;

namespace {

// c10d's rendezvous (the TCPStore, then Gloo's full mesh) has a timeout per step, and the
// steps add up (a job of 10,000 ranks at --dist-timeout 8 gave up after 124 s), while a
// blocking connect outlasts SIGTERM. So the join runs on a thread of its own, and this one
// waits for it until one deadline, --dist-timeout from now, or a stop request. A join given up
// is left to end on its own (its thread is detached): the process is about to exit.
// Rank 0 serves the job's store on MASTER_PORT. A port another process holds came out of c10d
// as a join that failed after --dist-timeout, read as a timeout; it is found here at once.
void check_store_port(const LaunchEnvironment& env) {
  if (env.agent_store || env.rank != 0) return;
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return;  // c10d will say what is wrong
  const int on = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));  // as c10d's server does
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_ANY);
  addr.sin_port = htons(static_cast<uint16_t>(env.master_port));
  const bool in_use = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 && errno == EADDRINUSE;
  ::close(fd);
  if (in_use)
    throw ConfigError("environment variable MASTER_PORT=\"" + std::to_string(env.master_port) +
                      "\": the port is in use on this host (another job, or one not yet ended), and rank 0 serves "
                      "the job's store there; choose another port for every rank");
}

std::unique_ptr<DataParallel> join_within_deadline(const LaunchEnvironment& env, const DistributedOptions& options) {
  check_store_port(env);
  auto task = std::make_shared<std::packaged_task<std::unique_ptr<DataParallel>()>>(
      [env, options] { return std::make_unique<DataParallel>(env, options); });
  std::future<std::unique_ptr<DataParallel>> joined = task->get_future();
  std::thread([task] { (*task)(); }).detach();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(options.timeout_s);
  const std::string where = env.master_addr + ":" + std::to_string(env.master_port);
  while (joined.wait_for(std::chrono::milliseconds(50)) != std::future_status::ready) {
    process_stop().check("joining the data-parallel job at " + where);
    if (std::chrono::steady_clock::now() > deadline)
      throw Error("data parallel: rank " + std::to_string(env.rank) + " of " + std::to_string(env.world_size) +
                  " could not join the job at " + where + " within " + format_significant(options.timeout_s) +
                  " s (--dist-timeout): not every process has started, or one does not answer");
  }
  return joined.get();
}

}  // namespace

std::unique_ptr<DataParallel> DataParallel::from_environment(const DistributedOptions& options) {
  std::optional<LaunchEnvironment> env = launch_environment();
  if (!env) return nullptr;
  options.validate();
  auto group = join_within_deadline(*env, options);
  // The others' info lines repeat rank 0's; their warnings and errors still show.
  if (env->rank != 0) spdlog::set_level(spdlog::level::warn);
  return group;
}

std::string DataParallel::describe() const {
  return "rank " + std::to_string(env_.rank) + " of " + std::to_string(env_.world_size) + " (local " +
         std::to_string(env_.local_rank) + " of " + std::to_string(env_.local_world_size) + ", " + env_.launcher +
         "), Gloo, store " + env_.master_addr + ":" + std::to_string(env_.master_port) +
         (env_.agent_store ? " (torchrun's)" : "");
}

void DataParallel::all_reduce_sum(std::vector<double>& values) {
  std::vector<at::Tensor> t{torch::tensor(values, torch::kFloat64)};
  try {
    impl_->group->allreduce(t)->wait();
  } catch (const std::exception& e) {
    rethrow_collective(env_, options_.timeout_s, "all-reduce", e);
  }
  const double* p = t[0].data_ptr<double>();
  std::copy(p, p + values.size(), values.begin());
}

std::vector<std::string> DataParallel::all_gather(const std::string& bytes, int64_t round_bytes) {
  // Gloo gathers tensors of one size: the sizes first, then the bytes in rounds of up to
  // round_bytes from each process (padded), so that a large data set never needs W x its
  // largest share in one transient tensor.
  const int64_t round = std::max<int64_t>(round_bytes, 1);
  const auto world = static_cast<size_t>(env_.world_size);
  std::vector<std::string> out(world);
  try {
    std::vector<at::Tensor> size{torch::tensor({static_cast<int64_t>(bytes.size())}, torch::kInt64)};
    std::vector<std::vector<at::Tensor>> sizes(1);
    for (size_t r = 0; r < world; ++r) sizes[0].push_back(torch::empty({1}, torch::kInt64));
    impl_->group->allgather(sizes, size)->wait();
    std::vector<int64_t> total(world);
    for (size_t r = 0; r < world; ++r) {
      total[r] = sizes[0][r].item<int64_t>();
      out[r].reserve(static_cast<size_t>(total[r]));
    }
    const int64_t largest = *std::max_element(total.begin(), total.end());
    for (int64_t at = 0; at < largest; at += round) {
      const int64_t width = std::min(round, largest - at);
      std::vector<at::Tensor> mine{torch::zeros({width}, torch::kUInt8)};
      const int64_t own = std::clamp<int64_t>(static_cast<int64_t>(bytes.size()) - at, 0, width);
      if (own > 0) std::copy_n(bytes.data() + at, own, reinterpret_cast<char*>(mine[0].data_ptr<uint8_t>()));
      std::vector<std::vector<at::Tensor>> all(1);
      for (size_t r = 0; r < world; ++r) all[0].push_back(torch::empty_like(mine[0]));
      impl_->group->allgather(all, mine)->wait();
      for (size_t r = 0; r < world; ++r)
        out[r].append(reinterpret_cast<const char*>(all[0][r].data_ptr<uint8_t>()),
                      static_cast<size_t>(std::clamp<int64_t>(total[r] - at, 0, width)));
    }
  } catch (const std::exception& e) {
    rethrow_collective(env_, options_.timeout_s, "all-gather", e);
  }
  return out;
}

bool DataParallel::any(bool local) {
  std::vector<double> v{local ? 1.0 : 0.0};
  all_reduce_sum(v);
  return v[0] > 0;
}

void DataParallel::primary_first(const std::string& name, const std::function<void()>& work,
                                 const std::function<void()>& after) {
  const std::string key = "primary_first/" + name;
  if (env_.rank == 0) {
    std::string outcome = "ok";
    try {
      work();
    } catch (const std::exception& e) {
      outcome = e.what();
      impl_->store->set(key, std::vector<uint8_t>(outcome.begin(), outcome.end()));
      throw;
    }
    impl_->store->set(key, std::vector<uint8_t>(outcome.begin(), outcome.end()));
    return;
  }
  std::vector<uint8_t> got;
  try {
    got = impl_->store->get(key);  // waits for the key, up to the timeout
  } catch (const std::exception& e) {
    rethrow_collective(env_, options_.timeout_s, "waiting for rank 0", e);
  }
  const std::string outcome(got.begin(), got.end());
  if (outcome != "ok") throw Error("data parallel: rank 0 failed: " + outcome);
  after();
}

struct PendingSum::Impl {
  std::vector<at::Tensor> tensors;
  c10::intrusive_ptr<c10d::Work> work;
};

PendingSum DataParallel::start_sum(std::vector<at::Tensor> tensors) {
  PendingSum pending;
  pending.impl_ = std::make_shared<PendingSum::Impl>();
  pending.impl_->tensors = std::move(tensors);
  pending.env_ = &env_;
  pending.timeout_s_ = options_.timeout_s;
  try {
    pending.impl_->work = impl_->group->allreduce(pending.impl_->tensors);
  } catch (const std::exception& e) {
    rethrow_collective(env_, options_.timeout_s, "all-reduce", e);
  }
  return pending;
}

const std::vector<at::Tensor>& PendingSum::wait(const std::string& what) {
  try {
    impl_->work->wait();
  } catch (const std::exception& e) {
    rethrow_collective(*env_, timeout_s_, what, e);
  }
  return impl_->tensors;
}

}  // namespace dqe
