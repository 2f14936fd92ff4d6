#include "model/peft/lora.h"
#include "model/sequence_model.h"
#include "model/weights.h"

#include <gtest/gtest.h>

#include <fstream>

#include <nlohmann/json.hpp>

#include "bert_util.h"
#include "data/dataset.h"
#include "dqe/errors.h"
#include "infer/predictor.h"
#include "model/model_dir.h"
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
  // The predictor sorts by length into small batches and must restore input order.
  std::vector<Example> examples(inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) examples[i].text = inputs[i];
  const Predictor predictor(m.model, m.featurizer, Precision::kFp32, 3);
  const ModelOutputs out = predictor.run(examples, /*with_pooled=*/true);
  EXPECT_TRUE(torch::allclose(out.logits, logits, 1e-5, 1e-4));
  EXPECT_TRUE(torch::allclose(out.pooled, m.model->bert->forward(b.ids, b.type_ids, b.mask), 1e-5, 1e-4));
  ASSERT_EQ(out.diagnostics.size(), inputs.size());
  EXPECT_EQ(out.diagnostics[0].tokens, static_cast<int64_t>(inputs[0].ids.size()));
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

BertConfig tiny_config() { return test::tiny_bert_config(10, 8, 1, 2, 16); }

TEST(SequenceModel, HeadNamesMatchHuggingFace) {
  SequenceModel model(tiny_config(), 3);
  std::set<std::string> names;
  for (const auto& [name, t] : checkpoint_weights(model, /*mlm_encoder=*/false)) names.insert(name);
  for (const char* want : {"bert.embeddings.word_embeddings.weight", "bert.embeddings.LayerNorm.weight",
                           "bert.encoder.layer.0.attention.self.query.weight",
                           "bert.encoder.layer.0.attention.output.LayerNorm.bias",
                           "bert.encoder.layer.0.intermediate.dense.weight", "bert.encoder.layer.0.output.dense.bias",
                           "bert.pooler.dense.weight", "classifier.weight", "classifier.bias"})
    EXPECT_EQ(names.count(want), 1u) << want;
  EXPECT_EQ(names.size(), 5u + 16u + 2u + 2u);
  // A pretrained encoder leaves its untrained classifier out.
  EXPECT_EQ(checkpoint_weights(model, /*mlm_encoder=*/true).size(), names.size() - 2);
}

// Every parameter has the role of the part it is in, in registration order, and the role
// (not the name) decides weight decay: none on LayerNorm and biases.
TEST(SequenceModel, PartsGiveEveryParameterItsRole) {
  SequenceModel model(tiny_config(), 2, SideInputDims{{"lexical", 14}});
  const auto params = model->role_parameters();
  std::vector<std::string> in_order;
  for (const auto& item : model->named_parameters()) in_order.push_back(item.key());
  ASSERT_EQ(params.size(), in_order.size());
  for (size_t i = 0; i < params.size(); ++i) {
    const RoleParameter& p = params[i];
    EXPECT_EQ(p.name, in_order[i]);
    const Role want = p.name.rfind("bert.embeddings.", 0) == 0 ? Role::kEmbeddings
                      : p.name.rfind("bert.encoder.", 0) == 0  ? Role::kEncoder
                      : p.name.rfind("bert.pooler.", 0) == 0   ? Role::kPooler
                      : p.name.rfind("classifier.", 0) == 0    ? Role::kSequenceHead
                                                               : Role::kSideHead;
    EXPECT_EQ(role_name(p.role), role_name(want)) << p.name;
    const bool bias = p.name.size() > 5 && p.name.compare(p.name.size() - 5, 5, ".bias") == 0;
    EXPECT_EQ(p.decay, !bias && p.name.find("LayerNorm") == std::string::npos) << p.name;
  }
  // The side head keeps torch.nn.Sequential's names, the checkpoint format of earlier models.
  std::set<std::string> side;
  for (const auto& p : params)
    if (p.role == Role::kSideHead) side.insert(p.name);
  EXPECT_EQ(side, (std::set<std::string>{"lexical.0.weight", "lexical.0.bias", "lexical.2.weight", "lexical.2.bias"}));
  // Its output layer starts at zero: at first the model is the text model alone.
  init_weights(model, tiny_config());
  EXPECT_EQ(model->side_head("lexical")->output->weight.abs().sum().item<double>(), 0.0);
  EXPECT_GT(model->side_head("lexical")->hidden->weight.abs().sum().item<double>(), 0.0);

  set_trainable(model, {Role::kEmbeddings, Role::kEncoder, Role::kPooler}, false);
  for (const auto& p : model->role_parameters())
    EXPECT_EQ(p.tensor.requires_grad(), p.role == Role::kSequenceHead || p.role == Role::kSideHead) << p.name;
}

