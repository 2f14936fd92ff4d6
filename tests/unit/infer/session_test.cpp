// The inference session on the shared Hugging Face fixture, against what Hugging Face computed
// for it (expected.json's logits): scores, probabilities and classes of score's lines, the
// bytes of each line kept, keep and filter at a threshold, and eval's metrics derived here.
// Routing (--adapter-field) against what PEFT computed for the LoRA and prefix fixtures, and the
// raw logits (--fields logits) against both.
#include "dqe/session.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "dqe/errors.h"
#include "test_util.h"

namespace dqe {
namespace {
namespace fs = std::filesystem;

struct Case {
  std::string query, title;
  std::vector<double> logits;  // what Hugging Face (or PEFT) computed
  std::vector<double> probs;   // softmax of the logits
  double score = 0;           // the probability-weighted class index scaled to [0, 1]
  int64_t cls = 0;
};

// The cases of a fixture's expected.json (the base's, or an adapter's of it).
std::vector<Case> fixture_cases(const std::string& fixture = test::hf_fixture()) {
  std::ifstream in(fixture + "/expected.json");
  const auto expected = nlohmann::json::parse(in);
  std::vector<Case> cases;
  for (const auto& c : expected["cases"]) {
    Case k;
    k.query = c["query"].get<std::string>();
    k.title = c["title"].get<std::string>();
    const auto logits = c["logits"].get<std::vector<double>>();
    k.logits = logits;
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
  // An ensemble directory is several models: one member's statistics do not describe its scores.
  test::TempDir dir;
  fs::create_directories(dir.path("both"));
  test::write_text(dir.path("both/ensemble.json"), nlohmann::json{{"members", {test::hf_fixture(), test::hf_fixture()}}}.dump());
  config.models = {dir.path("both")};
  try {
    InferenceSession session(config, fp32_context());
    FAIL() << "an ensemble directory was loaded for --detect";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("--detect reads one model's detection statistics, and " + dir.path("both") +
                                         " is an ensemble of 2 models: give one of its members as --model"),
              std::string::npos)
        << e.what();
  }
}

// --base on full models only would pass unread: it is refused naming the flag.
TEST(InferenceSession, BaseWithoutAnAdapterIsRefused) {
  DQE_REQUIRE_SHARED_FIXTURES();
  SessionConfig config;
  config.models = {test::hf_fixture()};
  config.base = test::hf_fixture();
  try {
    InferenceSession session(config, fp32_context());
    FAIL() << "--base was taken without an adapter";
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()), "--base " + test::hf_fixture() +
                                         " applies to adapters, and no --model is one (each holds its own encoder)");
  }
}

// The shared fixtures that judge the fixture's cases: the base (Hugging Face's logits) and its
// LoRA and prefix adapters (PEFT's).
const std::string kLora = std::string(DQE_SHARED_DIR) + "/fixtures/tiny-bert-lora-peft";
const std::string kPrefix = std::string(DQE_SHARED_DIR) + "/fixtures/tiny-bert-prefix-peft";

// Every case once per model, interleaved, each line naming its model in "market": the base by
// the number 7 (--model 7=DIR; a number is read as written), the LoRA adapter by the name it is
// given, the prefix adapter by its directory's name.
struct Routed {
  test::TempDir dir;
  std::vector<std::vector<Case>> cases = {fixture_cases(), fixture_cases(kLora), fixture_cases(kPrefix)};
  std::vector<std::string> routes = {"7", "lora", "tiny-bert-prefix-peft"};
  std::vector<size_t> model_of;  // each line's model, an index into cases
  std::vector<size_t> case_of;   // each line's case
  std::string path = dir.path("routed.jsonl");

