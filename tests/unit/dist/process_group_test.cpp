#include "dist/process_group.h"

#include <gtest/gtest.h>

#include <map>

#include "dqe/errors.h"

namespace dqe {
namespace {

// launch_environment over a fixed set of variables instead of the process's.
std::optional<LaunchEnvironment> launch(const std::map<std::string, std::string>& vars) {
  return launch_environment([&](const char* name) -> const char* {
    auto it = vars.find(name);
    return it == vars.end() ? nullptr : it->second.c_str();
  });
}

std::string error_of(const std::map<std::string, std::string>& vars) {
  try {
    launch(vars);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(LaunchEnvironment, NoVariablesOrOneProcessIsASingleProcessRun) {
  EXPECT_FALSE(launch({}));
  EXPECT_FALSE(launch({{"MASTER_ADDR", "10.0.0.1"}, {"MASTER_PORT", "29500"}}));  // set for something else
  EXPECT_FALSE(launch({{"RANK", "0"}, {"WORLD_SIZE", "1"}}));
  // A Slurm job script run without srun, or srun of one task.
  EXPECT_FALSE(launch({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "1"}}));
}

TEST(LaunchEnvironment, ReadsTorchrunsVariables) {
  const auto env = launch({{"RANK", "3"},
                           {"WORLD_SIZE", "8"},
                           {"LOCAL_RANK", "1"},
                           {"LOCAL_WORLD_SIZE", "2"},
                           {"MASTER_ADDR", "node1"},
                           {"MASTER_PORT", "29400"},
                           {"TORCHELASTIC_USE_AGENT_STORE", "True"},
                           {"TORCHELASTIC_RESTART_COUNT", "2"},
                           {"TORCHELASTIC_RUN_ID", "job"}});
  ASSERT_TRUE(env);
  EXPECT_EQ(env->rank, 3);
  EXPECT_EQ(env->world_size, 8);
  EXPECT_EQ(env->local_rank, 1);
  EXPECT_EQ(env->local_world_size, 2);
  EXPECT_EQ(env->master_addr, "node1");
  EXPECT_EQ(env->master_port, 29400);
  EXPECT_TRUE(env->agent_store);
  EXPECT_EQ(env->attempt, "2");
  EXPECT_EQ(env->launcher, "torchrun");
}

TEST(LaunchEnvironment, MapsSlurmWhenRankIsUnset) {
  const auto env = launch({{"SLURM_PROCID", "5"},
                           {"SLURM_NTASKS", "6"},
                           {"SLURM_LOCALID", "2"},
                           {"MASTER_ADDR", "n0"},
                           {"MASTER_PORT", "12345"}});
  ASSERT_TRUE(env);
  EXPECT_EQ(env->rank, 5);
  EXPECT_EQ(env->world_size, 6);
  EXPECT_EQ(env->local_rank, 2);
  EXPECT_FALSE(env->agent_store);
  EXPECT_EQ(env->launcher, "slurm");
  // RANK wins over Slurm's numbering (torchrun inside srun).
  const auto both = launch({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "1"}, {"RANK", "1"}, {"WORLD_SIZE", "2"},
                            {"MASTER_ADDR", "n0"}, {"MASTER_PORT", "1"}});
  ASSERT_TRUE(both);
  EXPECT_EQ(both->rank, 1);
  EXPECT_EQ(both->launcher, "environment");
}

TEST(LaunchEnvironment, BadOrMissingVariablesAreNamed) {
  const std::map<std::string, std::string> ok = {
      {"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"}, {"MASTER_PORT", "29500"}};
  auto with = [&](const std::string& name, const std::string& value) {
    auto v = ok;
    if (value.empty()) v.erase(name);
    else v[name] = value;
    return error_of(v);
  };
  EXPECT_EQ(error_of(ok), "");
  EXPECT_NE(with("WORLD_SIZE", "").find("WORLD_SIZE is not set"), std::string::npos);
  EXPECT_NE(with("MASTER_ADDR", "").find("MASTER_ADDR is not set"), std::string::npos);
  EXPECT_NE(with("MASTER_PORT", "").find("MASTER_PORT is not set"), std::string::npos);
  EXPECT_NE(with("RANK", "2").find("RANK=\"2\" must be an integer in [0, 1]"), std::string::npos);
  EXPECT_NE(with("RANK", "-1").find("RANK=\"-1\""), std::string::npos);
  EXPECT_NE(with("WORLD_SIZE", "2x").find("WORLD_SIZE=\"2x\""), std::string::npos);
  EXPECT_NE(with("MASTER_PORT", "65536").find("MASTER_PORT=\"65536\""), std::string::npos);
  EXPECT_NE(with("LOCAL_RANK", "one").find("LOCAL_RANK=\"one\""), std::string::npos);
  // WORLD_SIZE alone asks for a job too.
  EXPECT_NE(error_of({{"WORLD_SIZE", "2"}}).find("RANK is not set"), std::string::npos);
  EXPECT_NE(error_of({{"SLURM_PROCID", "0"}}).find("SLURM_NTASKS is not set"), std::string::npos);
}

TEST(RowsOfRank, SlicesEvenlyAndCoverTheBatchOnce) {
  const std::vector<size_t> batch = {10, 11, 12, 13, 14, 15, 16, 17};
  EXPECT_EQ(rows_of_rank(batch, 0, 2), (std::vector<size_t>{10, 11, 12, 13}));
  EXPECT_EQ(rows_of_rank(batch, 1, 2), (std::vector<size_t>{14, 15, 16, 17}));
  EXPECT_EQ(rows_of_rank(batch, 0, 1), batch);
  // A short last batch: 3 rows on 2 processes are 1 + 2; on 4, one process gets none.
  const std::vector<size_t> tail = {7, 8, 9};
  EXPECT_EQ(rows_of_rank(tail, 0, 2), (std::vector<size_t>{7}));
  EXPECT_EQ(rows_of_rank(tail, 1, 2), (std::vector<size_t>{8, 9}));
  std::vector<size_t> all;
  for (int r = 0; r < 4; ++r) {
    const auto rows = rows_of_rank(tail, r, 4);
    all.insert(all.end(), rows.begin(), rows.end());
  }
  EXPECT_EQ(all, tail);
  EXPECT_TRUE(rows_of_rank(tail, 0, 4).empty());
}

TEST(DistributedOptions, ValidateNamesTheFlags) {
  DistributedOptions o;
  EXPECT_NO_THROW(o.validate());
  o.timeout_s = 0;
  EXPECT_THROW(o.validate(), ConfigError);
  o.timeout_s = 5;
  o.bucket_mb = -1;
  try {
    o.validate();
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("--bucket-mb"), std::string::npos);
  }
}

}  // namespace
}  // namespace dqe
