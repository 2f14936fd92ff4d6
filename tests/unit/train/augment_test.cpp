// Training-time noise (--augment): what each kind does to a hand-made record, by construction.
#include "train/augment.h"

#include <gtest/gtest.h>

#include <map>
#include <sstream>

namespace dqe::training {
namespace {

std::vector<std::string> words_of(const std::string& text) {
  std::istringstream in(text);
  std::vector<std::string> out;
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

Record make_record() {
  Record r;
  r.query = "cordless drill";
  r.text = "Ryobi 18V Lithium Impact Driver Kit";
  r.label_kind = LabelKind::kNumber;
  r.label_number = 1.0;
  return r;
}

TEST(AugmentTest, EachKindChangesTheTextAsItSaysAndKeepsTheLabel) {
  const Record r = make_record();
  const std::vector<std::string> original = words_of(r.text);
  std::map<Augmentation, int> seen;
  std::mt19937_64 rng(1);
  for (int k = 0; k < 300; ++k) {
    Augmentation what = Augmentation::kNone;
    const Record a = augment_record(r, /*irrelevant=*/k % 2 == 0, rng, &what);
    ++seen[what];
    EXPECT_EQ(a.label_number, 1.0);
    EXPECT_EQ(a.query, r.query);
    const std::vector<std::string> words = words_of(a.text);
    if (what == Augmentation::kQueryInsertion) {
      ASSERT_EQ(k % 2, 0) << "query words go into irrelevant results only";
      ASSERT_GE(words.size(), original.size() + 1);
      ASSERT_LE(words.size(), original.size() + 3);
      // Removing the inserted query words gives the original back.
      std::vector<std::string> rest;
      for (const auto& w : words)
        if (w != "cordless" && w != "drill") rest.push_back(w);
      EXPECT_EQ(rest, original);
    } else if (what == Augmentation::kDuplicate) {
      ASSERT_EQ(words.size(), original.size() + 1);
      bool doubled = false;
      for (size_t i = 0; i + 1 < words.size(); ++i) doubled |= words[i] == words[i + 1];
      EXPECT_TRUE(doubled) << a.text;
    } else {
      ASSERT_EQ(what, Augmentation::kTypo);
      ASSERT_EQ(words.size(), original.size());
      int changed = 0;
      for (size_t i = 0; i < words.size(); ++i) {
        if (words[i] == original[i]) continue;
        ++changed;
        const long diff = static_cast<long>(words[i].size()) - static_cast<long>(original[i].size());
        EXPECT_LE(std::abs(diff), 1) << words[i] << " from " << original[i];
      }
      EXPECT_LE(changed, 1) << a.text;  // a swap of two equal letters changes nothing
    }
  }
  EXPECT_GT(seen[Augmentation::kQueryInsertion], 40);
  EXPECT_GT(seen[Augmentation::kDuplicate], 40);
  EXPECT_GT(seen[Augmentation::kTypo], 40);
}

TEST(AugmentTest, SameSeedSameNoise) {
  std::mt19937_64 a(9), b(9);
  for (int k = 0; k < 20; ++k) EXPECT_EQ(augment_record(make_record(), true, a).text, augment_record(make_record(), true, b).text);
}

}  // namespace
}  // namespace dqe::training
