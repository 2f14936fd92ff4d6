// How many CPUs this process may keep busy: its affinity mask, capped by its cgroup's CPU
// quota. A container limited to 2 CPUs on a 64-core node sees 64 CPUs in its mask; starting 64
// threads there gets the container throttled for most of every period.
#pragma once

#include <optional>
#include <string>

namespace dqe {

struct CpuBudget {
  int cpus = 1;        // whole CPUs, at least 1: the quota rounded up
  std::string source;  // where the number came from, for the log
};

// The CPU quota of the cgroup that `self_cgroup` (a /proc/PID/cgroup file) names, read from the
// cgroup tree mounted at `root`: cgroup v2's cpu.max, or v1's cpu.cfs_quota_us over
// cpu.cfs_period_us; the smallest along the path to the root, as the kernel enforces it. In
// CPUs (1.5 for "150000 100000"); nullopt when nothing limits it or nothing can be read.
// `where` receives the file that set the limit.
std::optional<double> cgroup_cpu_quota(const std::string& root, const std::string& self_cgroup,
                                       std::string* where = nullptr);

// affinity_cpus capped by the quota under root (see above).
CpuBudget cpu_budget(int affinity_cpus, const std::string& root, const std::string& self_cgroup);

// This process's budget: its affinity mask and the machine's /sys/fs/cgroup.
CpuBudget cpu_budget();

// Threads of other processes runnable throughout a short look, from the procfs mounted at
// proc_root: /proc/stat's procs_running less this process's own runnable threads
// (/proc/self/task/*/stat), the fewest of `samples` readings `interval_ms` apart. A busy
// neighbour is runnable in every reading; a process starting or ending (a shell, a kernel
// worker) is not. -1 when procfs cannot be read.
int runnable_elsewhere(const std::string& proc_root = "/proc", int samples = 8, int interval_ms = 3);

}  // namespace dqe
