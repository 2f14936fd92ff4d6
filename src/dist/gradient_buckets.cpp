#include "dist/gradient_buckets.h"

#include <algorithm>
#include <chrono>

#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>

#include "base/format.h"
#include "base/log.h"

namespace dqe {

// Gradients are all-reduced in buckets of consecutive parameters, planned in reverse order
// (the backward pass finishes the last layers first). On a step whose gradients one backward
// pass completes, a post-hook on each parameter's gradient accumulator marks it final, and
// each bucket goes out (asynchronously, on Gloo's threads) as soon as it and every bucket
// before it are final, while the pass goes on with earlier layers. What is left after the
// pass (all of it on other steps: adversarial passes, a process with no rows) goes out then,
// in the same order, so every process issues the same collectives in the same order. c10d's
// own Reducer does this for DDP, but averages over processes at every backward pass; a step
// here is a weighted mean (MLM: over the job's masked tokens) and may take several passes.
struct GradientBuckets::Impl {
  Impl(DataParallel& dp, double bucket_mb) : dp_(dp), bucket_bytes_(static_cast<int64_t>(bucket_mb * 1024 * 1024)) {}

  ~Impl() {
    for (size_t i = 0; i < accumulators_.size(); ++i) accumulators_[i]->del_post_hook(hook_keys_[i]);
    if (steps_ < 2) return;
    // What data parallelism costs per step here, for the scaling estimates (docs/results.md); the
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

  void arm(const std::vector<torch::Tensor>& parameters, double weight) {
    if (buckets_.empty()) plan_buckets(parameters);
    if (accumulators_.empty()) attach(parameters);
    start_step(weight);
    armed_ = true;
  }

  void after_backward(const std::vector<torch::Tensor>& parameters, std::vector<double>& totals) {
    const auto t0 = std::chrono::steady_clock::now();
    if (steps_ > 0) step_s_ += std::chrono::duration<double>(t0 - last_call_).count();
    last_call_ = t0;
    const int64_t early = static_cast<int64_t>(next_bucket_);
    reduce(parameters, totals);
    if (steps_ > 0) exposed_s_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    early_buckets_ += early;
    ++steps_;
  }

  // Marks parameter `index` final when its accumulator has run in an armed pass.
  struct FinalHook : torch::autograd::FunctionPostHook {
    FinalHook(Impl* owner, size_t index) : owner(owner), index(index) {}
    torch::autograd::variable_list operator()(const torch::autograd::variable_list& outputs,
                                              const torch::autograd::variable_list& /*inputs*/) override {
      owner->final_gradient(index);
      return outputs;
    }
    Impl* owner;
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
    works_.assign(buckets_.size(), PendingSum());
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
    works_[b] = dp_.start_sum({torch::cat(grads).mul_(weight_)});  // errors surface at wait()
  }

  void reduce(const std::vector<torch::Tensor>& parameters, std::vector<double>& totals) {
    torch::NoGradGuard no_grad;
    if (buckets_.empty()) plan_buckets(parameters);
    if (!armed_) start_step(totals.at(0));
    armed_ = false;
    // The job's step is the sum over processes of weight x mean gradient over the sum of the
    // weights: each process's mean gradient weighted by its share of the weight (MLM: its
    // masked tokens).
    std::vector<at::Tensor> flats(buckets_.size());
    while (next_bucket_ < buckets_.size()) send(parameters, next_bucket_++);
    PendingSum totals_sum = dp_.start_sum({torch::tensor(totals, torch::kFloat64)});
    for (size_t b = 0; b < buckets_.size(); ++b) flats[b] = works_[b].wait("gradient all-reduce")[0];
    const double* m = totals_sum.wait("gradient all-reduce")[0].data_ptr<double>();
    std::copy(m, m + totals.size(), totals.begin());
    const double scale = totals[0] > 0 ? 1.0 / totals[0] : 0.0;
    for (size_t b = 0; b < buckets_.size(); ++b) {
      torch::Tensor flat = flats[b].mul_(scale);
      int64_t offset = 0;
      for (size_t i : buckets_[b]) {
        torch::Tensor g = parameters[i].mutable_grad();
        g.copy_(flat.narrow(0, offset, g.numel()).view_as(g));
        offset += g.numel();
      }
    }
    works_.assign(buckets_.size(), PendingSum());
    next_bucket_ = 0;
  }

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
  int64_t bucket_bytes_;
  std::vector<std::vector<size_t>> buckets_;
  std::vector<size_t> bucket_of_;
  // The step in progress: its weight, the first bucket not sent, gradients still to become
  // final per bucket, and what was sent.
  bool armed_ = false;
  double weight_ = 0;
  size_t next_bucket_ = 0;
  std::vector<size_t> pending_;
  std::vector<bool> final_;
  std::vector<PendingSum> works_;
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


GradientBuckets::GradientBuckets(DataParallel& dp, double bucket_mb) : impl_(std::make_unique<Impl>(dp, bucket_mb)) {}

GradientBuckets::~GradientBuckets() = default;

void GradientBuckets::arm(const std::vector<torch::Tensor>& parameters, double weight) { impl_->arm(parameters, weight); }

void GradientBuckets::reduce(const std::vector<torch::Tensor>& parameters, std::vector<double>& totals) {
  impl_->after_backward(parameters, totals);
}

}  // namespace dqe
