#include "data/lexical.h"

#include <gtest/gtest.h>

#include "dqe/errors.h"

namespace dqe {
namespace {

TEST(Lexical, WordsAreLowerCasedAlphanumericRuns) {
  EXPECT_EQ(lexical_words("BEHR Premium DeckOver 1-gal. #SC-141"),
            (std::vector<std::string>{"behr", "premium", "deckover", "1", "gal", "sc", "141"}));
  EXPECT_EQ(lexical_words("  "), std::vector<std::string>{});
  EXPECT_EQ(lexical_words("Café 3/4"), (std::vector<std::string>{"caf\xc3\xa9", "3", "4"}));
}

TEST(Lexical, StemmerFoldsCommonSuffixesOnly) {
  EXPECT_EQ(lexical_stem("drills"), "drill");
  EXPECT_EQ(lexical_stem("hoses"), "hose");
  EXPECT_EQ(lexical_stem("boxes"), "box");
  EXPECT_EQ(lexical_stem("batteries"), "battery");
  EXPECT_EQ(lexical_stem("lighting"), "light");
  EXPECT_EQ(lexical_stem("painted"), "paint");
  EXPECT_EQ(lexical_stem("glass"), "glass");
  EXPECT_EQ(lexical_stem("shed"), "shed");
  EXPECT_EQ(lexical_stem("18v"), "18v");
}

TEST(Lexical, FeaturesOfKnownPairs) {
  const LexicalStats stats = LexicalStats::build({"18V Cordless Drill Kit", "Oak Chair", "Red Oak Chair", "Steel Chair",
                                                  "Oak Chair"});  // the repeated text counts once
  EXPECT_EQ(stats.docs, 4);
  EXPECT_EQ(stats.df.at("chair"), 3);
  EXPECT_DOUBLE_EQ(stats.avg_len, 11.0 / 4.0);
  EXPECT_GT(stats.idf("red"), stats.idf("chair"));
  EXPECT_GT(stats.idf("unseen"), stats.idf("red"));

  auto f = lexical_features("cordless drills 18v", "18V Cordless Drill Kit", stats);
  ASSERT_EQ(f.size(), static_cast<size_t>(kNumLexicalFeatures));
  EXPECT_FLOAT_EQ(f[0], 2.0f / 3);  // exact: cordless, 18v
  EXPECT_FLOAT_EQ(f[1], 1.0f);      // stemmed: drills -> drill
  EXPECT_FLOAT_EQ(f[3], 1.0f);      // all the query's IDF is matched
  EXPECT_GT(f[4], 0.0f);            // BM25
  EXPECT_FLOAT_EQ(f[5], 1.0f);      // last query word
  EXPECT_FLOAT_EQ(f[6], 1.0f);      // first query word
  EXPECT_FLOAT_EQ(f[7], 0.0f);      // not as one phrase
  EXPECT_FLOAT_EQ(f[8], 0.5f);      // "cordless drill" is, "drill 18v" is not
  EXPECT_FLOAT_EQ(f[9], 1.0f);      // the query has a number
  EXPECT_FLOAT_EQ(f[10], 1.0f);     // and the result has it
  EXPECT_FLOAT_EQ(f[13], 0.75f);    // 3 of the result's 4 words are the query's

  // Partial: the query's words inside a compound; IDF-weighted: the rare word is missing.
  f = lexical_features("deck over", "BEHR DeckOver Coating", stats);
  EXPECT_FLOAT_EQ(f[0], 0.0f);
  EXPECT_FLOAT_EQ(f[2], 1.0f);
  f = lexical_features("red chair", "Oak Chair", stats);
  EXPECT_FLOAT_EQ(f[1], 0.5f);
  EXPECT_LT(f[3], 0.5f);
  EXPECT_FLOAT_EQ(f[5], 1.0f);
  EXPECT_FLOAT_EQ(f[6], 0.0f);
  for (float v : lexical_features("", "", stats)) EXPECT_FLOAT_EQ(v, 0.0f);
}

TEST(Lexical, StatsRoundTripAndBadJsonNamesTheFile) {
  const LexicalStats stats = LexicalStats::build({"a b c", "b c", "c"});
  const LexicalStats back = LexicalStats::from_json(stats.to_json(), "x.json");
  EXPECT_EQ(back.docs, stats.docs);
  EXPECT_EQ(back.df, stats.df);
  EXPECT_DOUBLE_EQ(back.avg_len, stats.avg_len);
  try {
    LexicalStats::from_json(nlohmann::json{{"docs", "three"}}, "dir/lexical_stats.json");
    FAIL();
  } catch (const ModelError& e) {
    EXPECT_NE(std::string(e.what()).find("dir/lexical_stats.json"), std::string::npos);
  }
}

}  // namespace
}  // namespace dqe
