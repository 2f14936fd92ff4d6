// The inference session on the shared Hugging Face fixture, against what Hugging Face computed
// for it (expected.json's logits): scores, probabilities and classes of score's lines, the
// bytes of each line kept, keep and filter at a threshold, and eval's metrics derived here.
#include "dqe/session.h"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "dqe/errors.h"
#include "test_util.h"

namespace dqe {
namespace {

struct Case {
  std::string query, title;
  std::vector<double> probs;  // softmax of Hugging Face's logits
  double score = 0;           // the probability-weighted class index scaled to [0, 1]
  int64_t cls = 0;
};

std::vector<Case> fixture_cases() {
  std::ifstream in(test::hf_fixture() + "/expected.json");
  const auto expected = nlohmann::json::parse(in);
  std::vector<Case> cases;
  for (const auto& c : expected["cases"]) {
    Case k;
    k.query = c["query"].get<std::string>();
    k.title = c["title"].get<std::string>();
    const auto logits = c["logits"].get<std::vector<double>>();
    double z = 0;
    for (double l : logits) z += std::exp(l);
    for (size_t i = 0; i < logits.size(); ++i) {
      k.probs.push_back(std::exp(logits[i]) / z);
      k.score += k.probs[i] * static_cast<double>(i) / static_cast<double>(logits.size() - 1);
      if (k.probs[i] > k.probs[static_cast<size_t>(k.cls)]) k.cls = static_cast<int64_t>(i);
    }
    cases.push_back(k);
  }
  return cases;
}

RunContext fp32_context() {
  RunContext ctx;
  ctx.precision = Precision::kFp32;
  ctx.threads = 1;
  return ctx;
}

const char* const kClasses[] = {"irrelevant", "partial", "exact"};

// One line per case, in odd but valid JSON: a number too long for a double, spacing and an
// escaped character that a re-serialisation would change.
std::string write_lines(const test::TempDir& dir, const std::vector<Case>& cases) {
  const std::string path = dir.path("lines.jsonl");
  std::ofstream out(path);
  for (size_t i = 0; i < cases.size(); ++i)
    out << "{ \"id\" : 1234567890123456789012" << i << ",\"query\":" << nlohmann::json(cases[i].query).dump()
        << ", \"title\":" << nlohmann::json(cases[i].title).dump() << ", \"note\": \"caf\\u00e9\", \"label\": \""
        << kClasses[i % 3] << "\"}\n";
  return path;
}

// The fixture's session, and the cases' lines read as score (keep_raw) or eval (require_label) reads them.
struct Loaded {
  test::TempDir dir;
  std::vector<Case> cases = fixture_cases();
  InferenceSession session;
  std::string path;
  std::vector<Record> records;

