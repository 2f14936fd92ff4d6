// Side inputs from a log (data/log_inputs.h) and where they meet the text (model.h, Fusion): transforms
// and masks against numbers worked out by hand, saved statistics, bad values, and checkpoints
// written before fusion existed scoring as they did.
#include "data/log_inputs.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "bert_util.h"
#include "dqe/errors.h"
#include "dqe/run_context.h"
#include "infer/predictor.h"
#include "model/model_dir.h"
#include "test_util.h"

namespace dqe {
namespace {

Record with_features(std::vector<std::pair<std::string, double>> features) {
  Record r;
  r.features = std::move(features);
  return r;
}

TEST(FeatureTransformTest, ClipsToTrainingQuantilesAndStandardises) {
  // 101 values: -1000, 1..99, 1000. Negative, so no log1p. Nearest-rank quantiles: the 1% is
  // the value at index round(0.01 * 100) = 1, i.e. 1; the 99% the one at 99, i.e. 99.
  std::vector<double> v = {-1000};
  for (int i = 1; i <= 99; ++i) v.push_back(i);
  v.push_back(1000);
  const FeatureTransform t = FeatureTransform::fit("price", v);
  EXPECT_FALSE(t.log1p);
  EXPECT_EQ(t.lo, 1);
  EXPECT_EQ(t.hi, 99);
  // Clipped: 1, 1, 2, ..., 99, 99. Sum 1 + 4950 + 99 = 5050, mean 50; sum of squares
  // 1 + 99*100*199/6 + 9801 = 338152.
  EXPECT_DOUBLE_EQ(t.mean, 50.0);
  const double std = std::sqrt(338152.0 / 101.0 - 2500.0);
  EXPECT_NEAR(t.std, std, 1e-9);
  EXPECT_NEAR(t.apply(5000), (99 - 50) / std, 1e-12);   // clipped at the 99% quantile
  EXPECT_NEAR(t.apply(-5000), (1 - 50) / std, 1e-12);   // and at the 1%
  EXPECT_NEAR(t.apply(60), 10 / std, 1e-12);
}

TEST(FeatureTransformTest, HeavyTailedNonNegativeValuesTakeLog1p) {
  // 0, 0, 0, 0, 100: mean 20, central moments m2 = (4*400 + 6400)/5 = 1600 and
  // m3 = (4*(-8000) + 512000)/5 = 96000, skewness 96000 / 1600^1.5 = 1.5 > 1: log1p.
  const FeatureTransform t = FeatureTransform::fit("reviews", {0, 0, 0, 0, 100});
  EXPECT_TRUE(t.log1p);
  const double top = std::log(101.0);
  EXPECT_EQ(t.lo, 0);  // index round(0.04) = 0
  EXPECT_NEAR(t.hi, top, 1e-12);  // index round(3.96) = 4
  EXPECT_NEAR(t.mean, top / 5, 1e-12);
  const double std = std::sqrt(top * top / 5 - top * top / 25);
  EXPECT_NEAR(t.std, std, 1e-12);
  EXPECT_NEAR(t.apply(100), (top - top / 5) / std, 1e-12);
  EXPECT_NEAR(t.apply(std::exp(1.0) - 1), (1 - top / 5) / std, 1e-12);
  // Symmetric values (skewness 0) stay as they are.
  EXPECT_FALSE(FeatureTransform::fit("rating", {1, 2, 3, 4, 5}).log1p);
}

TEST(FeaturesInputTest, MissingFeaturesAreMaskedNotZeroAndUnseenNamesCounted) {
  std::vector<Record> train = {with_features({{"a", 1}, {"b", 10}}), with_features({{"a", 3}, {"b", 30}}),
                               with_features({{"a", 5}})};
  auto input = FeaturesInput::fit(train);
  ASSERT_TRUE(input);
  ASSERT_EQ(input->dim(), 5);  // a, b, their indicators, the line's presence
  // a: 1, 3, 5 (skewness 0): mean 3, std sqrt(8/3). b: 10, 30: mean 20, std 10.
  const double std_a = std::sqrt(8.0 / 3.0);
  std::vector<float> x = input->features(with_features({{"a", 3}, {"c", 7}}));
  ASSERT_EQ(x.size(), 5u);
  EXPECT_FLOAT_EQ(x[0], 0.0f);  // a at its mean: a real 0 ...
  EXPECT_FLOAT_EQ(x[2], 1.0f);  // ... present
  EXPECT_FLOAT_EQ(x[1], 0.0f);  // b missing: 0 ...
  EXPECT_FLOAT_EQ(x[3], 0.0f);  // ... masked
  EXPECT_FLOAT_EQ(x[4], 1.0f);  // the line has features
  EXPECT_FLOAT_EQ(input->features(with_features({{"a", 5}}))[0], static_cast<float>(2 / std_a));
  EXPECT_FLOAT_EQ(input->features(with_features({{"b", 40}}))[1], 1.0f);
  // b = 20 is a real 0 too, told apart from a missing b by its indicator.
  const std::vector<float> b_mean = input->features(with_features({{"b", 20}}));
  const std::vector<float> none = input->features(with_features({}));
  EXPECT_FLOAT_EQ(b_mean[1], none[1]);
  EXPECT_NE(b_mean[3], none[3]);
  EXPECT_FLOAT_EQ(none[4], 0.0f);  // no features at all: the whole input is absent
  input->features(with_features({{"c", 1}, {"d", 2}}));
  const auto unseen = input->unseen();
  ASSERT_EQ(unseen.size(), 2u);
  EXPECT_EQ(unseen.at("c"), 2);
  EXPECT_EQ(unseen.at("d"), 1);
  EXPECT_EQ(unseen_feature_summary({input}), "feature names unseen in training, ignored: c (2 lines), d (1 line)");
}

// A log whose every line brings a new feature name (issue 33: 100,000 lines made a 30 MB
// summary line): the first 20 names are counted by name, the rest as a number.
TEST(FeaturesInputTest, UnseenNamesAreBoundedWhateverTheLogHolds) {
  auto input = FeaturesInput::fit({with_features({{"a", 1}}), with_features({{"a", 2}})});
  for (int i = 0; i < 1000; ++i) input->features(with_features({{"n" + std::to_string(i), 1}}));
  input->features(with_features({{"n0", 1}, {"n999", 1}}));
  const auto unseen = input->unseen();
  ASSERT_EQ(unseen.size(), FeaturesInput::kUnseenNamesKept);
  EXPECT_EQ(unseen.at("n0"), 2);
  EXPECT_EQ(unseen.count("n999"), 0u);
  EXPECT_EQ(input->unseen_other(), 1000 - 20 + 1);
  const std::string summary = unseen_feature_summary({input});
  EXPECT_LT(summary.size(), 400u) << summary;
  EXPECT_NE(summary.find("n0 (2 lines), n1 (1 line), "), std::string::npos) << summary;
  EXPECT_EQ(summary.substr(summary.size() - 26), " and other names 981 times") << summary;
}

TEST(AttributesInputTest, VocabularyFromTrainingWithAnOutOfVocabularyBucket) {
  std::vector<Record> train(5);
  const char* brands[] = {"acme", "acme", "acme", "zeta", "zeta"};
  for (int i = 0; i < 5; ++i) train[static_cast<size_t>(i)].attributes = {{"brand", brands[i]}};
  train[0].attributes.emplace_back("color", "red");  // seen once: below the minimum count
  auto input = AttributesInput::fit(train);
  ASSERT_TRUE(input);
  // brand: [OOV, acme, zeta]; color: [OOV]; presence: 3 + 1 + 1.
  ASSERT_EQ(input->dim(), 5);
  Record r;
  r.attributes = {{"brand", "zeta"}, {"color", "red"}};
  EXPECT_EQ(input->features(r), (std::vector<float>{0, 0, 1, 1, 1}));
  r.attributes = {{"brand", "omega"}};  // unseen value: the OOV slot
  EXPECT_EQ(input->features(r), (std::vector<float>{1, 0, 0, 0, 1}));
  r.attributes = {};
  EXPECT_EQ(input->features(r), (std::vector<float>{0, 0, 0, 0, 0}));
}

TEST(FusionStatisticsTest, SavedStatisticsRoundTrip) {
  std::vector<Record> train(4);
  for (size_t i = 0; i < train.size(); ++i) {
    train[i].features = {{"ctr", 0.01 * static_cast<double>(i * i)}, {"price", 10.0 + static_cast<double>(i)}};
    train[i].attributes = {{"brand", i % 2 ? "acme" : "zeta"}};
    train[i].image = {static_cast<float>(i), 1.0f, -1.0f};
  }
  const auto inputs = fit_log_inputs(train);
  ASSERT_EQ(inputs.size(), 3u);
  test::TempDir dir;
  for (const auto& i : inputs) i->save(dir.path());
  EXPECT_TRUE(has_log_inputs(dir.path()));
  const auto loaded = load_log_inputs(dir.path());
  ASSERT_EQ(loaded.size(), 3u);
  Record probe;
  probe.features = {{"ctr", 0.05}, {"price", 99}};
  probe.attributes = {{"brand", "acme"}};
  probe.image = {0.5f, 0.25f, 2.0f};
  for (size_t k = 0; k < inputs.size(); ++k) {
    EXPECT_EQ(loaded[k]->name(), inputs[k]->name());
    EXPECT_EQ(loaded[k]->dim(), inputs[k]->dim());
    EXPECT_EQ(loaded[k]->features(probe), inputs[k]->features(probe)) << inputs[k]->name();
  }
  EXPECT_EQ(std::dynamic_pointer_cast<const FeaturesInput>(loaded[0])->to_json(),
            std::dynamic_pointer_cast<const FeaturesInput>(inputs[0])->to_json());
  const FieldMap fields = fields_for(FieldMap{}, loaded);
  EXPECT_EQ(fields.image_dim, 3);
  EXPECT_EQ(fields_for(FieldMap{}, {}).features, "");
}

TEST(SideFieldsTest, BadValuesAreBadLinesNamingFileAndLine) {
  test::TempDir dir;
  const std::string path = dir.path("log.jsonl");
  test::write_text(path,
                   "{\"query\":\"q\",\"title\":\"t\",\"features\":{\"ctr\":0.1},\"image_embedding\":[1,2]}\n"
                   "{\"query\":\"q\",\"title\":\"t\",\"features\":{\"ctr\":\"high\"}}\n"
                   "{\"query\":\"q\",\"title\":\"t\",\"image_embedding\":[1,2,3]}\n"
                   "{\"query\":\"q\",\"title\":\"t\",\"image_embedding\":[1,\"x\"]}\n"
                   "{\"query\":\"q\",\"title\":\"t\",\"image_embedding\":[1,1e300]}\n"
                   "{\"query\":\"q\",\"title\":\"t\",\"attributes\":{\"brand\":7}}\n"
                   "{\"query\":\"q\",\"title\":\"t\",\"features\":{\"ctr\":null},\"attributes\":{\"brand\":\"a\"}}\n");
  const std::vector<std::pair<int, std::string>> expected = {
      {2, "feature \"ctr\" in \"features\" must be a number, got string"},
      {3, "field \"image_embedding\" has 3 numbers, expected 2 (the first image vector's)"},
      {4, "field \"image_embedding\"[1] must be a number, got string"},
      {5, "field \"image_embedding\"[1] is not a finite float"},
      {6, "attribute \"brand\" in \"attributes\" must be a string, got number"}};
  ReaderOptions ro;
  ro.max_bad_lines = 10;
  ro.rejects_path = dir.path("rejects.jsonl");
  int64_t bad = 0;
  const std::vector<Record> records = read_jsonl(path, ro, &bad);
  EXPECT_EQ(bad, 5);
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[0].image, (std::vector<float>{1, 2}));
  EXPECT_TRUE(records[1].features.empty());  // null: absent
  const auto rejects = test::read_text(dir.path("rejects.jsonl"));
  for (const auto& [line, problem] : expected)
    EXPECT_NE(rejects.find("\"line\":" + std::to_string(line) + ",\"error\":\"" + nlohmann::json(problem).dump().substr(1)),
              std::string::npos)
        << problem << "\n" << rejects;
  ro.max_bad_lines = 0;
  ro.rejects_path.clear();
  try {
    read_jsonl(path, ro);
    FAIL() << "a non-number feature was read";
  } catch (const DataError& e) {
    EXPECT_EQ(std::string(e.what()), path + ":2: " + expected[0].second);
  }
  // A model without image vectors does not read the field: line 4's is no bad line then.
  ro.max_bad_lines = 10;
  ro.fields.image.clear();
  int64_t bad_without_image = 0;
  read_jsonl(path, ro, &bad_without_image);
  EXPECT_EQ(bad_without_image, 2);
}

// The scores written by dqe before fusion existed (tests/fixtures/old_checkpoints/README.md),
// against today's predictor on the same lines.
void expect_old_scores(const std::string& name) {
  const std::string dir = std::string(DQE_SOURCE_DIR) + "/tests/fixtures/old_checkpoints/";
  const RunContext ctx = make_run_context("cpu", "fp32", 1, StopToken());
  const Ensemble ensemble = load_ensemble({dir + name}, 0, std::nullopt, ctx, 32, "");
  const LoadedModel& m = ensemble.members.front();
  EXPECT_EQ(m.spec.task.fusion, Fusion::kAdd);
  EXPECT_FALSE(m.model->fusion);
  ReaderOptions ro;
  ro.fields = ensemble.task().fields;
  const std::vector<Record> records = read_jsonl(dir + name + "/scored.jsonl", ro);
  const Predictions p = predict_ensemble(ensemble, records, 1);
  std::ifstream in(dir + name + "/scored.jsonl");
  std::string line;
  size_t i = 0;
  for (; std::getline(in, line); ++i) {
    ASSERT_LT(i, p.scores.size());
    const double saved = nlohmann::json::parse(line).at("score").get<double>();
    EXPECT_NEAR(p.scores[i], saved, 1e-9 * (1 + std::abs(saved))) << name << " line " << i + 1;
  }
  EXPECT_EQ(i, 20u);
}

TEST(OldCheckpointsTest, TextOnlyCheckpointScoresAsBefore) { expect_old_scores("plain"); }

TEST(OldCheckpointsTest, LexicalCheckpointScoresAsBefore) {
  expect_old_scores("lexical");
  const std::string dir = std::string(DQE_SOURCE_DIR) + "/tests/fixtures/old_checkpoints/lexical";
  LoadedModel m = load_model(dir);
  ASSERT_TRUE(m.model->side_head("lexical"));
  EXPECT_EQ(m.model->side_head("lexical")->output->weight.size(0), 1);  // added to the logits
  // It reads no log fields, whatever the line holds.
  EXPECT_EQ(m.featurizer->task().fields.features, "");
  EXPECT_EQ(m.featurizer->task().fields.image, "");
}

TEST(FusionModelTest, ALineLackingAnInputScoresAsTheTextWithoutItAndTheGateStartsAtTheTextModel) {
  const BertConfig c = test::tiny_bert_config(50, 16, 1, 2, 32, 16);
  for (Fusion f : {Fusion::kGate, Fusion::kConcat}) {
    torch::manual_seed(1);
    SequenceModel model(c, 1, SideInputDims{{"features", 5}, {"image", 4}}, nullptr, f);
    init_weights(model, c);
    model->eval();
    const auto ids = torch::tensor({{2, 7, 9, 3}, {2, 8, 4, 3}});
    const auto types = torch::zeros_like(ids);
    const auto mask = torch::ones_like(ids);
    const torch::Tensor text = model->classifier(model->bert->forward(ids, types, mask));
    const torch::Tensor feats = torch::tensor({{0.5f, -1.0f, 1.0f, 1.0f, 1.0f}, {0.0f, 0.0f, 0.0f, 0.0f, 0.0f}});
    const torch::Tensor image = torch::tensor({{0.1f, 0.2f, 0.3f, 1.0f}, {0.0f, 0.0f, 0.0f, 0.0f}});
    std::map<std::string, torch::Tensor> side = {{"features", feats}, {"image", image},
                                                 {"features.present", feats.narrow(1, 4, 1)},
                                                 {"image.present", image.narrow(1, 3, 1)}};
    // At initialisation the encoders' (gate) or the MLP's (concat) output layer is zero.
    EXPECT_TRUE(torch::allclose(model->forward(ids, types, mask, side), text, 1e-6, 1e-6)) << fusion_name(f);
    // Trained encoders: the line with inputs moves, the line lacking them (presence 0) does not.
    {
      torch::NoGradGuard no_grad;
      for (auto& [name, head] : model->side_heads()) head->output->weight.normal_(0, 1);
      if (model->fusion->output) model->fusion->output->weight.normal_(0, 1);
    }
    const torch::Tensor fused = model->forward(ids, types, mask, side);
    EXPECT_GT((fused[0] - text[0]).abs().item<double>(), 1e-4) << fusion_name(f);
    // What the absent line's vectors hold does not matter: its encodings are zeroed.
    std::map<std::string, torch::Tensor> garbage = side;
    garbage["features"] = torch::tensor({{0.5f, -1.0f, 1.0f, 1.0f, 1.0f}, {9.0f, -7.0f, 1.0f, 1.0f, 0.0f}});
    garbage["image"] = torch::tensor({{0.1f, 0.2f, 0.3f, 1.0f}, {5.0f, 5.0f, 5.0f, 0.0f}});
    const torch::Tensor fused_garbage = model->forward(ids, types, mask, garbage);
    EXPECT_NEAR(fused_garbage[1].item<double>(), fused[1].item<double>(), 1e-6) << fusion_name(f);
    // Gated, it is then the text model itself.
    if (f == Fusion::kGate) EXPECT_NEAR(fused[1].item<double>(), text[1].item<double>(), 1e-5);
    // Fusion layers are side-head parameters: trained in full under PEFT, saved with the heads.
    bool any = false;
    for (const auto& p : model->role_parameters())
      if (p.name.rfind("fusion.", 0) == 0) {
        any = true;
        EXPECT_EQ(p.role, Role::kSideHead) << p.name;
      }
    EXPECT_TRUE(any);
  }
}

}  // namespace
}  // namespace dqe
