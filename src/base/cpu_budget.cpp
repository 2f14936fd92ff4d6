#include "base/cpu_budget.h"

#include <sched.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

namespace dqe {
namespace fs = std::filesystem;
namespace {

// The first line of a small file, or "" when it cannot be read.
std::string first_line(const fs::path& path) {
  std::ifstream in(path);
  std::string line;
  if (in) std::getline(in, line);
  return line;
}

bool parse_number(const std::string& text, double& out) {
  if (text.empty()) return false;
  std::istringstream in(text);
  in >> out;
  return !in.fail() && std::isfinite(out);
}

// v2: "max 100000" (no limit) or "QUOTA PERIOD" in microseconds.
std::optional<double> v2_limit(const fs::path& dir) {
  std::istringstream in(first_line(dir / "cpu.max"));
  std::string quota, period;
  double q = 0, p = 0;
  if (!(in >> quota >> period) || quota == "max") return std::nullopt;
  if (!parse_number(quota, q) || !parse_number(period, p) || q <= 0 || p <= 0) return std::nullopt;
  return q / p;
}

// v1: cpu.cfs_quota_us (-1: no limit) over cpu.cfs_period_us.
std::optional<double> v1_limit(const fs::path& dir) {
  double q = 0, p = 0;
  if (!parse_number(first_line(dir / "cpu.cfs_quota_us"), q) || q <= 0) return std::nullopt;
  if (!parse_number(first_line(dir / "cpu.cfs_period_us"), p) || p <= 0) return std::nullopt;
  return q / p;
}

// The tightest limit on the directories from `leaf` up to `top`. A cgroup path that is not
// under the mount (a container with its own cgroup namespace mounts its cgroup at the root and
// may list a host path) is read at the mount itself.
std::optional<double> tightest(const fs::path& top, const std::string& cgroup_path,
                               std::optional<double> (*limit)(const fs::path&), const char* file,
                               std::string* where) {
  fs::path leaf = top / fs::path(cgroup_path).relative_path();
  std::error_code ec;
  if (!fs::is_directory(leaf, ec)) leaf = top;
  std::optional<double> best;
  for (fs::path dir = leaf;; dir = dir.parent_path()) {
    if (auto l = limit(dir); l && (!best || *l < *best)) {
      best = l;
      if (where) *where = (dir / file).string();
    }
    if (dir == top || dir.parent_path() == dir || dir.string().size() <= top.string().size()) break;
  }
  return best;
}

}  // namespace

std::optional<double> cgroup_cpu_quota(const std::string& root, const std::string& self_cgroup, std::string* where) {
  std::ifstream in(self_cgroup);
  if (!in) return std::nullopt;
  // Lines "ID:CONTROLLERS:PATH"; v2's is "0::PATH", v1's CPU line lists "cpu" among its controllers.
  std::string line, v2_path, v1_path, v1_controllers;
  while (std::getline(in, line)) {
    const size_t a = line.find(':'), b = a == std::string::npos ? a : line.find(':', a + 1);
    if (b == std::string::npos) continue;
    const std::string controllers = line.substr(a + 1, b - a - 1), path = line.substr(b + 1);
    if (line.compare(0, a, "0") == 0 && controllers.empty()) {
      v2_path = path;
      continue;
    }
    std::istringstream names(controllers);
    std::string name;
    while (std::getline(names, name, ','))
      if (name == "cpu") {
        v1_path = path;
        v1_controllers = controllers;
      }
  }
  const fs::path top(root);
  std::error_code ec;
  if (!v1_path.empty()) {
    for (const fs::path mount : {top / v1_controllers, top / "cpu,cpuacct", top / "cpu"})
      if (fs::is_directory(mount, ec)) return tightest(mount, v1_path, v1_limit, "cpu.cfs_quota_us", where);
  }
  if (!v2_path.empty() && fs::exists(top / "cgroup.controllers", ec))
    return tightest(top, v2_path, v2_limit, "cpu.max", where);
  return std::nullopt;
}

CpuBudget cpu_budget(int affinity_cpus, const std::string& root, const std::string& self_cgroup) {
  CpuBudget budget;
  budget.cpus = std::max(1, affinity_cpus);
  budget.source = "affinity mask: " + std::to_string(budget.cpus) + " CPUs";
  std::string where;
  if (auto quota = cgroup_cpu_quota(root, self_cgroup, &where)) {
    const int cpus = std::max(1, static_cast<int>(std::ceil(*quota - 1e-9)));
    std::ostringstream q;
    q << *quota;
    if (cpus < budget.cpus) {
      budget.source = "cgroup CPU quota " + q.str() + " (" + where + "), below the affinity mask's " +
                      std::to_string(budget.cpus) + " CPUs";
      budget.cpus = cpus;
    }
  }
  return budget;
}

int runnable_elsewhere(const std::string& proc_root, int samples, int interval_ms) {
  const fs::path root(proc_root);
  std::vector<int> counts;
  for (int i = 0; i < std::max(1, samples); ++i) {
    if (i > 0) std::this_thread::sleep_for(std::chrono::milliseconds(interval_ms));
    std::ifstream stat(root / "stat");
    std::string line;
    int running = -1;
    while (std::getline(stat, line))
      if (line.rfind("procs_running ", 0) == 0) running = std::atoi(line.c_str() + 14);
    if (running < 0) return -1;
    // Our own threads (OpenBLAS's pool spins for a while after it starts) are not neighbours.
    int own = 0;
    std::error_code ec;
    for (const auto& task : fs::directory_iterator(root / "self" / "task", ec)) {
      const std::string text = first_line(task.path() / "stat");
      const size_t paren = text.rfind(')');  // "PID (comm) STATE ...": comm may hold spaces and ')'
      if (paren != std::string::npos && paren + 2 < text.size() && text[paren + 2] == 'R') ++own;
    }
    counts.push_back(std::max(0, running - own));
  }
  return *std::min_element(counts.begin(), counts.end());
}

CpuBudget cpu_budget() {
  cpu_set_t set;
  const int affinity = sched_getaffinity(0, sizeof(set), &set) == 0 ? CPU_COUNT(&set)
                                                                     : static_cast<int>(std::thread::hardware_concurrency());
  return cpu_budget(affinity, "/sys/fs/cgroup", "/proc/self/cgroup");
}

}  // namespace dqe