  explicit Loaded(bool labelled, int64_t batch_size = 64) : session(config(batch_size), fp32_context()) {
    path = write_lines(dir, cases);
    records = read_jsonl(path, reader(labelled));
  }
  static SessionConfig config(int64_t batch_size) {
    SessionConfig c;
    c.models = {test::hf_fixture()};
    c.batch_size = batch_size;
    return c;
  }
  ReaderOptions reader(bool labelled) const {
    ReaderOptions ro;
    ro.fields = session.read_fields();
    ro.keep_raw = !labelled;
    ro.require_label = labelled;
    return ro;
  }
};

TEST(InferenceSession, ScoresLinesAsHuggingFaceDoesAndKeepsTheirBytes) {
  DQE_REQUIRE_SHARED_FIXTURES();
  const Loaded f(/*labelled=*/false, /*batch_size=*/4);
  const auto& cases = f.cases;
  const auto& session = f.session;
  const auto& path = f.path;
  const auto& records = f.records;
  ASSERT_EQ(records.size(), cases.size());

  LineOptions options;
  options.set_fields({"score", "pred", "probs"});
  const ScoredLines scored = session.score_records(records, options, path);
  ASSERT_EQ(scored.lines.size(), cases.size());
  for (size_t i = 0; i < cases.size(); ++i) {
    const std::string& line = scored.lines[i];
    // Every byte of the line as read, the added fields spliced in before its closing brace.
    const std::string raw = records[i].raw;
    EXPECT_EQ(line.compare(0, raw.size() - 1, raw, 0, raw.size() - 1), 0) << line;
    const auto j = nlohmann::json::parse(line);
    EXPECT_NEAR(j["score"].get<double>(), cases[i].score, 1e-4) << cases[i].query;
    EXPECT_EQ(j["pred"], kClasses[cases[i].cls]) << cases[i].query;
    for (size_t k = 0; k < 3; ++k) EXPECT_NEAR(j["probs"][k].get<double>(), cases[i].probs[k], 1e-4);
    EXPECT_FALSE(j.contains("keep"));  // no threshold
  }
}

TEST(InferenceSession, KeepsAndFiltersAtTheThreshold) {
  DQE_REQUIRE_SHARED_FIXTURES();
  const Loaded f(/*labelled=*/false);
  const auto& cases = f.cases;
  const auto& session = f.session;
  const auto& path = f.path;
  const auto& records = f.records;
  const double threshold = 0.7;
  int64_t above = 0;
  for (const auto& c : cases) above += c.score >= threshold;
  ASSERT_GT(above, 0);
  ASSERT_LT(above, static_cast<int64_t>(cases.size()));

  LineOptions options;
  options.set_fields({"score", "keep"});
  options.threshold = threshold;
  ScoredLines scored = session.score_records(records, options, path);
  EXPECT_EQ(scored.kept, above);
  EXPECT_EQ(scored.filtered, 0);
  ASSERT_EQ(scored.lines.size(), cases.size());
  for (size_t i = 0; i < cases.size(); ++i)
    EXPECT_EQ(nlohmann::json::parse(scored.lines[i])["keep"].get<bool>(), cases[i].score >= threshold);

  options.filter = true;
  scored = session.score_records(records, options, path);
  EXPECT_EQ(scored.kept, above);
  EXPECT_EQ(scored.filtered, static_cast<int64_t>(cases.size()) - above);
  ASSERT_EQ(static_cast<int64_t>(scored.lines.size()), above);
  for (const auto& line : scored.lines) EXPECT_GE(nlohmann::json::parse(line)["score"].get<double>(), threshold);
  EXPECT_EQ(scored.predictions.scores.size(), cases.size());  // every record was scored

  EXPECT_THROW(options.set_fields({"score", "rank"}), ConfigError);
  // Detection needs statistics loaded with the session.
  options.detect = true;
  EXPECT_THROW(session.score_records(records, options, path), Error);
}

// eval's metrics through the session: accuracy of Hugging Face's classes, counted here.
TEST(InferenceSession, EvaluatesLabelledRecords) {
  DQE_REQUIRE_SHARED_FIXTURES();
  const Loaded f(/*labelled=*/true);
  const auto& cases = f.cases;
  const auto& session = f.session;
  const auto& path = f.path;
  const auto& records = f.records;
  int64_t right = 0;
  for (size_t i = 0; i < cases.size(); ++i) right += cases[i].cls == static_cast<int64_t>(i % 3);
  const EvalResult result = session.evaluate_records(records, path);
  EXPECT_EQ(result.primary_name, "accuracy");
  EXPECT_NEAR(result.primary, static_cast<double>(right) / static_cast<double>(cases.size()), 1e-12);
  EXPECT_EQ(result.metrics["data"], path);
  EXPECT_TRUE(result.metrics.contains("model"));

  // A label the model does not know names the line.
  const std::string bad_path = f.dir.path("bad.jsonl");
  test::write_text(bad_path, "{\"query\": \"a\", \"title\": \"b\", \"label\": \"great\"}\n");
  const std::vector<Record> bad = read_jsonl(bad_path, f.reader(/*labelled=*/true));
  try {
    session.evaluate_records(bad, bad_path);
    FAIL() << "an unknown class was evaluated";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find(bad_path + ":1:"), std::string::npos) << e.what();
  }
}

// A session loaded without detection statistics refuses --detect at once; a model without them
// says which file is missing.
TEST(InferenceSession, DetectNeedsTheModelsStatistics) {
  DQE_REQUIRE_SHARED_FIXTURES();
  SessionConfig config;
  config.models = {test::hf_fixture()};
  config.detect = true;
  try {
    InferenceSession session(config, fp32_context());
    FAIL() << "a model without detection statistics was loaded for --detect";
  } catch (const ModelError& e) {
    EXPECT_NE(std::string(e.what()).find("no detection statistics"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace dqe
