#include "dqe/vocab_builder.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include "dqe/errors.h"
#include "test_util.h"
#include "text/sentencepiece_tokenizer.h"
#include "text/wordpiece_tokenizer.h"

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


// `dqe tokenizer train`: files in, a loadable tokenizer directory out.
class TrainTokenizer : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string text;
    for (int round = 0; round < 20; ++round)
      for (const auto& line : corpus()) text += line + "\n";
    test::write_text(dir_.path("a.txt"), text);
    test::write_text(dir_.path("b.txt"), "\n\nCordless Drills and Drill Bits\n");
    config_.corpus = {dir_.path("a.txt"), dir_.path("b.txt")};
    config_.out_dir = dir_.path("tok");
    config_.vocab_size = 300;
  }
  test::TempDir dir_;
  TokenizerTrainConfig config_;
};

TEST_F(TrainTokenizer, WordPieceWritesAVocabThatLoadsAndEncodesTheCorpus) {
  TokenizerTrainResult r = train_tokenizer(config_);
  EXPECT_EQ(r.path, dir_.path("tok/vocab.txt"));
  EXPECT_EQ(r.lines, static_cast<int64_t>(corpus().size()) * 20 + 1);
  auto tok = load_tokenizer(config_.out_dir, true);
  EXPECT_EQ(tok->vocab_size(), r.vocab_size);
  EXPECT_EQ(tok->id_to_piece(tok->mask_id()), "[MASK]");
  for (const auto& line : corpus())
    for (int64_t id : tok->encode(line)) EXPECT_NE(id, tok->unk_id()) << line;
  // Same as building the vocabulary in memory.
  std::vector<std::string> texts;
  for (int round = 0; round < 20; ++round)
    for (const auto& line : corpus()) texts.push_back(line);
  texts.push_back("Cordless Drills and Drill Bits");
  VocabBuilderOptions options;
  options.vocab_size = 300;
  const auto expected = build_wordpiece_vocab(texts, options);
  for (size_t i = 0; i < expected.size(); ++i) EXPECT_EQ(tok->id_to_piece(static_cast<int64_t>(i)), expected[i]);
  EXPECT_NE(test::read_text(dir_.path("tok/tokenizer_config.json")).find("\"do_lower_case\": true"), std::string::npos);
}

TEST_F(TrainTokenizer, UnigramAndBpeWriteSentencePieceModelsWithBertSpecials) {
  for (const char* type : {"unigram", "bpe"}) {
    config_.type = type;
    config_.out_dir = dir_.path(std::string("tok-") + type);
    TokenizerTrainResult r = train_tokenizer(config_);
    SentencePieceTokenizer tok(r.path);
    EXPECT_EQ(tok.vocab_size(), r.vocab_size);
    EXPECT_LE(r.vocab_size, 300);
    EXPECT_EQ(tok.id_to_piece(tok.mask_id()), "[MASK]") << type;
    EXPECT_EQ(tok.id_to_piece(tok.cls_id()), "[CLS]") << type;
    // Lower-cased by default, so case does not change the ids.
    EXPECT_EQ(tok.encode("Cordless DRILL"), tok.encode("cordless drill")) << type;
  }
}

TEST_F(TrainTokenizer, BadInputsAreNamedErrorsAndLeaveNoOutput) {
  config_.corpus.push_back(dir_.path("missing.txt"));
  try {
    train_tokenizer(config_);
    FAIL();
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("missing.txt"), std::string::npos);
  }
  EXPECT_FALSE(std::filesystem::exists(dir_.path("tok/vocab.txt")));
  config_.corpus = {dir_.path("b.txt")};
  config_.type = "bytes";
  EXPECT_THROW(train_tokenizer(config_), ConfigError);
  config_.type = "wordpiece";
  config_.vocab_size = 5;
  EXPECT_THROW(train_tokenizer(config_), ConfigError);
}

// A tokenizer is what a model's ids mean: training another into the same directory is
// refused, and the first stays as it was.
TEST_F(TrainTokenizer, AnExistingTokenizerIsNotReplaced) {
  config_.corpus = {dir_.path("b.txt")};
  train_tokenizer(config_);
  const std::string vocab = test::read_text(dir_.path("tok/vocab.txt"));
  config_.vocab_size = 40;
  for (const char* type : {"wordpiece", "unigram"}) {
    config_.type = type;
    try {
      train_tokenizer(config_);
      FAIL() << type << " replaced an existing vocab.txt";
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find("already holds vocab.txt"), std::string::npos) << e.what();
    }
  }
  EXPECT_EQ(test::read_text(dir_.path("tok/vocab.txt")), vocab);
  EXPECT_FALSE(std::filesystem::exists(dir_.path("tok/tokenizer.model")));
}

}  // namespace
}  // namespace dqe
