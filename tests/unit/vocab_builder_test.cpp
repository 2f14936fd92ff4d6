#include "dqe/vocab_builder.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include "dqe/errors.h"
#include "dqe/wordpiece_tokenizer.h"

namespace dqe {
namespace {

const std::vector<std::string> kSpecials = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};

// Queries and titles with repeated words, accents, CJK and punctuation.
std::vector<std::string> corpus() {
  const std::vector<std::string> words = {"cordless", "drill", "bracket", "shower", "head",  "paint",
                                          "brush",    "deck",  "stain",   "faucet", "light", "café"};
  std::vector<std::string> texts;
  for (size_t i = 0; i < 300; ++i) {
    texts.push_back(words[i % words.size()] + " " + words[(i * 5 + 1) % words.size()] + " " +
                    std::to_string(i % 17) + "-in. (" + words[(i * 7 + 3) % words.size()] + ")");
  }
  texts.push_back("DÉCOR 手机壳 Ωmega naïve");
  return texts;
}

std::vector<std::string> tail(const std::vector<std::string>& vocab, size_t from) {
  return {vocab.begin() + static_cast<std::ptrdiff_t>(from), vocab.end()};
}

TEST(VocabBuilder, SpecialTokensFirstAndAllTokensUnique) {
  VocabBuilderOptions options;
  options.vocab_size = 150;
  const std::vector<std::string> vocab = build_wordpiece_vocab(corpus(), options);
  ASSERT_GE(vocab.size(), kSpecials.size());
  EXPECT_EQ(std::vector<std::string>(vocab.begin(), vocab.begin() + 5), kSpecials);
  EXPECT_EQ(std::set<std::string>(vocab.begin(), vocab.end()).size(), vocab.size());
}

TEST(VocabBuilder, MergesTheMostFrequentPairFirst) {
  VocabBuilderOptions options;
  options.vocab_size = 100;
  // "ab" x3 beats "ac" x1, which is below min_frequency 2; both characters forms come first.
  std::vector<std::string> expected = {"a", "b", "c", "##a", "##b", "##c", "ab"};
  EXPECT_EQ(tail(build_wordpiece_vocab({"ab ab", "ab ac"}, options), 5), expected);

  // Equal counts: the pair whose pieces sort first by bytes merges first.
  expected = {"a", "b", "x", "##a", "##b", "##x", "xa", "xb"};
  EXPECT_EQ(tail(build_wordpiece_vocab({"xb xa", "xb xa"}, options), 5), expected);

  // Merged continuations keep one "##"; then the word start joins them.
  expected = {"a", "b", "c", "##a", "##b", "##c", "##bc", "abc"};
  EXPECT_EQ(tail(build_wordpiece_vocab({"abc abc abc"}, options), 5), expected);
}

TEST(VocabBuilder, CoversEveryCharacterSoTrainingTextsHaveNoUnknown) {
  VocabBuilderOptions options;
  options.vocab_size = 120;
  const std::vector<std::string> texts = corpus();
  const WordPieceTokenizer tok(build_wordpiece_vocab(texts, options), options.lower_case);
  for (const std::string& text : texts) {
    const std::vector<int64_t> ids = tok.encode(text);
    EXPECT_EQ(std::count(ids.begin(), ids.end(), tok.unk_id()), 0) << text;
  }
  // Both forms of every character: "m" was only seen inside words, "ω" only at their start.
  const std::vector<int64_t> ids = tok.encode("mω");
  EXPECT_EQ(std::count(ids.begin(), ids.end(), tok.unk_id()), 0);
}

TEST(VocabBuilder, FrequentWordsBecomeWholeTokens) {
  VocabBuilderOptions options;
  options.vocab_size = 400;
  const WordPieceTokenizer tok(build_wordpiece_vocab(corpus(), options), options.lower_case);
  EXPECT_EQ(tok.tokenize("Cordless DRILL shower head"),
            (std::vector<std::string>{"cordless", "drill", "shower", "head"}));
  EXPECT_EQ(tok.tokenize("café"), (std::vector<std::string>{"cafe"}));
}

TEST(VocabBuilder, CasedKeepsCaseAndAccents) {
  VocabBuilderOptions options;
  options.vocab_size = 400;
  options.lower_case = false;
  const std::vector<std::string> vocab = build_wordpiece_vocab({"Drill Drill Drill café café"}, options);
  EXPECT_NE(std::find(vocab.begin(), vocab.end(), "Drill"), vocab.end());
  EXPECT_NE(std::find(vocab.begin(), vocab.end(), "café"), vocab.end());
  EXPECT_EQ(std::find(vocab.begin(), vocab.end(), "drill"), vocab.end());
}

TEST(VocabBuilder, RespectsVocabSize) {
  VocabBuilderOptions options;
  // The corpus has 83 special and character tokens and supports 138 in all.
  for (int64_t size : {90, 110, 130}) {
    options.vocab_size = size;
    EXPECT_EQ(build_wordpiece_vocab(corpus(), options).size(), static_cast<size_t>(size));
  }
  // Too few pairs reach min_frequency: only special tokens and characters.
  options.vocab_size = 1000;
  options.min_frequency = 1000000;
  const std::vector<std::string> chars_only = build_wordpiece_vocab(corpus(), options);
  EXPECT_LT(chars_only.size(), 1000u);
  for (const std::string& token : tail(chars_only, 5)) {
    const size_t start = token.rfind("##", 0) == 0 ? 2 : 0;
    EXPECT_LE(token.size() - start, 3u) << token;  // one UTF-8 character
  }

  options.vocab_size = 5;
  EXPECT_THROW(build_wordpiece_vocab(corpus(), options), ConfigError);
}

TEST(VocabBuilder, DeterministicAndIndependentOfTextOrder) {
  VocabBuilderOptions options;
  options.vocab_size = 200;
  std::vector<std::string> texts = corpus();
  const std::vector<std::string> first = build_wordpiece_vocab(texts, options);
  EXPECT_EQ(build_wordpiece_vocab(texts, options), first);
  std::reverse(texts.begin(), texts.end());
  EXPECT_EQ(build_wordpiece_vocab(texts, options), first);
}

}  // namespace
}  // namespace dqe
