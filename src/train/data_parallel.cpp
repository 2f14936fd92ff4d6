#include "train/data_parallel.h"

#include <cmath>
#include <filesystem>

#include "base/log.h"
#include "dist/gradient_buckets.h"

namespace dqe {
namespace {

// Logged sums (MicroLoss::sums) carried in the step's small all-reduce.
constexpr size_t kMaxSums = 8;

// The engine's hook: the step's gradients and totals all-reduced in buckets (a weighted mean
// over the job), rank 0 primary, decisions taken by any process.
class DataParallelHooks : public training::Hooks {
 public:
  DataParallelHooks(DataParallel& dp, double bucket_mb) : dp_(dp), buckets_(dp, bucket_mb) {}

  void before_last_backward(const std::vector<torch::Tensor>& parameters, double weight) override {
    buckets_.arm(parameters, weight);
  }

  void after_backward(const std::vector<torch::Tensor>& parameters, training::StepTotals& step) override {
    std::vector<double> totals{step.weight, step.loss_sum, static_cast<double>(step.samples),
                               static_cast<double>(step.tokens)};
    for (size_t k = 0; k < kMaxSums; ++k) totals.push_back(k < step.sums.size() ? step.sums[k].second : 0.0);
    buckets_.reduce(parameters, totals);
    step.weight = totals[0];
    step.loss_sum = totals[1];
    step.samples = std::llround(totals[2]);
    step.tokens = std::llround(totals[3]);
    for (size_t k = 0; k < step.sums.size() && k < kMaxSums; ++k) step.sums[k].second = totals[4 + k];
  }

  bool is_primary() const override { return dp_.rank() == 0; }
  bool agree_any(bool local) override { return dp_.any(local); }

 private:
  DataParallel& dp_;
  GradientBuckets buckets_;
};

}  // namespace

std::unique_ptr<training::Hooks> data_parallel_hooks(DataParallel& dp, double bucket_mb) {
  return std::make_unique<DataParallelHooks>(dp, bucket_mb);
}

std::unique_ptr<training::RunDirectory> open_run_directory(DataParallel* group, const std::string& out_dir,
                                                           bool resume) {
  if (!group) return std::make_unique<training::RunDirectory>(out_dir, resume);
  std::unique_ptr<training::RunDirectory> dir;
  group->primary_first("run_directory", [&] { dir = std::make_unique<training::RunDirectory>(out_dir, resume); },
                       [&] { dir = std::make_unique<training::RunDirectory>(out_dir, resume, /*owner=*/false); });
  return dir;
}

bool resume_from_checkpoint(const std::string& out_dir, bool resume, const std::string& component) {
  if (!resume) return false;
  std::error_code ec;
  for (const char* dir : {"last", "last.old", "best", "best.old"})
    if (std::filesystem::exists(std::filesystem::path(out_dir) / dir / "trainer_state.json", ec)) return true;
  detail::logger(component)->warn("--resume: {} holds no checkpoint yet (the run stopped before its first, or never "
                                  "started); starting at step 0",
                                  out_dir);
  return false;
}

void apply_data_parallel(DataParallel* group, const training::RunDirectory& run_dir, bool resume, int64_t batch_size,
                         RunContext& ctx, training::EngineOptions& options) {
  constexpr const char* kKey = "data-parallel-ranks";
  if (group) {
    ctx.rank = group->rank();
    ctx.world_size = group->world_size();
    ctx.sum_over_processes = [group](std::vector<double>& values) { group->all_reduce_sum(values); };
    ctx.gather_over_processes = [group](const std::string& bytes) { return group->all_gather(bytes); };
  }
  ctx.plan_world_size = ctx.world_size;
  if (resume) {
    const auto& recorded = run_dir.resumed_state().config;
    auto it = recorded.is_object() ? recorded.find(kKey) : recorded.end();
    ctx.plan_world_size = it != recorded.end() && it->is_number_integer() ? it->get<int>() : 1;
  }
  if (ctx.plan_world_size != 1) options.config[kKey] = ctx.plan_world_size;
  if (!group && ctx.plan_world_size == 1) return;
  auto log = detail::logger(options.component);
  if (group)
    log->info("data parallel: {}; each process evaluates {} of the dev rows and the job gathers them",
              group->describe(), "1/" + std::to_string(group->world_size()));
  const int64_t global = batch_size * ctx.plan_world_size;
  log->info("global batch {} ({} processes x --batch-size {}{}); {} rows per process per step", global,
            ctx.plan_world_size, batch_size,
            ctx.plan_world_size != ctx.world_size
                ? ", as the run was started; now on " + std::to_string(ctx.world_size) + " processes"
                : std::string(),
            global / ctx.world_size);
}

}  // namespace dqe
