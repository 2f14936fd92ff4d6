#include "train/data_parallel.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <vector>

#include "base/hash.h"
#include "base/log.h"
#include "dist/gradient_buckets.h"
#include "dqe/errors.h"

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

// What a file holds, cheaply: its size and the FNV-1a of its bytes (of 256 blocks of 64 KiB
// spread over it when it is larger than 256 MiB, as a corpus can be). A directory (a model):
// its files' names and fingerprints. "" when the path names nothing readable.
std::string content_fingerprint(const std::filesystem::path& path, int depth = 0) {
  namespace fs = std::filesystem;
  std::error_code ec;
  detail::Fnv1a h;
  if (fs::is_directory(path, ec)) {
    if (depth > 1) return "";
    std::vector<fs::path> entries;
    for (const auto& e : fs::directory_iterator(path, ec)) entries.push_back(e.path());
    std::sort(entries.begin(), entries.end());
    for (const auto& e : entries) {
      h.add(e.filename().string());
      h.add(content_fingerprint(e, depth + 1));
    }
    return h.hex();
  }
  std::ifstream in(path, std::ios::binary);
  const auto size = fs::file_size(path, ec);
  if (!in || ec) return "";
  h.add(std::to_string(size));
  constexpr uintmax_t kWhole = uintmax_t{256} << 20, kBlock = 64 << 10, kBlocks = 256;
  std::vector<char> buffer(kBlock);
  auto add_block = [&] {
    in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    h.add_bytes(buffer.data(), static_cast<size_t>(in.gcount()));
  };
  if (size <= kWhole) {
    while (in) add_block();
  } else {
    for (uintmax_t b = 0; b < kBlocks; ++b) {
      in.clear();
      in.seekg(static_cast<std::streamoff>((size - kBlock) / (kBlocks - 1) * b));
      add_block();
    }
  }
  return h.hex();
}

std::string shown(const nlohmann::ordered_json& v) {
  if (v.is_null()) return "(not given)";
  return v.is_string() ? (v.get<std::string>().empty() ? "\"\"" : v.get<std::string>()) : v.dump();
}

// Every rank of a job must run the same command: replicas that start or step differently are
// never the same model, and shapes that differ end in Gloo's abort. Each rank gathers every
// rank's configuration (less what may differ per machine: threads, device, precision, the
// data's paths...) with the content of its data and model files, and every rank stops with the
// same line naming the first difference from rank 0.
void check_ranks_agree(DataParallel& group, const training::EngineOptions& options) {
  // Files and models by content: their paths may differ between machines.
  static const std::vector<std::string> kByContent = {"train", "dev",       "unlabeled", "corpus",
                                                      "init",  "tokenizer", "base",      "teacher"};
  nlohmann::ordered_json mine = nlohmann::ordered_json::object();
  const auto& may_differ = options.may_change_on_resume;
  for (auto it = options.config.begin(); it != options.config.end(); ++it) {
    const bool compared = it.key() == "resume" || std::find(may_differ.begin(), may_differ.end(), it.key()) == may_differ.end();
    if (compared && std::find(kByContent.begin(), kByContent.end(), it.key()) == kByContent.end()) mine[it.key()] = *it;
  }
  for (const std::string& key : kByContent) {
    auto it = options.config.find(key);
    if (it == options.config.end()) continue;
    std::vector<std::string> paths;
    if (it->is_string() && !it->get<std::string>().empty()) paths.push_back(it->get<std::string>());
    if (it->is_array())
      for (const auto& p : *it)
        if (p.is_string()) paths.push_back(p.get<std::string>());
    if (paths.empty()) continue;
    nlohmann::ordered_json contents = nlohmann::ordered_json::array();
    for (const auto& p : paths) contents.push_back(content_fingerprint(p));
    mine["content of --" + key] = contents;
  }
  const std::vector<std::string> all = group.all_gather(mine.dump());
  const auto first = nlohmann::ordered_json::parse(all[0]);
  for (size_t r = 1; r < all.size(); ++r) {
    const auto other = nlohmann::ordered_json::parse(all[r]);
    nlohmann::ordered_json keys = first;
    keys.update(other);
    for (auto it = keys.begin(); it != keys.end(); ++it) {
      const nlohmann::ordered_json a = first.value(it.key(), nlohmann::ordered_json()),
                                   b = other.value(it.key(), nlohmann::ordered_json());
      if (a == b) continue;
      const std::string rank = "rank " + std::to_string(r);
      std::string what;
      if (it.key().rfind("content of --", 0) == 0) {
        const std::string flag = it.key().substr(std::string("content of ").size());
        what = rank + "'s " + flag + " holds other content than rank 0's";
      } else {
        what = rank + " was started with --" + it.key() + " " + shown(b) + ", rank 0 with " + shown(a);
      }
      throw ConfigError("data parallel: " + what + " (every rank of a job runs the same command; only --threads, " +
                        "--device, --precision and the like may differ)");
    }
  }
}

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
  if (group) check_ranks_agree(*group, options);
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
