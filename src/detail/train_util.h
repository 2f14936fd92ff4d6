// Pieces shared by the fine-tuning and pretraining loops: run directories, logs, the
// learning-rate schedule and BERT's AdamW parameter groups.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <spdlog/logger.h>
#include <torch/torch.h>

#include "dqe/model.h"

namespace dqe::detail {

// Optimizer steps in a row whose loss or gradients were not finite before a run stops.
constexpr int kMaxNonFiniteSteps = 5;

// Creates dir and proves it writable now, not after an hour of training. Throws IoError.
void check_writable(const std::filesystem::path& dir);

// Keeps the records of a JSONL log up to and including step, so that a resumed run
// continues the log instead of repeating steps. step < 0 empties it.
void truncate_log(const std::filesystem::path& path, int64_t step);

// Linear warmup from 0 over `warmup` steps to peak, then linear decay to 0 at `total`.
double linear_schedule(double peak, int64_t step, int64_t total, int64_t warmup);

// AdamW with no weight decay on biases and LayerNorm, as BERT training does.
std::unique_ptr<torch::optim::AdamW> make_adamw(const std::vector<std::pair<std::string, torch::Tensor>>& named_params,
                                                double lr, double weight_decay);
void set_learning_rate(torch::optim::Optimizer& optimizer, double lr);

// What --dropout (when given) does to a loaded model: on a new run from --init it sets the
// model's dropout (set_dropout) and logs the model's own; on --resume a value other than
// the run's is a ConfigError, since a resumed run continues as it was.
void apply_dropout_flag(const std::optional<double>& dropout, bool resume, SequenceModel& model, BertConfig& config,
                        spdlog::logger& log);

// "%.4g" of v.
std::string fmt_double(double v, int precision = 4);

}  // namespace dqe::detail
