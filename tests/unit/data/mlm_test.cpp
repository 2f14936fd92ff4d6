#include "data/mlm.h"

#include <gtest/gtest.h>

#include "dqe/errors.h"
#include "text/wordpiece_tokenizer.h"

namespace dqe {
namespace {

// [PAD] [UNK] [CLS] [SEP] [MASK], then words and continuation pieces.
WordPieceTokenizer make_tokenizer() {
  return WordPieceTokenizer({"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "red", "oak", "chair", "table", "lamp",
                             "steel", "drill", "##s", "##ing", "##er", "set", "blue", "rug", "hose", "large"},
                            true);
}

std::vector<int64_t> sequence(const Tokenizer& tok, const std::string& text) {
  std::vector<int64_t> ids{tok.cls_id()};
  for (int64_t id : tok.encode(text)) ids.push_back(id);
  ids.push_back(tok.sep_id());
  return ids;
}

TEST(Masking, ChoosesFifteenPercentSplitEightyTenTen) {
  WordPieceTokenizer tok = make_tokenizer();
  const MaskingVocab vocab = MaskingVocab::from_tokenizer(tok);
  const std::vector<int64_t> ids =
      sequence(tok, "red oak chair table lamp steel drill set blue rug hose large red oak chair table lamp steel drill set");
  std::mt19937_64 rng(7);
  int64_t maskable = 0, chosen = 0, as_mask = 0, as_same = 0, as_other = 0;
  for (int n = 0; n < 3000; ++n) {
    MaskedSequence m = mask_sequence(ids, vocab, MaskingOptions(), rng);
    ASSERT_EQ(m.ids.size(), ids.size());
    for (size_t i = 0; i < ids.size(); ++i) {
      if (i > 0 && i + 1 < ids.size()) ++maskable;
      if (m.labels[i] == kIgnoreLabel) {
        EXPECT_EQ(m.ids[i], ids[i]) << "an unchosen token changed";
        continue;
      }
      ++chosen;
      EXPECT_EQ(m.labels[i], ids[i]);
      if (m.ids[i] == tok.mask_id()) ++as_mask;
      else if (m.ids[i] == ids[i]) ++as_same;
      else ++as_other;
    }
  }
  EXPECT_NEAR(static_cast<double>(chosen) / maskable, 0.15, 0.005);
  EXPECT_NEAR(static_cast<double>(as_mask) / chosen, 0.8, 0.02);
  // A random draw can hit the original token (1 in 15 here), so "kept" is a little above 10%.
  EXPECT_NEAR(static_cast<double>(as_same) / chosen, 0.1 + 0.1 / 15, 0.02);
  EXPECT_NEAR(static_cast<double>(as_other) / chosen, 0.1 - 0.1 / 15, 0.02);
}

TEST(Masking, NeverTouchesOrDrawsSpecialTokens) {
  WordPieceTokenizer tok = make_tokenizer();
  const MaskingVocab vocab = MaskingVocab::from_tokenizer(tok);
  std::vector<int64_t> ids = sequence(tok, "red chair");
  ids.push_back(tok.pad_id());
  MaskingOptions options;
  options.mask_prob = 0.9;
  options.mask_token_fraction = 0.0;  // every chosen token becomes random or stays
  std::mt19937_64 rng(3);
  for (int n = 0; n < 500; ++n) {
    MaskedSequence m = mask_sequence(ids, vocab, options, rng);
    EXPECT_EQ(m.labels.front(), kIgnoreLabel);
    EXPECT_EQ(m.labels[3], kIgnoreLabel);
    EXPECT_EQ(m.labels.back(), kIgnoreLabel);
    for (int64_t id : m.ids) {
      if (id == tok.cls_id() || id == tok.sep_id() || id == tok.pad_id()) continue;
      EXPECT_NE(id, tok.mask_id());
    }
    EXPECT_EQ(m.ids.front(), tok.cls_id());
    EXPECT_EQ(m.ids[3], tok.sep_id());
  }
}

TEST(Masking, ShortSequencesGetOnePredictionAndEmptyOnesNone) {
  WordPieceTokenizer tok = make_tokenizer();
  const MaskingVocab vocab = MaskingVocab::from_tokenizer(tok);
  std::mt19937_64 rng(1);
  MaskedSequence one = mask_sequence(sequence(tok, "lamp"), vocab, MaskingOptions(), rng);
  EXPECT_EQ(one.labels[1], tok.encode("lamp")[0]);
  MaskedSequence none = mask_sequence({tok.cls_id(), tok.sep_id()}, vocab, MaskingOptions(), rng);
  EXPECT_EQ(none.labels, std::vector<int64_t>(2, kIgnoreLabel));
}

TEST(Masking, WholeWordMasksAllPiecesOfAWordTogether) {
  WordPieceTokenizer tok = make_tokenizer();
  const MaskingVocab vocab = MaskingVocab::from_tokenizer(tok);
  const std::vector<int64_t> ids = sequence(tok, "drilling chairs lamps reder steel oak tables rugs hoses");
  // "drilling" = drill ##ing: a word of two pieces at positions 1-2.
  ASSERT_EQ(tok.id_to_piece(ids[2]), "##ing");
  MaskingOptions options;
  options.whole_word = true;
  options.mask_prob = 0.3;
  std::mt19937_64 rng(11);
  int words_split = 0, drilling_chosen = 0;
  for (int n = 0; n < 400; ++n) {
    MaskedSequence m = mask_sequence(ids, vocab, options, rng);
    for (size_t i = 1; i + 1 < ids.size(); ++i)
      if (vocab.continues_word[ids[i]] && (m.labels[i] == kIgnoreLabel) != (m.labels[i - 1] == kIgnoreLabel)) ++words_split;
    if (m.labels[1] != kIgnoreLabel) ++drilling_chosen;
  }
  EXPECT_EQ(words_split, 0);
  EXPECT_GT(drilling_chosen, 0);
}

TEST(Masking, SameSeedSameMasks) {
  WordPieceTokenizer tok = make_tokenizer();
  const MaskingVocab vocab = MaskingVocab::from_tokenizer(tok);
  const auto ids = sequence(tok, "red oak chair table lamp steel drill set blue rug");
  std::mt19937_64 a(5), b(5), c(6);
  const MaskedSequence x = mask_sequence(ids, vocab, MaskingOptions(), a);
  const MaskedSequence y = mask_sequence(ids, vocab, MaskingOptions(), b);
  EXPECT_EQ(x.ids, y.ids);
  EXPECT_EQ(x.labels, y.labels);
  bool differs = false;
  for (int n = 0; n < 20 && !differs; ++n) differs = mask_sequence(ids, vocab, MaskingOptions(), c).labels != x.labels;
  EXPECT_TRUE(differs);
}

TEST(Masking, VocabularyWithoutMaskTokenIsAnError) {
  WordPieceTokenizer tok({"[PAD]", "[UNK]", "[CLS]", "[SEP]", "red"}, true);
  EXPECT_THROW(MaskingVocab::from_tokenizer(tok), ModelError);
}

}  // namespace
}  // namespace dqe
