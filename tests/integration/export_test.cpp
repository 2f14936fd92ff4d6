// `dqe export` for deployment, through the library, on tiny models trained here (seconds):
// Hugging Face's reading of --format hf (by the plain-PyTorch reference in ../shared as the
// independent loader), refusals, bf16 and int8 files, pruning and the dev quality gate.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "base/format.h"
#include "base/process_stop.h"
#include "dqe/errors.h"
#include "dqe/evaluator.h"
#include "dqe/exporter.h"
#include "dqe/scorer.h"
#include "dqe/trainer.h"
#include "data/drift.h"
#include "infer/detect.h"
#include "infer/predictor.h"
#include "integration/run_util.h"
#include "io/safetensors.h"
#include "model/int8.h"
#include "model/model_dir.h"
#include "test_util.h"

namespace dqe {
namespace fs = std::filesystem;
namespace {

using test::read_jsonl_file;

// Whether Debian's python3 with torch is there to run the reference.
bool have_python_torch() {
  static const bool ok = std::system("/usr/bin/python3 -c 'import torch' >/dev/null 2>&1") == 0;
  return ok;
}

class ExportTest : public ::testing::Test {
 protected:
  // One tiny model per task, trained from scratch without match token types (which Hugging
  // Face cannot reproduce), two layers so that pruning has one to drop.
  static void SetUpTestSuite() {
    shared_ = new test::TempDir();
    test::write_toy_set(shared_->path("train.jsonl"), 240, 1);
    test::write_toy_set(shared_->path("dev.jsonl"), 60, 2);
    train_tiny("regression", "label", "regression");
    train_tiny("classification", "grade", "classification");
    train_tiny("binary", "match", "binary");
  }
  static void TearDownTestSuite() { delete shared_; }

  static TrainConfig tiny_config(const std::string& name) {
    TrainConfig c;
    c.train_path = shared_->path("train.jsonl");
    c.dev_path = shared_->path("dev.jsonl");
    c.out_dir = shared_->path(name);
    c.match_types = "off";
    c.layers = 2;
    c.hidden = 32;
    c.heads = 2;
    c.intermediate = 64;
    c.vocab_size = 200;
    c.max_len = 32;
    c.lr = 2e-3;
    c.batch_size = 16;
    c.epochs = 2;
    c.threads = 2;
    c.precision = "fp32";
    return c;
  }
  static void train_tiny(const std::string& name, const std::string& label, const std::string& task) {
    TrainConfig c = tiny_config(name);
    c.task = task;
    c.fields.label = label;
    train(c);
  }
  static std::string model(const std::string& name) { return shared_->path(name); }

  // dqe's scores of a model on dev, in input order.
  std::vector<double> scores_of(const std::string& model_dir) {
    ScoreConfig sc;
    sc.models = {model_dir};
    sc.input = shared_->path("dev.jsonl");
    sc.output = dir_.path("scores-" + std::to_string(++outputs_) + ".jsonl");
    sc.threads = 2;
    sc.precision = "fp32";
    score(sc);
    std::vector<double> out;
    for (const auto& o : read_jsonl_file(sc.output)) out.push_back(o["score"].get<double>());
    return out;
  }

  // The reference's logits of a Hugging Face directory on the dev pairs.
  std::vector<std::vector<double>> reference_logits(const std::string& hf_dir) {
    const std::string pairs = dir_.path("pairs.jsonl");
    {
      std::ofstream out(pairs);
      for (const auto& r : read_jsonl_file(shared_->path("dev.jsonl")))
        out << nlohmann::json{{"query", r["query"]}, {"text", r["title"]}}.dump() << "\n";
    }
    const std::string logits = dir_.path("logits.jsonl");
    const std::string cmd = "/usr/bin/python3 " + std::string(DQE_SOURCE_DIR) + "/tests/integration/hf_reference_logits.py " +
                            std::string(DQE_SHARED_DIR) + "/reference " + hf_dir + " " + pairs + " > " + logits;
    EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
    std::vector<std::vector<double>> out;
    for (const auto& row : read_jsonl_file(logits)) out.push_back(row.get<std::vector<double>>());
    return out;
  }

