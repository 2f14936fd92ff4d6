#include "text/wordpiece_tokenizer.h"

#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "dqe/errors.h"
#include "test_util.h"

namespace dqe {
namespace {

const std::string kFixtureDir = std::string(DQE_SHARED_DIR) + "/fixtures/tiny-bert-hf";

// Enough to spell "un", "aff", "able" and a few words; no [PAD] or [MASK].
std::vector<std::string> small_vocab() {
  return {"[UNK]", "[CLS]", "[SEP]", "un", "##aff", "##able", "unaff", "a", "##a", "b", "c", "d",
          "e", "f", "g", "h", "café", "Café", "DÉCOR", "é", "##é", "手", "机", "red", ","};
}

std::string repeat(const std::string& s, size_t n) {
  std::string out;
  for (size_t i = 0; i < n; ++i) out += s;
  return out;
}

TEST(WordPieceTokenizer, MatchesHuggingFaceFixture) {
  DQE_REQUIRE_SHARED_FIXTURES();
  std::ifstream in(kFixtureDir + "/expected.json");
  ASSERT_TRUE(in) << "missing fixture " << kFixtureDir;
  const auto expected = nlohmann::json::parse(in);
  const auto tok = WordPieceTokenizer::from_file(kFixtureDir + "/vocab.txt", /*lower_case=*/true);
  ASSERT_FALSE(expected["cases"].empty());
  for (const auto& c : expected["cases"]) {
    const std::string query = c["query"], title = c["title"];
    SCOPED_TRACE("query: " + query + " | title: " + title);
    EXPECT_EQ(tok->tokenize(query), c["tokens_query"].get<std::vector<std::string>>());
    EXPECT_EQ(tok->tokenize(title), c["tokens_title"].get<std::vector<std::string>>());
    const Encoding enc = tok->encode_pair(query, title, c["max_len"].get<size_t>());
    EXPECT_EQ(enc.ids, c["input_ids"].get<std::vector<int64_t>>());
    EXPECT_EQ(enc.type_ids, c["token_type_ids"].get<std::vector<int64_t>>());
  }
}

TEST(WordPieceTokenizer, SpecialIdsComeFromTheVocab) {
  DQE_REQUIRE_SHARED_FIXTURES();
  const auto fixture = WordPieceTokenizer::from_file(kFixtureDir + "/vocab.txt", true);
  EXPECT_EQ(fixture->pad_id(), 0);
  EXPECT_EQ(fixture->unk_id(), 2);
  EXPECT_EQ(fixture->cls_id(), 3);
  EXPECT_EQ(fixture->sep_id(), 4);
  EXPECT_EQ(fixture->mask_id(), 5);
  EXPECT_EQ(fixture->kind(), "wordpiece");

  const WordPieceTokenizer small(small_vocab(), true);
  EXPECT_EQ(small.unk_id(), 0);
  EXPECT_EQ(small.cls_id(), 1);
  EXPECT_EQ(small.sep_id(), 2);
  EXPECT_EQ(small.pad_id(), 0);    // no [PAD]: 0
  EXPECT_EQ(small.mask_id(), -1);  // no [MASK]
  EXPECT_EQ(small.vocab_size(), static_cast<int64_t>(small_vocab().size()));
  EXPECT_EQ(small.id_to_piece(3), "un");
  EXPECT_EQ(small.id_to_piece(-1), "");
  EXPECT_EQ(small.id_to_piece(small.vocab_size()), "");
}

TEST(WordPieceTokenizer, MissingVocabFileThrowsModelErrorNamingIt) {
  const std::string path = "/nonexistent/dqe/vocab.txt";
  try {
    WordPieceTokenizer::from_file(path, true);
    FAIL() << "expected ModelError";
  } catch (const ModelError& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
}

TEST(WordPieceTokenizer, VocabWithoutRequiredTokenThrows) {
  test::TempDir dir;
  const std::string path = dir.path("vocab.txt");
  test::write_text(path, "[PAD]\n[UNK]\n[SEP]\nhello\n");
  try {
    WordPieceTokenizer::from_file(path, true);
    FAIL() << "expected ModelError";
  } catch (const ModelError& e) {
    EXPECT_EQ(std::string(e.what()), path + ": vocab lacks [CLS]");
  }
  EXPECT_THROW(WordPieceTokenizer({"[CLS]", "[SEP]"}, true), ModelError);  // no [UNK]
  EXPECT_THROW(WordPieceTokenizer({}, true), ModelError);
  test::write_text(path, "");
  EXPECT_THROW(WordPieceTokenizer::from_file(path, true), ModelError);
}

TEST(WordPieceTokenizer, ReadsVocabLinesAsPythonDoes) {
  test::TempDir dir;
  const std::string path = dir.path("vocab.txt");
  // CRLF and a lone CR end lines too, the last line has no newline, and a duplicate
  // token keeps its last id (Python's dict assignment).
  test::write_text(path, "[CLS]\r\n[SEP]\n[UNK]\rred\nblue\nred");
  const auto tok = WordPieceTokenizer::from_file(path, true);
  EXPECT_EQ(tok->vocab(), (std::vector<std::string>{"[CLS]", "[SEP]", "[UNK]", "red", "blue", "red"}));
  EXPECT_EQ(tok->encode("red blue"), (std::vector<int64_t>{5, 4}));
  EXPECT_EQ(tok->cls_id(), 0);
  EXPECT_EQ(tok->unk_id(), 2);
}

TEST(WordPieceTokenizer, GreedyLongestMatchFirst) {
  const WordPieceTokenizer tok(small_vocab(), true);
  EXPECT_EQ(tok.tokenize("unaffable"), (std::vector<std::string>{"unaff", "##able"}));
  EXPECT_EQ(tok.tokenize("unable"), (std::vector<std::string>{"un", "##able"}));
  // One unmatched part makes the whole word a single [UNK]; its neighbours are untouched.
  EXPECT_EQ(tok.tokenize("red unablez red"), (std::vector<std::string>{"red", "[UNK]", "red"}));
}

TEST(WordPieceTokenizer, UncasedLowersAndStripsAccents) {
  const WordPieceTokenizer tok(small_vocab(), true);
  EXPECT_EQ(tok.basic_tokenize("Café DÉCOR, RED"), (std::vector<std::string>{"cafe", "decor", ",", "red"}));
  EXPECT_EQ(tok.basic_tokenize("cafe\u0301"), (std::vector<std::string>{"cafe"}));
}

TEST(WordPieceTokenizer, CasedKeepsCaseAndAccents) {
  const WordPieceTokenizer tok(small_vocab(), /*lower_case=*/false);
  EXPECT_FALSE(tok.lower_case());
  EXPECT_EQ(tok.basic_tokenize("Café DÉCOR, RED"), (std::vector<std::string>{"Café", "DÉCOR", ",", "RED"}));
  // NFC still applies: e + combining acute is the same word as é.
  EXPECT_EQ(tok.tokenize("Cafe\u0301 DÉCOR café"), (std::vector<std::string>{"Café", "DÉCOR", "café"}));
}

TEST(WordPieceTokenizer, SplitsCjkCharactersAndPunctuation) {
  const WordPieceTokenizer tok(small_vocab(), true);
  EXPECT_EQ(tok.basic_tokenize("red手机,red"), (std::vector<std::string>{"red", "手", "机", ",", "red"}));
  EXPECT_EQ(tok.tokenize("手机red"), (std::vector<std::string>{"手", "机", "red"}));
}

TEST(WordPieceTokenizer, DropsControlCharactersAndSplitsOnUnicodeSpaces) {
  const WordPieceTokenizer tok(small_vocab(), true);
  // A dropped control character joins its neighbours; a no-break space separates them.
  EXPECT_EQ(tok.basic_tokenize("re\x07" "d\xC2\xA0" "b\te\u200Bf\uE000g"),
            (std::vector<std::string>{"red", "b", "efg"}));
  EXPECT_EQ(tok.basic_tokenize("bad\xFF" "byte"), (std::vector<std::string>{"badbyte"}));
}

TEST(WordPieceTokenizer, WordsOver100CharactersAreUnknown) {
  const WordPieceTokenizer tok(small_vocab(), /*lower_case=*/false);
  EXPECT_EQ(tok.encode(repeat("a", 100)).size(), 100u);
  EXPECT_EQ(tok.tokenize(repeat("a", 101)), (std::vector<std::string>{"[UNK]"}));
  // The limit counts characters, not bytes: 100 two-byte characters still split.
  EXPECT_EQ(tok.encode(repeat("é", 100)).size(), 100u);
  EXPECT_EQ(tok.tokenize(repeat("é", 101)), (std::vector<std::string>{"[UNK]"}));
}

// The pure-ASCII fast path must give what the general path gives: appending a
// non-ASCII word sends the same text down the general path.
TEST(WordPieceTokenizer, AsciiFastPathMatchesUnicodePath) {
  const std::string alphabet = std::string("aZ9 .,-'!\t\n\r\x01\x7F#[]") + '\0';
  uint32_t state = 12345;
  for (bool lower : {true, false}) {
    const WordPieceTokenizer tok(small_vocab(), lower);
    for (int i = 0; i < 2000; ++i) {
      std::string text;
      const size_t length = i % 24;
      for (size_t j = 0; j < length; ++j) {
        state = state * 1103515245u + 12345u;
        text.push_back(alphabet[(state >> 16) % alphabet.size()]);
      }
      std::vector<std::string> unicode = tok.basic_tokenize(text + " é");
      ASSERT_EQ(unicode.back(), lower ? "e" : "é");
      unicode.pop_back();
      ASSERT_EQ(tok.basic_tokenize(text), unicode) << "text: " << nlohmann::json(text).dump();
    }
  }
}

TEST(WordPieceTokenizer, SaveRoundTrip) {
  test::TempDir dir;
  const WordPieceTokenizer tok(small_vocab(), true);
  EXPECT_EQ(tok.save(dir.path()), "vocab.txt");
  const auto loaded = WordPieceTokenizer::from_file(dir.path("vocab.txt"), true);
  EXPECT_EQ(loaded->vocab(), tok.vocab());
  for (const char* text : {"unaffable red", "Café 手机", "abc d,e"}) {
    EXPECT_EQ(loaded->encode(text), tok.encode(text)) << text;
  }
  EXPECT_THROW(WordPieceTokenizer({"[UNK]", "[CLS]", "[SEP]", "two\nlines"}, true), ModelError);
}

TEST(Tokenizer, EncodePairTruncatesLongestFirst) {
  const WordPieceTokenizer tok(small_vocab(), true);
  const int64_t cls = tok.cls_id(), sep = tok.sep_id();
  const std::vector<int64_t> a = {10, 11, 12, 13, 14}, b = {20, 21, 22};

  // Budget 5: a loses two (5>3, 4>3), then the sides are equal and b loses one.
  Encoding enc = tok.encode_pair_ids(a, b, 8);
  EXPECT_EQ(enc.ids, (std::vector<int64_t>{cls, 10, 11, 12, sep, 20, 21, sep}));
  EXPECT_EQ(enc.type_ids, (std::vector<int64_t>{0, 0, 0, 0, 0, 1, 1, 1}));

  enc = tok.encode_pair_ids(a, b, 100);  // fits: nothing dropped
  EXPECT_EQ(enc.ids.size(), a.size() + b.size() + 3);

  enc = tok.encode_pair_ids(a, b, 3);
  EXPECT_EQ(enc.ids, (std::vector<int64_t>{cls, sep, sep}));
  EXPECT_EQ(enc.type_ids, (std::vector<int64_t>{0, 0, 1}));

  enc = tok.encode_pair_ids({}, b, 4);
  EXPECT_EQ(enc.ids, (std::vector<int64_t>{cls, sep, 20, sep}));

  EXPECT_THROW(tok.encode_pair_ids(a, b, 2), ConfigError);
  EXPECT_THROW(tok.encode_pair("a", "b", 0), ConfigError);

  // Same rule on text: [red a] and [手 b c] in a budget of 3 keep [red a] and [手].
  enc = tok.encode_pair("red a", "手 b c", 6);
  EXPECT_EQ(enc.ids, tok.encode_pair_ids(tok.encode("red a"), tok.encode("手"), 100).ids);
}

TEST(Tokenizer, LoadTokenizerFindsTheVocabFile) {
  DQE_REQUIRE_SHARED_FIXTURES();
  const auto tok = load_tokenizer(kFixtureDir, true);
  EXPECT_EQ(tok->kind(), "wordpiece");
  EXPECT_EQ(tok->vocab_size(), WordPieceTokenizer::from_file(kFixtureDir + "/vocab.txt", true)->vocab_size());
  EXPECT_EQ(load_tokenizer_file(kFixtureDir + "/vocab.txt", true)->kind(), "wordpiece");

  test::TempDir empty;
  try {
    load_tokenizer(empty.path(), true);
    FAIL() << "expected ModelError";
  } catch (const ModelError& e) {
    EXPECT_NE(std::string(e.what()).find(empty.path()), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace dqe
