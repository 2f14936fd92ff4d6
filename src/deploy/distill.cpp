#include "deploy/distill.h"

#include "base/log.h"
#include "dist/shares.h"
#include "dqe/errors.h"
#include "infer/predictor.h"

namespace dqe {

torch::Tensor teacher_targets(const DistillSpec& spec, const std::vector<Record>& records, const TaskSpec& student,
                              const RunContext& ctx, int64_t batch_size) {
  auto log = detail::logger("train");
  const Ensemble teachers = load_ensemble(spec.teachers, 0, student.fields, ctx, batch_size);
  const double t = spec.temperature;
  torch::Tensor sum;
  for (size_t m = 0; m < teachers.members.size(); ++m) {
    const TaskSpec& task = teachers.predictors[m].task();
    const std::string& dir = teachers.members[m].dir;
    if (task.task != student.task)
      throw ConfigError("--teacher " + dir + ": its task (" + task_name(task.task) + ") differs from the student's (" +
                        task_name(student.task) + ")");
    if (student.task == Task::kClassification && task.labels != student.labels)
      throw ConfigError("--teacher " + dir + ": its classes differ from the student's (same names, same order needed)");
    // Each data-parallel process labels its share of the pairs; the job gathers the shares.
    const Predictor& teacher = teachers.predictors[m];
    const torch::Tensor logits =
        logits_in_shares(ctx, records.size(), task.num_outputs(), [&](size_t first, size_t last) {
          return teacher.run(teacher.featurizer().encode_all(records, ctx.threads, first, last)).logits;
        }).to(torch::kFloat64);
    torch::Tensor target;
    if (student.task == Task::kRegression)
      target = ((logits * task.label_std + task.label_mean) - student.label_mean) / student.label_std;
    else if (student.task == Task::kBinary)
      target = torch::sigmoid(logits / t);
    else
      target = torch::softmax(logits / t, 1);
    sum = m == 0 ? target : sum + target;
    ctx.stop.check("while the teacher labels the training pairs, before the first step; nothing to resume");
  }
  log->info("teacher: {} model{} labelled {} training pairs once (kept for the run)", teachers.members.size(),
            teachers.members.size() == 1 ? "" : "s", records.size());
  return (sum / static_cast<double>(teachers.members.size())).to(torch::kFloat32);
}

torch::Tensor distillation_loss(const torch::Tensor& logits, const torch::Tensor& targets, Task task, double temperature) {
  const double t = temperature;
  if (task == Task::kRegression) return torch::mse_loss(logits.squeeze(1), targets.squeeze(1));
  if (task == Task::kBinary)
    return torch::binary_cross_entropy_with_logits(logits.squeeze(1) / t, targets.squeeze(1)) * (t * t);
  // KL(p || q) = sum p (log p - log q), batch mean; 0 log 0 = 0.
  const torch::Tensor log_q = torch::log_softmax(logits / t, 1);
  const torch::Tensor p_log_p = torch::where(targets > 0, targets * torch::log(targets), torch::zeros_like(targets));
  return (p_log_p - targets * log_q).sum(1).mean() * (t * t);
}

}  // namespace dqe