  std::string export_to(const std::string& from, const std::string& name, const std::string& format,
                        const std::string& dtype = "fp32") {
    ExportConfig ec;
    ec.model = from;
    ec.out = dir_.path(name);
    ec.format = format;
    ec.dtype = dtype;
    export_model(ec);
    return ec.out;
  }

  static test::TempDir* shared_;
  test::TempDir dir_;
  int outputs_ = 0;
};

test::TempDir* ExportTest::shared_ = nullptr;

#define REQUIRE_REFERENCE()                                                                                        \
  DQE_REQUIRE_SHARED_FIXTURES();                                                                                   \
  if (!have_python_torch())                                                                                        \
  GTEST_SKIP() << "/usr/bin/python3 with torch (Debian's python3-torch) is not installed: the reference loader "   \
                  "cannot run"

// Regression: the head predicts standardised labels; folded into the head, the reference's one
// logit is dqe's score in label units.
TEST_F(ExportTest, HfRegressionLogitIsTheScore) {
  REQUIRE_REFERENCE();
  const ModelSpec original = load_model_spec(resolve_model_dir(model("regression")));
  ASSERT_GT(std::abs(original.task.label_mean), 0.5);  // else folding would be untested
  ASSERT_NE(original.task.label_std, 1.0);
  const std::string hf = export_to(model("regression"), "hf-regression", "hf");
  const nlohmann::json config = read_json_file(hf + "/config.json");
  EXPECT_EQ(config["num_labels"], 1);
  EXPECT_EQ(config["problem_type"], "regression");
  EXPECT_TRUE(fs::exists(hf + "/vocab.txt"));
  const auto scores = scores_of(model("regression"));
  const auto logits = reference_logits(hf);
  ASSERT_EQ(logits.size(), scores.size());
  for (size_t i = 0; i < scores.size(); ++i) {
    ASSERT_EQ(logits[i].size(), 1u);
    EXPECT_NEAR(logits[i][0], scores[i], 1e-4) << "pair " << i;
  }
  // dqe reads the export as it reads the model.
  const auto rescored = scores_of(hf);
  for (size_t i = 0; i < scores.size(); ++i) EXPECT_NEAR(rescored[i], scores[i], 1e-4);
}

// Folding the label scaling into the head does not lose the training mean: eval of the export
// prints the constant predictor of the model it came from (computed here from the files), not
// "0.0000". A config written before the key existed falls back to its label_mean, unless the
// scaling was folded (then there is no baseline). score --fields logits of the export gives the
// folded logit, which is the score.
TEST_F(ExportTest, HfExportKeepsTheTrainingMeanAndItsLogitIsTheScore) {
  double sum = 0, n = 0;
  for (const auto& r : read_jsonl_file(shared_->path("train.jsonl"))) {
    sum += r["label"].get<double>();
    ++n;
  }
  const double mean = sum / n;
  double sq = 0, m = 0;
  for (const auto& r : read_jsonl_file(shared_->path("dev.jsonl"))) {
    sq += (r["label"].get<double>() - mean) * (r["label"].get<double>() - mean);
    ++m;
  }
  const double baseline = std::sqrt(sq / m);
  const ModelSpec original = load_model_spec(resolve_model_dir(model("regression")));
  ASSERT_TRUE(original.task.training_mean.has_value());
  EXPECT_NEAR(*original.task.training_mean, mean, 1e-9);

  const std::string hf = export_to(model("regression"), "hf-mean", "hf");
  const ModelSpec exported = load_model_spec(hf);
  EXPECT_EQ(exported.task.label_mean, 0.0);  // folded
  ASSERT_TRUE(exported.task.training_mean.has_value());
  EXPECT_NEAR(*exported.task.training_mean, mean, 1e-9);
  EvalConfig ec;
  ec.models = {hf};
  ec.data = shared_->path("dev.jsonl");
  ec.threads = 2;
  ec.precision = "fp32";
  const EvalResult r = evaluate(ec);
  EXPECT_NEAR(r.metrics["train_mean_rmse"].get<double>(), baseline, 1e-9);
  EXPECT_NE(r.table.find("rmse of predicting the training mean (" + format_fixed(mean) + ")"), std::string::npos)
      << r.table;

  // Without the key: the folded export says nothing; an unfolded checkpoint's label_mean stands in.
  auto strip = [](const std::string& dir) {
    nlohmann::ordered_json config = read_json_file(dir + "/config.json");
    ASSERT_TRUE(config["dqe"].contains("training_mean"));
    config["dqe"].erase("training_mean");
    test::write_text(dir + "/config.json", config.dump(2));
  };
  strip(hf);
  EXPECT_FALSE(load_model_spec(hf).task.training_mean.has_value());
  EXPECT_FALSE(evaluate(ec).metrics.contains("train_mean_rmse"));
  const std::string plain = export_to(model("regression"), "dqe-mean", "dqe");
  strip(plain);
  ASSERT_TRUE(load_model_spec(plain).task.training_mean.has_value());
  EXPECT_EQ(*load_model_spec(plain).task.training_mean, original.task.label_mean);

  ScoreConfig sc;
  sc.models = {hf};
  sc.input = shared_->path("dev.jsonl");
  sc.output = dir_.path("logits.jsonl");
  sc.add_fields = {"score", "logits"};
  sc.precision = "fp32";
  score(sc);
  const auto lines = read_jsonl_file(sc.output);
  ASSERT_EQ(lines.size(), static_cast<size_t>(m));
  for (const auto& line : lines) {
    ASSERT_EQ(line["logits"].size(), 1u) << line.dump();
    EXPECT_NEAR(line["logits"][0].get<double>(), line["score"].get<double>(), 1e-5) << line.dump();
  }
}

// The drift reference and the detection statistics go with the model: copied byte for byte
// where the export keeps its scores (a copy, Hugging Face's folded head), made anew where it
// changes them (int8 from --train and --dev; fewer layers: the reference from the export's own
// dev scores), and left out with a warning when the data to redo them is missing; score
// --detect then names what would have kept them.
TEST_F(ExportTest, ExportsKeepTheDriftReferenceAndDetectionStatistics) {
  const std::string from = resolve_model_dir(model("regression"));
  ASSERT_TRUE(fs::exists(from + "/" + kDetectStatsFile));
  ASSERT_TRUE(fs::exists(from + "/score_reference.json"));
  auto run_export = [&](const std::string& name, auto&& set) {
    ExportConfig ec;
    ec.model = model("regression");
    ec.out = dir_.path(name);
    set(ec);
    return export_model(ec);
  };
  for (const std::string format : {"dqe", "hf"}) {
    const ExportResult r = run_export("same-" + format, [&](ExportConfig& ec) { ec.format = format; });
    EXPECT_EQ(r.detection, "copied");
    EXPECT_EQ(r.drift_reference, "copied");
    for (const std::string file : {std::string(kDetectStatsFile), std::string("score_reference.json")})
      EXPECT_TRUE(test::read_text(dir_.path("same-" + format + "/" + file)) == test::read_text(from + "/" + file))
          << format << ": " << file;
  }
  ScoreConfig sc;
  sc.models = {dir_.path("same-hf")};
  sc.input = shared_->path("dev.jsonl");
  sc.output = dir_.path("detected.jsonl");
  sc.detect = true;
  sc.precision = "fp32";
  score(sc);
  for (const auto& line : read_jsonl_file(sc.output)) EXPECT_TRUE(line.contains("suspect")) << line.dump();

  const ExportResult dropped = run_export("int8-bare", [](ExportConfig& ec) { ec.dtype = "int8"; });
  EXPECT_EQ(dropped.detection, "dropped");
  EXPECT_EQ(dropped.drift_reference, "copied");  // int8 keeps the scores' distribution
  EXPECT_FALSE(fs::exists(dir_.path("int8-bare/") + kDetectStatsFile));
  sc.models = {dir_.path("int8-bare")};
  sc.output = dir_.path("refused.jsonl");
  try {
    score(sc);
    ADD_FAILURE() << "--detect ran without detection statistics";
  } catch (const ModelError& e) {
    EXPECT_NE(std::string(e.what()).find("fits them anew when given --train and --dev"), std::string::npos) << e.what();
  }

  const ExportResult refitted = run_export("int8", [&](ExportConfig& ec) {
    ec.dtype = "int8";
    ec.train = shared_->path("train.jsonl");
    ec.dev = shared_->path("dev.jsonl");
    ec.max_drop = 1000;  // the gate is not what is tested here
  });
  EXPECT_EQ(refitted.detection, "refitted");
  const auto before = load_detection_stats(from);
  const auto after = load_detection_stats(dir_.path("int8"));
  ASSERT_TRUE(before && after);
  EXPECT_EQ(after->calibration.fpr, before->calibration.fpr);
  EXPECT_LE(after->calibration.achieved, after->calibration.fpr + 1e-12);
  EXPECT_FALSE(torch::equal(after->mean, before->mean));  // the int8 model's own vectors
  EXPECT_TRUE(torch::allclose(after->mean, before->mean, 0.1, 0.1));
  sc.models = {dir_.path("int8")};
  sc.output = dir_.path("int8-detected.jsonl");
  score(sc);

  const ExportResult pruned_bare = run_export("pruned-bare", [](ExportConfig& ec) { ec.keep_layers = 1; });
  EXPECT_EQ(pruned_bare.drift_reference, "dropped");
  EXPECT_FALSE(fs::exists(dir_.path("pruned-bare/score_reference.json")));
  const ExportResult pruned = run_export("pruned", [&](ExportConfig& ec) {
    ec.keep_layers = 1;
    ec.dev = shared_->path("dev.jsonl");
    ec.max_drop = 1000;  // the gate is not what is tested here
  });
  EXPECT_EQ(pruned.drift_reference, "refitted");
  // Scoring speed beside size and quality (not compared here: a test's timing is noise).
  ASSERT_TRUE(pruned.pairs_per_s_before && pruned.pairs_per_s_after);
  EXPECT_GT(*pruned.pairs_per_s_before, 0);
  EXPECT_GT(*pruned.pairs_per_s_after, 0);
  EXPECT_FALSE(pruned_bare.pairs_per_s_before);
  const ScoreReference want = make_score_reference(scores_of(dir_.path("pruned")));
  const ScoreReference got = ScoreReference::from_json(
      read_json_file(dir_.path("pruned/score_reference.json")), "score_reference.json");
  ASSERT_EQ(got.edges.size(), want.edges.size());
  for (size_t i = 0; i < want.edges.size(); ++i) EXPECT_NEAR(got.edges[i], want.edges[i], 1e-9) << i;
  EXPECT_FALSE(test::read_text(dir_.path("pruned/score_reference.json")) == test::read_text(from + "/score_reference.json"));
}

// Classification: the reference's softmax is dqe's class probabilities, and its expected class
// index (scaled to [0, 1]) dqe's score; id2label names the classes.
TEST_F(ExportTest, HfClassificationProbabilitiesAreDqes) {
  REQUIRE_REFERENCE();
  const std::string hf = export_to(model("classification"), "hf-classification", "hf");
  const nlohmann::json config = read_json_file(hf + "/config.json");
  const ModelSpec original = load_model_spec(resolve_model_dir(model("classification")));
  ASSERT_EQ(config["num_labels"].get<size_t>(), original.task.labels.size());
  for (size_t c = 0; c < original.task.labels.size(); ++c) {
    EXPECT_EQ(config["id2label"][std::to_string(c)], original.task.labels[c]);
    EXPECT_EQ(config["label2id"][original.task.labels[c]], c);
  }
  const auto scores = scores_of(model("classification"));
  const auto logits = reference_logits(hf);
  ASSERT_EQ(logits.size(), scores.size());
  for (size_t i = 0; i < scores.size(); ++i) {
    const size_t k = logits[i].size();
    ASSERT_EQ(k, original.task.labels.size());
    double z = 0, expected = 0;
    for (double l : logits[i]) z += std::exp(l);
    for (size_t c = 0; c < k; ++c) expected += std::exp(logits[i][c]) / z * static_cast<double>(c);
    EXPECT_NEAR(expected / static_cast<double>(k - 1), scores[i], 1e-4) << "pair " << i;
  }
}

// Binary: one logit whose sigmoid is dqe's P(positive).
TEST_F(ExportTest, HfBinarySigmoidIsTheScore) {
  REQUIRE_REFERENCE();
  const std::string hf = export_to(model("binary"), "hf-binary", "hf");
  EXPECT_EQ(read_json_file(hf + "/config.json")["num_labels"], 1);
  const auto scores = scores_of(model("binary"));
  const auto logits = reference_logits(hf);
  ASSERT_EQ(logits.size(), scores.size());
  for (size_t i = 0; i < scores.size(); ++i)
    EXPECT_NEAR(1.0 / (1.0 + std::exp(-logits[i][0])), scores[i], 1e-4) << "pair " << i;
}

// What Hugging Face cannot compute is refused, with nothing written.
TEST_F(ExportTest, HfRefusesMatchTypesSideInputsAndEnsembles) {
  TrainConfig c = tiny_config("match");
  c.out_dir = dir_.path("match");
  c.match_types = "on";
  c.epochs = 1;
  train(c);
  c.out_dir = dir_.path("lexical");
  c.match_types = "off";
  c.lexical_features = true;
  train(c);
  ExportConfig ec;
  ec.format = "hf";
  for (const std::string& name : {"match", "lexical"}) {
    ec.model = dir_.path(name);
    ec.out = dir_.path("hf-" + name);
    try {
      export_model(ec);
      ADD_FAILURE() << name << " was exported";
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(name == "match" ? "--match-types off" : "without --lexical-features"),
                std::string::npos)
          << e.what();
    }
    EXPECT_FALSE(fs::exists(ec.out));
  }
  fs::create_directories(dir_.path("ensemble"));
  test::write_text(dir_.path("ensemble/ensemble.json"),
                   nlohmann::json{{"members", {model("regression"), model("binary")}}}.dump());
  ec.model = dir_.path("ensemble");
  ec.out = dir_.path("hf-ensemble");
  EXPECT_THROW(export_model(ec), ConfigError);
  EXPECT_FALSE(fs::exists(ec.out));

