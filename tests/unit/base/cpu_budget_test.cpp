// The CPU budget from a fake cgroup tree (never the machine's): cgroup v2's cpu.max and v1's
// CFS quota, the tightest limit along the path, rounding, and what is not a limit.
#include "base/cpu_budget.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "test_util.h"

namespace dqe {
namespace {
namespace fs = std::filesystem;

struct FakeCgroups {
  test::TempDir dir;
  std::string root() const { return dir.path("sys/fs/cgroup"); }
  std::string self() const { return dir.path("proc_self_cgroup"); }
  void file(const std::string& relative, const std::string& text) {
    const fs::path p = fs::path(root()) / relative;
    fs::create_directories(p.parent_path());
    test::write_text(p.string(), text);
  }
};

TEST(CpuBudget, CgroupV2TakesTheTightestQuotaOnThePath) {
  FakeCgroups g;
  test::write_text(g.self(), "0::/kubepods/pod1/c1\n");
  g.file("cgroup.controllers", "cpu memory\n");
  g.file("cpu.max", "max 100000\n");
  g.file("kubepods/cpu.max", "800000 100000\n");
  g.file("kubepods/pod1/cpu.max", "200000 100000\n");
  g.file("kubepods/pod1/c1/cpu.max", "max 100000\n");
  std::string where;
  const auto quota = cgroup_cpu_quota(g.root(), g.self(), &where);
  ASSERT_TRUE(quota.has_value());
  EXPECT_DOUBLE_EQ(*quota, 2.0);
  EXPECT_EQ(where, g.root() + "/kubepods/pod1/cpu.max");

  const CpuBudget budget = cpu_budget(64, g.root(), g.self());
  EXPECT_EQ(budget.cpus, 2);
  EXPECT_NE(budget.source.find("cgroup CPU quota 2 (" + where + ")"), std::string::npos) << budget.source;
  EXPECT_NE(budget.source.find("affinity mask's 64 CPUs"), std::string::npos) << budget.source;
  // An affinity mask below the quota is the budget.
  EXPECT_EQ(cpu_budget(1, g.root(), g.self()).cpus, 1);
  EXPECT_EQ(cpu_budget(1, g.root(), g.self()).source, "affinity mask: 1 CPUs");
}

TEST(CpuBudget, FractionalQuotasRoundUpToAWholeCpu) {
  FakeCgroups g;
  test::write_text(g.self(), "0::/\n");  // a container's own namespace: its cgroup at the root
  g.file("cgroup.controllers", "cpu\n");
  g.file("cpu.max", "150000 100000\n");
  EXPECT_EQ(cpu_budget(8, g.root(), g.self()).cpus, 2);
  g.file("cpu.max", "50000 100000\n");
  EXPECT_EQ(cpu_budget(8, g.root(), g.self()).cpus, 1);
  g.file("cpu.max", "300000 100000\n");
  EXPECT_EQ(cpu_budget(8, g.root(), g.self()).cpus, 3);
}

// A path the mount does not hold (a host path seen from inside a namespace) reads the mount.
TEST(CpuBudget, APathOutsideTheMountReadsTheMountItself) {
  FakeCgroups g;
  test::write_text(g.self(), "0::/system.slice/docker-abc.scope\n");
  g.file("cgroup.controllers", "cpu\n");
  g.file("cpu.max", "400000 100000\n");
  EXPECT_EQ(cpu_budget(16, g.root(), g.self()).cpus, 4);
}

TEST(CpuBudget, CgroupV1CfsQuota) {
  FakeCgroups g;
  // A hybrid machine: v1 controllers and an empty v2 line; the CPU controller's line counts.
  test::write_text(g.self(), "12:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n0::/\n");
  g.file("cpu,cpuacct/cpu.cfs_quota_us", "-1\n");
  g.file("cpu,cpuacct/cpu.cfs_period_us", "100000\n");
  g.file("cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "300000\n");
  g.file("cpu,cpuacct/docker/abc/cpu.cfs_period_us", "100000\n");
  std::string where;
  const auto quota = cgroup_cpu_quota(g.root(), g.self(), &where);
  ASSERT_TRUE(quota.has_value());
  EXPECT_DOUBLE_EQ(*quota, 3.0);
  EXPECT_EQ(where, g.root() + "/cpu,cpuacct/docker/abc/cpu.cfs_quota_us");
  EXPECT_EQ(cpu_budget(32, g.root(), g.self()).cpus, 3);
  // -1 everywhere: no limit.
  g.file("cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "-1\n");
  EXPECT_FALSE(cgroup_cpu_quota(g.root(), g.self()).has_value());
  EXPECT_EQ(cpu_budget(32, g.root(), g.self()).cpus, 32);
}

// What is not a limit leaves the affinity mask: no quota, unreadable or malformed files, no
// cgroup file at all.
TEST(CpuBudget, NoLimitLeavesTheAffinityMask) {
  FakeCgroups g;
  EXPECT_FALSE(cgroup_cpu_quota(g.root(), g.self()).has_value());  // no /proc/self/cgroup
  EXPECT_EQ(cpu_budget(6, g.root(), g.self()).cpus, 6);
  test::write_text(g.self(), "0::/a\n");
  EXPECT_FALSE(cgroup_cpu_quota(g.root(), g.self()).has_value());  // no cgroup tree
  g.file("cgroup.controllers", "cpu\n");
  for (const char* text : {"max 100000\n", "abc 100000\n", "0 100000\n", "-5 100000\n", "100000 0\n", "100000\n", ""}) {
    g.file("a/cpu.max", text);
    EXPECT_FALSE(cgroup_cpu_quota(g.root(), g.self()).has_value()) << text;
  }
  EXPECT_EQ(cpu_budget(6, g.root(), g.self()).source, "affinity mask: 6 CPUs");
}

// Runnable threads elsewhere: procs_running less this process's own runnable threads, read
// from a fake procfs (a thread name may hold spaces and parentheses).
TEST(RunnableElsewhere, CountsOtherProcessesRunnableThreads) {
  test::TempDir dir;
  const std::string proc = dir.path("proc");
  fs::create_directories(proc + "/self/task/10");
  fs::create_directories(proc + "/self/task/11");
  fs::create_directories(proc + "/self/task/12");
  test::write_text(proc + "/stat", "cpu  1 2 3\nctxt 99\nprocs_running 5\nprocs_blocked 0\n");
  test::write_text(proc + "/self/task/10/stat", "10 (dqe) R 1 10 10 0\n");
  test::write_text(proc + "/self/task/11/stat", "11 (a) S (b) R) S 1 10 10 0\n");  // sleeping, odd name
  test::write_text(proc + "/self/task/12/stat", "12 (openblas) R 1 10 10 0\n");
  EXPECT_EQ(runnable_elsewhere(proc, 3, 0), 3);
  // The fewest over the readings: a neighbour that comes and goes is not a busy one. (The fake
  // files do not change between readings; the rule is pinned through a single reading here and
  // through the binary beside real busy loops in the CLI test.)
  test::write_text(proc + "/stat", "procs_running 1\n");
  EXPECT_EQ(runnable_elsewhere(proc, 1, 0), 0);  // never below zero
  EXPECT_EQ(runnable_elsewhere(dir.path("nothing"), 1, 0), -1);
  EXPECT_GE(runnable_elsewhere(), 0);  // the machine's own procfs reads
}

}  // namespace
}  // namespace dqe
