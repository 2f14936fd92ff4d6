// The featurizer on the shared Hugging Face fixture's tokenizer, against the input ids and
// token types that Hugging Face's tokenizer gave for its pairs (expected.json), match token
// types derived here by hand, truncation, and batches padded with the pad id and masked.
#include "data/featurizer.h"

#include <gtest/gtest.h>

#include <fstream>

#include <nlohmann/json.hpp>

#include "test_util.h"

namespace dqe {
namespace {

nlohmann::json fixture_cases() {
  std::ifstream in(test::hf_fixture() + "/expected.json");
  return nlohmann::json::parse(in)["cases"];
}

Featurizer fixture_featurizer(int64_t max_len, bool match_types = false) {
  TaskSpec task;
  task.max_len = max_len;
  task.match_types = match_types;
  return Featurizer(task, load_tokenizer(test::hf_fixture(), true));
}

Record pair(const std::string& query, const std::string& title) {
  Record r;
  r.query = query;
  r.text = title;
  return r;
}

TEST(Featurizer, GivesHuggingFacesInputIdsAndTokenTypes) {
  DQE_REQUIRE_SHARED_FIXTURES();
  const nlohmann::json cases = fixture_cases();
  ASSERT_FALSE(cases.empty());
  for (const auto& c : cases) {
    const Featurizer f = fixture_featurizer(c["max_len"].get<int64_t>());
    const Example e = f.encode(pair(c["query"].get<std::string>(), c["title"].get<std::string>()));
    const auto ids = c["input_ids"].get<std::vector<int64_t>>();
    EXPECT_EQ(e.text.ids, ids) << c["query"];
    EXPECT_EQ(e.text.type_ids, c["token_type_ids"].get<std::vector<int64_t>>()) << c["query"];
    EXPECT_EQ(e.unknown_tokens, std::count(ids.begin(), ids.end(), f.tokenizer().unk_id())) << c["query"];
    EXPECT_TRUE(e.side.empty());  // no side inputs asked for
  }
}

// "red wooden chair" against "Wooden Chair, Red - set of 2": every query word occurs in the
// title (type 2), and the title's wooden, chair and red occur in the query (type 3); the
// special tokens keep their types.
TEST(Featurizer, MatchTypesMarkTheTokensBothSidesShare) {
  DQE_REQUIRE_SHARED_FIXTURES();
  const nlohmann::json c = fixture_cases()[0];
  ASSERT_EQ(c["query"], "red wooden chair");
  ASSERT_EQ(c["tokens_title"], nlohmann::json({"wooden", "chair", ",", "red", "-", "set", "of", "2"}));
  const Example e = fixture_featurizer(64, true).encode(pair("red wooden chair", "Wooden Chair, Red - set of 2"));
  EXPECT_EQ(e.text.ids, c["input_ids"].get<std::vector<int64_t>>());
  //                   [CLS] red wooden chair [SEP] wooden chair ,  red -  set of 2  [SEP]
  const std::vector<int64_t> want = {0, 2, 2, 2, 0, 3, 3, 1, 3, 1, 1, 1, 1, 1};
  EXPECT_EQ(e.text.type_ids, want);
}

TEST(Featurizer, CutsToMaxLenKeepingTheSpecialTokens) {
  DQE_REQUIRE_SHARED_FIXTURES();
  const Featurizer f = fixture_featurizer(8);
  const Example e = f.encode(pair("red wooden chair", "Wooden Chair, Red - set of 2"));
  ASSERT_EQ(e.text.ids.size(), 8u);
  EXPECT_EQ(e.text.ids.front(), f.tokenizer().cls_id());
  EXPECT_EQ(e.text.ids.back(), f.tokenizer().sep_id());
  EXPECT_EQ(std::count(e.text.ids.begin(), e.text.ids.end(), f.tokenizer().sep_id()), 2);
  // Both sides keep a token: the pair is still a pair.
  EXPECT_GE(std::count(e.text.type_ids.begin(), e.text.type_ids.end(), 0), 3);  // [CLS] query [SEP]
  EXPECT_GE(std::count(e.text.type_ids.begin(), e.text.type_ids.end(), 1), 2);  // result [SEP]
}

TEST(Featurizer, BatchesArePaddedWithThePadIdAndMaskedInTheRowsOrder) {
  DQE_REQUIRE_SHARED_FIXTURES();
  const Featurizer f = fixture_featurizer(64);
  const std::vector<Record> records = {pair("chair", "red chair"), pair("red wooden chair", "Wooden Chair, Red - set of 2")};
  const std::vector<Example> examples = f.encode_all(records, 2);
  ASSERT_EQ(examples.size(), 2u);
  const Batch b = f.collate(examples, {1, 0});
  const int64_t longest = static_cast<int64_t>(examples[1].text.ids.size());
  const int64_t short_len = static_cast<int64_t>(examples[0].text.ids.size());
  ASSERT_LT(short_len, longest);
  ASSERT_EQ(b.ids.sizes(), (std::vector<int64_t>{2, longest}));
  EXPECT_EQ(b.rows, (std::vector<size_t>{1, 0}));
  for (int64_t j = 0; j < longest; ++j) {
    EXPECT_EQ(b.ids[0][j].item<int64_t>(), examples[1].text.ids[static_cast<size_t>(j)]);
    EXPECT_EQ(b.mask[0][j].item<int64_t>(), 1);
    const bool pad = j >= short_len;
    EXPECT_EQ(b.ids[1][j].item<int64_t>(), pad ? f.tokenizer().pad_id() : examples[0].text.ids[static_cast<size_t>(j)]);
    EXPECT_EQ(b.mask[1][j].item<int64_t>(), pad ? 0 : 1);
    if (pad) EXPECT_EQ(b.type_ids[1][j].item<int64_t>(), 0);
  }
}

}  // namespace
}  // namespace dqe
