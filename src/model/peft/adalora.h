// AdaLoRA (Zhang et al., 2023) as Hugging Face PEFT trains it: the cubic budget schedule, the
// orthogonality regulariser of P and Q, the rank allocator that prunes the least important
// triplets (P's column, Λ's value, Q's row) by smoothed sensitivity, and PEFT's resizing of the
// saved tensors by the rank pattern. The updates themselves are lora.h's LoraLinear in its
// SVD form; the spec (PEFT's AdaLoraConfig) is lora.h's AdaLoraSpec.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <torch/torch.h>

#include "model/peft/lora.h"
#include "model/sequence_model.h"

namespace dqe {

// The allocator's state in a training checkpoint (beside trainer_state.json): the moving
// averages and the updates at their full initial rank, so that a resumed run continues exactly.
constexpr const char* kAdaLoraStateFile = "adalora_state.safetensors";

// PEFT's budget_schedule: the total rank allowed after optimizer step `step` (0-based) and
// whether to prune to it now. Up to tinit: init_budget, no pruning; after total_step - tfinal:
// target_budget; between: target + (init - target) (1 - (step - tinit) / (total - tfinal -
// tinit))^3, truncated, pruning every delta_t steps.
struct AdaLoraBudget {
  int64_t budget = 0;
  bool mask = false;
};
AdaLoraBudget adalora_budget(const AdaLoraSpec& spec, int64_t init_budget, int64_t target_budget, int64_t step);

// PEFT's orthogonality regulariser, unweighted: the mean over every update's A (A A^T) and B
// (B^T B) of the Frobenius norm of the product minus the identity. Zero without AdaLoRA updates.
torch::Tensor adalora_orth_loss(SequenceModel& model);

// The tensors to save resized by the rank pattern, as PEFT's save_pretrained does: the kept
// rows of lora_A and lora_E, the kept columns of lora_B. Names are adapter_tensors'.
std::vector<std::pair<std::string, torch::Tensor>> resize_by_rank_pattern(
    std::vector<std::pair<std::string, torch::Tensor>> tensors, const AdaLoraSpec& spec);

// The inverse on loading: an adapter file's resized updates back at init_r, the pruned rows and
// columns zero (so their triplets add nothing, as in the saved model). Throws ModelError naming
// origin and the tensor when a tensor does not have the rank its pattern says.
void expand_by_rank_pattern(std::map<std::string, torch::Tensor>& tensors, const AdaLoraSpec& spec,
                            const std::string& origin);

// PEFT's RankAllocator with AdaLoraModel.update_and_allocate: after every optimizer step, with
// the step's gradients still on the parameters, it updates each parameter's importance
// (|p * grad|, smoothed by beta1, its uncertainty by beta2) and, as the budget schedule says,
// zeroes the lora_E entries of the lowest-scoring triplets (score: E's entry + the mean of A's
// row + the mean of B's column, each entry scored smoothed importance x uncertainty) so that
// budget triplets remain; at step total_step - tfinal it fixes the final pattern, which later
// steps reapply. The pattern is kept in the spec, which goes into adapter_config.json.
class RankAllocator {
 public:
  // spec must outlive the allocator; the model's adapter must be AdaLoRA's.
  RankAllocator(SequenceModel model, AdaLoraSpec& spec);

  void update_and_allocate(int64_t step);
  // The parts, for tests: the importance update, and pruning to a budget (returns the pattern).
  void update_importance();
  std::map<std::string, std::vector<bool>> mask_to_budget(int64_t budget);

  // The rank of each adapted module now (kept triplets; init_r before the first allocation).
  std::vector<std::pair<std::string, int64_t>> ranks() const;
  int64_t init_budget() const { return init_budget_; }
  int64_t target_budget() const { return target_budget_; }

  // kAdaLoraStateFile in dir: write it, or read it back (ModelError naming it when missing or
  // not this run's).
  void save(const std::string& dir) const;
  void load(const std::string& dir);

 private:
  struct Entry {
    std::string module;
    LoraLinear update;
  };
  SequenceModel model_;
  AdaLoraSpec& spec_;
  std::vector<Entry> entries_;
  int64_t init_budget_ = 0, target_budget_ = 0;
  // By parameter name ("bert.encoder.layer.0.attention.self.query.lora_A"); empty once reset.
  std::map<std::string, torch::Tensor> exp_avg_ipt_, exp_avg_unc_;
};

}  // namespace dqe
