#include "io/remove_tree.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "test_util.h"

namespace dqe {
namespace {

namespace fs = std::filesystem;

TEST(RemoveTree, RemovesNestedFilesAndDirectoriesButNotWhatLinksPointTo) {
  test::TempDir dir;
  const fs::path tree = dir.path("tree");
  fs::create_directories(tree / "a" / "b");
  test::write_text((tree / "a" / "b" / "f.txt").string(), "x");
  test::write_text((tree / "top.txt").string(), "y");
  fs::create_directories(dir.path("outside"));
  test::write_text(dir.path("outside/keep.txt"), "z");
  fs::create_directory_symlink(dir.path("outside"), tree / "link");

  detail::remove_tree(tree.string());
  EXPECT_FALSE(fs::exists(tree));
  EXPECT_TRUE(fs::exists(dir.path("outside/keep.txt")));  // the link went, not its target
}

TEST(RemoveTree, RemovesASingleFileAndIgnoresAMissingPath) {
  test::TempDir dir;
  test::write_text(dir.path("f.txt"), "x");
  detail::remove_tree(dir.path("f.txt"));
  EXPECT_FALSE(fs::exists(dir.path("f.txt")));
  detail::remove_tree(dir.path("never-there"));
  EXPECT_TRUE(fs::exists(dir.path()));
}

}  // namespace
}  // namespace dqe
