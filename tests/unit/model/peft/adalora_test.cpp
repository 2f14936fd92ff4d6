// AdaLoRA's pieces against values derived by hand: the budget schedule, the orthogonality
// regulariser, importance and pruning, PEFT's resizing by the rank pattern, adapter_config.json.
#include "model/peft/adalora.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <set>

#include "bert_util.h"
#include "dqe/errors.h"
#include "dqe/exporter.h"
#include "io/safetensors.h"
#include "model/model_dir.h"
#include "model/peft/adapter.h"
#include "model/peft/lora.h"
#include "test_util.h"

namespace dqe {
namespace fs = std::filesystem;
namespace {

const std::string kQuery = "bert.encoder.layer.0.attention.self.query";
const std::string kValue = "bert.encoder.layer.0.attention.self.value";

// A one-layer encoder of width 4 with AdaLoRA updates of rank 3 on query and value.
SequenceModel tiny_model(AdaLoraSpec& spec) {
  const BertConfig c = test::tiny_bert_config(10, 4, 1, 1, 8, 8);
  LoraSpec lora;
  lora.r = 3;
  lora.alpha = 6;
  lora.dropout = 0;
  lora.modules = {kQuery, kValue};
  spec.init_r = 3;
  lora.adalora = spec;
  return SequenceModel(c, 1, SideInputDims{}, &lora);
}

LoraLinear update_of(SequenceModel& model, const std::string& module) {
  for (auto& [name, update] : lora_adapter(*model)->updates)
    if (name == module) return update;
  return LoraLinear{nullptr};
}

TEST(AdaLoraBudget, InitialCubicAndFinalPhases) {
  AdaLoraSpec s;
  s.tinit = 2;
  s.tfinal = 3;
  s.total_step = 12;
  s.delta_t = 2;
  // Two modules from rank 12 to 8: budgets 24 -> 16; pruning between steps 3 and 9.
  for (int64_t step : {0, 1, 2}) {
    EXPECT_EQ(adalora_budget(s, 24, 16, step).budget, 24) << step;
    EXPECT_FALSE(adalora_budget(s, 24, 16, step).mask) << step;
  }
  // Step 4: 16 + 8 (1 - 2/7)^3 = 16 + 8 * 125/343 = 18.92 -> 18, an allocation step (4 % 2 == 0).
  EXPECT_EQ(adalora_budget(s, 24, 16, 4).budget, 18);
  EXPECT_TRUE(adalora_budget(s, 24, 16, 4).mask);
  // Step 5: 16 + 8 * (4/7)^3 = 17.49 -> 17, no allocation (odd).
  EXPECT_EQ(adalora_budget(s, 24, 16, 5).budget, 17);
  EXPECT_FALSE(adalora_budget(s, 24, 16, 5).mask);
  // Step 9 = total - tfinal: the cubic reaches the target.
  EXPECT_EQ(adalora_budget(s, 24, 16, 9).budget, 16);
  // The final phase: the target, always masked.
  for (int64_t step : {10, 11}) {
    EXPECT_EQ(adalora_budget(s, 24, 16, step).budget, 16) << step;
    EXPECT_TRUE(adalora_budget(s, 24, 16, step).mask) << step;
  }
}

TEST(AdaLoraOrthLoss, ZeroForOrthonormalAndHandComputedOtherwise) {
  AdaLoraSpec spec;
  SequenceModel model = tiny_model(spec);
  torch::NoGradGuard no_grad;
  for (auto& [name, u] : lora_adapter(*model)->updates) {
    u->svd_A.copy_(torch::tensor({{1.f, 0.f, 0.f, 0.f}, {0.f, 1.f, 0.f, 0.f}, {0.f, 0.f, 0.f, 1.f}}));
    u->svd_B.copy_(torch::tensor({{0.f, 1.f, 0.f}, {1.f, 0.f, 0.f}, {0.f, 0.f, 1.f}, {0.f, 0.f, 0.f}}));
  }
  EXPECT_NEAR(adalora_orth_loss(model).item<double>(), 0.0, 1e-7);
  // query's A: rows (1,1,0,0), (0,1,0,0), (0,0,0,1): A A^T - I = [[1,1,0],[1,0,0],[0,0,0]], norm sqrt(3).
  // query's B: first column doubled: B^T B - I = diag(0, 3, 0), norm 3. value's stay orthonormal.
  auto q = update_of(model, kQuery);
  q->svd_A[0][1] = 1.f;
  q->svd_B[1][0] = 2.f;
  EXPECT_NEAR(adalora_orth_loss(model).item<double>(), (std::sqrt(3.0) + 3.0) / 4.0, 1e-6);
}

TEST(AdaLoraModel, StartsAtZeroAndComputesPsLambdaQ) {
  AdaLoraSpec spec;
  SequenceModel model = tiny_model(spec);
  init_weights(model, BertConfig{});
  auto q = update_of(model, kQuery);
  EXPECT_TRUE(torch::equal(q->svd_E, torch::zeros({3, 1})));  // the update starts at zero
  EXPECT_GT(q->svd_A.abs().max().item<double>(), 0);
  EXPECT_NEAR(q->svd_A.std().item<double>(), 0.02, 0.015);  // N(0, 0.02)
  EXPECT_NEAR(q->scaling, 6.0 / (3 + 1e-5), 1e-12);          // alpha / (ranknum + 1e-5)
  std::set<std::string> names;
  for (const auto& p : model->role_parameters())
    if (p.role == Role::kAdapter) names.insert(p.name);
  EXPECT_EQ(names, (std::set<std::string>{kQuery + ".lora_A", kQuery + ".lora_B", kQuery + ".lora_E", kValue + ".lora_A",
                                          kValue + ".lora_B", kValue + ".lora_E"}));
  torch::NoGradGuard no_grad;
  q->svd_E.copy_(torch::tensor({{1.f}, {-2.f}, {0.5f}}));
  const torch::Tensor x = torch::randn({5, 4});
  const torch::Tensor want = torch::matmul(x, (torch::matmul(q->svd_B, q->svd_A * q->svd_E) * q->scaling).t());
  EXPECT_TRUE(torch::allclose(q->forward(x), want, 1e-5, 1e-7));
  EXPECT_TRUE(torch::allclose(q->delta_weight(), torch::matmul(q->svd_B, torch::diag(q->svd_E.view(-1))).matmul(q->svd_A) * q->scaling,
                              1e-5, 1e-7));
}

// Hand-made weights, gradients all ones, beta1 = beta2 = 0.5: after one update the smoothed
// importance is 0.5 |p g| and its uncertainty 0.25 |p g|, so an entry scores |p|^2 / 8.
TEST(RankAllocator, PrunesTheLowestScoringTripletsToTheBudget) {
  AdaLoraSpec spec;
  spec.beta1 = 0.5;
  spec.beta2 = 0.5;
  spec.target_r = 1;
  SequenceModel model = tiny_model(spec);
  auto q = update_of(model, kQuery), v = update_of(model, kValue);
  {
    torch::NoGradGuard no_grad;
    for (auto u : {q, v}) {
      u->svd_A.zero_();
      u->svd_B.zero_();
    }
    q->svd_E.copy_(torch::tensor({{1.f}, {2.f}, {3.f}}));
    v->svd_E.copy_(torch::tensor({{0.5f}, {2.5f}, {4.f}}));
    q->svd_A[0].fill_(2.f);     // raises query's triplet 0 by the mean of its A row: 4/8
    v->svd_B.select(1, 0).fill_(3.f);  // raises value's triplet 0 by the mean of its B column: 9/8
  }
  for (auto u : {q, v})
    for (auto p : {u->svd_A, u->svd_E, u->svd_B}) p.mutable_grad() = torch::ones_like(p);
  RankAllocator allocator(model, spec);
  EXPECT_EQ(allocator.init_budget(), 6);
  EXPECT_EQ(allocator.target_budget(), 2);
  allocator.update_importance();
  // Scores: query 1/8 + 4/8, 4/8, 9/8; value 0.25/8 + 9/8, 6.25/8, 16/8. A budget of 3 drops
  // the three lowest: query's 0 and 1, value's 1.
  const auto pattern = allocator.mask_to_budget(3);
  EXPECT_EQ(pattern.at(kQuery), (std::vector<bool>{false, false, true}));
  EXPECT_EQ(pattern.at(kValue), (std::vector<bool>{true, false, true}));
  EXPECT_TRUE(torch::equal(q->svd_E, torch::tensor({{0.f}, {0.f}, {3.f}})));
  EXPECT_TRUE(torch::equal(v->svd_E, torch::tensor({{0.5f}, {0.f}, {4.f}})));
  // A budget at the initial one prunes nothing.
  EXPECT_EQ(allocator.mask_to_budget(6).at(kValue), (std::vector<bool>{true, true, true}));
}

TEST(RankAllocator, FixesTheFinalPatternAndReappliesIt) {
  AdaLoraSpec spec;
  spec.target_r = 1;
  spec.tinit = 0;
  spec.tfinal = 1;
  spec.total_step = 3;
  SequenceModel model = tiny_model(spec);
  init_weights(model, BertConfig{});
  auto q = update_of(model, kQuery), v = update_of(model, kValue);
  {
    torch::NoGradGuard no_grad;
    q->svd_E.copy_(torch::tensor({{1.f}, {2.f}, {3.f}}));
    v->svd_E.copy_(torch::tensor({{4.f}, {5.f}, {6.f}}));
  }
  for (auto u : {q, v})
    for (auto p : {u->svd_A, u->svd_E, u->svd_B}) p.mutable_grad() = torch::ones_like(p);
  RankAllocator allocator(model, spec);
  allocator.update_and_allocate(0);  // step 0 <= tinit: importance only
  EXPECT_TRUE(spec.rank_pattern.empty());
  allocator.update_and_allocate(2);  // total - tfinal: pruned to the target, 1 per module on average
  int64_t total = 0;
  for (const auto& [module, rank] : allocator.ranks()) total += rank;
  EXPECT_EQ(total, 2);
  // Pruned entries of E that learned again are zeroed after every later step.
  torch::NoGradGuard no_grad;
  v->svd_E.fill_(7.f);
  q->svd_E.fill_(7.f);
  allocator.update_and_allocate(3);
  EXPECT_EQ((q->svd_E != 0).sum().item<int64_t>() + (v->svd_E != 0).sum().item<int64_t>(), 2);
}

TEST(AdaLoraResize, SavedByTheRankPatternAndExpandedBack) {
  AdaLoraSpec spec;
  spec.rank_pattern[kQuery] = {true, false, true};
  spec.rank_pattern[kValue] = {false, false, false};
  SequenceModel model = tiny_model(spec);
  init_weights(model, BertConfig{});
  {
    torch::NoGradGuard no_grad;
    for (auto& [name, u] : lora_adapter(*model)->updates) u->svd_E.normal_();
  }
  const auto saved = resize_by_rank_pattern(adapter_tensors(*model), spec);
  std::map<std::string, torch::Tensor> file(saved.begin(), saved.end());
  const std::string q = std::string(kPeftPrefix) + kQuery, v = std::string(kPeftPrefix) + kValue;
  EXPECT_EQ(file.at(q + ".lora_A").sizes(), (std::vector<int64_t>{2, 4}));
  EXPECT_EQ(file.at(q + ".lora_E").sizes(), (std::vector<int64_t>{2, 1}));
  EXPECT_EQ(file.at(q + ".lora_B").sizes(), (std::vector<int64_t>{4, 2}));
  EXPECT_EQ(file.at(v + ".lora_A").sizes(), (std::vector<int64_t>{0, 4}));
  auto full = update_of(model, kQuery);
  EXPECT_TRUE(torch::equal(file.at(q + ".lora_A")[1], full->svd_A[2]));
  expand_by_rank_pattern(file, spec, "adapter_model.safetensors");
  EXPECT_EQ(file.at(v + ".lora_B").sizes(), (std::vector<int64_t>{4, 3}));
  EXPECT_TRUE(torch::equal(file.at(q + ".lora_A")[0], full->svd_A[0]));
  EXPECT_TRUE(torch::equal(file.at(q + ".lora_A")[1], torch::zeros({4})));
  EXPECT_TRUE(torch::equal(file.at(q + ".lora_B").select(1, 2), full->svd_B.select(1, 2)));
  file[q + ".lora_E"] = torch::zeros({3, 1});
  try {
    expand_by_rank_pattern(file, spec, "adapter_model.safetensors");
    FAIL() << "a tensor of the wrong rank was expanded";
  } catch (const ModelError& e) {
    EXPECT_NE(std::string(e.what()).find("does not have the rank 2 that rank_pattern keeps"), std::string::npos) << e.what();
  }
}

TEST(AdaLoraConfig, AdapterConfigInPeftsKeysRoundTrips) {
  LoraSpec s;
  s.r = 12;
  s.alpha = 16;
  s.dropout = 0.1;
  s.target_modules = {"query", "value"};
  s.base.path = "base";
  AdaLoraSpec& a = s.adalora.emplace();
  a.target_r = 8;
  a.tinit = 10;
  a.tfinal = 30;
  a.delta_t = 2;
  a.total_step = 100;
  a.rank_pattern[kQuery] = std::vector<bool>(12, true);
  a.rank_pattern[kQuery][3] = false;
  const nlohmann::json j = s.adapter_config({"classifier"}, BertConfig{});
  EXPECT_EQ(j["peft_type"], "ADALORA");
  EXPECT_EQ(j["init_r"], 12);
  EXPECT_EQ(j["target_r"], 8);
  EXPECT_EQ(j["deltaT"], 2);
  EXPECT_EQ(j["total_step"], 100);
  EXPECT_EQ(j["rank_pattern"][kQuery + ".lora_E"][3], false);
  const LoraSpec back = lora_spec_from_adapter_config(j, "adapter_config.json");
  ASSERT_TRUE(back.adalora);
  EXPECT_EQ(back.r, 12);
  EXPECT_EQ(back.adalora->tfinal, 30);
  EXPECT_EQ(back.adalora->rank_pattern, a.rank_pattern);
  EXPECT_NEAR(back.scaling(), 16.0 / (12 + 1e-5), 1e-12);
  nlohmann::json bad = j;
  bad["rank_pattern"][kQuery + ".lora_E"] = {true, false};
  EXPECT_THROW(lora_spec_from_adapter_config(bad, "adapter_config.json"), ModelError);
}

// An adapter in the files PEFT's save_pretrained writes for AdaLoRA (every LoraConfig key, the
// tensors cut to rank_pattern, a module pruned to rank 0) loads on its base and merges as PEFT
// computes: W + lora_alpha / (init_r + 1e-5) B (A * E) over the kept triplets.
TEST(AdaLoraAdapter, PeftsFilesLoadAndMergeAsPeftComputes) {
  DQE_REQUIRE_SHARED_FIXTURES();
  test::TempDir dir;
  const std::string adapter = dir.path("adapter");
  fs::create_directories(adapter);
  const std::string q0 = "bert.encoder.layer.0.attention.self.query", v0 = "bert.encoder.layer.0.attention.self.value";
  const nlohmann::json config = {
      {"alpha_pattern", nlohmann::json::object()}, {"auto_mapping", nullptr}, {"base_model_name_or_path", test::hf_fixture()},
      {"beta1", 0.85}, {"beta2", 0.85}, {"bias", "none"}, {"deltaT", 1}, {"exclude_modules", nullptr},
      {"fan_in_fan_out", false}, {"inference_mode", true}, {"init_lora_weights", true}, {"init_r", 4},
      {"layer_replication", nullptr}, {"layers_pattern", nullptr}, {"layers_to_transform", nullptr},
      {"loftq_config", nlohmann::json::object()}, {"lora_alpha", 8}, {"lora_bias", false}, {"lora_dropout", 0.1},
      {"megatron_config", nullptr}, {"megatron_core", "megatron.core"}, {"modules_to_save", {"classifier"}},
      {"orth_reg_weight", 0.5}, {"peft_type", "ADALORA"}, {"r", 8},
      {"rank_pattern", {{q0 + ".lora_E", {true, false, true, true}}, {v0 + ".lora_E", {false, false, false, false}}}},
      {"revision", nullptr}, {"target_modules", {"query", "value"}}, {"target_r", 2}, {"task_type", "SEQ_CLS"},
      {"tfinal", 10}, {"tinit", 5}, {"total_step", 100}, {"use_dora", false}, {"use_rslora", false}};
  test::write_text(adapter + "/adapter_config.json", config.dump(2));
  torch::manual_seed(3);
  const std::string p = kPeftPrefix;
  std::vector<std::pair<std::string, torch::Tensor>> tensors = {
      {p + q0 + ".lora_A", 0.3 * torch::randn({3, 32})}, {p + q0 + ".lora_E", 0.3 * torch::randn({3, 1})},
      {p + q0 + ".lora_B", 0.3 * torch::randn({32, 3})}, {p + v0 + ".lora_A", torch::zeros({0, 32})},
      {p + v0 + ".lora_E", torch::zeros({0, 1})},  {p + v0 + ".lora_B", torch::zeros({32, 0})}};
  for (const char* layer : {"1"}) {  // layer 1 never pruned: no rank_pattern entry, full init_r
    for (const char* m : {"query", "value"}) {
      const std::string name = p + "bert.encoder.layer." + layer + ".attention.self." + m;
      tensors.push_back({name + ".lora_A", 0.3 * torch::randn({4, 32})});
      tensors.push_back({name + ".lora_E", 0.3 * torch::randn({4, 1})});
      tensors.push_back({name + ".lora_B", 0.3 * torch::randn({32, 4})});
    }
  }
  tensors.push_back({p + "classifier.weight", 0.3 * torch::randn({3, 32})});
  tensors.push_back({p + "classifier.bias", 0.3 * torch::randn({3})});
  save_safetensors(adapter + "/adapter_model.safetensors", tensors);
  const std::map<std::string, torch::Tensor> file(tensors.begin(), tensors.end());

  LoadedModel m = load_model(adapter);
  ASSERT_TRUE(m.spec.adapter.as<LoraSpec>() && m.spec.adapter.as<LoraSpec>()->adalora);
  EXPECT_EQ(m.spec.adapter.as<LoraSpec>()->modules.size(), 4u);
  EXPECT_EQ(m.spec.adapter.as<LoraSpec>()->adalora->target_r, 2);
  ExportConfig xc;
  xc.model = adapter;
  xc.out = dir.path("merged");
  xc.merge = true;
  EXPECT_EQ(export_model(xc).merged_modules, 4);
  LoadedModel base = load_model(test::hf_fixture()), merged = load_model(xc.out);
  std::map<std::string, torch::Tensor> before, after;
  for (const auto& x : base.model->role_parameters()) before[x.name] = x.tensor;
  for (const auto& x : merged.model->role_parameters()) after[x.name] = x.tensor;
  const double scaling = 8.0 / (4 + 1e-5);
  const torch::Tensor want_q0 = before.at(q0 + ".weight") + torch::matmul(file.at(p + q0 + ".lora_B"),
                                                                          file.at(p + q0 + ".lora_A") * file.at(p + q0 + ".lora_E")) *
                                                             scaling;
  EXPECT_TRUE(torch::allclose(after.at(q0 + ".weight"), want_q0, 1e-5, 1e-6));
  EXPECT_TRUE(torch::equal(after.at(v0 + ".weight"), before.at(v0 + ".weight")));  // rank 0: nothing to add
  EXPECT_TRUE(torch::equal(after.at("classifier.weight"), file.at(p + "classifier.weight")));

  // Unmerged and merged compute the same; saved again, the adapter is cut as PEFT's was.
  torch::InferenceMode guard;
  m.model->eval();
  merged.model->eval();
  const torch::Tensor ids = torch::randint(1, 226, {4, 12}), types = torch::zeros({4, 12}, torch::kInt64),
                      mask = torch::ones({4, 12}, torch::kInt64);
  const torch::Tensor unmerged_logits = m.model->forward(ids, types, mask);
  EXPECT_LT((unmerged_logits - merged.model->forward(ids, types, mask)).abs().max().item<double>(), 1e-5)
      << unmerged_logits;
  xc.out = dir.path("again");
  xc.merge = false;
  export_model(xc);
  const auto again = load_safetensors(dir.path("again/adapter_model.safetensors"));
  for (const auto& [name, t] : file) EXPECT_TRUE(torch::equal(again.at(name), t)) << name;

  // A rank_pattern entry for a module the file holds no update of: the config belongs to
  // another adapter, and was ignored.
  nlohmann::json other = config;
  other["rank_pattern"]["bert.encoder.layer.1.output.dense.lora_E"] = {true, true, true, true};
  test::write_text(adapter + "/adapter_config.json", other.dump(2));
  try {
    load_model(adapter);
    FAIL() << "a rank_pattern naming no module of the file was taken";
  } catch (const ModelError& e) {
    EXPECT_NE(std::string(e.what()).find("adapter_model.safetensors: rank_pattern names bert.encoder.layer.1.output.dense, "
                                         "which the file holds no update of"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace dqe
