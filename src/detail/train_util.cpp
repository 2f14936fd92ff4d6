#include "detail/train_util.h"

#include <algorithm>
#include <cstdio>
#include <fstream>

#include <nlohmann/json.hpp>

#include "dqe/config.h"
#include "dqe/errors.h"
#include "dqe/output.h"

namespace dqe::detail {
namespace fs = std::filesystem;

void check_writable(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw IoError(dir.string() + ": cannot create directory (" + ec.message() + ")");
  const fs::path probe = dir / ".dqe-write-test";
  {
    std::ofstream f(probe);
    if (!f || !(f << "ok") || !f.flush()) throw IoError(dir.string() + ": directory is not writable");
  }
  fs::remove(probe, ec);
}

void truncate_log(const fs::path& path, int64_t step) {
  if (!fs::exists(path)) return;
  std::ifstream in(path);
  std::string kept, line;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_discarded() && j.value("step", int64_t{0}) <= step) kept += line + "\n";
  }
  write_file_atomic(path.string(), kept);
}

double linear_schedule(double peak, int64_t step, int64_t total, int64_t warmup) {
  if (step < warmup) return peak * static_cast<double>(step + 1) / static_cast<double>(warmup);
  if (total <= warmup) return peak;
  return peak * std::max(0.0, static_cast<double>(total - step) / static_cast<double>(total - warmup));
}

std::unique_ptr<torch::optim::AdamW> make_adamw(const std::vector<std::pair<std::string, torch::Tensor>>& named_params,
                                                double lr, double weight_decay) {
  std::vector<torch::Tensor> decay, no_decay;
  for (const auto& [name, param] : named_params) {
    const bool bias = name.size() >= 5 && name.compare(name.size() - 5, 5, ".bias") == 0;
    (bias || name.find("LayerNorm") != std::string::npos ? no_decay : decay).push_back(param);
  }
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(decay, std::make_unique<torch::optim::AdamWOptions>(
                                 torch::optim::AdamWOptions(lr).weight_decay(weight_decay)));
  groups.emplace_back(no_decay, std::make_unique<torch::optim::AdamWOptions>(
                                    torch::optim::AdamWOptions(lr).weight_decay(0.0)));
  return std::make_unique<torch::optim::AdamW>(std::move(groups), torch::optim::AdamWOptions(lr));
}

void set_learning_rate(torch::optim::Optimizer& optimizer, double lr) {
  for (auto& group : optimizer.param_groups()) static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
}

void apply_dropout_flag(const std::optional<double>& dropout, bool resume, SequenceModel& model, BertConfig& config,
                        spdlog::logger& log) {
  if (!dropout) return;
  if (resume) {
    if (*dropout != config.hidden_dropout_prob)
      throw ConfigError("--dropout " + fmt_double(*dropout) + " differs from the run's dropout " +
                        fmt_double(config.hidden_dropout_prob) + " (--resume continues the run as it was)");
    return;
  }
  log.info("dropout {} (the --init model had {})", fmt_double(*dropout), fmt_double(config.hidden_dropout_prob));
  set_dropout(model, config, *dropout);
}

std::string fmt_double(double v, int precision) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*g", precision, v);
  return buf;
}

}  // namespace dqe::detail
