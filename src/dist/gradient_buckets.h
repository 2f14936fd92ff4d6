// Gradients all-reduced in buckets of consecutive parameters, as a weighted mean over a
// data-parallel job, sent during the backward pass as they become final when one pass
// completes them (the engine's hook, train/data_parallel.h, drives it).
#pragma once

#include <memory>
#include <vector>

#include <torch/torch.h>

#include "dist/process_group.h"

namespace dqe {

class GradientBuckets {
 public:
  // Buckets of up to bucket_mb MiB, and 4 at least (so that a small model's all-reduce still
  // overlaps the backward pass).
  GradientBuckets(DataParallel& dp, double bucket_mb);
  // Logs what data parallelism cost per step.
  ~GradientBuckets();

  // Before the backward pass that completes the step's gradients: each parameter's gradient
  // is final once that pass has accumulated it, and its bucket goes out as soon as it and every
  // bucket before it are final. weight: this process's step weight.
  void arm(const std::vector<torch::Tensor>& parameters, double weight);
  // After the step's backward passes: sends what is left, then replaces each gradient by the
  // job's sum of weight x gradient over the job's sum of the weights, and `totals` (whose first
  // number is this process's weight, unless the step was armed) by their sums over the job.
  void reduce(const std::vector<torch::Tensor>& parameters, std::vector<double>& totals);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dqe
