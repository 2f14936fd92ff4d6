// Suspect detection's text signals on hand-made lines, the undoing of manipulations, and the
// calibration of thresholds on synthetic distributions whose false-positive rate is known.
#include "infer/detect.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

namespace dqe {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
enum { kRepetition, kDensity, kInvisible, kMixedScript, kConfusables };

SignalValues signals_of(const std::string& query, const std::string& text) {
  Record r;
  r.query = query;
  r.text = text;
  SignalValues v;
  v.fill(kNaN);
  text_signals(r, v);
  return v;
}

TEST(DetectTest, StuffedTitleRepeatsQueryWords) {
  const SignalValues v = signals_of("cordless drill", "Ryobi 18V Cordless Drill Kit drill drill cordless drill cordless");
  // drill 4 times (3 beyond the first), cordless 3 (2), and "drill drill" back to back (1).
  EXPECT_EQ(v[kRepetition], 6);
  EXPECT_DOUBLE_EQ(v[kDensity], 7.0 / 10.0);  // 7 of its 10 words are query words
  EXPECT_EQ(v[kInvisible], 0);
  EXPECT_EQ(v[kMixedScript], 0);
  const SignalValues clean = signals_of("cordless drill", "Ryobi 18V Cordless Drill Kit");
  EXPECT_EQ(clean[kRepetition], 0);
  EXPECT_DOUBLE_EQ(clean[kDensity], 2.0 / 5.0);
}

TEST(DetectTest, OneQueryWordStuffedBackToBackCountsEachRepeatTwice) {
  // Beyond its first occurrence, and back to back: a title with the word twice apart counts 1.
  EXPECT_EQ(signals_of("upholstry", "Upholstery Nail Antique Brass upholstry upholstry upholstry")[kRepetition], 4);
  EXPECT_EQ(signals_of("paint", "Paint Roller Cover for Paint")[kRepetition], 1);
  // Back to back counts words of any kind ("x x x" after numbers).
  EXPECT_EQ(signals_of("20 x 25 x 4", "Pleated Filter 20 20 x x 25")[kRepetition], 2);
}

TEST(DetectTest, LegitimateRepeatsAreNotRepetition) {
  // Numbers and units repeat in real titles; only content words count.
  const SignalValues v = signals_of("2 in x 4 in stud", "2-pack 2 in. x 4 in. x 8 ft. Stud");
  EXPECT_EQ(v[kRepetition], 0);
  SignalValues thresholds;
  thresholds.fill(std::numeric_limits<double>::infinity());
  thresholds[kRepetition] = 1;  // a threshold a calibration could give: flags 2 repeats or more
  EXPECT_TRUE(suspect_reasons(v, thresholds).empty());
  const SignalValues stuffed = signals_of("2 in x 4 in stud", "2-pack 2 in. x 4 in. Stud stud stud stud");
  EXPECT_EQ(suspect_reasons(stuffed, thresholds), std::vector<std::string>{"keyword_repetition"});
}

TEST(DetectTest, CyrillicLetterInALatinWordIsMixedScriptAndConfusable) {
  const SignalValues v = signals_of("drill", "Makita dr\xD1\x96ll bit set");  // CYRILLIC SMALL LETTER I
  EXPECT_EQ(v[kMixedScript], 1);
  EXPECT_EQ(v[kConfusables], 1);
  EXPECT_EQ(v[kInvisible], 0);
  SignalValues zero;
  zero.fill(0);
  EXPECT_EQ(suspect_reasons(v, zero), (std::vector<std::string>{"mixed_script", "confusables"}));
}

TEST(DetectTest, ZeroWidthSpaceIsInvisible) {
  const SignalValues v = signals_of("drill bit", "drill\xE2\x80\x8B bit set");
  EXPECT_EQ(v[kInvisible], 1);
  EXPECT_EQ(v[kMixedScript], 0);
  const SignalValues clean = signals_of("drill bit", "drill bit set");
  EXPECT_EQ(clean[kInvisible], 0);
}

TEST(DetectTest, UndoRemovesRepeatsFoldsAndDropsInvisibles) {
  EXPECT_EQ(undo_manipulation("cordless drill", "Ryobi Cordless Drill Kit drill drill cordless"), "Ryobi Cordless Drill Kit");
  EXPECT_EQ(undo_manipulation("drill", "dr\xD1\x96ll\xE2\x80\x8B bit"), "drill bit");
  // A clean title comes back as it was.
  EXPECT_EQ(undo_manipulation("2 in x 4 in stud", "2-pack 2 in. x 4 in. x 8 ft. Stud"), "2-pack 2 in. x 4 in. x 8 ft. Stud");
}

// Draws of three signals: continuous, heavy-tailed, and mostly zero (as invisible characters
// are on clean data); the rest are absent (NaN).
std::vector<SignalValues> synthetic(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal(0, 1);
  std::exponential_distribution<double> exponential(1);
  std::bernoulli_distribution rare(0.002);
  std::poisson_distribution<int> count(2);
  std::vector<SignalValues> out(n);
  for (auto& v : out) {
    v.fill(kNaN);
    v[0] = normal(rng);
    v[1] = exponential(rng);
    v[2] = rare(rng) ? 1 + count(rng) : 0;
  }
  return out;
}

double flagged_fraction(const std::vector<SignalValues>& lines, const SignalValues& thresholds) {
  size_t k = 0;
  for (const auto& v : lines) k += !suspect_reasons(v, thresholds).empty();
  return static_cast<double>(k) / static_cast<double>(lines.size());
}

TEST(DetectTest, CalibrationHitsItsFalsePositiveRateOnFreshDraws) {
  for (double fpr : {0.01, 0.05}) {
    const Calibration c = calibrate(synthetic(20000, 1), fpr);
    EXPECT_LE(c.achieved, fpr);
    EXPECT_GE(c.achieved, 0.95 * fpr);
    // New draws of the same distribution: the rate holds within sampling error.
    const double fresh = flagged_fraction(synthetic(20000, 2), c.thresholds);
    EXPECT_NEAR(fresh, fpr, 0.25 * fpr) << "fpr " << fpr;
    // The mostly-zero signal flags any non-zero value (0.2% of lines fit in the budget).
    EXPECT_EQ(c.thresholds[2], 0);
    EXPECT_TRUE(std::isinf(c.thresholds[3]));  // absent: never flags
  }
}

TEST(DetectTest, CalibrationOfAShiftedDistributionDetectsTheShift) {
  const Calibration c = calibrate(synthetic(20000, 3), 0.01);
  std::vector<SignalValues> shifted = synthetic(5000, 4);
  for (auto& v : shifted) v[1] += 6;  // far in the exponential's tail
  EXPECT_GT(flagged_fraction(shifted, c.thresholds), 0.99);
}

}  // namespace
}  // namespace dqe
