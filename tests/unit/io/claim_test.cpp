// Outputs two processes must not both write: a new directory published whole, a file moved only
// where none is, a directory claimed by one process at a time. "Another process" is simulated
// by writing the output from inside the work, between its start and its publication.
#include "io/claim.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <string>

#include "dqe/errors.h"
#include "test_util.h"

namespace dqe {
namespace {
namespace fs = std::filesystem;

// The names in dir, sorted.
std::vector<std::string> names_in(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

TEST(WriteNewDirectory, PublishesTheWorkWholeAndLeavesNothingBeside) {
  test::TempDir dir;
  // The user's own out.tmp beside the output is not a scratch directory of dqe's.
  fs::create_directories(dir.path("out.tmp"));
  test::write_text(dir.path("out.tmp/mine"), "keep");
  write_new_directory(dir.path("out"), "--out", [](const std::string& tmp) {
    test::write_text(tmp + "/config.json", "{}");
  });
  EXPECT_EQ(test::read_text(dir.path("out/config.json")), "{}");
  EXPECT_EQ(test::read_text(dir.path("out.tmp/mine")), "keep");
  EXPECT_EQ(names_in(dir.path("")), (std::vector<std::string>{"out", "out.tmp"}));

  // An empty directory made for the output is taken; a trailing slash names the same.
  fs::create_directories(dir.path("empty"));
  write_new_directory(dir.path("empty/"), "--out", [](const std::string& tmp) { test::write_text(tmp + "/a", "1"); });
  EXPECT_EQ(test::read_text(dir.path("empty/a")), "1");
}

// A link to an empty directory stays a link: the directory it names takes the work.
TEST(WriteNewDirectory, WritesThroughALinkToAnEmptyDirectory) {
  test::TempDir dir;
  fs::create_directories(dir.path("real"));
  fs::create_directory_symlink(dir.path("real"), dir.path("link"));
  write_new_directory(dir.path("link"), "--out", [](const std::string& tmp) { test::write_text(tmp + "/a", "1"); });
  EXPECT_TRUE(fs::is_symlink(dir.path("link")));
  EXPECT_EQ(test::read_text(dir.path("real/a")), "1");
  EXPECT_EQ(names_in(dir.path("")), (std::vector<std::string>{"link", "real"}));
}

TEST(WriteNewDirectory, AnOutputWrittenMeanwhileIsLeftAsItWasWritten) {
  test::TempDir dir;
  for (const bool was_empty : {false, true}) {
    const std::string out = dir.path(was_empty ? "made" : "absent");
    if (was_empty) fs::create_directories(out);
    try {
      write_new_directory(out, "--out", [&](const std::string& tmp) {
        test::write_text(tmp + "/config.json", "mine");
        fs::create_directories(out);  // another process publishes first
        test::write_text(out + "/config.json", "theirs");
      });
      FAIL() << "an output written meanwhile was replaced";
    } catch (const ConfigError& e) {
      EXPECT_EQ(std::string(e.what()), "--out " + out +
                                           " was written by another process while this one ran; it is left as that one "
                                           "wrote it, and nothing was written here");
    }
    EXPECT_EQ(test::read_text(out + "/config.json"), "theirs");
  }
  EXPECT_EQ(names_in(dir.path("")), (std::vector<std::string>{"absent", "made"}));  // no work left beside
}

TEST(WriteNewDirectory, WorkThatFailsLeavesNothing) {
  test::TempDir dir;
  EXPECT_THROW(write_new_directory(dir.path("out"), "--out",
                                   [](const std::string& tmp) {
                                     test::write_text(tmp + "/half", "x");
                                     throw DataError("bad line");
                                   }),
               DataError);
  EXPECT_TRUE(names_in(dir.path("")).empty());
}

TEST(RenameNoReplace, MovesOnlyWhereNothingIs) {
  test::TempDir dir;
  test::write_text(dir.path("a"), "a");
  test::write_text(dir.path("b"), "b");
  EXPECT_FALSE(rename_no_replace(dir.path("a"), dir.path("b")));
  EXPECT_EQ(test::read_text(dir.path("a")), "a");
  EXPECT_EQ(test::read_text(dir.path("b")), "b");
  EXPECT_TRUE(rename_no_replace(dir.path("a"), dir.path("c")));
  EXPECT_EQ(test::read_text(dir.path("c")), "a");
  EXPECT_FALSE(fs::exists(dir.path("a")));
}

// flock claims belong to an open file description: a second claim fails even in one process.
TEST(DirectoryClaim, OneHolderAtATime) {
  test::TempDir dir;
  {
    const DirectoryClaim first(dir.path(""), "--out");
    try {
      const DirectoryClaim second(dir.path(""), "--out");
      FAIL() << "a claimed directory was claimed again";
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find("is in use by another dqe process"), std::string::npos) << e.what();
    }
  }
  EXPECT_NO_THROW(DirectoryClaim(dir.path(""), "--out"));  // released with the first
  EXPECT_THROW(DirectoryClaim(dir.path("missing"), "--out"), IoError);
}

}  // namespace
}  // namespace dqe
