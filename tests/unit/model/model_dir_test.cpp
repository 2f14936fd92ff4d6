#include "model/model_dir.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "data/dataset.h"
#include "dqe/errors.h"
#include "infer/predictor.h"
#include "io/json_file.h"
#include "io/safetensors.h"
#include "model/peft/adapter.h"
#include "model/peft/lora.h"
#include "test_util.h"

namespace dqe {
namespace fs = std::filesystem;
namespace {

const std::string kFixture = std::string(DQE_SHARED_DIR) + "/fixtures/tiny-bert-hf";

std::vector<Record> sample_records() {
  std::vector<Record> records(2);
  records[0].query = "red chair";
  records[0].text = "wooden chair, red";
  records[1].query = "drill";
  records[1].text = "cordless drill kit";
  return records;
}

torch::Tensor logits_of(const LoadedModel& m) {
  return Predictor(m.model, m.featurizer, Precision::kFp32, 8).run(sample_records(), 1).logits;
}

TEST(Checkpoint, SaveThenLoadGivesIdenticalLogits) {
  DQE_REQUIRE_SHARED_FIXTURES();
  test::TempDir dir;
  LoadedModel m = load_model(kFixture);
  write_checkpoint(dir.path("ckpt"), [&](const std::string& tmp) { write_model_files(tmp, m.spec, m.model, *m.featurizer); });
  for (const char* f : {"config.json", "model.safetensors", "vocab.txt", "tokenizer_config.json"})
    EXPECT_TRUE(fs::exists(fs::path(dir.path("ckpt")) / f)) << f;
  EXPECT_FALSE(fs::exists(dir.path("ckpt.tmp")));

  LoadedModel back = load_model(dir.path("ckpt"));
  EXPECT_TRUE(back.spec.has_dqe_section);
  EXPECT_EQ(back.spec.task.labels, m.spec.task.labels);
  EXPECT_TRUE(torch::equal(logits_of(m), logits_of(back)));
}

TEST(Checkpoint, RunDirectoryMeansItsBestCheckpoint) {
  DQE_REQUIRE_SHARED_FIXTURES();
  test::TempDir dir;
  LoadedModel m = load_model(kFixture);
  save_checkpoint(dir.path("run/last"), m.spec, m.model, *m.featurizer);
  EXPECT_EQ(resolve_model_dir(dir.path("run")), dir.path("run/last"));
  save_checkpoint(dir.path("run/best"), m.spec, m.model, *m.featurizer);
  EXPECT_EQ(resolve_model_dir(dir.path("run")), dir.path("run/best"));
  EXPECT_THROW(resolve_model_dir(dir.path("nothing")), ModelError);
  fs::create_directories(dir.path("empty"));
  EXPECT_THROW(resolve_model_dir(dir.path("empty")), ModelError);
}

TEST(Checkpoint, OverwriteIsAtomicAndRecoversFromAnInterruptedSwap) {
  DQE_REQUIRE_SHARED_FIXTURES();
  test::TempDir dir;
  LoadedModel m = load_model(kFixture);
  const std::string ckpt = dir.path("last");
  save_checkpoint(ckpt, m.spec, m.model, *m.featurizer);
  save_checkpoint(ckpt, m.spec, m.model, *m.featurizer);  // replaces the existing directory
  EXPECT_FALSE(fs::exists(ckpt + ".old"));
  // A crash between the two renames leaves only last.old: loading finds it again.
  fs::rename(ckpt, ckpt + ".old");
  EXPECT_NO_THROW(load_model(dir.path()));
  EXPECT_TRUE(fs::exists(fs::path(ckpt) / "config.json"));
}

// The error of loading path with options, or "(loaded)".
std::string load_error(const std::string& path, const LoadOptions& options = {}) {
  try {
    load_model(path, options);
  } catch (const ModelError& e) {
    return e.what();
  }
  return "(loaded)";
}

TEST(Checkpoint, BrokenModelDirectoriesGiveOneLineErrors) {
  DQE_REQUIRE_SHARED_FIXTURES();
  test::TempDir dir;
  LoadedModel m = load_model(kFixture);
  const std::string ckpt = dir.path("ckpt");
  save_checkpoint(ckpt, m.spec, m.model, *m.featurizer);

  fs::remove(fs::path(ckpt) / "model.safetensors");
  try {
    load_model(ckpt);
    FAIL();
  } catch (const ModelError& e) {
    EXPECT_NE(std::string(e.what()).find("no model.safetensors"), std::string::npos);
  }

  // Weights whose shapes do not match the config.
  auto tensors = checkpoint_weights(m.model, false);
  for (auto& [name, t] : tensors)
    if (name == "bert.encoder.layer.0.intermediate.dense.weight") t = torch::zeros({10, 32});
  save_safetensors((fs::path(ckpt) / "model.safetensors").string(), tensors);
  try {
    load_model(ckpt);
    FAIL();
  } catch (const ModelError& e) {
    EXPECT_NE(std::string(e.what()).find("\"bert.encoder.layer.0.intermediate.dense.weight\" has shape [10,32]"),
              std::string::npos);
  }

  // NaN weights: a model that would score null on every line is refused when loaded.
  tensors = checkpoint_weights(m.model, false);
  for (auto& [name, t] : tensors)
    if (name == "bert.encoder.layer.0.output.dense.bias") t = t.clone().index_fill_(0, torch::tensor({3}), NAN);
  save_safetensors((fs::path(ckpt) / "model.safetensors").string(), tensors);
  try {
    load_model(ckpt);
    FAIL() << "a model with NaN weights loaded";
  } catch (const ModelError& e) {
    EXPECT_NE(std::string(e.what()).find("\"bert.encoder.layer.0.output.dense.bias\" holds NaN or infinite values"),
              std::string::npos)
        << e.what();
  }

  // A float parameter labelled with an integer dtype: its values read as integers would make
  // every score nonsense.
  tensors = checkpoint_weights(m.model, false);
  for (auto& [name, t] : tensors)
    if (name == "bert.encoder.layer.1.output.dense.weight") t = (t.detach() * 1000).to(torch::kInt32);
  save_safetensors((fs::path(ckpt) / "model.safetensors").string(), tensors);
  const std::string int_dtype = load_error(ckpt);
  EXPECT_NE(int_dtype.find("\"bert.encoder.layer.1.output.dense.weight\" is stored with an integer dtype"),
            std::string::npos)
      << int_dtype;

  // Weights of more layers than config.json describes: the config and the weights disagree,
  // whichever of the two is wrong.
  tensors = checkpoint_weights(m.model, false);
  const size_t first_tensors = tensors.size();
  for (size_t i = 0; i < first_tensors; ++i) {
    const std::string& name = tensors[i].first;
    if (name.rfind("bert.encoder.layer.1.", 0) == 0)
      tensors.emplace_back("bert.encoder.layer.2." + name.substr(21), tensors[i].second);
  }
  save_safetensors((fs::path(ckpt) / "model.safetensors").string(), tensors);
  const std::string extra_layer = load_error(ckpt);
  EXPECT_NE(extra_layer.find("\"bert.encoder.layer.2."), std::string::npos) << extra_layer;
  EXPECT_NE(extra_layer.find("is not a parameter of the model that config.json describes (2 layers)"),
            std::string::npos)
      << extra_layer;
  // Train's --init (a new head allowed) refuses it too.
  LoadOptions new_head;
  new_head.allow_new_head = true;
  EXPECT_EQ(load_error(ckpt, new_head), extra_layer);

  // A missing encoder tensor.
  tensors = checkpoint_weights(m.model, false);
  tensors.erase(tensors.begin());
  save_safetensors((fs::path(ckpt) / "model.safetensors").string(), tensors);
  EXPECT_THROW(load_model(ckpt), ModelError);

  fs::remove(fs::path(ckpt) / "vocab.txt");
  EXPECT_THROW(load_model(ckpt), ModelError);
}

TEST(Checkpoint, NewHeadForADifferentNumberOfOutputs) {
  DQE_REQUIRE_SHARED_FIXTURES();
  ModelSpec spec = load_model_spec(kFixture);
  TaskSpec regression = spec.task;
  regression.task = Task::kRegression;
  regression.labels.clear();
  LoadOptions lo;
  lo.task = regression;
  EXPECT_THROW(load_model(kFixture, lo), ModelError);
  lo.allow_new_head = true;
  LoadedModel m = load_model(kFixture, lo);
  EXPECT_EQ(m.model->classifier->weight.size(0), 1);
  EXPECT_EQ(m.report.missing, (std::vector<std::string>{"classifier.weight", "classifier.bias"}));
}

// A LoRA checkpoint holds PEFT's files and records its base (the path given, where it was,
// its weights' hash); a moved base is found with --base, and a base with other weights, or
// none, is refused naming the adapter and the base.
TEST(Checkpoint, AdapterRecordsItsBaseAndRefusesAnother) {
  DQE_REQUIRE_SHARED_FIXTURES();
  test::TempDir dir;
  fs::create_directories(dir.path("base"));
  for (const auto& entry : fs::directory_iterator(kFixture))
    fs::copy_file(entry.path(), fs::path(dir.path("base")) / entry.path().filename());
  LoraSpec spec;
  spec.r = 2;
  spec.alpha = 4;
  spec.dropout = 0;
  spec.target_modules = {"value"};
  spec.modules = lora_modules(spec.target_modules, 2);
  LoadOptions lo;
  lo.adapter = AdapterSpecPtr(spec);
  LoadedModel m = load_model(dir.path("base"), lo);
  ASSERT_TRUE(m.spec.adapter.as<LoraSpec>());
  EXPECT_EQ(m.spec.adapter->base.path, dir.path("base"));
  EXPECT_EQ(m.spec.adapter->base.dir, fs::absolute(dir.path("base")).lexically_normal().string());
  EXPECT_EQ(m.spec.adapter->base.hash.rfind("fnv1a64:", 0), 0u);
  EXPECT_TRUE(m.report.missing.empty());  // new updates are not "missing" weights
  const torch::Tensor base_logits = logits_of(m);
  {
    torch::NoGradGuard no_grad;
    for (auto& [name, update] : lora_adapter(*m.model)->updates) update->lora_B->weight.normal_(0, 0.5);
  }
  const torch::Tensor adapted_logits = logits_of(m);
  EXPECT_FALSE(torch::allclose(base_logits, adapted_logits));

  const std::string adapter = dir.path("adapter");
  save_checkpoint(adapter, m.spec, m.model, *m.featurizer);
  for (const char* f : {"adapter_config.json", "adapter_model.safetensors", "config.json", "vocab.txt"})
    EXPECT_TRUE(fs::exists(fs::path(adapter) / f)) << f;
  EXPECT_FALSE(fs::exists(fs::path(adapter) / "model.safetensors"));
  const auto config = read_json_file(adapter + "/config.json");
  EXPECT_EQ(config["dqe"]["adapter"]["base"], dir.path("base"));
  EXPECT_EQ(config["dqe"]["adapter"]["base_weights_hash"], m.spec.adapter->base.hash);
  LoadedModel back = load_model(adapter);
  EXPECT_EQ(back.spec.adapter.as<LoraSpec>()->modules, spec.modules);
  EXPECT_TRUE(torch::equal(logits_of(back), adapted_logits));

  // Moved: missing where recorded, found with --base.
  fs::rename(dir.path("base"), dir.path("moved"));
  const std::string missing = load_error(adapter);
  EXPECT_NE(missing.find(adapter + ": its base model " + dir.path("base") + " is missing"), std::string::npos) << missing;
  EXPECT_NE(missing.find("--base"), std::string::npos) << missing;
  LoadOptions moved;
  moved.base = dir.path("moved");
  EXPECT_TRUE(torch::equal(logits_of(load_model(adapter, moved)), adapted_logits));

  // Changed: one weight of the base differs.
  auto tensors = load_safetensors(dir.path("moved/model.safetensors"));
  tensors["bert.encoder.layer.1.output.dense.bias"][0] += 1e-3;
  save_safetensors(dir.path("moved/model.safetensors"), {tensors.begin(), tensors.end()});
  const std::string changed = load_error(adapter, moved);
  EXPECT_NE(changed.find(adapter + ": its base " + dir.path("moved") + " has other weights than the adapter was trained on"),
            std::string::npos)
      << changed;
  EXPECT_EQ(changed.find('\n'), std::string::npos);
  LoadOptions elsewhere;
  elsewhere.base = dir.path("nowhere");
  EXPECT_NE(load_error(adapter, elsewhere).find("--base " + dir.path("nowhere") + ": no such model directory"),
            std::string::npos);

  // dqe's record without the hash it always writes: the base could no longer be checked.
  nlohmann::json record = read_json_file(adapter + "/config.json");
  record["dqe"]["adapter"].erase("base_weights_hash");
  test::write_text(adapter + "/config.json", record.dump(2));
  EXPECT_NE(load_error(adapter, moved).find(adapter + "/config.json: its record of the adapter (\"dqe\".\"adapter\") "
                                            "lacks base_weights_hash"),
            std::string::npos)
      << load_error(adapter, moved);
  // The record in a directory without the adapter's files (it was a filesystem error).
  fs::remove(fs::path(adapter) / "adapter_config.json");
  fs::copy_file(dir.path("moved/model.safetensors"), fs::path(adapter) / "model.safetensors");
  EXPECT_NE(load_error(adapter).find(adapter + "/config.json records a LORA adapter (\"dqe\".\"adapter\"), but the "
                                     "directory has no adapter_config.json"),
            std::string::npos)
      << load_error(adapter);
}

}  // namespace
}  // namespace dqe
