#include "infer/shard.h"

#include <gtest/gtest.h>

#include "dqe/errors.h"

namespace dqe {
namespace {

Record line(size_t number, const std::string& raw) {
  Record r;
  r.line = number;
  r.raw = raw;
  return r;
}

TEST(Shard, ParsesKOverNAndRefusesTheRest) {
  const Shard s = parse_shard("2/8", "");
  EXPECT_EQ(s.index, 2);
  EXPECT_EQ(s.count, 8);
  EXPECT_TRUE(parse_shard("", "").all());
  EXPECT_TRUE(parse_shard("0/1", "").all());
  for (const char* bad : {"8/8", "3", "a/4", "1/0", "-1/4", "1/-4", "1/4x", "/4", "1/", " 1/4", "1/2/3"}) {
    try {
      parse_shard(bad, "");
      ADD_FAILURE() << bad << " accepted";
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find("--shard \"" + std::string(bad) + "\" must be K/N"), std::string::npos)
          << e.what();
    }
  }
  EXPECT_THROW(parse_shard("", "query_id"), ConfigError);
}

TEST(Shard, Fnv1a64MatchesThePublishedVectors) {
  // From the FNV reference (http://www.isthe.com/chongo/tech/comp/fnv/): FNV-1a 64.
  EXPECT_EQ(fnv1a64(""), 0xcbf29ce484222325ULL);
  EXPECT_EQ(fnv1a64("a"), 0xaf63dc4c8601ec8cULL);
  EXPECT_EQ(fnv1a64("foobar"), 0x85944171f73967e8ULL);
}

TEST(Shard, ByLineNumberEachLineInExactlyOneShard) {
  for (size_t n = 1; n <= 10; ++n) {
    int hits = 0;
    for (int64_t k = 0; k < 3; ++k) hits += in_shard(parse_shard(std::to_string(k) + "/3", ""), line(n, "{}"), "in");
    EXPECT_EQ(hits, 1);
    EXPECT_TRUE(in_shard(parse_shard(std::to_string((n - 1) % 3) + "/3", ""), line(n, "{}"), "in"));
  }
}

TEST(Shard, ByKeyKeepsAValueTogetherAndNeedsTheField) {
  const Shard s0 = parse_shard("0/2", "query_id"), s1 = parse_shard("1/2", "query_id");
  // "q1" hashes to an odd FNV-1a value, "q2" to an even one (fnv1a64 is checked above).
  const bool q1_in_0 = fnv1a64("q1") % 2 == 0;
  EXPECT_EQ(in_shard(s0, line(1, R"({"query_id":"q1","title":"a"})"), "in"), q1_in_0);
  EXPECT_EQ(in_shard(s1, line(7, R"({"title":"b","query_id":"q1"})"), "in"), !q1_in_0);
  // A number is hashed as its JSON text.
  EXPECT_EQ(in_shard(s0, line(2, R"({"query_id":17})"), "in"), fnv1a64("17") % 2 == 0);
  try {
    in_shard(s0, line(9, R"({"title":"c"})"), "log.jsonl");
    FAIL();
  } catch (const DataError& e) {
    EXPECT_EQ(std::string(e.what()), "log.jsonl:9: missing field \"query_id\" (--shard-key)");
  }
}

}  // namespace
}  // namespace dqe
