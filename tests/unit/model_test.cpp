#include "dqe/model.h"

#include <gtest/gtest.h>

#include <fstream>

#include <nlohmann/json.hpp>

#include "dqe/checkpoint.h"
#include "dqe/dataset.h"
#include "dqe/evaluator.h"
#include "test_util.h"

namespace dqe {
namespace {

const std::string kFixture = std::string(DQE_SHARED_DIR) + "/fixtures/tiny-bert-hf";

nlohmann::json expected() {
  std::ifstream in(kFixture + "/expected.json");
  return nlohmann::json::parse(in);
}

TEST(SequenceModel, HuggingFaceFixtureGivesExpectedLogits) {
  DQE_REQUIRE_SHARED_FIXTURES();
  LoadedModel m = load_model(kFixture);
  ASSERT_EQ(m.spec.task.task, Task::kClassification);
  ASSERT_EQ(m.spec.task.labels, (std::vector<std::string>{"irrelevant", "partial", "exact"}));
  EXPECT_TRUE(m.report.missing.empty());
  torch::InferenceMode guard;
  m.model->eval();
  const nlohmann::json exp = expected();  // iterating expected()["cases"] would use a dead temporary
  for (const auto& c : exp["cases"]) {
    Encoding e = m.tokenizer->encode_pair(c["query"].get<std::string>(), c["title"].get<std::string>(),
                                          c["max_len"].get<size_t>());
    ASSERT_EQ(e.ids, c["input_ids"].get<std::vector<int64_t>>());
    Batch b = collate({e}, {0}, m.tokenizer->pad_id());
    auto hidden = m.model->bert->encode(b.ids, b.type_ids, b.mask);
    auto pooled = m.model->bert->forward(b.ids, b.type_ids, b.mask);
    auto logits = m.model->forward(b.ids, b.type_ids, b.mask);
    auto want_logits = c["logits"].get<std::vector<float>>();
    auto want_pooled = c["pooled"].get<std::vector<float>>();
    auto want_cls = c["cls_hidden"].get<std::vector<float>>();
    for (size_t i = 0; i < want_logits.size(); ++i)
      EXPECT_NEAR(logits[0][static_cast<int64_t>(i)].item<float>(), want_logits[i], 1e-4) << c["query"];
    for (size_t i = 0; i < want_pooled.size(); ++i)
      EXPECT_NEAR(pooled[0][static_cast<int64_t>(i)].item<float>(), want_pooled[i], 1e-4);
    for (size_t i = 0; i < want_cls.size(); ++i)
      EXPECT_NEAR(hidden[0][0][static_cast<int64_t>(i)].item<float>(), want_cls[i], 1e-4);
  }
}

TEST(SequenceModel, PaddedBatchGivesTheSameLogitsPerRow) {
  DQE_REQUIRE_SHARED_FIXTURES();
  LoadedModel m = load_model(kFixture);
  auto exp = expected();
  std::vector<Encoding> inputs;
  for (const auto& c : exp["cases"])
    inputs.push_back(m.tokenizer->encode_pair(c["query"].get<std::string>(), c["title"].get<std::string>(), 64));
  std::vector<size_t> rows(inputs.size());
  for (size_t i = 0; i < rows.size(); ++i) rows[i] = i;
  torch::InferenceMode guard;
  m.model->eval();
  Batch b = collate(inputs, rows, m.tokenizer->pad_id());
  ASSERT_GT(b.ids.size(1), static_cast<int64_t>(inputs[0].ids.size()));  // row 0 really is padded
  auto logits = m.model->forward(b.ids, b.type_ids, b.mask);
  auto want = exp["batched_logits"].get<std::vector<std::vector<float>>>();
  ASSERT_EQ(logits.size(0), static_cast<int64_t>(want.size()));
  for (size_t r = 0; r < want.size(); ++r)
    for (size_t k = 0; k < want[r].size(); ++k)
      EXPECT_NEAR(logits[static_cast<int64_t>(r)][static_cast<int64_t>(k)].item<float>(), want[r][k], 1e-4);
  // predict_logits sorts by length into small batches and must restore input order.
  auto via_predict = predict_logits(m.model, inputs, 3, m.tokenizer->pad_id());
  EXPECT_TRUE(torch::allclose(via_predict, logits, 1e-5, 1e-4));
}

// In training mode, dropout 0 makes two forward passes agree; the fixture's own 0.1 does not.
TEST(SequenceModel, SetDropoutReachesEveryLayerAndTheConfig) {
  DQE_REQUIRE_SHARED_FIXTURES();
  LoadedModel m = load_model(kFixture);
  auto exp = expected();
  const auto& c = exp["cases"][0];
  Encoding e = m.tokenizer->encode_pair(c["query"].get<std::string>(), c["title"].get<std::string>(), 64);
  Batch b = collate({e}, {0}, m.tokenizer->pad_id());
  torch::NoGradGuard no_grad;
  m.model->train();
  auto twice_agree = [&] {
    // The encoder's hidden states show the encoder's dropout; the logits add the classifier's.
    return torch::equal(m.model->bert->encode(b.ids, b.type_ids, b.mask), m.model->bert->encode(b.ids, b.type_ids, b.mask)) &&
           torch::equal(m.model->forward(b.ids, b.type_ids, b.mask), m.model->forward(b.ids, b.type_ids, b.mask));
  };
  ASSERT_DOUBLE_EQ(m.spec.bert.hidden_dropout_prob, 0.1);
  EXPECT_FALSE(twice_agree());
  set_dropout(m.model, m.spec.bert, 0.0);
  EXPECT_TRUE(twice_agree());
  EXPECT_EQ(m.spec.bert.hidden_dropout_prob, 0.0);
  EXPECT_EQ(m.spec.bert.attention_probs_dropout_prob, 0.0);
  EXPECT_EQ(m.spec.bert.classifier_dropout.value_or(m.spec.bert.hidden_dropout_prob), 0.0);
}

TEST(SequenceModel, HeadNamesMatchHuggingFace) {
  BertConfig c;
  c.vocab_size = 10;
  c.hidden_size = 8;
  c.num_hidden_layers = 1;
  c.num_attention_heads = 2;
  c.intermediate_size = 16;
  SequenceModel model(c, 3);
  std::set<std::string> names;
  for (const auto& [name, t] : named_weights(model)) names.insert(name);
  for (const char* want : {"bert.embeddings.word_embeddings.weight", "bert.embeddings.LayerNorm.weight",
                           "bert.encoder.layer.0.attention.self.query.weight",
                           "bert.encoder.layer.0.attention.output.LayerNorm.bias",
                           "bert.encoder.layer.0.intermediate.dense.weight", "bert.encoder.layer.0.output.dense.bias",
                           "bert.pooler.dense.weight", "classifier.weight", "classifier.bias"})
    EXPECT_EQ(names.count(want), 1u) << want;
  EXPECT_EQ(names.size(), 5u + 16u + 2u + 2u);
}

}  // namespace
}  // namespace dqe
