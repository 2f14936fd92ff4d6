// dqe score --shard K/N: the shards' outputs together are the unsharded output (infer/shard.h).
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstdlib>
#include <set>

#include "integration/run_util.h"
#include "test_util.h"

namespace dqe {
namespace {

struct Outcome {
  int code;
  std::string err;
};

Outcome dqe(const test::TempDir& dir, const std::string& args) {
  const std::string err = dir.path("stderr.txt");
  const std::string cmd = std::string(DQE_BINARY) + " " + args + " 2>" + err + " </dev/null";
  const int status = std::system(cmd.c_str());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, test::read_text(err)};
}

std::vector<std::string> sorted_lines(const std::string& text) {
  std::vector<std::string> lines;
  size_t begin = 0;
  for (size_t end; (end = text.find('\n', begin)) != std::string::npos; begin = end + 1)
    lines.push_back(text.substr(begin, end - begin));
  std::sort(lines.begin(), lines.end());
  return lines;
}

class ScoreShardTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new test::TempDir();
    test::write_toy_set(dir_->path("train.jsonl"), 64, 1);
    test::write_toy_set(dir_->path("logs.jsonl"), 101, 3);  // 101: shards of unequal size
    const Outcome r = dqe(*dir_, "train --train " + path("train.jsonl") + " --dev " + path("train.jsonl") + " --out " +
                                     path("run") +
                                     " --layers 1 --hidden 32 --heads 2 --intermediate 64 --max-len 24 --epochs 1"
                                     " --batch-size 16 --threads 1 --precision fp32 >/dev/null");
    ASSERT_EQ(r.code, 0) << r.err;
    const Outcome all = dqe(*dir_, score_args() + " --output " + path("all.jsonl"));
    ASSERT_EQ(all.code, 0) << all.err;
  }
  static void TearDownTestSuite() { delete dir_; }
  static std::string path(const std::string& name) { return dir_->path(name); }
  // Batches of one line: a line's score then does not depend on which lines share its batch
  // (padding to another length changes BLAS's summation order, by about 1e-8), and the
  // outputs can be compared byte for byte.
  static std::string score_args() {
    return "score --model " + path("run") + " --input " + path("logs.jsonl") +
           " --threads 1 --precision fp32 --batch-size 1";
  }

  static test::TempDir* dir_;
};
test::TempDir* ScoreShardTest::dir_ = nullptr;

TEST_F(ScoreShardTest, ShardsByLineTogetherAreTheUnshardedOutput) {
  std::string joined;
  for (int k = 0; k < 3; ++k) {
    const std::string out = path("line" + std::to_string(k) + ".jsonl");
    const Outcome r = dqe(*dir_, score_args() + " --shard " + std::to_string(k) + "/3 --output " + out);
    ASSERT_EQ(r.code, 0) << r.err;
    const std::string text = test::read_text(out);
    // Line L goes to shard (L - 1) mod 3: 34, 34 and 33 of 101 lines.
    EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), k < 2 ? 34 : 33);
    joined += text;
  }
  const std::string all = test::read_text(path("all.jsonl"));
  ASSERT_EQ(std::count(all.begin(), all.end(), '\n'), 101);
  EXPECT_EQ(sorted_lines(joined), sorted_lines(all));
}

TEST_F(ScoreShardTest, ShardsByKeyKeepAQueryTogether) {
  std::string joined;
  std::vector<std::set<std::string>> queries(2);
  for (int k = 0; k < 2; ++k) {
    const std::string out = path("key" + std::to_string(k) + ".jsonl");
    const Outcome r = dqe(*dir_, score_args() + " --shard " + std::to_string(k) + "/2 --shard-key query_id --output " + out);
    ASSERT_EQ(r.code, 0) << r.err;
    const std::string text = test::read_text(out);
    for (const auto& j : test::read_jsonl_file(out)) queries[k].insert(j["query_id"].get<std::string>());
    EXPECT_FALSE(queries[k].empty());
    joined += text;
  }
  for (const auto& q : queries[0]) EXPECT_EQ(queries[1].count(q), 0u) << q << " is in both shards";
  EXPECT_EQ(sorted_lines(joined), sorted_lines(test::read_text(path("all.jsonl"))));
}

TEST_F(ScoreShardTest, BadShardsAreOneLineUsageErrors) {
  for (const std::string bad : {"--shard 3/3", "--shard 1", "--shard x/2", "--shard-key query_id"}) {
    const Outcome r = dqe(*dir_, score_args() + " " + bad + " --output " + path("bad.jsonl"));
    EXPECT_EQ(r.code, 2) << bad;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_NE(r.err.find("dqe: error: --shard"), std::string::npos) << r.err;
  }
  const Outcome missing = dqe(*dir_, score_args() + " --shard 0/2 --shard-key no_such_field --output " + path("bad.jsonl"));
  EXPECT_EQ(missing.code, 3);
  EXPECT_NE(missing.err.find("logs.jsonl:1: missing field \"no_such_field\" (--shard-key)"), std::string::npos)
      << missing.err;
}

}  // namespace
}  // namespace dqe