// The encoder in two halves: word embeddings, then the rest from them (what adversarial
// training perturbs between), gives what the whole does.
TEST(SequenceModel, EmbedThenEncodeEmbedsIsEncode) {
  SequenceModel model(tiny_config(), 2, SideInputDims{{"lexical", 3}});
  init_weights(model, tiny_config());
  model->eval();
  torch::NoGradGuard no_grad;
  const auto ids = torch::tensor({{2, 5, 6, 3, 0}, {2, 7, 3, 8, 3}}, torch::kInt64);
  const auto types = torch::tensor({{0, 0, 0, 1, 1}, {0, 0, 0, 1, 1}}, torch::kInt64);
  const auto mask = torch::tensor({{1, 1, 1, 1, 0}, {1, 1, 1, 1, 1}}, torch::kInt64);
  const std::map<std::string, torch::Tensor> side = {{"lexical", torch::rand({2, 3})}};
  const auto whole = model->run(ids, types, mask, side);
  const auto embeds = model->bert->embed(ids);
  EXPECT_EQ(embeds.sizes(), (std::vector<int64_t>{2, 5, 8}));
  EXPECT_TRUE(torch::equal(model->bert->encode_embeds(embeds, types, mask), model->bert->encode(ids, types, mask)));
  const auto halves = model->run_embeds(embeds, types, mask, side);
  EXPECT_TRUE(torch::equal(halves.logits, whole.logits));
  EXPECT_TRUE(torch::equal(halves.pooled, whole.pooled));
  // A model with a side input refuses a batch without it.
  EXPECT_THROW(model->run(ids, types, mask), ModelError);
}

// A bare BertModel's names ("embeddings.*", no "bert." prefix) load into the encoder; a
// missing head is a new head only when allowed.
TEST(SequenceModel, LoadsBareEncoderNamesAndRefusesMissingHeads) {
  SequenceModel source(tiny_config(), 2);
  init_weights(source, tiny_config());
  std::map<std::string, torch::Tensor> bare;
  for (const auto& p : source->role_parameters())
    if (p.role != Role::kSequenceHead) bare[p.name.substr(5)] = p.tensor.clone();  // drop "bert."
  SequenceModel target(tiny_config(), 2);
  EXPECT_THROW(load_weights(target, bare, "bare.safetensors", /*allow_new_head=*/false), ModelError);
  const LoadReport report = load_weights(target, bare, "bare.safetensors", /*allow_new_head=*/true);
  EXPECT_EQ(report.missing, (std::vector<std::string>{"classifier.weight", "classifier.bias"}));
  EXPECT_TRUE(report.unexpected.empty());
  EXPECT_TRUE(torch::equal(target->bert->pooler_dense->weight, source->bert->pooler_dense->weight));
  bare.erase("encoder.layer.0.output.dense.weight");
  try {
    load_weights(target, bare, "bare.safetensors", true);
    FAIL() << "an encoder weight may not be missing";
  } catch (const ModelError& e) {
    EXPECT_EQ(std::string(e.what()), "bare.safetensors: missing tensor \"bert.encoder.layer.0.output.dense.weight\"");
  }
}

