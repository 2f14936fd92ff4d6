// A data-parallel job's side of training (dist/ holds the process group): the engine's hook
// (gradients all-reduced in buckets, decisions taken together), the run directory opened by
// rank 0 first, and the global batch each process takes its slice of.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "dist/process_group.h"
#include "dqe/engine.h"
#include "dqe/run_context.h"

namespace dqe {

// The engine's hook for a job: bucketed gradient all-reduce (weighted mean) overlapping the
// backward pass, rank 0 primary, decisions taken by any process.
std::unique_ptr<training::Hooks> data_parallel_hooks(DataParallel& dp, double bucket_mb);

// Opens the run directory: in a single process as RunDirectory does; in a job, rank 0 first
// (it locks, checks, recovers and marks the directory), then the others read it without
// taking its lock. Resuming on several machines needs out_dir on a shared file system.
std::unique_ptr<training::RunDirectory> open_run_directory(DataParallel* group, const std::string& out_dir,
                                                           bool resume);

// Whether a run asked to --resume continues one: true when resume is asked and out_dir holds a
// training checkpoint (last/, or the last.old/ a crash left between two renames, or a best/ a
// crash left without last/: RunDirectory continues from a copy of it). A run stopped
// before its first checkpoint, or never started, has nothing to continue: it starts at step 0
// and `component`'s log says so, so that a restart loop that always passes --resume (torchrun's,
// a scheduler's retry) is not stuck. Every rank of a job reads the same directory alike.
bool resume_from_checkpoint(const std::string& out_dir, bool resume, const std::string& component);

// Sets the context's rank and world size and the world size the run's global batch is
// planned for (recorded in the run's configuration as "data-parallel-ranks", kept on
// --resume, so a run resumed at another world size continues the same batches), and logs
// the global batch. Adds the recorded key to options.config when it is not 1.
void apply_data_parallel(DataParallel* group, const training::RunDirectory& run_dir, bool resume, int64_t batch_size,
                         RunContext& ctx, training::EngineOptions& options);

}  // namespace dqe