  // Its own format takes side inputs, and their fusion layers (concat) stay as they were when
  // layers are dropped or the dtype changes: by export, and by training from the model.
  ec.format = "dqe";
  ec.model = dir_.path("lexical");
  ec.out = dir_.path("lexical-1-layer");
  ec.keep_layers = 1;
  ec.dtype = "int8";
  export_model(ec);
  EXPECT_EQ(load_model(ec.out).spec.bert.num_hidden_layers, 1);
  c.init = dir_.path("lexical");
  c.keep_layers = 1;
  c.out_dir = dir_.path("lexical-student");
  train(c);
  EXPECT_EQ(load_model(c.out_dir).spec.bert.num_hidden_layers, 1);
}

// The fixture's logits through each stored dtype: bf16 half the file, int8 about a third
// (its word embeddings and encoder a quarter), and both within a stated tolerance of fp32.
TEST_F(ExportTest, Bf16AndInt8AreSmallerAndScoreCloseToFp32) {
  DQE_REQUIRE_SHARED_FIXTURES();
  const std::string fp32 = export_to(test::hf_fixture(), "fp32", "dqe");
  const std::string bf16 = export_to(test::hf_fixture(), "bf16", "dqe", "bf16");
  const std::string int8 = export_to(test::hf_fixture(), "int8", "dqe", "int8");
  auto size = [](const std::string& dir) { return static_cast<double>(fs::file_size(dir + "/model.safetensors")); };
  EXPECT_NEAR(size(bf16) / size(fp32), 0.5, 0.02);
  // The quantized matrices are stored as I8 (a quarter of their float32 bytes) with one F32
  // scale per row; the rest (position embeddings, biases, LayerNorms, the head) stays F32.
  auto header_of = [](const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    uint64_t n = 0;
    in.read(reinterpret_cast<char*>(&n), 8);
    std::string text(n, '\0');
    in.read(text.data(), static_cast<std::streamsize>(n));
    return nlohmann::json::parse(text);
  };
  const nlohmann::json header = header_of(int8 + "/model.safetensors");
  const auto reference = load_safetensors(fp32 + "/model.safetensors");
  int64_t quantized = 0, quantized_bytes = 0, float_bytes = 0;
  for (const auto& [name, t] : reference) {
    if (!int8_quantizable(name, t)) {
      EXPECT_EQ(header[name]["dtype"], "F32") << name;
      continue;
    }
    EXPECT_EQ(header[name]["dtype"], "I8") << name;
    EXPECT_EQ(header[name + kScaleSuffix]["dtype"], "F32") << name;
    EXPECT_EQ(header[name + kScaleSuffix]["shape"], nlohmann::json::array({t.size(0)})) << name;
    quantized_bytes += header[name]["data_offsets"][1].get<int64_t>() - header[name]["data_offsets"][0].get<int64_t>();
    float_bytes += t.numel() * 4;
    ++quantized;
  }
  EXPECT_EQ(quantized, 2 * 6 + 1 + 1);  // 6 Linears per layer, the pooler, the word embeddings
  EXPECT_EQ(quantized_bytes * 4, float_bytes);
  EXPECT_LT(size(int8) / size(fp32), 0.5);

  // int8_kernels: the int8 Linears on LibTorch's int8 kernels, as eval and score run them;
  // without, dequantized in float32. Sets kernels to how many Linears got them.
  int64_t kernels = 0;
  auto logits_of = [&kernels](const std::string& dir, bool int8_kernels = false) {
    LoadedModel m = load_model(dir);
    if (int8_kernels) kernels = attach_int8_kernels(*m.model->bert, m.int8);
    torch::InferenceMode guard;
    m.model->eval();
    std::vector<Record> records;
    const nlohmann::json expected = read_json_file(test::hf_fixture() + "/expected.json");
    for (const auto& c : expected["cases"]) {
      Record r;
      r.query = c["query"].get<std::string>();
      r.text = c["title"].get<std::string>();
      records.push_back(r);
    }
    return Predictor(m.model, m.featurizer, Precision::kFp32, 16).run(records, 1).logits;
  };
  const torch::Tensor exact = logits_of(fp32);
  const nlohmann::json expected = read_json_file(test::hf_fixture() + "/expected.json");
  for (size_t i = 0; i < expected["cases"].size(); ++i)
    for (size_t c = 0; c < 3; ++c)
      ASSERT_NEAR(exact[i][c].item<double>(), expected["cases"][i]["logits"][c].get<double>(), 1e-4);
  // The stated tolerance: the largest logit error at most 5% (bf16) and 10% (int8) of the
  // largest logit, and the same class. The fixture's weights are drawn with std 0.5 so that
  // mistakes show, and rounding (bf16's 8 bits of mantissa, int8's 1/254 of a row's range)
  // grows through its two layers: measured 3% and 7%. A mistake (a wrong scale, a transposed
  // row) moves the logits by their whole range.
  const double range = exact.abs().max().item<double>();
  const torch::Tensor half = logits_of(bf16), quarter = logits_of(int8);
  EXPECT_LT((half - exact).abs().max().item<double>(), 0.05 * range);
  EXPECT_LT((quarter - exact).abs().max().item<double>(), 0.10 * range);
  // On int8 kernels (onednn here) the input of each Linear is quantized too, per call over the
  // whole batch: on this fixture's large weights (and activations) that costs more, measured
  // 20% of the range; at BERT's scale it is under 2% (Int8KernelsTest) and on a Home Depot
  // model 0.004 in label units. A wrong scale or a transposed row moves logits by the range.
  const torch::Tensor kernel = logits_of(int8, /*int8_kernels=*/true);
  if (!select_int8_engine().empty()) {
    EXPECT_EQ(kernels, 2 * 6 + 1);  // every Linear of the encoder and the pooler
    EXPECT_GT((kernel - quarter).abs().max().item<double>(), 1e-6);
  }
  EXPECT_LT((kernel - exact).abs().max().item<double>(), 0.25 * range);
  // The class stays wherever float32's top two logits are further apart than twice the error.
  for (const torch::Tensor& rounded : {half, quarter, kernel}) {
    const double error = (rounded - exact).abs().max().item<double>();
    const torch::Tensor top2 = std::get<0>(exact.topk(2, 1));
    const torch::Tensor clear = (top2.select(1, 0) - top2.select(1, 1)) > 2 * error;
    EXPECT_GT(clear.sum().item<int64_t>(), 0);
    EXPECT_TRUE(torch::equal(rounded.argmax(1).masked_select(clear), exact.argmax(1).masked_select(clear)));
  }
}

// --keep-layers keeps the named layers, renumbered: bottom keeps layer 0, alternate the top one.
TEST_F(ExportTest, KeepLayersKeepsTheNamedLayers) {
  const auto original = load_safetensors(resolve_model_dir(model("regression")) + "/model.safetensors");
  for (const std::string& which : {"bottom", "alternate"}) {
    ExportConfig ec;
    ec.model = model("regression");
    ec.out = dir_.path("keep-" + which);
    ec.keep_layers = 1;
    ec.keep_which = which;
    const ExportResult r = export_model(ec);
    ASSERT_EQ(r.kept_layers, std::vector<int64_t>{which == "bottom" ? 0 : 1});
    EXPECT_EQ(load_model_spec(ec.out).bert.num_hidden_layers, 1);
    const auto kept = load_safetensors(ec.out + "/model.safetensors");
    const std::string from = "bert.encoder.layer." + std::to_string(r.kept_layers[0]) + ".output.dense.weight";
    EXPECT_TRUE(torch::equal(kept.at("bert.encoder.layer.0.output.dense.weight"), original.at(from))) << which;
    EXPECT_FALSE(kept.count("bert.encoder.layer.1.output.dense.weight"));
    EXPECT_EQ(scores_of(ec.out).size(), 60u);  // it loads and scores
  }
}

// The dev gate: a loss beyond --max-drop refuses and leaves nothing; within it, the export is
// written with the metric before and after.
TEST_F(ExportTest, DevGateRefusesALossAndWritesNothing) {
  // Without match types the tiny regression learns nothing in seconds (dev RMSE that of the
  // mean), and pruning it would lose nothing; with them it does learn.
  TrainConfig c = tiny_config("learnt");
  c.out_dir = dir_.path("learnt");
  c.match_types = "on";
  train(c);
  ExportConfig ec;
  ec.model = dir_.path("learnt");
  ec.out = dir_.path("pruned");
  ec.keep_layers = 1;
  ec.dev = shared_->path("dev.jsonl");
  ec.max_drop = 0;
  ec.threads = 2;
  const ExportResult refused = export_model(ec);
  EXPECT_NE(refused.refusal.find("nothing written"), std::string::npos) << "a pruned model lost nothing on dev";
  ASSERT_TRUE(refused.metric_before && refused.metric_after);
  EXPECT_GT(*refused.metric_after, *refused.metric_before);  // RMSE rose
  EXPECT_FALSE(fs::exists(ec.out));
  EXPECT_FALSE(fs::exists(ec.out + ".tmp"));

  ec.keep_layers = 0;
  ec.model = model("regression");
  ec.format = "hf";
  ec.max_drop = 1e-6;  // folding the label scaling changes nothing but rounding
  const ExportResult r = export_model(ec);
  EXPECT_EQ(r.refusal, "");
  ASSERT_TRUE(r.metric_before && r.metric_after);
  EXPECT_NEAR(*r.metric_before, *r.metric_after, 1e-5);
  EXPECT_TRUE(fs::exists(ec.out + "/model.safetensors"));
}

// SIGINT/SIGTERM (the process's stop request) end an export, during its --dev check or before
// it writes, with nothing written: it went on and exited 0.
TEST_F(ExportTest, AStopEndsAnExportWithNothingWritten) {
  std::atomic<int> signal_number{SIGTERM};
  register_process_stop(&signal_number);
  ExportConfig ec;
  ec.model = model("regression");
  ec.out = dir_.path("stopped");
  ec.dev = shared_->path("dev.jsonl");
  ec.threads = 2;
  for (const std::string dev : {shared_->path("dev.jsonl"), std::string()}) {
    ec.dev = dev;
    try {
      export_model(ec);
      ADD_FAILURE() << "an export asked to stop went on (--dev '" << dev << "')";
    } catch (const Interrupted& e) {
      EXPECT_EQ(e.signal_number(), SIGTERM);
      EXPECT_NE(std::string(e.what()).find("nothing written"), std::string::npos) << e.what();
    }
    EXPECT_FALSE(fs::exists(ec.out));
  }
  register_process_stop(nullptr);
  EXPECT_EQ(export_model(ec).refusal, "");
  EXPECT_TRUE(fs::exists(ec.out + "/model.safetensors"));
}

}  // namespace
}  // namespace dqe
