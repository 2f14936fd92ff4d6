#include "model/model_spec.h"

#include <gtest/gtest.h>

#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <filesystem>

#include "dqe/errors.h"
#include "test_util.h"

namespace dqe {
namespace {

const std::string kFixture = std::string(DQE_SHARED_DIR) + "/fixtures/tiny-bert-hf";

TEST(ModelSpec, ReadsHuggingFaceDirectory) {
  DQE_REQUIRE_SHARED_FIXTURES();
  ModelSpec s = load_model_spec(kFixture);
  EXPECT_FALSE(s.has_dqe_section);
  EXPECT_EQ(s.bert.vocab_size, 226);
  EXPECT_EQ(s.bert.hidden_size, 32);
  EXPECT_EQ(s.bert.num_hidden_layers, 2);
  EXPECT_EQ(s.task.task, Task::kClassification);
  EXPECT_EQ(s.task.labels.size(), 3u);
  // min(tokenizer_config.model_max_length = 64, max_position_embeddings = 64)
  EXPECT_EQ(s.task.max_len, 64);
  EXPECT_TRUE(s.task.lower_case);
}

TEST(ModelSpec, JsonRoundTripKeepsTheDqeSection) {
  DQE_REQUIRE_SHARED_FIXTURES();
  ModelSpec s = load_model_spec(kFixture);
  s.task.task = Task::kRegression;
  s.task.labels.clear();
  s.task.label_mean = 2.4;
  s.task.label_std = 0.5;
  s.task.max_len = 48;
  s.task.fields.query = "q";
  s.task.fields.text = {"name", "desc"};
  ModelSpec back = model_spec_from_json(nlohmann::json::parse(to_json(s).dump()), "config.json");
  EXPECT_TRUE(back.has_dqe_section);
  EXPECT_EQ(back.task.task, Task::kRegression);
  EXPECT_DOUBLE_EQ(back.task.label_mean, 2.4);
  EXPECT_DOUBLE_EQ(back.task.label_std, 0.5);
  EXPECT_EQ(back.task.max_len, 48);
  EXPECT_EQ(back.task.fields.query, "q");
  EXPECT_EQ(back.task.fields.text, (std::vector<std::string>{"name", "desc"}));
  EXPECT_EQ(back.bert.hidden_size, s.bert.hidden_size);
  EXPECT_EQ(to_json(s)["num_labels"], 1);  // what Hugging Face reads for a regression head
}

TEST(ModelSpec, RejectsInconsistentSizes) {
  auto j = nlohmann::json::parse(R"({"hidden_size": 30, "num_attention_heads": 4})");
  try {
    model_spec_from_json(j, "cfg.json");
    FAIL() << "no error";
  } catch (const ModelError& e) {
    EXPECT_NE(std::string(e.what()).find("cfg.json: hidden_size 30 is not divisible"), std::string::npos);
  }
  EXPECT_THROW(model_spec_from_json(nlohmann::json::parse(R"({"vocab_size": "many"})"), "c"), ModelError);
  EXPECT_THROW(model_spec_from_json(nlohmann::json::parse(R"({"hidden_act": "swish"})"), "c"), ModelError);
  EXPECT_THROW(model_spec_from_json(nlohmann::json::parse(R"({"vocab_size": 99999999999})"), "c"), ModelError);
  EXPECT_THROW(model_spec_from_json(nlohmann::json::parse("[1]"), "c"), ModelError);
  // A LayerNorm eps that is negative (NaN everywhere) or as large as the activations (flat ones).
  for (const char* eps : {"-1", "0", "1e30"}) {
    try {
      model_spec_from_json(nlohmann::json::parse(std::string(R"({"layer_norm_eps": )") + eps + "}"), "cfg.json");
      FAIL() << "layer_norm_eps " << eps << " was taken";
    } catch (const ModelError& e) {
      EXPECT_NE(std::string(e.what()).find("cfg.json: layer_norm_eps must be > 0 and at most 0.1"), std::string::npos)
          << e.what();
    }
  }
  nlohmann::json usual = nlohmann::json::parse(R"({"layer_norm_eps": 1e-5, "num_labels": 1})");
  EXPECT_DOUBLE_EQ(model_spec_from_json(usual, "c").bert.layer_norm_eps, 1e-5);
  EXPECT_THROW(model_spec_from_json(nlohmann::json::parse(R"({"hidden_dropout_prob": 1.5})"), "c"), ModelError);
}

// Found by tests/fuzz/config_fuzz.cpp: values that used to reach undefined casts or recursion.
TEST(ModelSpec, RejectsFloatsWhereIntegersBelongAndDeepNesting) {
  EXPECT_THROW(model_spec_from_json(nlohmann::json::parse(R"({"vocab_size":1e300})"), "c"), ModelError);
  EXPECT_THROW(model_spec_from_json(nlohmann::json::parse(R"({"vocab_size":2.5})"), "c"), ModelError);
  EXPECT_THROW(model_spec_from_json(nlohmann::json::parse(R"({"pad_token_id":-1})"), "c"), ModelError);
  test::TempDir dir;
  test::write_text(dir.path("deep.json"), "{\"a\":" + std::string(100000, '[') + std::string(100000, ']') + "}");
  try {
    read_json_file(dir.path("deep.json"));
    FAIL();
  } catch (const ModelError& e) {
    EXPECT_NE(std::string(e.what()).find("deep.json: JSON nested deeper than 64 levels"), std::string::npos);
  }
  EXPECT_EQ(json_text_depth(R"({"a": "[[[[", "b": [1, {"c": 2}]})"), 3);
  EXPECT_EQ(json_depth(nlohmann::json::parse(R"({"b": [1, {"c": [2]}]})")), 4);
}

TEST(ModelSpec, MissingAndInvalidFiles) {
  test::TempDir dir;
  EXPECT_THROW(load_model_spec(dir.path()), ModelError);
  test::write_text(dir.path("config.json"), "{oops");
  EXPECT_THROW(load_model_spec(dir.path()), ModelError);
}

// A "dqe" section that is not an object would otherwise drop the label scaling silently.
TEST(ModelSpec, DqeSectionMustBeAnObject) {
  test::TempDir dir;
  test::write_text(dir.path("config.json"), R"({"vocab_size": 10, "hidden_size": 8, "num_hidden_layers": 1,
    "num_attention_heads": 2, "intermediate_size": 16, "num_labels": 1, "dqe": 5})");
  try {
    load_model_spec(dir.path());
    FAIL() << "\"dqe\": 5 was read as no dqe section";
  } catch (const ModelError& e) {
    EXPECT_NE(std::string(e.what()).find("\"dqe\" must be an object"), std::string::npos) << e.what();
  }
}

// A JSON file is read in pieces up to a bound: a huge or endless file (a device) is refused
// without being held in memory.
TEST(ReadJsonFile, RefusesFilesBeyondTheBound) {
  test::TempDir dir;
  const std::string big = dir.path("big.json");
  test::write_text(big, "{}");
  std::filesystem::resize_file(big, static_cast<uintmax_t>(kMaxJsonFileBytes) + 1);  // sparse: no disk used
  try {
    read_json_file(big);
    FAIL() << "a file over the bound was read";
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("larger than 256 MiB"), std::string::npos) << e.what();
  }
  const std::string zero = dir.path("zero");
  if (::mknod(zero.c_str(), S_IFCHR | 0666, makedev(1, 5)) == 0) EXPECT_THROW(read_json_file(zero), IoError);
  EXPECT_THROW(read_json_file(dir.path()), IoError);  // a directory
}

TEST(TaskName, ParsesAndNamesFlag) {
  EXPECT_EQ(parse_task("binary"), Task::kBinary);
  EXPECT_EQ(task_name(Task::kClassification), "classification");
  try {
    parse_task("ranking");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("--task"), std::string::npos);
  }
}

}  // namespace
}  // namespace dqe
