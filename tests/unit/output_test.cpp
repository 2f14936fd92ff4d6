#include "dqe/output.h"

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

}  // namespace
}  // namespace dqe
