// The flags that train and pretrain share (model shape, schedule) and that every command
// running a model has (threads, precision, device): their checks and their record in
// to_json(), written once. TrainConfig and PretrainConfig name these fields alike.
#pragma once

#include <cmath>
#include <string>

#include <nlohmann/json.hpp>

#include "base/checks.h"
#include "dqe/errors.h"
#include "dqe/runtime.h"
#include "model/model_spec.h"

namespace dqe {

template <typename Config>
void check_model_shape_flags(const Config& c) {
  check_flag(c.layers >= 1 && c.layers <= 1000, "--layers", "between 1 and 1000", c.layers);
  check_flag(c.hidden >= 1 && c.hidden <= 65536, "--hidden", "between 1 and 65536", c.hidden);
  check_flag(c.heads >= 1 && c.heads <= c.hidden && c.hidden % c.heads == 0, "--heads", "a divisor of --hidden", c.heads);
  check_flag(c.intermediate >= 1 && c.intermediate <= 1000000, "--intermediate", "between 1 and 1000000", c.intermediate);
  check_flag(c.vocab_size >= 10 && c.vocab_size <= 10000000, "--vocab-size", "between 10 and 10000000", c.vocab_size);
}

template <typename Config>
void check_schedule_flags(const Config& c) {
  if (c.epochs <= 0 && c.max_steps <= 0) throw ConfigError("--epochs or --max-steps must be > 0");
  check_flag(c.epochs >= 0 && c.epochs <= kMaxEpochs, "--epochs", "between 0 and " + std::to_string(kMaxEpochs), c.epochs);
  check_flag(c.max_steps >= 0 && c.max_steps <= 1000000000000, "--max-steps", "between 0 and 10^12", c.max_steps);
  check_flag(c.batch_size >= 1 && c.batch_size <= kMaxBatchSize, "--batch-size",
             "between 1 and " + std::to_string(kMaxBatchSize), c.batch_size);
  check_flag(c.grad_accum >= 1 && c.grad_accum <= kMaxGradAccum, "--grad-accum",
             "between 1 and " + std::to_string(kMaxGradAccum), c.grad_accum);
  check_flag(c.lr > 0 && std::isfinite(c.lr), "--lr", "a finite number > 0", c.lr);
  check_flag(c.warmup_ratio >= 0 && c.warmup_ratio < 1, "--warmup-ratio", "in [0, 1)", c.warmup_ratio);
  check_flag(c.weight_decay >= 0 && std::isfinite(c.weight_decay), "--weight-decay", "a finite number >= 0", c.weight_decay);
  check_flag(c.max_grad_norm >= 0 && std::isfinite(c.max_grad_norm), "--max-grad-norm",
             "a finite number >= 0 (0: no clipping)", c.max_grad_norm);
  check_flag(c.eval_every >= 0, "--eval-every", ">= 0", c.eval_every);
  check_flag(c.eval_batch_size >= 1 && c.eval_batch_size <= kMaxBatchSize, "--eval-batch-size",
             "between 1 and " + std::to_string(kMaxBatchSize), c.eval_batch_size);
}

// The model shape flags in to_json(): "layers" ... "dropout" (unset, dropout is the --init
// model's own, and on --resume the run's: not written).
template <typename Config>
void write_model_shape_flags(nlohmann::ordered_json& j, const Config& c) {
  j["layers"] = c.layers;
  j["hidden"] = c.hidden;
  j["heads"] = c.heads;
  j["intermediate"] = c.intermediate;
  j["vocab-size"] = c.vocab_size;
  if (c.dropout || (c.init.empty() && !c.resume)) j["dropout"] = c.dropout.value_or(kDefaultDropout);
}

// The schedule and compute flags in to_json(): "epochs" ... "device".
template <typename Config>
void write_schedule_flags(nlohmann::ordered_json& j, const Config& c) {
  j["epochs"] = c.epochs;
  j["max-steps"] = c.max_steps;
  j["batch-size"] = c.batch_size;
  j["grad-accum"] = c.grad_accum;
  j["lr"] = c.lr;
  j["warmup-ratio"] = c.warmup_ratio;
  j["weight-decay"] = c.weight_decay;
  j["max-grad-norm"] = c.max_grad_norm;
  j["max-len"] = c.max_len;
  j["seed"] = c.seed;
  j["threads"] = c.threads;
  j["precision"] = c.precision;
  j["device"] = c.device;
}

}  // namespace dqe
