// normalize_text on hand-made lines: each trick undone, legitimate text left as it is.
#include "text/normalize.h"

#include <gtest/gtest.h>

namespace dqe {
namespace {

TEST(NormalizeTest, FoldsACyrillicLetterInALatinWord) {
  TextFindings f;
  // "\u0430" is CYRILLIC SMALL LETTER A.
  EXPECT_EQ(normalize_text("\xD0\xB0pple iPhone case", &f), "apple iPhone case");
  EXPECT_EQ(f.lookalikes, 1);
  EXPECT_EQ(f.mixed_words, 1);
  EXPECT_EQ(f.invisible, 0);
  // Greek capital Rho and small omicron in "Pro"; the capital Iota imitates "I".
  EXPECT_EQ(normalize_text("\xCE\xA1r\xCE\xBF Drill \xCE\x99KEA"), "Pro Drill IKEA");
}

TEST(NormalizeTest, RemovesInvisibleAndControlCharacters) {
  TextFindings f;
  // Zero-width space, soft hyphen, right-to-left override, zero-width joiner, a BEL control.
  EXPECT_EQ(normalize_text("dri\xE2\x80\x8Bll b\xC2\xADit \xE2\x80\xAEset\xE2\x80\x8D\x07", &f), "drill bit set");
  EXPECT_EQ(f.invisible, 5);
  EXPECT_EQ(normalize_text("a\tb\nc"), "a b c");  // whitespace controls become spaces
  EXPECT_TRUE(is_invisible(0x200B));
  EXPECT_TRUE(is_invisible(0xFEFF));
  EXPECT_FALSE(is_invisible('a'));
  EXPECT_FALSE(is_invisible(0x00E9));
}

TEST(NormalizeTest, AppliesNfkc) {
  TextFindings f;
  EXPECT_EQ(normalize_text("\xEF\xBD\x86\xEF\xBD\x95\xEF\xBD\x8C\xEF\xBD\x8C width", &f), "full width");  // fullwidth
  EXPECT_TRUE(f.compatibility);
  EXPECT_EQ(normalize_text("\xF0\x9D\x90\x9A\xF0\x9D\x90\x9B"), "ab");  // mathematical bold a, b
}

TEST(NormalizeTest, LeavesLegitimateTextUnchanged) {
  for (const char* text : {"2-pack 2 in. x 4 in. Wood Stud", "Caf\xC3\xA9 cr\xC3\xA8me 1/2 in. PVC (10-Pack)",
                           "Whirlpool 1.9 cu. ft. Over the Range Microwave", "l I 0 O rn m",
                           "\xD0\xB4\xD0\xBE\xD0\xBC",  // "дом": Cyrillic with a letter that imitates none
                           "\xE6\x97\xA5\xE6\x9C\xAC\xE3\x81\xAE"}) {
    TextFindings f;
    EXPECT_EQ(normalize_text(text, &f), text);
    EXPECT_FALSE(f.changed()) << text;
    EXPECT_EQ(f.mixed_words, 0) << text;
  }
}

TEST(NormalizeTest, AnalyseFindsWhatNormalizeFinds) {
  const char* text = "s\xD0\xB0w\xE2\x80\x8B bl\xD0\xB0" "de";
  TextFindings a = analyse_text(text), n;
  normalize_text(text, &n);
  EXPECT_EQ(a.invisible, 1);
  EXPECT_EQ(a.lookalikes, 2);
  EXPECT_EQ(a.invisible, n.invisible);
  EXPECT_EQ(a.lookalikes, n.lookalikes);
  EXPECT_EQ(a.mixed_words, n.mixed_words);
}

}  // namespace
}  // namespace dqe
