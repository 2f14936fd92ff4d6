// The data-parallel knobs of train and pretrain (data parallelism itself: src/dist/).
#pragma once

namespace dqe {

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

  // Throws ConfigError naming --dist-timeout or --bucket-mb (their knobs: dqe/knobs.h).
  void validate() const;
};

}  // namespace dqe