  Routed() {
    std::ofstream out(path);
    for (size_t i = 0; i < cases[0].size(); ++i)
      for (size_t k = 0; k < 3; ++k) {
        const size_t m = (i + k) % 3;
        const std::string market = m == 0 ? "7" : nlohmann::json(routes[m]).dump();
        out << "{\"query\":" << nlohmann::json(cases[0][i].query).dump()
            << ",\"title\":" << nlohmann::json(cases[0][i].title).dump() << ",\"market\":" << market
            << ",\"label\":\"" << kClasses[i % 3] << "\"}\n";
        model_of.push_back(m);
        case_of.push_back(i);
      }
  }
  static SessionConfig config() {
    SessionConfig c;
    c.models = {"7=" + test::hf_fixture(), "lora=" + kLora, kPrefix};
    c.base = test::hf_fixture();
    c.batch_size = 4;
    c.route_field = "market";
    return c;
  }
};

TEST(ParseModelArg, NamesAModelByItsNameOrItsDirectory) {
  test::TempDir dir;
  EXPECT_EQ(parse_model_arg("kitchen=runs/a").name, "kitchen");
  EXPECT_EQ(parse_model_arg("kitchen=runs/a").dir, "runs/a");
  EXPECT_EQ(parse_model_arg("runs/kitchen").name, "kitchen");
  EXPECT_EQ(parse_model_arg("runs/kitchen/").name, "kitchen");
  EXPECT_EQ(parse_model_arg("runs/kitchen/.").name, "kitchen");
  EXPECT_EQ(parse_model_arg("runs/a=b").name, "a=b");  // '=' after a '/' is part of a path
  EXPECT_EQ(parse_model_arg("runs/a=b").dir, "runs/a=b");
  // A directory whose name holds '=' is that directory.
  fs::create_directories(dir.path("x=y"));
  EXPECT_EQ(parse_model_arg(dir.path("x=y")).dir, dir.path("x=y"));
  EXPECT_THROW(parse_model_arg("=runs/a"), ConfigError);
  EXPECT_THROW(parse_model_arg("kitchen="), ConfigError);
}

// Each line is judged by the model it names alone, as its own reference computed it, and the
// two adapters hold their base once.
TEST(InferenceSession, RoutesEachLineToTheModelItNames) {
  DQE_REQUIRE_SHARED_FIXTURES();
  const Routed f;
  const InferenceSession session(Routed::config(), fp32_context());
  EXPECT_NE(session.ensemble().sharing_summary().find("2 adapters on 1 base"), std::string::npos)
      << session.ensemble().sharing_summary();
  ReaderOptions ro = session.reader_options();
  ro.keep_raw = true;
  const std::vector<Record> records = read_jsonl(f.path, ro);
  ASSERT_EQ(records.size(), f.model_of.size());
  EXPECT_EQ(records[0].route, "7");  // a number, as written

  LineOptions options;
  options.set_fields({"score", "probs"});
  const ScoredLines scored = session.score_records(records, options, f.path);
  ASSERT_EQ(scored.lines.size(), records.size());
  for (size_t l = 0; l < records.size(); ++l) {
    const Case& want = f.cases[f.model_of[l]][f.case_of[l]];
    const auto j = nlohmann::json::parse(scored.lines[l]);
    EXPECT_NEAR(j["score"].get<double>(), want.score, 1e-4) << "line " << l + 1 << " (" << f.routes[f.model_of[l]] << ")";
    for (size_t k = 0; k < 3; ++k) EXPECT_NEAR(j["probs"][k].get<double>(), want.probs[k], 1e-4);
  }
  // The models differ on these cases, so a line judged by the wrong one would have failed above.
  double apart = 0;
  for (size_t i = 0; i < f.cases[0].size(); ++i)
    apart = std::max({apart, std::abs(f.cases[0][i].score - f.cases[1][i].score),
                      std::abs(f.cases[1][i].score - f.cases[2][i].score),
                      std::abs(f.cases[0][i].score - f.cases[2][i].score)});
  EXPECT_GT(apart, 1e-2);
  const size_t n = f.cases[0].size();
  using Count = std::pair<std::string, int64_t>;
  EXPECT_EQ(scored.routed, (std::vector<Count>{{"7", n}, {"lora", n}, {"tiny-bert-prefix-peft", n}}));
}

