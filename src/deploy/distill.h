// Knowledge distillation (Hinton et al., 2015): a student learns a teacher's outputs (an
// ensemble's, averaged over its members) beside, or instead of, the labels. The teacher runs
// once over the training pairs (and the --unlabeled ones, which only it labels) through the
// predictor, and its targets are kept for the whole run. The fine-tuning objective mixes the
// two losses: alpha * distillation + (1 - alpha) * labels.
#pragma once

#include <string>
#include <vector>

#include <torch/torch.h>

#include "dqe/jsonl_reader.h"
#include "dqe/run_context.h"
#include "model/model_spec.h"

namespace dqe {

// Taken from TrainConfig's --teacher, --distill-temperature and --distill-alpha (the defaults
// live there).
struct DistillSpec {
  // Teacher models (ensemble directories expanded); their predictions are averaged.
  std::vector<std::string> teachers;
  // Softens the teacher's and the student's class distributions (classification, binary).
  double temperature = 1;
  // Weight of the distillation loss; the labels' is 1 - alpha.
  double alpha = 1;
};

// The teachers' targets for the records, on the student's scale, [n, k] float32 on the CPU:
// regression: the teachers' mean score standardised by the student's label_mean and label_std
// (what the student's logit predicts), k = 1; binary: the mean of sigmoid(logit / T), k = 1;
// classification: the mean of softmax(logits / T), k = classes. Throws ConfigError naming
// --teacher when a teacher's task or class names differ from the student's.
torch::Tensor teacher_targets(const DistillSpec& spec, const std::vector<Record>& records, const TaskSpec& student,
                              const RunContext& ctx, int64_t batch_size);

// The student's distillation loss against teacher_targets rows (a mean over the batch):
// regression: MSE of the logit; binary: binary cross-entropy of sigmoid(logit / T) against
// the teacher's probability; classification: KL(teacher || softmax(logits / T)). The soft
// losses are multiplied by T^2 so that their gradients keep their size as T changes.
torch::Tensor distillation_loss(const torch::Tensor& logits, const torch::Tensor& targets, Task task, double temperature);

}  // namespace dqe
