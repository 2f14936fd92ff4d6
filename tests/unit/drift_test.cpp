#include "dqe/drift.h"

#include <gtest/gtest.h>

#include <cmath>

#include "dqe/errors.h"

namespace dqe {
namespace {

TEST(Drift, QuantileBinsOfTheDevScores) {
  std::vector<double> scores;
  for (int i = 0; i < 100; ++i) scores.push_back(i);  // 0..99
  ScoreReference r = make_score_reference(scores, 4);
  EXPECT_EQ(r.edges, (std::vector<double>{25, 50, 75}));
  EXPECT_EQ(r.fractions, (std::vector<double>{0.25, 0.25, 0.25, 0.25}));
  EXPECT_EQ(r.bin_of(-5), 0u);
  EXPECT_EQ(r.bin_of(25), 1u);  // edges are inclusive on the left of their bin
  EXPECT_EQ(r.bin_of(1000), 3u);
}

TEST(Drift, TiedScoresMergeBins) {
  ScoreReference r = make_score_reference({1, 1, 1, 1, 2, 2, 2, 2}, 4);
  EXPECT_EQ(r.edges, (std::vector<double>{1, 2}));  // quantiles 1, 2, 2 -> edges 1, 2
  EXPECT_EQ(r.fractions, (std::vector<double>{0.0, 0.5, 0.5}));
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
