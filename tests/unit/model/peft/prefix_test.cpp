// Prefix tuning against its independent oracle: ../shared/fixtures/tiny-bert-prefix-peft, a
// prefix of 5 virtual tokens for tiny-bert-hf in PEFT's layout, with the logits that
// ../shared/reference/peft_prefix_fixture.py computed for it (PEFT's semantics on plain PyTorch).
#include "model/peft/prefix.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "data/dataset.h"
#include "dqe/errors.h"
#include "infer/predictor.h"
#include "io/safetensors.h"
#include "model/model_dir.h"
#include "model/sequence_model.h"
#include "test_util.h"

namespace dqe {
namespace fs = std::filesystem;
namespace {

const std::string kPrefix = std::string(DQE_SHARED_DIR) + "/fixtures/tiny-bert-prefix-peft";

nlohmann::json expected_cases() {
  std::ifstream in(kPrefix + "/expected.json");
  return nlohmann::json::parse(in)["cases"];
}

// The fixture's pairs through the model: one at a time (padded to no more than themselves),
// or all in one batch padded to the longest.
torch::Tensor logits_of_cases(LoadedModel& m, bool one_batch) {
  torch::InferenceMode guard;
  m.model->eval();
  std::vector<Encoding> encodings;
  for (const auto& c : expected_cases())
    encodings.push_back(m.tokenizer->encode_pair(c["query"].get<std::string>(), c["title"].get<std::string>(),
                                                 c["max_len"].get<size_t>()));
  std::vector<torch::Tensor> rows;
  if (one_batch) {
    std::vector<size_t> all(encodings.size());
    for (size_t i = 0; i < all.size(); ++i) all[i] = i;
    const Batch b = collate(encodings, all, m.tokenizer->pad_id());
    return m.model->forward(b.ids, b.type_ids, b.mask).clone();
  }
  for (size_t i = 0; i < encodings.size(); ++i) {
    const Batch b = collate(encodings, {i}, m.tokenizer->pad_id());
    rows.push_back(m.model->forward(b.ids, b.type_ids, b.mask));
  }
  return torch::cat(rows);
}

torch::Tensor expected_logits() {
  std::vector<torch::Tensor> rows;
  for (const auto& c : expected_cases())
    rows.push_back(torch::tensor(c["logits"].get<std::vector<float>>()).unsqueeze(0));
  return torch::cat(rows);
}

double worst(const torch::Tensor& a, const torch::Tensor& b) { return (a - b).abs().max().item<double>(); }

// A copy of the fixture in a temporary directory, with its base where its config says.
struct FixtureCopy {
  test::TempDir dir;
  std::string adapter() { return dir.path("prefix"); }
  FixtureCopy() {
    fs::copy(kPrefix, adapter());
    nlohmann::json config = nlohmann::json::parse(std::ifstream(adapter() + "/adapter_config.json"));
    config["base_model_name_or_path"] = test::hf_fixture();
    std::ofstream(adapter() + "/adapter_config.json") << config.dump(2);
  }
  void set_config(const char* key, const nlohmann::json& value) {
    nlohmann::json config = nlohmann::json::parse(std::ifstream(adapter() + "/adapter_config.json"));
    config[key] = value;
    std::ofstream(adapter() + "/adapter_config.json") << config.dump(2);
  }
  void set_tensors(const std::map<std::string, torch::Tensor>& tensors) {
    std::vector<std::pair<std::string, torch::Tensor>> list(tensors.begin(), tensors.end());
    save_safetensors(adapter() + "/adapter_model.safetensors", list);
  }
};

std::string load_error(const std::string& dir) {
  try {
    load_model(dir);
  } catch (const ModelError& e) {
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << "one line: " << e.what();
    return e.what();
  }
  ADD_FAILURE() << dir << " loaded";
  return "";
}

TEST(PrefixFixture, GivesPeftsLogitsOnePairAtATimeAndInOneBatch) {
  DQE_REQUIRE_SHARED_FIXTURES();
  LoadedModel m = load_model(kPrefix);
  const auto* spec = m.spec.adapter.as<PrefixSpec>();
  ASSERT_TRUE(spec);
  EXPECT_EQ(spec->num_virtual_tokens, 5);
  EXPECT_FALSE(spec->projection);
  // PEFT wrote no config.json: the base's max_len (64) is cut to the positions left.
  EXPECT_EQ(m.spec.task.max_len, 64 - 5);
  EXPECT_EQ(text_positions(m.spec), 59);
  const torch::Tensor want = expected_logits();
  EXPECT_LT(worst(logits_of_cases(m, false), want), 1e-4);
  EXPECT_LT(worst(logits_of_cases(m, true), want), 1e-4) << "padding changed the logits";
  // Without its prefix the same model gives other logits: the prefix is what the fixture tests.
  LoadedModel base = load_model(test::hf_fixture());
  EXPECT_GT(worst(logits_of_cases(base, false).narrow(1, 0, 3), want), 1e-2);
}

TEST(PrefixFixture, WrittenAgainKeepsPeftsNamesAndLogits) {
  DQE_REQUIRE_SHARED_FIXTURES();
  LoadedModel m = load_model(kPrefix);
  test::TempDir dir;
  write_model_files(dir.path(""), m.spec, m.model, *m.featurizer);
  const auto file = load_safetensors(dir.path(kAdapterWeightsFile));
  const auto original = load_safetensors(kPrefix + "/" + kAdapterWeightsFile);
  ASSERT_EQ(file.size(), original.size());
  for (const auto& [name, t] : original) {
    ASSERT_TRUE(file.count(name)) << name;
    EXPECT_TRUE(torch::equal(file.at(name), t)) << name;
  }
  const auto config = nlohmann::json::parse(std::ifstream(dir.path(kAdapterConfigFile)));
  const auto fixture_config = nlohmann::json::parse(std::ifstream(kPrefix + "/" + kAdapterConfigFile));
  for (const char* key : {"peft_type", "task_type", "num_virtual_tokens", "token_dim", "num_layers",
                          "num_attention_heads", "num_transformer_submodules", "prefix_projection", "modules_to_save"})
    EXPECT_EQ(config[key], fixture_config[key]) << key;
  LoadedModel again = load_model(dir.path(""));
  EXPECT_LT(worst(logits_of_cases(again, false), expected_logits()), 1e-4);
}

TEST(PrefixReparametrisation, IsSavedProjectedAndResumedThroughItsMlp) {
  DQE_REQUIRE_SHARED_FIXTURES();
  PrefixSpec spec;
  spec.num_virtual_tokens = 3;
  spec.projection = true;
  LoadOptions lo;
  lo.adapter = AdapterSpecPtr(spec);
  LoadedModel m = load_model(test::hf_fixture(), lo);
  auto* module = dynamic_cast<PrefixTuningImpl*>(m.model->adapter.get());
  ASSERT_TRUE(module);
  int64_t mlp_tensors = 0;
  for (const auto& p : m.model->role_parameters())
    if (p.role == Role::kAdapter) mlp_tensors += p.name.find("prefix_encoder.transform.") != std::string::npos;
  EXPECT_EQ(mlp_tensors, 4);
  const torch::Tensor logits = logits_of_cases(m, true);

  test::TempDir dir;
  write_model_files(dir.path(""), m.spec, m.model, *m.featurizer);
  auto file = load_safetensors(dir.path(kAdapterWeightsFile));
  ASSERT_TRUE(file.count("prompt_embeddings"));
  torch::Tensor table;
  {
    torch::NoGradGuard no_grad;
    table = module->table();
  }
  EXPECT_TRUE(torch::allclose(file.at("prompt_embeddings"), table)) << "not saved projected";
  EXPECT_EQ(file.at("prompt_embeddings").sizes(), torch::IntArrayRef({3, 2 * 2 * 32}));
  EXPECT_TRUE(file.count("prefix_encoder.transform.2.weight"));

  // dqe reads its own file through the MLP (a resumed run continues it)...
  LoadedModel resumed = load_model(dir.path(""));
  EXPECT_TRUE(resumed.spec.adapter.as<PrefixSpec>()->projection);
  EXPECT_TRUE(torch::allclose(logits_of_cases(resumed, true), logits, 0, 1e-6));
  // ... and the table alone, as PEFT reads it, gives the same logits.
  for (auto it = file.begin(); it != file.end();) it = it->first.rfind("prefix_encoder.", 0) == 0 ? file.erase(it) : ++it;
  std::vector<std::pair<std::string, torch::Tensor>> table_only(file.begin(), file.end());
  save_safetensors(dir.path(kAdapterWeightsFile), table_only);
  LoadedModel as_peft = load_model(dir.path(""));
  EXPECT_FALSE(as_peft.spec.adapter.as<PrefixSpec>()->projection);
  EXPECT_TRUE(torch::allclose(logits_of_cases(as_peft, true), logits, 0, 1e-5));
}

TEST(PrefixFiles, ABadOneIsRefusedInOneLineNamingTheFileAndWhat) {
  DQE_REQUIRE_SHARED_FIXTURES();
  const auto original = load_safetensors(kPrefix + "/" + kAdapterWeightsFile);
  {
    FixtureCopy f;
    auto tensors = original;
    tensors["prompt_embeddings"] = tensors["prompt_embeddings"].narrow(1, 0, 64);
    f.set_tensors(tensors);
    const std::string e = load_error(f.adapter());
    EXPECT_NE(e.find("adapter_model.safetensors: tensor \"prompt_embeddings\" has shape [5,64]"), std::string::npos) << e;
  }
  {
    FixtureCopy f;
    auto tensors = original;
    tensors.erase("prompt_embeddings");
    f.set_tensors(tensors);
    EXPECT_NE(load_error(f.adapter()).find("missing tensor \"prompt_embeddings\""), std::string::npos);
  }
  {
    FixtureCopy f;
    auto tensors = original;
    tensors["prefix_encoder.embedding.weight"] = torch::zeros({5, 32});
    f.set_config("prefix_projection", true);
    f.set_tensors(tensors);
    EXPECT_NE(load_error(f.adapter()).find("part of a reparametrised prefix"), std::string::npos);
  }
  {
    FixtureCopy f;
    f.set_config("token_dim", 48);
    EXPECT_NE(load_error(f.adapter()).find("token_dim 48 but its base has 32 hidden units"), std::string::npos);
  }
  {
    FixtureCopy f;
    f.set_config("num_transformer_submodules", 2);
    EXPECT_NE(load_error(f.adapter()).find("num_transformer_submodules must be 1"), std::string::npos);
  }
  {
    FixtureCopy f;
    f.set_config("num_virtual_tokens", 62);
    EXPECT_NE(load_error(f.adapter()).find("leaves fewer than 3"), std::string::npos);
  }
}

TEST(PrefixInference, MaxLenFlagBeyondThePositionsLeftIsRefused) {
  DQE_REQUIRE_SHARED_FIXTURES();
  const ModelSpec spec = model_spec_of(kPrefix);
  EXPECT_EQ(inference_task(spec, 59, std::nullopt).max_len, 59);
  try {
    inference_task(spec, 60, std::nullopt);
    ADD_FAILURE() << "--max-len 60 accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("less the 5 its adapter takes (59)"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace dqe