// eval's metrics per model are those of its lines evaluated by that model alone; overall, those
// of every line as it was judged.
TEST(InferenceSession, EvaluatesEachRouteAndTheWhole) {
  DQE_REQUIRE_SHARED_FIXTURES();
  const Routed f;
  const InferenceSession session(Routed::config(), fp32_context());
  ReaderOptions ro = session.reader_options();
  ro.require_label = true;
  const std::vector<Record> records = read_jsonl(f.path, ro);
  const EvalResult result = session.evaluate_records(records, f.path);
  // Accuracy counted here from each reference's classes.
  int64_t right = 0;
  std::vector<int64_t> right_of(3, 0);
  for (size_t l = 0; l < records.size(); ++l) {
    const bool ok = f.cases[f.model_of[l]][f.case_of[l]].cls == static_cast<int64_t>(f.case_of[l] % 3);
    right += ok;
    right_of[f.model_of[l]] += ok;
  }
  EXPECT_NEAR(result.primary, static_cast<double>(right) / static_cast<double>(records.size()), 1e-12);
  const auto& by = result.metrics["by_adapter"];
  ASSERT_EQ(by.size(), 3u);
  const double n = static_cast<double>(f.cases[0].size());
  for (size_t m = 0; m < 3; ++m) {
    const auto& own = by[f.routes[m]];
    EXPECT_EQ(own["records"], f.cases[0].size());
    EXPECT_NEAR(own["accuracy"].get<double>(), static_cast<double>(right_of[m]) / n, 1e-12) << f.routes[m];
  }
  EXPECT_NE(result.table.find("\n  lora (11 records): accuracy"), std::string::npos) << result.table;
}

// An ensemble directory is one route, its name the directory's: a line routed to it gets its
// members' average.
TEST(InferenceSession, RoutesToAnEnsembleDirectoryAsOneModel) {
  DQE_REQUIRE_SHARED_FIXTURES();
  test::TempDir dir;
  fs::create_directories(dir.path("both"));
  test::write_text(dir.path("both/ensemble.json"),
                   nlohmann::json{{"members", {test::hf_fixture(), kLora}}}.dump());
  SessionConfig config = Routed::config();
  config.models = {kPrefix, dir.path("both")};
  const InferenceSession session(config, fp32_context());
  const std::vector<Case> base = fixture_cases(), lora = fixture_cases(kLora), prefix = fixture_cases(kPrefix);
  std::string text;
  for (size_t i = 0; i < base.size(); ++i)
    text += "{\"query\":" + nlohmann::json(base[i].query).dump() + ",\"title\":" + nlohmann::json(base[i].title).dump() +
            ",\"market\":\"" + (i % 2 ? "both" : "tiny-bert-prefix-peft") + "\"}\n";
  const std::string path = dir.path("lines.jsonl");
  test::write_text(path, text);
  ReaderOptions ro = session.reader_options();
  ro.keep_raw = true;
  const std::vector<Record> records = read_jsonl(path, ro);
  LineOptions options;
  options.set_fields({"score"});
  const ScoredLines scored = session.score_records(records, options, path);
  ASSERT_EQ(scored.lines.size(), base.size());
  for (size_t i = 0; i < base.size(); ++i) {
    const double want = i % 2 ? (base[i].score + lora[i].score) / 2 : prefix[i].score;
    EXPECT_NEAR(nlohmann::json::parse(scored.lines[i])["score"].get<double>(), want, 1e-4) << "line " << i + 1;
  }
}

