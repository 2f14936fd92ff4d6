// Side inputs through training, saving, evaluation and scoring, on controlled data whose label
// depends on the text, a behaviour signal and query/image agreement (as
// scripts/data/make_fusion_data.py makes it, smaller).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>

#include "data/log_inputs.h"
#include "dqe/evaluator.h"
#include "dqe/scorer.h"
#include "dqe/trainer.h"
#include "integration/run_util.h"
#include "model/model_dir.h"
#include "test_util.h"

namespace dqe {
namespace fs = std::filesystem;
namespace {

// label = 1 + t + 0.7 a + 0.5 clip(z, -2, 2) + noise: t shows in the text, a (the product's
// colour is the query's) only in the image vector, z only in the ctr feature.
void write_controlled(const std::string& path, int n, unsigned seed, bool features, bool image) {
  const std::vector<std::string> kinds = {"drill", "rug", "lamp", "chair", "table", "hose"};
  const std::vector<std::string> colours = {"red", "blue", "green", "black"};
  std::mt19937 rng(seed);
  std::normal_distribution<double> normal(0, 1);
  std::mt19937 fixed(7);  // one colour vector per colour, the same for every file
  std::vector<std::vector<float>> vectors(colours.size(), std::vector<float>(4));
  for (auto& v : vectors)
    for (auto& x : v) x = static_cast<float>(normal(fixed));
  std::ofstream out(path);
  for (int i = 0; i < n; ++i) {
    const size_t colour = rng() % colours.size(), kind = rng() % kinds.size();
    const bool t = rng() % 2 == 0, a = rng() % 2 == 0;
    const size_t title_kind = t ? kind : (kind + 1 + rng() % (kinds.size() - 1)) % kinds.size();
    const size_t product_colour = a ? colour : (colour + 1 + rng() % (colours.size() - 1)) % colours.size();
    const double z = normal(rng);
    const double label = 1 + (t ? 1.0 : 0.0) + (a ? 0.7 : 0.0) + 0.5 * std::clamp(z, -2.0, 2.0) + 0.1 * normal(rng);
    nlohmann::json j = {{"query", colours[colour] + " " + kinds[kind]}, {"title", "acme " + kinds[title_kind]},
                        {"label", label}};
    if (features) j["features"] = {{"ctr", 0.03 * std::exp(z)}, {"price", std::exp(4 + 0.5 * normal(rng))}};
    if (image) {
      std::vector<float> v = vectors[product_colour];
      for (auto& x : v) x += static_cast<float>(0.2 * normal(rng));
      j["image_embedding"] = v;
    }
    out << j.dump() << "\n";
  }
}

class FusionTrainTest : public ::testing::Test {
 protected:
  void SetUp() override {
    write_controlled(dir_.path("train.jsonl"), 1200, 1, true, true);
    write_controlled(dir_.path("dev.jsonl"), 300, 2, true, true);
    write_controlled(dir_.path("dev_no_features.jsonl"), 300, 2, false, true);
    write_controlled(dir_.path("dev_no_image.jsonl"), 300, 2, true, false);
    config_.train_path = dir_.path("train.jsonl");
    config_.dev_path = dir_.path("dev.jsonl");
    config_.layers = 1;
    config_.hidden = 32;
    config_.heads = 2;
    config_.intermediate = 64;
    config_.vocab_size = 100;
    config_.max_len = 16;
    config_.lr = 2e-3;
    config_.batch_size = 32;
    config_.epochs = 6;
    config_.threads = 2;
    config_.seed = 5;
    config_.patience = 0;
    config_.precision = "fp32";
  }

  double dev_rmse(const std::string& run, const std::string& data) {
    EvalConfig ec;
    ec.models = {run};
    ec.data = dir_.path(data);
    ec.precision = "fp32";
    return evaluate(ec).primary;
  }

