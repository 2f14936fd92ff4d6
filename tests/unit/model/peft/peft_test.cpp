// LoRA adapters in Hugging Face PEFT's format: the fixture written by Python (its logits are
// the independent oracle), target names, parameter counts, the adapter_config.json keys.
#include "model/peft/adapter.h"
#include "model/peft/lora.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "bert_util.h"
#include "data/dataset.h"
#include "dqe/errors.h"
#include "dqe/exporter.h"
#include "dqe/run_context.h"
#include "infer/predictor.h"
#include "io/json_file.h"
#include "io/safetensors.h"
#include "model/model_dir.h"
#include "test_util.h"

namespace dqe {
namespace fs = std::filesystem;
namespace {

// ../shared/fixtures/tiny-bert-lora-peft: r 4, alpha 8 on query and value of tiny-bert-hf,
// a 3-class head, written by ../shared/reference/peft_lora_fixture.py.
const std::string kAdapter = std::string(DQE_SHARED_DIR) + "/fixtures/tiny-bert-lora-peft";

nlohmann::json expected() {
  std::ifstream in(kAdapter + "/expected.json");
  return nlohmann::json::parse(in);
}

// The fixture's pairs through the model, one at a time, as the Python reference ran them.
std::vector<std::vector<float>> logits_of_cases(LoadedModel& m) {
  torch::InferenceMode guard;
  m.model->eval();
  std::vector<std::vector<float>> out;
  const nlohmann::json exp = expected();
  for (const auto& c : exp["cases"]) {
    Encoding e = m.tokenizer->encode_pair(c["query"].get<std::string>(), c["title"].get<std::string>(),
                                          c["max_len"].get<size_t>());
    Batch b = collate({e}, {0}, m.tokenizer->pad_id());
    auto logits = m.model->forward(b.ids, b.type_ids, b.mask);
    out.emplace_back(logits.data_ptr<float>(), logits.data_ptr<float>() + logits.numel());
  }
  return out;
}

double max_difference_from_expected(const std::vector<std::vector<float>>& logits) {
  const nlohmann::json exp = expected();
  double worst = 0;
  for (size_t i = 0; i < logits.size(); ++i) {
    const auto want = exp["cases"][i]["logits"].get<std::vector<float>>();
    EXPECT_EQ(logits[i].size(), want.size());
    for (size_t k = 0; k < want.size(); ++k) worst = std::max(worst, std::abs(double(logits[i][k]) - want[k]));
  }
  return worst;
}

TEST(PeftFixture, UnmergedAdapterGivesPythonsLogits) {
  DQE_REQUIRE_SHARED_FIXTURES();
  LoadedModel m = load_model(kAdapter);
  ASSERT_TRUE(m.spec.adapter.as<LoraSpec>());
  EXPECT_EQ(m.spec.adapter.as<LoraSpec>()->r, 4);
  EXPECT_DOUBLE_EQ(m.spec.adapter.as<LoraSpec>()->scaling(), 2.0);
  EXPECT_EQ(m.spec.adapter.as<LoraSpec>()->modules,
            (std::vector<std::string>{"bert.encoder.layer.0.attention.self.query", "bert.encoder.layer.0.attention.self.value",
                                      "bert.encoder.layer.1.attention.self.query", "bert.encoder.layer.1.attention.self.value"}));
  EXPECT_EQ(fs::canonical(m.base_dir), fs::canonical(test::hf_fixture()));  // "../tiny-bert-hf", from the adapter
  EXPECT_EQ(m.spec.task.labels, (std::vector<std::string>{"irrelevant", "partial", "exact"}));  // the base's
  EXPECT_TRUE(m.report.missing.empty());
  EXPECT_TRUE(m.model->adapter);
  const double worst = max_difference_from_expected(logits_of_cases(m));
  EXPECT_LT(worst, 1e-4);
  std::cout << "[ fixture  ] unmerged: max abs logit difference " << worst << "\n";

  // The predictor (length-sorted batches, padding) gives the same.
  const nlohmann::json exp = expected();
  std::vector<Record> records;
  for (const auto& c : exp["cases"]) {
    Record r;
    r.query = c["query"].get<std::string>();
    r.text = c["title"].get<std::string>();
    records.push_back(r);
  }
  const torch::Tensor batched = Predictor(m.model, m.featurizer, Precision::kFp32, 4).run(records, 1).logits;
  for (size_t i = 0; i < records.size(); ++i)
    for (int64_t k = 0; k < 3; ++k)
      EXPECT_NEAR(batched[static_cast<int64_t>(i)][k].item<float>(), exp["cases"][i]["logits"][k].get<float>(), 1e-4);
}

TEST(PeftFixture, MergedAdapterGivesTheSameLogitsAndTheFoldedWeights) {
  DQE_REQUIRE_SHARED_FIXTURES();
  LoadedModel unmerged = load_model(kAdapter);
  LoadOptions lo;
  lo.merge_adapter = true;
  LoadedModel merged = load_model(kAdapter, lo);
  EXPECT_FALSE(merged.spec.adapter.as<LoraSpec>());
  EXPECT_FALSE(merged.model->adapter);
  for (const auto& p : merged.model->role_parameters()) EXPECT_NE(p.role, Role::kAdapter) << p.name;
  const auto a = logits_of_cases(unmerged), b = logits_of_cases(merged);
  const double worst = max_difference_from_expected(b);
  EXPECT_LT(worst, 1e-4);
  std::cout << "[ fixture  ] merged: max abs logit difference " << worst << "\n";
  for (size_t i = 0; i < a.size(); ++i)
    for (size_t k = 0; k < a[i].size(); ++k) EXPECT_NEAR(a[i][k], b[i][k], 1e-5);

  // W + (lora_alpha / r) B A, computed here from the two files.
  const auto base = load_safetensors(test::hf_fixture() + "/model.safetensors");
  const auto adapter = load_safetensors(kAdapter + "/adapter_model.safetensors");
  const std::string module = "bert.encoder.layer.1.attention.self.value";
  const torch::Tensor want = base.at(module + ".weight") + 2.0 * torch::matmul(adapter.at(kPeftPrefix + module + ".lora_B.weight"),
                                                                               adapter.at(kPeftPrefix + module + ".lora_A.weight"));
  EXPECT_TRUE(torch::allclose(merged.model->bert->layers->ptr<BertLayerImpl>(1)->attention->self->value->weight, want,
                              0, 1e-6));
  // Modules without an update keep the base's weights exactly.
  EXPECT_TRUE(torch::equal(merged.model->bert->layers->ptr<BertLayerImpl>(1)->attention->self->key->weight,
                           base.at("bert.encoder.layer.1.attention.self.key.weight")));
}

// Several adapters of one base in one ensemble hold the base once: their encoder weights are
// the same tensors, and each member still scores as it does alone.
TEST(PeftFixture, AdaptersOfOneBaseShareItsWeightsInAnEnsemble) {
  DQE_REQUIRE_SHARED_FIXTURES();
  test::TempDir dir;
  // A second adapter of the same base: the fixture's updates doubled, its head kept.
  const std::string second = dir.path("second");
  fs::create_directories(second);
  fs::copy_file(kAdapter + "/adapter_config.json", second + "/adapter_config.json");
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  for (auto& [name, t] : load_safetensors(kAdapter + "/adapter_model.safetensors"))
    tensors.emplace_back(name, name.find("lora_B") != std::string::npos ? t * 2 : t);
  save_safetensors(second + "/adapter_model.safetensors", tensors);

  const RunContext ctx = make_run_context("cpu", "fp32", 1);
  const Ensemble both = load_ensemble({kAdapter, second}, 0, std::nullopt, ctx, 4, test::hf_fixture());
  ASSERT_EQ(both.members.size(), 2u);
  EXPECT_EQ(both.adapters, 2);
  EXPECT_EQ(both.adapter_bases, 1);
  // The bytes shared are the base file's encoder tensors (embeddings, layers, pooler), counted here.
  int64_t encoder_bytes = 0;
  for (const auto& [name, t] : load_safetensors(test::hf_fixture() + "/model.safetensors"))
    if (name.rfind("bert.", 0) == 0) encoder_bytes += t.numel() * 4;
  EXPECT_EQ(both.shared_base_bytes, encoder_bytes);
  EXPECT_NE(both.sharing_summary().find("2 adapters on 1 base"), std::string::npos) << both.sharing_summary();
  auto& a = both.members[0].model;
  auto& b = both.members[1].model;
  EXPECT_EQ(a->bert->embeddings->word_embeddings->weight.data_ptr(), b->bert->embeddings->word_embeddings->weight.data_ptr());
  EXPECT_EQ(a->bert->layers->ptr<BertLayerImpl>(1)->attention->self->value->weight.data_ptr(),
            b->bert->layers->ptr<BertLayerImpl>(1)->attention->self->value->weight.data_ptr());
  EXPECT_NE(a->classifier->weight.data_ptr(), b->classifier->weight.data_ptr());  // heads are each adapter's

  // Each member scores as it does loaded alone.
  const nlohmann::json exp = expected();
  std::vector<Record> records;
  for (const auto& c : exp["cases"]) {
    Record r;
    r.query = c["query"].get<std::string>();
    r.text = c["title"].get<std::string>();
    records.push_back(r);
  }
  for (size_t m = 0; m < 2; ++m) {
    const Ensemble alone = load_ensemble({m == 0 ? kAdapter : second}, 0, std::nullopt, ctx, 4, test::hf_fixture());
    EXPECT_EQ(alone.shared_base_bytes, 0);
    EXPECT_EQ(alone.sharing_summary(), "");
    const torch::Tensor want = alone.predictors[0].run(records, 1).logits;
    const torch::Tensor got = both.predictors[m].run(records, 1).logits;
    EXPECT_TRUE(torch::equal(want, got)) << "member " << m;
  }
  // The doubled updates score differently: the two members are not one model twice.
  EXPECT_FALSE(torch::equal(both.predictors[0].run(records, 1).logits, both.predictors[1].run(records, 1).logits));
}

// dqe export --merge: a plain checkpoint (model.safetensors, no adapter files) scoring as the
// adapter did; without --merge an adapter stays one, recording its base.
TEST(PeftFixture, ExportWritesAMergedCheckpointOrTheAdapter) {
  DQE_REQUIRE_SHARED_FIXTURES();
  test::TempDir dir;
  ExportConfig ec;
  ec.model = kAdapter;
  ec.out = dir.path("merged");
  ec.merge = true;
  const ExportResult r = export_model(ec);
  EXPECT_EQ(r.merged_modules, 4);
  EXPECT_TRUE(fs::exists(dir.path("merged/model.safetensors")));
  EXPECT_TRUE(fs::exists(dir.path("merged/vocab.txt")));  // the base's tokenizer
  EXPECT_FALSE(fs::exists(dir.path("merged/adapter_config.json")));
  LoadedModel merged = load_model(dir.path("merged"));
  EXPECT_FALSE(merged.spec.adapter.as<LoraSpec>());
  LoadedModel unmerged = load_model(kAdapter);
  const auto a = logits_of_cases(unmerged), b = logits_of_cases(merged);
  for (size_t i = 0; i < a.size(); ++i)
    for (size_t k = 0; k < a[i].size(); ++k) EXPECT_NEAR(a[i][k], b[i][k], 1e-5);
  EXPECT_THROW(export_model(ec), ConfigError);  // --out exists

  ec.out = dir.path("adapter");
  ec.merge = false;
  EXPECT_EQ(export_model(ec).merged_modules, 0);
  EXPECT_TRUE(fs::exists(dir.path("adapter/adapter_model.safetensors")));
  EXPECT_FALSE(fs::exists(dir.path("adapter/model.safetensors")));
  LoadedModel again = load_model(dir.path("adapter"));  // its base found through the recorded directory
  ASSERT_TRUE(again.spec.adapter.as<LoraSpec>());
  EXPECT_FALSE(again.spec.adapter->base.hash.empty());
  const auto c = logits_of_cases(again);
  for (size_t i = 0; i < a.size(); ++i)
    for (size_t k = 0; k < a[i].size(); ++k) EXPECT_EQ(a[i][k], c[i][k]);
}

TEST(Peft, TargetNamesSelectModulesByPeftsRule) {
  auto count = [](const std::vector<std::string>& targets) { return lora_modules(targets, 2).size(); };
  EXPECT_EQ(lora_modules({"query", "value"}, 1),
            (std::vector<std::string>{"bert.encoder.layer.0.attention.self.query", "bert.encoder.layer.0.attention.self.value"}));
  EXPECT_EQ(count({"key"}), 2u);
  EXPECT_EQ(count({"attention.output.dense"}), 2u);
  EXPECT_EQ(count({"intermediate.dense"}), 2u);
  EXPECT_EQ(count({"output.dense"}), 4u);  // the attention's output ends so too, as PEFT matches it
  EXPECT_EQ(count({"dense"}), 2u * 3 + 1);  // with the pooler
  EXPECT_EQ(count({"pooler.dense"}), 1u);
  EXPECT_EQ(count({"layer.1.output.dense"}), 1u);  // the feed-forward output of layer 1 alone
  EXPECT_EQ(count({"all-linear"}), 2u * 6 + 1);
  EXPECT_EQ(lora_modules({"all-linear"}, 2), encoder_linear_names(2));
  auto message = [](const std::vector<std::string>& targets) {
    try {
      lora_modules(targets, 2);
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("(accepted)");
  };
  EXPECT_NE(message({"quary"}).find("--lora-targets: \"quary\" names no Linear of the encoder; valid names: query, key, value"),
            std::string::npos)
      << message({"quary"});
  EXPECT_NE(message({"layer.2.output.dense"}).find("--lora-targets"), std::string::npos);  // only 2 layers
  EXPECT_NE(message({"classifier"}).find("--lora-targets"), std::string::npos);            // a head, trained in full
  EXPECT_NE(message({"all-linear", "query"}).find("stands alone"), std::string::npos);
  EXPECT_NE(message({}).find("--lora-targets"), std::string::npos);
  // PEFT's own expansion of all-linear is the modules' full names; other targets stay as given.
  EXPECT_EQ(peft_target_modules({"query", "value"}, lora_modules({"query", "value"}, 2)),
            (std::vector<std::string>{"query", "value"}));
  EXPECT_EQ(peft_target_modules({"all-linear"}, lora_modules({"all-linear"}, 1)).size(), 7u);
}

// The trainable parameters of a LoRA model: r (in + out) per adapted Linear plus the heads,
// with shapes written out here for tiny-bert-hf (hidden 32, intermediate 64, 2 layers, 3 classes).
TEST(Peft, TrainableParameterCountsFollowFromRankAndTargets) {
  const BertConfig c = test::tiny_bert_config(50, 32, 2, 4, 64);
  const int64_t head = 32 * 3 + 3;
  struct Case {
    std::vector<std::string> targets;
    int64_t r;
    int64_t want_adapter;
  };
  const std::vector<Case> cases = {
      {{"query", "value"}, 8, 2 * 2 * 8 * (32 + 32)},
      {{"query", "value"}, 4, 2 * 2 * 4 * (32 + 32)},
      {{"intermediate.dense"}, 2, 2 * 2 * (32 + 64)},
      {{"output.dense"}, 8, 2 * (8 * (32 + 32) + 8 * (64 + 32))},
      {{"all-linear"}, 8, 2 * (3 * 8 * 64 + 8 * 64 + 8 * 96 + 8 * 96) + 8 * 64},
  };
  for (const Case& k : cases) {
    LoraSpec spec;
    spec.r = k.r;
    spec.modules = lora_modules(k.targets, 2);
    SequenceModel model(c, 3, SideInputDims{}, &spec);
    init_weights(model, c);
    set_trainable(model, {Role::kEmbeddings, Role::kEncoder, Role::kPooler}, false);
    int64_t adapter = 0, trainable = 0;
    for (const auto& p : model->role_parameters()) {
      if (p.role == Role::kAdapter) adapter += p.tensor.numel();
      if (p.tensor.requires_grad()) trainable += p.tensor.numel();
    }
    EXPECT_EQ(adapter, k.want_adapter) << k.targets.front() << " r " << k.r;
    EXPECT_EQ(trainable, k.want_adapter + head) << k.targets.front() << " r " << k.r;
    // What the adapter file holds is exactly that.
    int64_t saved = 0;
    for (const auto& [name, t] : adapter_tensors(*model)) saved += t.numel();
    EXPECT_EQ(saved, k.want_adapter + head);
  }
}

TEST(Peft, AdapterConfigRoundTripsAndRefusesWhatDqeDoesNotCompute) {
  LoraSpec spec;
  spec.r = 16;
  spec.alpha = 32;
  spec.dropout = 0.05;
  spec.target_modules = {"query", "key"};
  spec.base.path = "../base";
  const nlohmann::json j = spec.adapter_config({"classifier", "lexical"}, BertConfig{});
  EXPECT_EQ(j["peft_type"], "LORA");
  EXPECT_EQ(j["task_type"], "SEQ_CLS");
  EXPECT_EQ(j["r"], 16);
  EXPECT_TRUE(j["lora_alpha"].is_number_integer());
  EXPECT_EQ(j["lora_alpha"], 32);
  EXPECT_EQ(j["modules_to_save"], nlohmann::json({"classifier", "lexical"}));
  EXPECT_EQ(j["bias"], "none");
  EXPECT_EQ(j["fan_in_fan_out"], false);
  EXPECT_EQ(j["base_model_name_or_path"], "../base");
  const LoraSpec back = lora_spec_from_adapter_config(j, "a.json");
  EXPECT_EQ(back.r, 16);
  EXPECT_DOUBLE_EQ(back.alpha, 32);
  EXPECT_DOUBLE_EQ(back.dropout, 0.05);
  EXPECT_EQ(back.target_modules, spec.target_modules);
  EXPECT_EQ(back.base.path, "../base");
  EXPECT_DOUBLE_EQ(back.scaling(), 2.0);
  nlohmann::json rs = j;
  rs["use_rslora"] = true;
  EXPECT_DOUBLE_EQ(lora_spec_from_adapter_config(rs, "a.json").scaling(), 32.0 / 4.0);

  auto refused = [&](const char* key, const nlohmann::json& value, const std::string& expect) {
    nlohmann::json bad = j;
    bad[key] = value;
    try {
      lora_spec_from_adapter_config(bad, "a.json");
      ADD_FAILURE() << key << " accepted";
    } catch (const ModelError& e) {
      EXPECT_NE(std::string(e.what()).find(expect), std::string::npos) << e.what();
    }
  };
  refused("peft_type", "IA3", "a.json: peft_type \"IA3\" is not supported");
  refused("task_type", "CAUSAL_LM", "task_type \"CAUSAL_LM\"");
  refused("bias", "all", "bias \"all\"");
  refused("use_dora", true, "use_dora");
  refused("fan_in_fan_out", true, "fan_in_fan_out");
  refused("rank_pattern", {{"query", 4}}, "rank_pattern");
  refused("r", 0, "r must be");
}

// Tensors that adapt no Linear, or that are no head, are named.
TEST(Peft, AdapterFilesWithStrangeTensorsAreRefused) {
  const BertConfig c = test::tiny_bert_config(50, 8, 1, 2, 16);
  std::map<std::string, torch::Tensor> file = {
      {"base_model.model.bert.encoder.layer.0.attention.self.query.lora_A.weight", torch::zeros({2, 8})},
      {"base_model.model.bert.encoder.layer.0.attention.self.query.lora_B.weight", torch::zeros({8, 2})}};
  EXPECT_EQ(adapted_modules(file, 1, "f"), (std::vector<std::string>{"bert.encoder.layer.0.attention.self.query"}));
  auto bad = file;
  bad["base_model.model.bert.encoder.layer.3.attention.self.query.lora_A.weight"] = torch::zeros({2, 8});
  EXPECT_THROW(adapted_modules(bad, 1, "f"), ModelError);

  LoraSpec spec;
  spec.r = 2;
  spec.modules = {"bert.encoder.layer.0.attention.self.query"};
  SequenceModel model(c, 1, SideInputDims{}, &spec);
  bad = file;
  bad["base_model.model.bert.embeddings.word_embeddings.weight"] = torch::zeros({50, 8});
  try {
    load_adapter_tensors(*model, bad, "adapter_model.safetensors", false);
    FAIL() << "an embedding in the adapter was accepted";
  } catch (const ModelError& e) {
    EXPECT_NE(std::string(e.what()).find("word_embeddings"), std::string::npos) << e.what();
  }
  bad = file;
  bad.erase(bad.begin());
  EXPECT_THROW(load_adapter_tensors(*model, bad, "f", false), ModelError);
  bad = file;
  bad.begin()->second = torch::zeros({3, 8});
  EXPECT_THROW(load_adapter_tensors(*model, bad, "f", false), ModelError);
  EXPECT_TRUE(load_adapter_tensors(*model, file, "f", false).empty());  // no head in the file
}

// A copy of the fixture's adapter whose adapter_config.json is edited, and its load error or
// "(loaded)".
struct EditedAdapter {
  test::TempDir dir;
  std::string path = dir.path("adapter");
  nlohmann::json config;

  EditedAdapter() {
    fs::create_directories(path);
    for (const char* f : {"adapter_config.json", "adapter_model.safetensors"})
      fs::copy_file(fs::path(kAdapter) / f, fs::path(path) / f);
    std::ifstream in(kAdapter + "/adapter_config.json");
    config = nlohmann::json::parse(in);
    config["base_model_name_or_path"] = test::hf_fixture();
  }
  std::string load_error(const LoadOptions& options = {}) {
    test::write_text(path + "/adapter_config.json", config.dump(2));
    try {
      load_model(path, options);
    } catch (const ModelError& e) {
      return e.what();
    }
    return "(loaded)";
  }
};

// What adapter_config.json says of where the updates and heads go is checked against the
// file: PEFT applies only what its config selects, so a tensor it would leave out is refused,
// never applied (or folded by export --merge).
TEST(PeftFixture, AnAdapterIsReadWhollyOrRefused) {
  DQE_REQUIRE_SHARED_FIXTURES();
  {
    EditedAdapter a;  // the fixture adapts query and value of both layers
    a.config["layers_to_transform"] = {1};
    const std::string error = a.load_error();
    EXPECT_NE(error.find("adapter_model.safetensors: it holds an update of bert.encoder.layer.0.attention.self.query, "
                         "which target_modules (query, value) and layers_to_transform (1) in adapter_config.json do "
                         "not select: PEFT would leave it out"),
              std::string::npos)
        << error;
    a.config["layers_to_transform"] = 0;  // one index, as PEFT also writes it
    EXPECT_NE(a.load_error().find("update of bert.encoder.layer.1."), std::string::npos) << a.load_error();
    a.config["layers_to_transform"] = {0, 1};
    a.config["layers_pattern"] = "layer";
    EXPECT_EQ(a.load_error(), "(loaded)");
  }
  {
    EditedAdapter a;
    a.config["target_modules"] = {"query"};
    EXPECT_NE(a.load_error().find("update of bert.encoder.layer.0.attention.self.value, which target_modules (query)"),
              std::string::npos)
        << a.load_error();
    // One string is PEFT's regular expression over the whole name.
    a.config["target_modules"] = ".*\\.query";
    EXPECT_NE(a.load_error().find("which target_modules \".*\\.query\""), std::string::npos) << a.load_error();
    a.config["target_modules"] = ".*\\.(query|value)";
    EXPECT_EQ(a.load_error(), "(loaded)");
    LoadedModel m = load_model(a.path);
    EXPECT_LT(max_difference_from_expected(logits_of_cases(m)), 1e-4);
    a.config["target_modules"] = "(query";
    EXPECT_NE(a.load_error().find("is not a regular expression"), std::string::npos) << a.load_error();
  }
  {
    // A head in the file that modules_to_save does not name.
    EditedAdapter a;
    auto tensors = load_safetensors(a.path + "/adapter_model.safetensors");
    tensors[std::string(kPeftPrefix) + "lexical.weight"] = torch::zeros({1, 4});
    save_safetensors(a.path + "/adapter_model.safetensors", {tensors.begin(), tensors.end()});
    EXPECT_NE(a.load_error().find("tensor \"base_model.model.lexical.weight\" belongs to lexical, which "
                                  "adapter_config.json's modules_to_save does not name (the heads PEFT loads: "
                                  "classifier, score): PEFT would leave it out"),
              std::string::npos)
        << a.load_error();
  }
  {
    // lora_alpha beyond any in use is refused; within the bound, a merge that overflows float32
    // is refused instead of writing infinite weights.
    EditedAdapter a;
    a.config["lora_alpha"] = 1e30;
    EXPECT_NE(a.load_error().find("lora_alpha must be > 0 and at most 1e+06, got 1e+30"), std::string::npos)
        << a.load_error();
    a.config["lora_alpha"] = 1e6;
    auto tensors = load_safetensors(a.path + "/adapter_model.safetensors");
    for (auto& [name, t] : tensors)
      if (name.find("lora_B") != std::string::npos) t = torch::full_like(t, 1e37);
    save_safetensors(a.path + "/adapter_model.safetensors", {tensors.begin(), tensors.end()});
    LoadOptions merge;
    merge.merge_adapter = true;
    EXPECT_NE(a.load_error(merge).find(a.path + ": merging the adapter into its base gives infinite or NaN values in "
                                       "bert.encoder.layer.0.attention.self.query.weight"),
              std::string::npos)
        << a.load_error(merge);
  }
}

// An adapter from PEFT records nothing of its base's weights; a base whose own head has
// another number of outputs is not its base (PEFT refuses the pair too).
TEST(PeftFixture, APeftAdapterOnABaseWithAnotherHeadIsRefused) {
  DQE_REQUIRE_SHARED_FIXTURES();
  EditedAdapter a;
  const std::string base = a.dir.path("regression");
  fs::create_directories(base);
  for (const auto& entry : fs::directory_iterator(test::hf_fixture()))
    fs::copy_file(entry.path(), fs::path(base) / entry.path().filename());
  nlohmann::json config = read_json_file(base + "/config.json");
  config.erase("id2label");
  config.erase("label2id");
  config["num_labels"] = 1;
  test::write_text(base + "/config.json", config.dump(2));
  auto weights = load_safetensors(base + "/model.safetensors");
  weights["classifier.weight"] = weights["classifier.weight"].narrow(0, 0, 1).clone();
  weights["classifier.bias"] = weights["classifier.bias"].narrow(0, 0, 1).clone();
  save_safetensors(base + "/model.safetensors", {weights.begin(), weights.end()});
  LoadOptions lo;
  lo.base = base;
  EXPECT_NE(a.load_error(lo).find(a.path + ": its classifier has 3 outputs, but its base " + base +
                                  " has a classifier of 1 output (regression): PEFT refuses this pair too"),
            std::string::npos)
      << a.load_error(lo);
  // Without a head of its own, the base takes the adapter's.
  weights.erase("classifier.weight");
  weights.erase("classifier.bias");
  save_safetensors(base + "/model.safetensors", {weights.begin(), weights.end()});
  EXPECT_EQ(a.load_error(lo), "(loaded)");
}

}  // namespace
}  // namespace dqe