// LoRA updates are a part of their own (Role::kAdapter) under PEFT's names and shapes; PEFT's
// initialisation (A kaiming-uniform, B zero) makes the adapted model at first its base; the
// role keeps BERT's initialisation and the full checkpoint away from them; merging folds
// them in.
TEST(SequenceModel, LoraUpdatesAreAnAdapterPartThatStartsAtTheBase) {
  BertConfig c = tiny_config();
  c.num_hidden_layers = 2;
  LoraSpec spec;
  spec.r = 3;
  spec.alpha = 6;
  spec.modules = {"bert.encoder.layer.0.attention.self.query", "bert.encoder.layer.1.intermediate.dense",
                  "bert.pooler.dense"};
  SequenceModel plain(c, 2);
  init_weights(plain, c);
  SequenceModel model(c, 2, SideInputDims{}, &spec);
  init_weights(model, c);
  std::map<std::string, torch::Tensor> weights;
  for (const auto& [name, t] : checkpoint_weights(plain, false)) weights[name] = t;
  const LoadReport report = load_weights(model, weights, "plain", false);
  EXPECT_EQ(report.missing.size(), 6u);  // the updates, which are not in a full checkpoint

  std::map<std::string, std::vector<int64_t>> adapter;
  for (const auto& p : model->role_parameters())
    if (p.role == Role::kAdapter) adapter[p.name] = p.tensor.sizes().vec();
  EXPECT_EQ(adapter, (std::map<std::string, std::vector<int64_t>>{
                         {"bert.encoder.layer.0.attention.self.query.lora_A.weight", {3, 8}},
                         {"bert.encoder.layer.0.attention.self.query.lora_B.weight", {8, 3}},
                         {"bert.encoder.layer.1.intermediate.dense.lora_A.weight", {3, 8}},
                         {"bert.encoder.layer.1.intermediate.dense.lora_B.weight", {16, 3}},
                         {"bert.pooler.dense.lora_A.weight", {3, 8}},
                         {"bert.pooler.dense.lora_B.weight", {8, 3}}}));
  for (const auto& [name, t] : checkpoint_weights(model, false)) EXPECT_EQ(adapter.count(name), 0u) << name;
  for (auto& [name, update] : lora_adapter(*model)->updates) {
    EXPECT_EQ(update->lora_B->weight.abs().max().item<double>(), 0.0) << name;
    // kaiming_uniform_(a = sqrt(5)) draws from U(-1/sqrt(in), 1/sqrt(in)); BERT's init is N(0, 0.02).
    const double bound = 1.0 / std::sqrt(8.0);
    EXPECT_LE(update->lora_A->weight.abs().max().item<double>(), bound) << name;
    EXPECT_GT(update->lora_A->weight.abs().max().item<double>(), 0.5 * bound) << name;
    EXPECT_DOUBLE_EQ(update->scaling, 2.0);
  }

  model->eval();
  plain->eval();
  torch::NoGradGuard no_grad;
  const auto ids = torch::tensor({{2, 5, 6, 3, 0}, {2, 7, 3, 8, 3}}, torch::kInt64);
  const auto types = torch::tensor({{0, 0, 0, 1, 1}, {0, 0, 0, 1, 1}}, torch::kInt64);
  const auto mask = torch::tensor({{1, 1, 1, 1, 0}, {1, 1, 1, 1, 1}}, torch::kInt64);
  EXPECT_TRUE(torch::equal(model->forward(ids, types, mask), plain->forward(ids, types, mask)));
  for (auto& [name, update] : lora_adapter(*model)->updates) update->lora_B->weight.normal_(0, 0.5);
  const torch::Tensor adapted = model->forward(ids, types, mask);
  EXPECT_FALSE(torch::allclose(adapted, plain->forward(ids, types, mask)));

  // Merged: W + (alpha / r) B A, computed here, and the same logits.
  const torch::Tensor want = plain->bert->pooler_dense->weight +
                             2.0 * torch::matmul(lora_adapter(*model)->updates.back().second->lora_B->weight,
                                                 lora_adapter(*model)->updates.back().second->lora_A->weight);
  merge_adapter(model, "test");
  EXPECT_FALSE(model->adapter);
  for (const auto& p : model->role_parameters()) EXPECT_NE(p.role, Role::kAdapter);
  EXPECT_TRUE(torch::allclose(model->bert->pooler_dense->weight, want, 0, 1e-6));
  EXPECT_TRUE(torch::allclose(model->forward(ids, types, mask), adapted, 1e-5, 1e-5));
  EXPECT_TRUE(torch::equal(model->bert->embeddings->word_embeddings->weight, plain->bert->embeddings->word_embeddings->weight));
}

// The encoder's dropout setting is the encoder's: LoRA's own dropout stays as its spec says.
TEST(SequenceModel, LoraDropoutIsItsOwn) {
  BertConfig c = tiny_config();
  LoraSpec spec;
  spec.r = 2;
  spec.dropout = 0.3;
  spec.modules = {"bert.encoder.layer.0.attention.self.value"};
  SequenceModel model(c, 1, SideInputDims{}, &spec);
  set_dropout(model, c, 0.0);
  EXPECT_DOUBLE_EQ(lora_adapter(*model)->updates.front().second->dropout, 0.3);
  LoraSpec bad;
  bad.modules = {"bert.encoder.layer.0.attention.self.values"};
  EXPECT_THROW(SequenceModel(c, 1, SideInputDims{}, &bad), ModelError);
}

}  // namespace
}  // namespace dqe
