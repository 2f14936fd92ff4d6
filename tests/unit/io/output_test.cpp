#include "io/output.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "dqe/errors.h"
#include "test_util.h"

namespace dqe {
namespace {
namespace fs = std::filesystem;

class OutputTest : public ::testing::Test {
 protected:
  test::TempDir dir_;
};

// The ConfigError message, or "no error".
std::string alias_error(const std::vector<FileUse>& uses) {
  try {
    check_no_aliases(uses);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "no error";
}

TEST_F(OutputTest, WriteFileAtomicReplacesWholeFileAndFailsOnMissingDir) {
  write_file_atomic(dir_.path("a.json"), "one");
  write_file_atomic(dir_.path("a.json"), "two");
  EXPECT_EQ(test::read_text(dir_.path("a.json")), "two");
  EXPECT_FALSE(fs::exists(dir_.path("a.json.tmp")));
  EXPECT_THROW(write_file_atomic(dir_.path("no/such/dir/a.json"), "x"), IoError);
}

TEST_F(OutputTest, WriteFileAtomicUsesAUniqueTemporaryFile) {
  const std::string path = dir_.path("metrics.json");
  // The old writer wrote metrics.json.tmp: a user's file there, or a symlink planted there.
  test::write_text(path + ".tmp", "mine\n");
  write_file_atomic(path, "{}\n");
  EXPECT_EQ(test::read_text(path), "{}\n");
  EXPECT_EQ(test::read_text(path + ".tmp"), "mine\n");
  fs::remove(path + ".tmp");
  test::write_text(dir_.path("victim"), "precious\n");
  fs::create_symlink(dir_.path("victim"), path + ".tmp");
  write_file_atomic(path, "{\"a\":1}\n");
  EXPECT_EQ(test::read_text(path), "{\"a\":1}\n");
  EXPECT_EQ(test::read_text(dir_.path("victim")), "precious\n");
  size_t n = 0;
  for (const auto& e : fs::directory_iterator(dir_.path())) n += e.path().filename().string().find(".tmp-") != std::string::npos;
  EXPECT_EQ(n, 0u);
}

TEST_F(OutputTest, WriteFileAtomicWritesThroughADeviceInsteadOfReplacingIt) {
  const std::string null = dir_.path("null");
  if (::mknod(null.c_str(), S_IFCHR | 0666, makedev(1, 3)) != 0) GTEST_SKIP() << "mknod not permitted";
  write_file_atomic(null, "{}\n");
  struct stat st {};
  ASSERT_EQ(::lstat(null.c_str(), &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode));
}

TEST_F(OutputTest, WriteFileAtomicRefusesADirectory) {
  try {
    write_file_atomic(dir_.path(), "x");
    FAIL() << "expected IoError";
  } catch (const IoError& e) {
    EXPECT_EQ(std::string(e.what()), dir_.path() + ": cannot write output to a directory");
  }
}

TEST_F(OutputTest, OutputThatIsAnInputIsRefusedNamingBothFlags) {
  const std::string data = dir_.path("data.jsonl");
  test::write_text(data, "{}\n");
  EXPECT_EQ(alias_error({{"--metrics-out", data, true}, {"--data", data, false}}),
            "--metrics-out " + data + " names the same file as --data " + data);
  // By inode, not by spelling: through a symlink, a hard link, a relative path.
  fs::create_symlink(data, dir_.path("link.jsonl"));
  EXPECT_EQ(alias_error({{"--data", data, false}, {"--rejects", dir_.path("link.jsonl"), true}}),
            "--rejects " + dir_.path("link.jsonl") + " names the same file as --data " + data);
  fs::create_hard_link(data, dir_.path("hard.jsonl"));
  EXPECT_NE(alias_error({{"--output", dir_.path("hard.jsonl"), true}, {"--input", data, false}}), "no error");
  EXPECT_NE(alias_error({{"--output", dir_.path() + "/./data.jsonl", true}, {"--input", data, false}}), "no error");
}

TEST_F(OutputTest, TwoOutputsAliasEvenBeforeTheyExist) {
  const std::string out = dir_.path("out.jsonl");
  EXPECT_EQ(alias_error({{"--output", out, true}, {"--rejects", dir_.path("x/../out.jsonl"), true}}),
            "--output " + out + " names the same file as --rejects " + dir_.path("x/../out.jsonl"));
  EXPECT_EQ(alias_error({{"--output", "-", true}, {"--rejects", "-", true}}), "--output - names the same file as --rejects -");
}

TEST_F(OutputTest, WhatCannotAliasPasses) {
  const std::string data = dir_.path("data.jsonl");
  test::write_text(data, "{}\n");
  // Distinct files; an output that does not exist yet; empty (unset) paths; stdin vs stdout;
  // inputs that are the same file (reading twice harms nothing).
  EXPECT_EQ(alias_error({{"--output", dir_.path("new.jsonl"), true}, {"--input", data, false}}), "no error");
  EXPECT_EQ(alias_error({{"--output", "", true}, {"--rejects", "", true}, {"--input", data, false}}), "no error");
  EXPECT_EQ(alias_error({{"--output", "-", true}, {"--input", "-", false}}), "no error");
  EXPECT_EQ(alias_error({{"--train", data, false}, {"--dev", data, false}}), "no error");
  // Two outputs to one character device are fine.
  const std::string null = dir_.path("null");
  if (::mknod(null.c_str(), S_IFCHR | 0666, makedev(1, 3)) == 0)
    EXPECT_EQ(alias_error({{"--output", null, true}, {"--rejects", null, true}}), "no error");
}

}  // namespace
}  // namespace dqe
