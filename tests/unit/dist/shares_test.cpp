#include "dist/shares.h"

#include <gtest/gtest.h>

#include <condition_variable>
#include <mutex>
#include <thread>

#include "dqe/errors.h"

namespace dqe {
namespace {

// A job of `world` threads standing in for processes: gather and sum are collectives over
// memory, with the process group's contract (every member calls them in the same order).
class ThreadJob {
 public:
  explicit ThreadJob(int world) : world_(world), slots_(static_cast<size_t>(world)) {}

  RunContext context(int rank) {
    RunContext ctx;
    ctx.rank = rank;
    ctx.world_size = world_;
    ctx.gather_over_processes = [this, rank](const std::string& bytes) { return gather(rank, bytes); };
    ctx.sum_over_processes = [this, rank](std::vector<double>& values) {
      std::string bytes(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(double));
      const std::vector<std::string> all = gather(rank, bytes);
      std::fill(values.begin(), values.end(), 0.0);
      for (const auto& b : all)
        for (size_t i = 0; i < values.size(); ++i) values[i] += reinterpret_cast<const double*>(b.data())[i];
    };
    return ctx;
  }

  // Runs body(ctx) on each member's thread; the members' exceptions, by rank.
  std::vector<std::exception_ptr> run(const std::function<void(const RunContext&)>& body) {
    std::vector<std::exception_ptr> errors(static_cast<size_t>(world_));
    std::vector<std::thread> members;
    for (int r = 0; r < world_; ++r)
      members.emplace_back([&, r] {
        try {
          body(context(r));
        } catch (...) {
          errors[static_cast<size_t>(r)] = std::current_exception();
        }
      });
    for (auto& m : members) m.join();
    return errors;
  }

 private:
  std::vector<std::string> gather(int rank, const std::string& bytes) {
    std::unique_lock<std::mutex> lock(mutex_);
    const int64_t round = round_;
    slots_[static_cast<size_t>(rank)] = bytes;
    if (++arrived_ == world_) {
      result_ = slots_;
      arrived_ = 0;
      ++round_;
      changed_.notify_all();
    } else {
      changed_.wait(lock, [&] { return round_ != round; });
    }
    return result_;
  }

  int world_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<std::string> slots_, result_;
  int arrived_ = 0;
  int64_t round_ = 0;
};

// Line i's encoding: ids i, i + 1; every fourth line is empty and dropped.
std::vector<Encoding> encode_lines(size_t first, size_t last) {
  std::vector<Encoding> out;
  for (size_t i = first; i < last; ++i) {
    if (i % 4 == 3) continue;
    Encoding e;
    e.ids = {static_cast<int64_t>(i), static_cast<int64_t>(i) + 1};
    e.type_ids = {0, static_cast<int64_t>(i % 4)};
    e.truncated = static_cast<int64_t>(i % 3);
    out.push_back(e);
  }
  return out;
}

void expect_same(const std::vector<Encoding>& a, const std::vector<Encoding>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].ids, b[i].ids) << i;
    EXPECT_EQ(a[i].type_ids, b[i].type_ids) << i;
    EXPECT_EQ(a[i].truncated, b[i].truncated) << i;
  }
}

TEST(Shares, EncodingsAndExamplesSurviveTheirByteForm) {
  std::vector<Encoding> encodings = encode_lines(0, 9);
  encodings.push_back(Encoding{});  // empty
  Encoding wide;
  wide.ids = {30521, 2147483647};
  wide.type_ids = {3, 255};
  encodings.push_back(wide);
  expect_same(unpack_encodings(pack_encodings(encodings)), encodings);

  std::vector<Example> examples(3);
  examples[0].text = encodings[1];
  examples[0].unknown_tokens = 2;
  examples[0].side = {{0.5f, -1.25f}, {}, {3.0f}};
  examples[2].text = wide;
  examples[2].side = {{1e-30f}};
  const std::vector<Example> back = unpack_examples(pack_examples(examples));
  ASSERT_EQ(back.size(), examples.size());
  for (size_t i = 0; i < back.size(); ++i) {
    expect_same({back[i].text}, {examples[i].text});
    EXPECT_EQ(back[i].unknown_tokens, examples[i].unknown_tokens);
    EXPECT_EQ(back[i].side, examples[i].side);
  }
}

