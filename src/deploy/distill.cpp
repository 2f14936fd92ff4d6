#include "deploy/distill.h"

#include "base/log.h"
#include "dist/shares.h"
#include "dqe/errors.h"
#include "infer/predictor.h"
#include "model/heads/task_head.h"

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
    // Outputs one per class must mean the same classes.
    if (task.labels != student.labels && task_head(student.task).num_outputs(student) > 1)
      throw ConfigError("--teacher " + dir + ": its classes differ from the student's (same names, same order needed)");
    // Each data-parallel process labels its share of the pairs; the job gathers the shares.
    const Predictor& teacher = teachers.predictors[m];
    const torch::Tensor logits =
        logits_in_shares(ctx, records.size(), task_head(task.task).num_outputs(task), [&](size_t first, size_t last) {
          return teacher.run(teacher.featurizer().encode_all(records, ctx.threads, first, last)).logits;
        }).to(torch::kFloat64);
    const torch::Tensor target = task_head(student.task).distillation_target(logits, task, student, t);
    sum = m == 0 ? target : sum + target;
    ctx.stop.check("while the teacher labels the training pairs, before the first step; nothing to resume");
  }
  log->info("teacher: {} model{} labelled {} training pairs once (kept for the run)", teachers.members.size(),
            teachers.members.size() == 1 ? "" : "s", records.size());
  return (sum / static_cast<double>(teachers.members.size())).to(torch::kFloat32);
}

torch::Tensor distillation_loss(const torch::Tensor& logits, const torch::Tensor& targets, Task task, double temperature) {
  return task_head(task).distillation_loss(logits, targets, temperature);
}

}  // namespace dqe
