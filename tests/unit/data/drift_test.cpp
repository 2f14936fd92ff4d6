#include "data/drift.h"

#include <gtest/gtest.h>

#include <cmath>

#include "dqe/errors.h"

namespace dqe {
namespace {

TEST(Drift, QuantileBinsOfTheDevScores) {
  std::vector<double> scores;
  for (int i = 0; i < 100; ++i) scores.push_back(i);  // 0..99
  ScoreReference r = make_score_reference(scores, 4);
  EXPECT_EQ(r.edges, (std::vector<double>{24.5, 49.5, 74.5}));  // halfway below quantiles 25, 50, 75
  EXPECT_EQ(r.fractions, (std::vector<double>{0.25, 0.25, 0.25, 0.25}));
  EXPECT_EQ(r.bin_of(-5), 0u);
  EXPECT_EQ(r.bin_of(24.4), 0u);
  EXPECT_EQ(r.bin_of(24.5), 1u);  // edges are inclusive on the left of their bin
  EXPECT_EQ(r.bin_of(1000), 3u);
}

TEST(Drift, TiedScoresMergeBins) {
  ScoreReference r = make_score_reference({1, 1, 1, 1, 2, 2, 2, 2}, 4);
  // Quantiles 1, 2, 2: nothing lies below 1, so the only edge is halfway between 1 and 2.
  EXPECT_EQ(r.edges, (std::vector<double>{1.5}));
  EXPECT_EQ(r.fractions, (std::vector<double>{0.5, 0.5}));
}

// A model evaluated in bf16 gives tied dev scores (bf16 steps of 1/64 in [2, 4)); the same
// model scored in fp32 gives scores a rounding away from them. That is not drift.
TEST(Drift, RoundingOfTiedScoresIsNotDrift) {
  std::vector<double> dev;
  for (int i = 0; i < 1000; ++i) dev.push_back(2.375 + (i % 10 == 0 ? 1.0 / 64 : 0.0) - (i % 7 == 0 ? 1.0 / 64 : 0.0));
  ScoreReference r = make_score_reference(dev, 10);
  for (double shift : {-1e-3, 1e-3}) {
    std::vector<int64_t> counts(r.fractions.size(), 0);
    for (double s : dev) ++counts[r.bin_of(s + shift)];
    EXPECT_LT(population_stability_index(r, counts), 1e-9) << "shift " << shift;
  }
  // A real move of the scores still shows, over the default --psi-warn of 0.2.
  std::vector<int64_t> counts(r.fractions.size(), 0);
  for (double s : dev) ++counts[r.bin_of(s + 2.0 / 64)];
  EXPECT_GT(population_stability_index(r, counts), 0.2);
}

TEST(Drift, PsiByHand) {
  ScoreReference r;
  r.edges = {0.5};
  r.fractions = {0.5, 0.5};
  EXPECT_NEAR(population_stability_index(r, {50, 50}), 0.0, 1e-12);
  // (0.8 - 0.5) ln(0.8/0.5) + (0.2 - 0.5) ln(0.2/0.5) = 0.3*0.470004 + 0.3*0.916291 = 0.415888
  EXPECT_NEAR(population_stability_index(r, {80, 20}), 0.415888, 1e-6);
  // An empty bin is floored at 1e-4: (1-0.5) ln(1/0.5) + (1e-4-0.5) ln(1e-4/0.5)
  EXPECT_NEAR(population_stability_index(r, {10, 0}), 0.5 * std::log(2.0) + (1e-4 - 0.5) * std::log(1e-4 / 0.5), 1e-9);
  EXPECT_EQ(describe_shift(r, {80, 20}), "80.0% of scores below 0.5 vs 50.0% on dev");
}

TEST(Drift, JsonRoundTripAndValidation) {
  ScoreReference r = make_score_reference({0.1, 0.2, 0.3, 0.4}, 2);
  ScoreReference back = ScoreReference::from_json(r.to_json(), "ref.json");
  EXPECT_EQ(back.edges, r.edges);
  EXPECT_EQ(back.fractions, r.fractions);
  EXPECT_THROW(ScoreReference::from_json(nlohmann::json::parse(R"({"edges":[2,1],"fractions":[0.3,0.3,0.4]})"), "x"),
               ModelError);
  EXPECT_THROW(ScoreReference::from_json(nlohmann::json::parse("{}"), "x"), ModelError);
}

}  // namespace
}  // namespace dqe
