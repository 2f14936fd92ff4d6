#include "dqe/run_context.h"


#include <torch/torch.h>

#include "base/process_stop.h"
#include "dqe/errors.h"

namespace dqe {

void StopToken::check(const std::string& what) const {
  if (const int sig = signal_number(); sig != 0) throw_interrupted(sig, what);
}

void SeedStreams::seed_initialisation() const { seed_torch(seed_); }

uint64_t SeedStreams::data_order(int64_t epoch, int64_t chunk) const {
  return seed_ + 1000003ULL * static_cast<uint64_t>(epoch) + 7919ULL * static_cast<uint64_t>(chunk);
}

uint64_t SeedStreams::micro_batch(int64_t step, int64_t micro) const {
  return seed_ * 6364136223846793005ULL + static_cast<uint64_t>(step) * 1442695040888963407ULL +
         static_cast<uint64_t>(micro);
}

void SeedStreams::seed_torch(uint64_t value) { torch::manual_seed(value); }

std::string RunContext::describe() const {
  std::string s = runtime_description() + ", " + device.str() + ", " + precision_name(precision);
  if (world_size > 1) s += ", rank " + std::to_string(rank) + " of " + std::to_string(world_size);
  return s;
}

RunContext make_run_context(const std::string& device, const std::string& precision, int threads, StopToken stop,
                            uint64_t seed, int processes_per_node) {
  RunContext ctx;
  ctx.device = resolve_device(device);
  ctx.precision = resolve_precision(precision, ctx.device);
  ctx.threads = configure_threads(threads, processes_per_node);
  ctx.stop = stop;
  ctx.seeds = SeedStreams(seed);
  return ctx;
}

}  // namespace dqe
