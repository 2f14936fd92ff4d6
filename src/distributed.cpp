// LibTorch's c10d declares its Gloo process group only under this macro (PyTorch's own build
// sets it); Debian's libtorch_cpu has the symbols, libgloo-dev the headers.
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO
#endif
#include "dqe/distributed.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>

#include "detail/flag_checks.h"
#include "dqe/train/engine.h"
#include "detail/log.h"
#include "dqe/errors.h"
#include "dqe/format.h"

namespace dqe {

void DistributedOptions::validate() const {
  check_flag(timeout_s > 0 && timeout_s <= 86400, "--dist-timeout", "in (0, 86400] seconds", timeout_s);
  check_flag(bucket_mb > 0 && bucket_mb <= 4096, "--bucket-mb", "in (0, 4096]", bucket_mb);
}

void DistributedOptions::write_json(nlohmann::ordered_json& j) const {
  j["dist-timeout"] = timeout_s;
  j["bucket-mb"] = bucket_mb;
}

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

std::unique_ptr<DataParallel> DataParallel::from_environment(const DistributedOptions& options) {
  std::optional<LaunchEnvironment> env = launch_environment();
  if (!env) return nullptr;
  options.validate();
  auto group = std::make_unique<DataParallel>(*env, options);
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

// ---------------------------------------------------------------------------------------
// The engine's hook

namespace {

// Gradients are all-reduced in buckets of consecutive parameters, planned in reverse order
// (the backward pass finishes the last layers first). On a step whose gradients one backward
// pass completes, a post-hook on each parameter's gradient accumulator marks it final, and
// each bucket goes out (asynchronously, on Gloo's threads) as soon as it and every bucket
// before it are final, while the pass goes on with earlier layers. What is left after the
// pass (all of it on other steps: adversarial passes, a process with no rows) goes out then,
// in the same order, so every process issues the same collectives in the same order. c10d's
// own Reducer does this for DDP, but averages over processes at every backward pass; a step
// here is a weighted mean (MLM: over the job's masked tokens) and may take several passes.
class GradientAllReduce : public training::Hooks {
 public:
  GradientAllReduce(DataParallel& dp, c10::intrusive_ptr<c10d::ProcessGroupGloo> group, double bucket_mb,
                    double timeout_s)
      : dp_(dp), group_(std::move(group)), bucket_bytes_(static_cast<int64_t>(bucket_mb * 1024 * 1024)),
        timeout_s_(timeout_s) {}

  ~GradientAllReduce() override {
    for (size_t i = 0; i < accumulators_.size(); ++i) accumulators_[i]->del_post_hook(hook_keys_[i]);
    if (steps_ < 2) return;
    // What data parallelism costs per step here, for the README's scaling estimates; the
    // first step (bucket planning, connection warm-up) is left out.
    const double n = static_cast<double>(steps_ - 1);
    auto log = detail::logger("dist");
    log->info("per step over {} steps: {} ms in all, {} ms all-reducing after the backward pass ({}% of the step); "
              "{} of {} buckets a step went out during the backward pass",
              steps_ - 1, format_significant(1e3 * step_s_ / n, 3), format_significant(1e3 * exposed_s_ / n, 3),
              format_significant(100 * exposed_s_ / step_s_, 2),
              format_significant(static_cast<double>(early_buckets_) / static_cast<double>(steps_), 3),
              buckets_.size());
  }

  void before_last_backward(const std::vector<torch::Tensor>& parameters, double weight) override {
    if (buckets_.empty()) plan_buckets(parameters);
    if (accumulators_.empty()) attach(parameters);
    start_step(weight);
    armed_ = true;
  }

  void after_backward(const std::vector<torch::Tensor>& parameters, training::StepTotals& step) override {
    const auto t0 = std::chrono::steady_clock::now();
    if (steps_ > 0) step_s_ += std::chrono::duration<double>(t0 - last_call_).count();
    last_call_ = t0;
    const int64_t early = static_cast<int64_t>(next_bucket_);
    reduce(parameters, step);
    if (steps_ > 0) exposed_s_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    early_buckets_ += early;
    ++steps_;
  }

  bool is_primary() const override { return dp_.rank() == 0; }
  bool agree_any(bool local) override { return dp_.any(local); }

 private:
  // Marks parameter `index` final when its accumulator has run in an armed pass.
  struct FinalHook : torch::autograd::FunctionPostHook {
    FinalHook(GradientAllReduce* owner, size_t index) : owner(owner), index(index) {}
    torch::autograd::variable_list operator()(const torch::autograd::variable_list& outputs,
                                              const torch::autograd::variable_list& /*inputs*/) override {
      owner->final_gradient(index);
      return outputs;
    }
    GradientAllReduce* owner;
    size_t index;
  };

  void attach(const std::vector<torch::Tensor>& parameters) {
    parameters_ = parameters;
    for (size_t i = 0; i < parameters.size(); ++i) {
      // Held here: the parameter keeps only a weak reference, and a new accumulator would
      // not have the hook.
      auto accumulator = torch::autograd::impl::grad_accumulator(parameters[i]);
      if (!accumulator) continue;  // cannot happen for a trainable parameter; then it goes after the pass
      hook_keys_.push_back(accumulator->add_post_hook(std::make_unique<FinalHook>(this, i)));
      accumulators_.push_back(std::move(accumulator));
    }
  }

  void start_step(double weight) {
    weight_ = weight;
    next_bucket_ = 0;
    flats_.assign(buckets_.size(), {});
    works_.assign(buckets_.size(), c10::intrusive_ptr<c10d::Work>());
    std::fill(final_.begin(), final_.end(), false);
    for (size_t b = 0; b < buckets_.size(); ++b) pending_[b] = buckets_[b].size();
  }

  // During an armed pass: sends every bucket whose turn has come and whose gradients are final.
  void final_gradient(size_t index) {
    if (!armed_ || final_[index]) return;
    final_[index] = true;
    --pending_[bucket_of_[index]];
    torch::NoGradGuard no_grad;
    while (next_bucket_ < buckets_.size() && pending_[next_bucket_] == 0) send(parameters_, next_bucket_++);
  }

  // Starts bucket b's all-reduce of weight x gradient (a parameter without one sends zeros).
  void send(const std::vector<torch::Tensor>& parameters, size_t b) {
    std::vector<at::Tensor> grads;
    for (size_t i : buckets_[b]) {
      const torch::Tensor& p = parameters[i];
      if (!p.grad().defined()) p.mutable_grad() = torch::zeros_like(p);
      grads.push_back(p.grad().reshape(-1));
    }
    flats_[b] = {torch::cat(grads).mul_(weight_)};
    works_[b] = group_->allreduce(flats_[b]);  // errors surface at wait()
  }

  void reduce(const std::vector<torch::Tensor>& parameters, training::StepTotals& step) {
    torch::NoGradGuard no_grad;
    if (buckets_.empty()) plan_buckets(parameters);
    if (!armed_) start_step(step.weight);
    armed_ = false;
    // The job's step is sum over processes of loss / sum of weights: each process's mean
    // gradient weighted by its share of the weight (MLM: its masked tokens).
    std::vector<double> meta{step.weight, step.loss_sum, static_cast<double>(step.samples),
                             static_cast<double>(step.tokens)};
    for (size_t k = 0; k < kMaxSums; ++k) meta.push_back(k < step.sums.size() ? step.sums[k].second : 0.0);
    try {
      while (next_bucket_ < buckets_.size()) send(parameters, next_bucket_++);
      std::vector<at::Tensor> meta_tensor{torch::tensor(meta, torch::kFloat64)};
      auto meta_work = group_->allreduce(meta_tensor);
      for (auto& w : works_) w->wait();
      meta_work->wait();
      const double* m = meta_tensor[0].data_ptr<double>();
      step.weight = m[0];
      step.loss_sum = m[1];
      step.samples = std::llround(m[2]);
      step.tokens = std::llround(m[3]);
      for (size_t k = 0; k < step.sums.size() && k < kMaxSums; ++k) step.sums[k].second = m[4 + k];
    } catch (const std::exception& e) {
      rethrow_collective(dp_.environment(), timeout_s_, "gradient all-reduce", e);
    }
    const double scale = step.weight > 0 ? 1.0 / step.weight : 0.0;
    for (size_t b = 0; b < buckets_.size(); ++b) {
      torch::Tensor flat = flats_[b][0].mul_(scale);
      int64_t offset = 0;
      for (size_t i : buckets_[b]) {
        torch::Tensor g = parameters[i].mutable_grad();
        g.copy_(flat.narrow(0, offset, g.numel()).view_as(g));
        offset += g.numel();
      }
    }
    flats_.assign(buckets_.size(), {});
    works_.assign(buckets_.size(), c10::intrusive_ptr<c10d::Work>());
    next_bucket_ = 0;
  }

  // Logged sums (MicroLoss::sums) carried in the step's small all-reduce.
  static constexpr size_t kMaxSums = 8;
  // Buckets a model's gradients are cut into at least (see plan_buckets).
  static constexpr int64_t kMinBuckets = 4;

  // Consecutive parameters, last first, up to bucket_bytes_ each and a quarter of all the
  // gradients at most: a model smaller than one bucket would otherwise send everything at the
  // end of the pass (a larger parameter is a bucket alone).
  void plan_buckets(const std::vector<torch::Tensor>& parameters) {
    int64_t total = 0;
    for (const auto& p : parameters) total += p.numel() * static_cast<int64_t>(p.element_size());
    bucket_bytes_ = std::min(bucket_bytes_, std::max<int64_t>(1, (total + kMinBuckets - 1) / kMinBuckets));
    int64_t bytes = 0;
    bucket_of_.assign(parameters.size(), 0);
    for (size_t k = parameters.size(); k-- > 0;) {
      const int64_t size = parameters[k].numel() * static_cast<int64_t>(parameters[k].element_size());
      if (buckets_.empty() || bytes + size > bucket_bytes_) {
        buckets_.emplace_back();
        bytes = 0;
      }
      buckets_.back().push_back(k);
      bucket_of_[k] = buckets_.size() - 1;
      bytes += size;
    }
    pending_.assign(buckets_.size(), 0);
    final_.assign(parameters.size(), false);
    auto log = detail::logger("dist");
    log->info("gradients of {} tensors all-reduced in {} buckets of up to {} MiB, during the backward pass where one "
              "pass completes them",
              parameters.size(), buckets_.size(),
              format_significant(static_cast<double>(bucket_bytes_) / (1024.0 * 1024.0)));
  }

  DataParallel& dp_;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> group_;
  int64_t bucket_bytes_;
  double timeout_s_;
  std::vector<std::vector<size_t>> buckets_;
  std::vector<size_t> bucket_of_;
  // The step in progress: its weight, the first bucket not sent, gradients still to become
  // final per bucket, and what was sent.
  bool armed_ = false;
  double weight_ = 0;
  size_t next_bucket_ = 0;
  std::vector<size_t> pending_;
  std::vector<bool> final_;
  std::vector<std::vector<at::Tensor>> flats_;
  std::vector<c10::intrusive_ptr<c10d::Work>> works_;
  // The hooked accumulators and what the hooks read.
  std::vector<torch::Tensor> parameters_;
  std::vector<std::shared_ptr<torch::autograd::Node>> accumulators_;
  std::vector<uintptr_t> hook_keys_;
  // Timing: from one after_backward's start to the next is a step; exposed_s_ is the all-reduce time
  // after the backward pass (the wait for the slowest process included), early_buckets_ the
  // buckets sent during passes (over every step, the first included).
  int64_t steps_ = 0, early_buckets_ = 0;
  double step_s_ = 0, exposed_s_ = 0;
  std::chrono::steady_clock::time_point last_call_;
};

}  // namespace

std::unique_ptr<training::Hooks> DataParallel::hooks(double bucket_mb) {
  return std::make_unique<GradientAllReduce>(*this, impl_->group, bucket_mb, options_.timeout_s);
}

// ---------------------------------------------------------------------------------------
// Runs

std::unique_ptr<training::RunDirectory> open_run_directory(DataParallel* group, const std::string& out_dir,
                                                           bool resume) {
  if (!group) return std::make_unique<training::RunDirectory>(out_dir, resume);
  std::unique_ptr<training::RunDirectory> dir;
  group->primary_first("run_directory", [&] { dir = std::make_unique<training::RunDirectory>(out_dir, resume); },
                       [&] { dir = std::make_unique<training::RunDirectory>(out_dir, resume, /*owner=*/false); });
  return dir;
}

void apply_data_parallel(DataParallel* group, const training::RunDirectory& run_dir, bool resume, int64_t batch_size,
                         RunContext& ctx, training::EngineOptions& options) {
  constexpr const char* kKey = "data-parallel-ranks";
  if (group) {
    ctx.rank = group->rank();
    ctx.world_size = group->world_size();
    ctx.sum_over_processes = [group](std::vector<double>& values) { group->all_reduce_sum(values); };
    ctx.gather_over_processes = [group](const std::string& bytes) { return group->all_gather(bytes); };
  }
  ctx.plan_world_size = ctx.world_size;
  if (resume) {
    const auto& recorded = run_dir.resumed_state().config;
    auto it = recorded.is_object() ? recorded.find(kKey) : recorded.end();
    ctx.plan_world_size = it != recorded.end() && it->is_number_integer() ? it->get<int>() : 1;
  }
  if (ctx.plan_world_size != 1) options.config[kKey] = ctx.plan_world_size;
  if (!group && ctx.plan_world_size == 1) return;
  auto log = detail::logger(options.component);
  if (group)
    log->info("data parallel: {}; each process evaluates {} of the dev rows and the job gathers them",
              group->describe(), "1/" + std::to_string(group->world_size()));
  const int64_t global = batch_size * ctx.plan_world_size;
  log->info("global batch {} ({} processes x --batch-size {}{}); {} rows per process per step", global,
            ctx.plan_world_size, batch_size,
            ctx.plan_world_size != ctx.world_size
                ? ", as the run was started; now on " + std::to_string(ctx.world_size) + " processes"
                : std::string(),
            global / ctx.world_size);
}

}  // namespace dqe
