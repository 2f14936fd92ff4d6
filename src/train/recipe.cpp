// The engine's recipe: AdamW with BERT's parameter groups, the warmup/decay schedule, and the
// plain step (forward, then backward).
#include "dqe/engine.h"

#include <algorithm>
#include <memory>
#include <vector>

namespace dqe::training {

std::unique_ptr<torch::optim::AdamW> make_adamw(const std::vector<RoleParameter>& parameters, double lr,
                                                double weight_decay) {
  std::vector<torch::Tensor> decay, no_decay;
  for (const auto& p : parameters) (p.decay ? decay : no_decay).push_back(p.tensor);
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

double linear_schedule(double peak, int64_t step, int64_t total, int64_t warmup) {
  if (step < warmup) return peak * static_cast<double>(step + 1) / static_cast<double>(warmup);
  if (total <= warmup) return peak;
  return peak * std::max(0.0, static_cast<double>(total - step) / static_cast<double>(total - warmup));
}

MicroLoss PlainStep::run(Objective& objective, PreparedBatch& batch, double scale) {
  MicroLoss out = objective.forward(batch);
  (out.loss / scale).backward();
  return out;
}

}  // namespace dqe::training