TEST(Shares, BytesThatWereNotPackedAreRefused) {
  const std::string bytes = pack_encodings(encode_lines(0, 6));
  EXPECT_THROW(unpack_encodings(bytes.substr(0, bytes.size() - 1)), Error);
  EXPECT_THROW(unpack_encodings(bytes + "x"), Error);
  EXPECT_THROW(unpack_examples(std::string(3, '\xff')), Error);
  // A count far beyond the bytes is refused before anything is allocated for it.
  std::string huge(8, '\xff');
  EXPECT_THROW(unpack_encodings(huge), Error);
  Encoding out_of_range;
  out_of_range.ids = {int64_t{1} << 40};
  out_of_range.type_ids = {0};
  EXPECT_THROW(pack_encodings({out_of_range}), Error);
}

TEST(Shares, EachProcessEncodesItsShareAndAllHoldTheWhole) {
  constexpr size_t kLines = 23;
  const std::vector<Encoding> whole = encode_lines(0, kLines);
  ASSERT_LT(whole.size(), kLines);  // some lines are dropped
  // One process does it all.
  const RunContext one;
  expect_same(encodings_in_shares(one, kLines, encode_lines), whole);

  ThreadJob job(3);
  std::mutex mutex;
  std::vector<std::pair<size_t, size_t>> asked(3);
  std::vector<std::vector<Encoding>> got(3);
  const auto errors = job.run([&](const RunContext& ctx) {
    auto result = encodings_in_shares(ctx, kLines, [&](size_t first, size_t last) {
      std::lock_guard<std::mutex> lock(mutex);
      asked[static_cast<size_t>(ctx.rank)] = {first, last};
      return encode_lines(first, last);
    });
    got[static_cast<size_t>(ctx.rank)] = std::move(result);
  });
  for (const auto& e : errors) EXPECT_FALSE(e);
  // Even, contiguous shares: 7, 8 and 8 of the 23 lines.
  EXPECT_EQ(asked[0], std::make_pair(size_t{0}, size_t{7}));
  EXPECT_EQ(asked[1], std::make_pair(size_t{7}, size_t{15}));
  EXPECT_EQ(asked[2], std::make_pair(size_t{15}, size_t{23}));
  for (const auto& g : got) expect_same(g, whole);
}

TEST(Shares, AnErrorInOneShareIsThrownInEveryProcess) {
  ThreadJob job(3);
  const auto errors = job.run([&](const RunContext& ctx) {
    encodings_in_shares(ctx, 30, [&](size_t first, size_t last) {
      if (ctx.rank == 1) throw DataError("train.jsonl:17: missing string field \"query\"");
      if (ctx.rank == 2) throw std::runtime_error("out of memory");
      return encode_lines(first, last);
    });
  });
  for (int r = 0; r < 3; ++r) {
    ASSERT_TRUE(errors[static_cast<size_t>(r)]) << r;
    // Ranks 1 and 2 throw their own errors; rank 0 the first in rank order, rank 1's, as a
    // DataError (its exit code), with its place in the file.
    try {
      std::rethrow_exception(errors[static_cast<size_t>(r)]);
    } catch (const DataError& e) {
      EXPECT_NE(r, 2);
      EXPECT_STREQ(e.what(), "train.jsonl:17: missing string field \"query\"");
    } catch (const std::runtime_error& e) {
      EXPECT_EQ(r, 2);
      EXPECT_STREQ(e.what(), "out of memory");
    }
  }
}

TEST(Shares, LogitsOfTheSharesAreTheWhole) {
  constexpr size_t kRows = 11;
  auto logits = [](size_t first, size_t last) {
    torch::Tensor t = torch::arange(static_cast<int64_t>(first * 2), static_cast<int64_t>(last * 2), torch::kFloat32);
    return t.view({static_cast<int64_t>(last - first), 2}) * 0.5;
  };
  const RunContext one;
  const torch::Tensor whole = logits_in_shares(one, kRows, 2, logits);
  ASSERT_EQ(whole.sizes(), (std::vector<int64_t>{kRows, 2}));
  ThreadJob job(4);
  std::vector<torch::Tensor> got(4);
  const auto errors = job.run([&](const RunContext& ctx) {
    got[static_cast<size_t>(ctx.rank)] = logits_in_shares(ctx, kRows, 2, [&](size_t first, size_t last) {
      EXPECT_EQ(std::make_pair(first, last), ctx.share_of(kRows));
      return logits(first, last);
    });
  });
  for (const auto& e : errors) EXPECT_FALSE(e);
  for (const auto& g : got) EXPECT_TRUE(torch::equal(g, whole));
}

}  // namespace
}  // namespace dqe
