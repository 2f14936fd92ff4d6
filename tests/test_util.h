// Helpers shared by the tests: temporary directories and small generated data sets.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "detail/remove_tree.h"

namespace dqe::test {

// A fresh directory under the system temp dir (mkdtemp: unique even when tests run in
// parallel), removed with its contents when the object goes away.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "dqe-test-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed for " + pattern);
    path_ = pattern;
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() { detail::remove_tree(path_.string()); }
  std::string path(const std::string& name = "") const { return name.empty() ? path_.string() : (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

inline void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

inline std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// A learnable toy relevance set: the label is 3 when the title names the queried product
// type and 1 otherwise, so a model must look at both sides.
inline void write_toy_set(const std::string& path, int n, unsigned seed) {
  const std::vector<std::string> kinds = {"chair", "table", "lamp", "drill", "rug", "hose"};
  const std::vector<std::string> words = {"red", "blue", "oak", "steel", "large", "small", "modern", "set"};
  std::mt19937 rng(seed);
  std::ofstream out(path);
  for (int i = 0; i < n; ++i) {
    const std::string& kind = kinds[rng() % kinds.size()];
    const bool match = rng() % 2 == 0;
    std::string other = kinds[rng() % kinds.size()];
    while (other == kind) other = kinds[rng() % kinds.size()];
    const std::string title = words[rng() % words.size()] + " " + (match ? kind : other) + " " + words[rng() % words.size()];
    nlohmann::json j = {{"id", "r" + std::to_string(i)}, {"query_id", "q" + std::to_string(i / 4)},
                        {"query", words[rng() % words.size()] + " " + kind}, {"title", title},
                        {"label", match ? 3.0 : 1.0}, {"grade", match ? "exact" : "irrelevant"},
                        {"match", match ? 1 : 0}};
    out << j.dump() << "\n";
  }
}

// The tiny Hugging Face BERT in ../shared (config, weights, vocab, expected outputs), read
// by tests as the independent oracle.
inline std::string hf_fixture() { return std::string(DQE_SHARED_DIR) + "/fixtures/tiny-bert-hf"; }

}  // namespace dqe::test

// Skips the test, saying why, when this checkout is not beside the shared fixtures.
#define DQE_REQUIRE_SHARED_FIXTURES()                                                              \
  if (!std::filesystem::is_directory(::dqe::test::hf_fixture()))                                   \
  GTEST_SKIP() << ::dqe::test::hf_fixture() << " not found: the shared fixtures are not beside this " \
                  "checkout (DQE_SHARED_DIR)"