// A line naming no model, a line without the field, and two models of one name: each one line.
TEST(InferenceSession, RoutingErrorsNameTheLineOrTheModels) {
  DQE_REQUIRE_SHARED_FIXTURES();
  test::TempDir dir;
  const InferenceSession session(Routed::config(), fp32_context());
  const std::string path = dir.path("lines.jsonl");
  test::write_text(path, "{\"query\":\"a\",\"title\":\"b\",\"market\":\"lora\"}\n"
                         "{\"query\":\"a\",\"title\":\"b\",\"market\":\"garden\"}\n");
  ReaderOptions ro = session.reader_options();
  ro.keep_raw = true;
  const std::vector<Record> records = read_jsonl(path, ro);
  LineOptions options;
  try {
    session.score_records(records, options, path);
    FAIL() << "a line naming no model was scored";
  } catch (const DataError& e) {
    EXPECT_EQ(std::string(e.what()),
              path + ":2: market \"garden\" names no --model (have: 7, lora, tiny-bert-prefix-peft)");
  }

  test::write_text(path, "{\"query\":\"a\",\"title\":\"b\",\"market\":\"lora\"}\n{\"query\":\"a\",\"title\":\"b\"}\n");
  try {
    read_jsonl(path, ro);
    FAIL() << "a line without the routing field was read";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find(path + ":2: missing field \"market\""), std::string::npos) << e.what();
  }

  SessionConfig twice = Routed::config();
  twice.models = {"a=" + test::hf_fixture(), "a=" + kLora};
  try {
    InferenceSession s(twice, fp32_context());
    FAIL() << "two models of one name were loaded for routing";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("two models are named \"a\""), std::string::npos) << e.what();
  }
  // Without routing, names do not matter: the two are averaged.
  twice.route_field.clear();
  EXPECT_NO_THROW(InferenceSession(twice, fp32_context()));
}

// --fields logits: each line's raw outputs are those Hugging Face computed for the base and PEFT
// for each adapter, whichever model the line is routed to; an ensemble's average has none.
TEST(InferenceSession, LogitsAreTheModelsOwnAndAnAverageHasNone) {
  DQE_REQUIRE_SHARED_FIXTURES();
  const Loaded f(/*labelled=*/false, /*batch_size=*/4);
  EXPECT_EQ(f.session.logits_refusal(), "");
  LineOptions options;
  options.set_fields({"logits"});
  const ScoredLines scored = f.session.score_records(f.records, options, f.path);
  ASSERT_EQ(scored.lines.size(), f.cases.size());
  for (size_t i = 0; i < f.cases.size(); ++i) {
    const auto j = nlohmann::json::parse(scored.lines[i]);
    EXPECT_FALSE(j.contains("score"));
    ASSERT_EQ(j["logits"].size(), 3u) << scored.lines[i];
    for (size_t k = 0; k < 3; ++k) EXPECT_NEAR(j["logits"][k].get<double>(), f.cases[i].logits[k], 1e-4) << i;
  }

  const Routed r;
  const InferenceSession routed(Routed::config(), fp32_context());
  EXPECT_EQ(routed.logits_refusal(), "");
  ReaderOptions ro = routed.reader_options();
  ro.keep_raw = true;
  const std::vector<Record> records = read_jsonl(r.path, ro);
  options.set_fields({"score", "logits"});
  const ScoredLines lines = routed.score_records(records, options, r.path);
  ASSERT_EQ(lines.lines.size(), records.size());
  for (size_t l = 0; l < records.size(); ++l) {
    const Case& want = r.cases[r.model_of[l]][r.case_of[l]];
    const auto j = nlohmann::json::parse(lines.lines[l]);
    for (size_t k = 0; k < 3; ++k)
      EXPECT_NEAR(j["logits"][k].get<double>(), want.logits[k], 1e-4) << "line " << l + 1;
  }

  SessionConfig two = Routed::config();
  two.route_field.clear();
  two.models = {test::hf_fixture(), kLora};
  const InferenceSession averaged(two, fp32_context());
  EXPECT_NE(averaged.logits_refusal().find("ensemble's average has no logits"), std::string::npos)
      << averaged.logits_refusal();
  try {
    averaged.score_records(f.records, options, f.path);
    FAIL() << "an ensemble's average was given logits";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("logits: a line judged by an ensemble's average"), std::string::npos)
        << e.what();
  }
  // Routed to an ensemble directory, its lines are averaged too.
  test::TempDir dir;
  fs::create_directories(dir.path("both"));
  test::write_text(dir.path("both/ensemble.json"), nlohmann::json{{"members", {test::hf_fixture(), kLora}}}.dump());
  SessionConfig mixed = Routed::config();
  mixed.models = {kPrefix, dir.path("both")};
  EXPECT_NE(InferenceSession(mixed, fp32_context()).logits_refusal(), "");
}

}  // namespace
}  // namespace dqe
