// Helpers shared by the tests: temporary directories and small generated data sets.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>
#include <zlib.h>

#include "io/remove_tree.h"

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

// Collects what is written to a FIFO, on a thread. The FIFO is opened at once, without
// waiting for a writer (so a writer's open does not wait either), and read until a writer has
// come and gone. finish() ends it even when no writer ever came, e.g. because the code under
// test replaced the FIFO with a file: a failing test must not hang.
class FifoReader {
 public:
  explicit FifoReader(std::string path) : path_(std::move(path)) {
    fd_ = ::open(path_.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd_ < 0) throw std::runtime_error("cannot open the FIFO " + path_);
    thread_ = std::thread([this] { run(); });
  }
  FifoReader(const FifoReader&) = delete;
  FifoReader& operator=(const FifoReader&) = delete;
  ~FifoReader() { finish(); }
  // Call once the writer is done; returns everything read.
  const std::string& finish() {
    if (thread_.joinable()) {
      stop_ = true;
      thread_.join();
      ::close(fd_);
    }
    return text_;
  }

 private:
  void run() {
    std::vector<char> buffer(1 << 16);
    for (;;) {
      // Before any writer has opened the FIFO, poll reports nothing (no hang-up yet).
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) > 0) {
        const ssize_t n = ::read(fd_, buffer.data(), buffer.size());
        if (n > 0) {
          text_.append(buffer.data(), static_cast<size_t>(n));
          continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
        return;  // the writer closed its end
      }
      if (stop_) return;
    }
  }

  std::string path_;
  int fd_ = -1;
  std::string text_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// data as one gzip member, made with zlib directly (not with the code under test).
inline std::string gzip(const std::string& data) {
  z_stream zs{};
  if (deflateInit2(&zs, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK) throw std::runtime_error("zlib");
  std::string out(deflateBound(&zs, static_cast<uLong>(data.size())) + 64, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  zs.avail_in = static_cast<uInt>(data.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  const int ret = deflate(&zs, Z_FINISH);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  if (ret != Z_STREAM_END) throw std::runtime_error("zlib: deflate did not finish");
  return out;
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