  test::TempDir dir_;
  TrainConfig config_;
};

TEST_F(FusionTrainTest, FusedModelBeatsTextOnlyAndLosesGracefullyWithoutAnInput) {
  TrainConfig text = config_;
  text.out_dir = dir_.path("text");
  text.fields.features.clear();
  text.fields.image.clear();
  text.fields.attributes.clear();
  train(text);
  TrainConfig fused = config_;
  fused.out_dir = dir_.path("fused");
  fused.modality_dropout = 0.2;
  train(fused);

  LoadedModel m = load_model(fused.out_dir);
  ASSERT_EQ(m.featurizer->side_inputs().size(), 2u);  // features, image
  EXPECT_TRUE(fs::exists(dir_.path("fused/best/features_stats.json")));
  EXPECT_TRUE(fs::exists(dir_.path("fused/best/image_input.json")));
  EXPECT_EQ(m.featurizer->task().fields.image_dim, 4);
  EXPECT_TRUE(load_model(text.out_dir).featurizer->side_inputs().empty());

  const double text_rmse = dev_rmse(text.out_dir, "dev.jsonl");
  const double fused_rmse = dev_rmse(fused.out_dir, "dev.jsonl");
  const double no_features = dev_rmse(fused.out_dir, "dev_no_features.jsonl");
  const double no_image = dev_rmse(fused.out_dir, "dev_no_image.jsonl");
  std::cout << "dev RMSE: text only " << text_rmse << ", fused " << fused_rmse << ", fused without features "
            << no_features << ", without image " << no_image << "\n";
  // Text alone can learn t only: its RMSE is about sqrt(0.7^2/4 + 0.25 var(z)) ~ 0.6.
  EXPECT_LT(fused_rmse, 0.75 * text_rmse);
  // Without an input the fused model loses what that input carried, not more than that:
  // it stays near the text-only model (or better, with the other input). The behaviour
  // signal is learned within these few steps; the query/image agreement (an interaction) may
  // not be, so removing the image must only not help beyond noise.
  EXPECT_GT(no_features, fused_rmse + 0.05);
  EXPECT_GT(no_image, fused_rmse - 0.02);
  EXPECT_LT(no_features, 1.15 * text_rmse);
  EXPECT_LT(no_image, 1.15 * text_rmse);

  // Scoring: a line with an unseen feature name is scored, the name counted once.
  test::write_text(dir_.path("extra.jsonl"),
                   "{\"query\":\"red drill\",\"title\":\"acme drill\",\"features\":{\"ctr\":0.05,\"stock\":3}}\n"
                   "{\"query\":\"red drill\",\"title\":\"acme drill\",\"features\":{\"stock\":4}}\n"
                   "{\"query\":\"red drill\",\"title\":\"acme drill\"}\n");
  ScoreConfig sc;
  sc.models = {fused.out_dir};
  sc.input = dir_.path("extra.jsonl");
  sc.output = dir_.path("extra_scored.jsonl");
  sc.precision = "fp32";
  const ScoreSummary summary = score(sc);
  EXPECT_EQ(summary.written, 3);
  EXPECT_EQ(summary.notes, "feature names unseen in training, ignored: stock (2 lines)");

  // An ensemble whose first member reads no side input still gives the fused member its
  // inputs: the ensemble's score is the mean of the members' own.
  auto scores_of = [&](const std::vector<std::string>& models, const std::string& name) {
    ScoreConfig c;
    c.models = models;
    c.input = dir_.path("dev.jsonl");
    c.output = dir_.path(name);
    c.precision = "fp32";
    score(c);
    std::vector<double> out;
    for (const auto& j : test::read_jsonl_file(c.output)) out.push_back(j["score"].get<double>());
    return out;
  };
  const auto alone_text = scores_of({text.out_dir}, "text_scored.jsonl");
  const auto alone_fused = scores_of({fused.out_dir}, "fused_scored.jsonl");
  const auto both = scores_of({text.out_dir, fused.out_dir}, "both_scored.jsonl");
  ASSERT_EQ(both.size(), 300u);
  ASSERT_EQ(alone_text.size(), both.size());
  ASSERT_EQ(alone_fused.size(), both.size());
  for (size_t i = 0; i < both.size(); ++i)
    ASSERT_NEAR(both[i], (alone_text[i] + alone_fused[i]) / 2, 1e-4) << "dev line " << i + 1;
}

}  // namespace
}  // namespace dqe
