#include "dqe/report.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "dqe/errors.h"
#include "model/model_dir.h"
#include "test_util.h"
#include "train/train_state.h"

namespace dqe {
namespace fs = std::filesystem;
namespace {

const std::string kFixture = std::string(DQE_SHARED_DIR) + "/fixtures/tiny-bert-hf";

size_t count_of(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + needle.size())) ++n;
  return n;
}

// The text with every SVG namespace declaration removed: what must hold no URL.
std::string without_svg_xmlns(std::string text) {
  const std::string xmlns = "xmlns=\"http://www.w3.org/2000/svg\"";
  for (size_t at = text.find(xmlns); at != std::string::npos; at = text.find(xmlns, at)) text.erase(at, xmlns.size());
  return text;
}

TEST(ReportHelpers, HtmlEscapeReplacesMarkupCharacters) {
  EXPECT_EQ(html_escape("<a href=\"x\">Tom & Jerry's</a>"),
            "&lt;a href=&quot;x&quot;&gt;Tom &amp; Jerry&#39;s&lt;/a&gt;");
  EXPECT_EQ(html_escape("plain caf\xc3\xa9"), "plain caf\xc3\xa9");
  EXPECT_EQ(html_escape(""), "");
}

TEST(ReportHelpers, MovingAverageIsTrailing) {
  const std::vector<double> v = {1, 2, 3, 4, 5};
  const std::vector<double> two = moving_average(v, 2);
  const std::vector<double> expected_two = {1, 1.5, 2.5, 3.5, 4.5};
  ASSERT_EQ(two.size(), expected_two.size());
  for (size_t i = 0; i < two.size(); ++i) EXPECT_DOUBLE_EQ(two[i], expected_two[i]) << i;
  const std::vector<double> wide = moving_average(v, 10);
  const std::vector<double> expected_wide = {1, 1.5, 2, 2.5, 3};
  for (size_t i = 0; i < wide.size(); ++i) EXPECT_DOUBLE_EQ(wide[i], expected_wide[i]) << i;
  EXPECT_EQ(moving_average(v, 0), v);
  EXPECT_EQ(moving_average(v, 1), v);
  EXPECT_TRUE(moving_average({}, 3).empty());
}

TEST(ReportHelpers, NiceTicksUseRoundSteps) {
  auto expect_ticks = [](const std::vector<double>& got, const std::vector<double>& want) {
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-12) << i;
  };
  expect_ticks(nice_ticks(0, 1, 5), {0, 0.2, 0.4, 0.6, 0.8, 1.0});
  expect_ticks(nice_ticks(3, 97, 5), {0, 20, 40, 60, 80, 100});
  expect_ticks(nice_ticks(1, 320, 5), {0, 100, 200, 300, 400});
  expect_ticks(nice_ticks(0.15, 0.39, 5), {0.15, 0.2, 0.25, 0.3, 0.35, 0.4});
  expect_ticks(nice_ticks(0, 5e-5, 5), {0, 1e-5, 2e-5, 3e-5, 4e-5, 5e-5});
  // A single value is widened by 10% on each side.
  expect_ticks(nice_ticks(5, 5, 5), {4.4, 4.6, 4.8, 5.0, 5.2, 5.4, 5.6});
  expect_ticks(nice_ticks(0, 0, 2), {-1, 0, 1});
}

TEST(ReportHelpers, FormatTickShowsTheStepsDecimals) {
  EXPECT_EQ(format_tick(0.2, 0.2), "0.2");
  EXPECT_EQ(format_tick(0.6000000000000001, 0.2), "0.6");
  EXPECT_EQ(format_tick(0.05, 0.05), "0.05");
  EXPECT_EQ(format_tick(100, 20), "100");
  EXPECT_EQ(format_tick(1e-17, 0.2), "0");
  EXPECT_EQ(format_tick(5e-6, 5e-6), "5e-06");
  EXPECT_EQ(format_tick(2e6, 1e6), "2e+06");
}

TEST(ReportHelpers, HistogramCountsBinsAndClampsOutliers) {
  const Histogram h = histogram({0, 0.1, 0.5, 0.99, 1.0, -3, 7, NAN}, 0, 1, 4);
  EXPECT_EQ(h.counts, (std::vector<int64_t>{3, 0, 1, 3}));
  EXPECT_DOUBLE_EQ(h.bin_width(), 0.25);
  EXPECT_EQ(histogram({}, 0, 1, 2).counts, (std::vector<int64_t>{0, 0}));
  EXPECT_THROW(histogram({1}, 0, 1, 0), std::invalid_argument);
  EXPECT_THROW(histogram({1}, 1, 1, 3), std::invalid_argument);
}

TEST(ReportHelpers, ConfusionMatrixRowsAreTrueClasses) {
  const auto m = confusion_matrix({0, 1, 2, 2}, {0, 2, 2, 1}, 3);
  EXPECT_EQ(m, (std::vector<std::vector<int64_t>>{{1, 0, 0}, {0, 0, 1}, {0, 1, 1}}));
  EXPECT_THROW(confusion_matrix({0, 3}, {0, 0}, 3), std::invalid_argument);
  EXPECT_THROW(confusion_matrix({0}, {0, 1}, 3), std::invalid_argument);
}

TEST(ReportHelpers, SubsampleIsSortedDistinctAndSeeded) {
  const auto all = subsample_indices(5, 10, 1);
  EXPECT_EQ(all, (std::vector<size_t>{0, 1, 2, 3, 4}));
  const auto a = subsample_indices(1000, 100, 7);
  ASSERT_EQ(a.size(), 100u);
  for (size_t i = 1; i < a.size(); ++i) EXPECT_LT(a[i - 1], a[i]);
  EXPECT_LT(a.back(), 1000u);
  EXPECT_EQ(a, subsample_indices(1000, 100, 7));
  EXPECT_NE(a, subsample_indices(1000, 100, 8));
}

TEST(ReportHelpers, GroupByLabel) {
  // Classes: named, in id order, empty classes dropped.
  auto classes = group_by_label({2, 0, 2}, {"irrelevant", "partial", "exact"});
  ASSERT_EQ(classes.size(), 2u);
  EXPECT_EQ(classes[0].name, "irrelevant");
  EXPECT_EQ(classes[0].rows, (std::vector<size_t>{1}));
  EXPECT_EQ(classes[1].name, "exact");
  EXPECT_EQ(classes[1].rows, (std::vector<size_t>{0, 2}));
  // Few regression values: one group each, sorted.
  auto values = group_by_label({1, 3, 1, 2.5}, {});
  ASSERT_EQ(values.size(), 3u);
  EXPECT_EQ(values[0].name, "1");
  EXPECT_EQ(values[0].rows, (std::vector<size_t>{0, 2}));
  EXPECT_EQ(values[1].name, "2.5");
  EXPECT_EQ(values[2].name, "3");
  // Many: equal-width ranges, the last one closed.
  auto ranges = group_by_label({0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, {}, 2);
  ASSERT_EQ(ranges.size(), 2u);
  EXPECT_EQ(ranges[0].name, "[0, 4.5)");
  EXPECT_EQ(ranges[0].rows, (std::vector<size_t>{0, 1, 2, 3, 4}));
  EXPECT_EQ(ranges[1].name, "[4.5, 9]");
  EXPECT_EQ(ranges[1].rows, (std::vector<size_t>{5, 6, 7, 8, 9}));
}

TEST(ReportHelpers, FlattenJsonUsesDottedKeys) {
  const auto j = nlohmann::ordered_json::parse(
      R"({"lr": 0.001, "task": "regression", "fields": {"text": ["title", "description"], "id": null},
          "resume": false, "empty": {}, "nested": [[1], 2]})");
  const std::vector<std::pair<std::string, std::string>> expected = {
      {"lr", "0.001"},          {"task", "regression"}, {"fields.text", "title, description"},
      {"fields.id", "null"},    {"resume", "false"},    {"empty", "{}"},
      {"nested", "[[1],2]"}};
  EXPECT_EQ(flatten_json(j), expected);
}

TEST(ReportSvg, LineChartHasAxesTitleLegendAndLines) {
  LineChart chart;
  chart.title = "Loss <raw> & smoothed";
  chart.x_label = "step";
  chart.y_label = "loss";
  chart.series.push_back({"raw", {1, 2, 3, 4}, {1.0, 0.6, NAN, 0.2}});
  chart.series.push_back({"", {1, 4}, {0.9, 0.3}, "#ff7f0e"});
  chart.markers.push_back({4, 0.2, "best 0.2 @ step 4"});
  const std::string svg = svg_line_chart(chart);
  EXPECT_EQ(svg.rfind("<svg xmlns=\"http://www.w3.org/2000/svg\"", 0), 0u);
  EXPECT_NE(svg.find("</svg>"), std::string::npos);
  EXPECT_NE(svg.find(">Loss &lt;raw&gt; &amp; smoothed</text>"), std::string::npos);
  EXPECT_NE(svg.find(">step</text>"), std::string::npos);
  EXPECT_NE(svg.find(">loss</text>"), std::string::npos);
  EXPECT_NE(svg.find(">raw</text>"), std::string::npos);  // legend entry
  EXPECT_NE(svg.find(">best 0.2 @ step 4</text>"), std::string::npos);
  // y ticks 0, 0.2, ... 1 and x ticks inside the data's range.
  EXPECT_NE(svg.find(">0.6</text>"), std::string::npos);
  EXPECT_NE(svg.find(">1.0</text>"), std::string::npos);
  EXPECT_NE(svg.find(">1.5</text>"), std::string::npos);  // x: steps of 0.5 over [1, 4]
  // The NaN splits the first series: one polyline of two points, the lone point is dropped;
  // the second series is one more polyline.
  EXPECT_EQ(count_of(svg, "<polyline"), 2u);
  for (size_t at = svg.find("points=\""); at != std::string::npos; at = svg.find("points=\"", at + 1)) {
    const std::string points = svg.substr(at + 8, svg.find('"', at + 8) - at - 8);
    EXPECT_EQ(count_of(points, ","), 2u) << points;
  }
  EXPECT_EQ(svg.find("nan"), std::string::npos);

  LineChart empty;
  empty.title = "Nothing";
  EXPECT_NE(svg_line_chart(empty).find(">no data</text>"), std::string::npos);
}

TEST(ReportSvg, ALongSeriesKeepsTheEnvelopeInFewPoints) {
  LineChart chart;
  std::vector<double> x, y;
  for (int i = 0; i < 100000; ++i) {
    x.push_back(i);
    y.push_back(i == 50000 ? 10.0 : (i % 2 ? 1.0 : 0.0));  // one spike in fast noise
  }
  chart.series.push_back({"loss", x, y});
  const std::string svg = svg_line_chart(chart);
  const size_t begin = svg.find("points=\"") + 8;
  const std::string points = svg.substr(begin, svg.find('"', begin) - begin);
  // At most two points per pixel column of a 580 px chart.
  EXPECT_LE(count_of(points, ","), 2u * 580u);
  EXPECT_GE(count_of(points, ","), 400u);
  // The spike survives: a point at the top of the plot area (y = 10, the highest tick, is
  // drawn at 34 px, below the title row).
  EXPECT_NE(svg.find("y1=\"34.0\" y2=\"34.0\" stroke=\"#e6e6e6\""), std::string::npos);
  EXPECT_NE(points.find(",34.0"), std::string::npos);
  EXPECT_LT(svg.size(), 40000u);
}

TEST(ReportSvg, HistogramDrawsOneBarPerNonEmptyBin) {
  const Histogram h = histogram({0.1, 0.1, 0.6, 0.9}, 0, 1, 10);
  const std::string svg = svg_histogram(h, "label exact", "score", "#2ca02c");
  EXPECT_EQ(count_of(svg, "<rect x="), 3u);
  EXPECT_NE(svg.find(">label exact (n=4)</text>"), std::string::npos);
  // Count ticks are whole numbers.
  EXPECT_NE(svg.find(">2</text>"), std::string::npos);
  EXPECT_NE(svg_histogram(histogram({}, 0, 1, 4), "t", "", "#000").find("no examples"), std::string::npos);
}

TEST(ReportSvg, ScatterHasOneDotPerPointAndTheDiagonal) {
  const std::string svg = svg_scatter("Predicted vs true", "true", "predicted", {1, 2, 3}, {1.1, 2.4, NAN});
  EXPECT_EQ(count_of(svg, "<circle"), 2u);
  EXPECT_NE(svg.find("predicted = true"), std::string::npos);
}

TEST(ReportHtml, ConfusionMatrixIsATableWithRowTotals) {
  const std::string html = html_confusion_matrix({"a<b", "c"}, {{3, 1}, {0, 4}});
  EXPECT_NE(html.find("<table class=\"cm\">"), std::string::npos);
  EXPECT_NE(html.find("<th>a&lt;b</th>"), std::string::npos);
  EXPECT_EQ(html.find("a<b"), std::string::npos);
  EXPECT_NE(html.find(">3<small>75.0%</small></td>"), std::string::npos);
  EXPECT_NE(html.find(">4<small>100.0%</small></td>"), std::string::npos);
  EXPECT_NE(html.find("<td class=\"total\">4</td>"), std::string::npos);
  EXPECT_EQ(count_of(html, "<tr>"), 3u);
}

TEST(ReportLogs, ReadsBothLogsAndIgnoresACutLastLine) {
  DQE_REQUIRE_SHARED_FIXTURES();
  test::TempDir dir;
  test::write_text(dir.path("train_log.jsonl"),
                   "{\"step\":1,\"epoch\":0,\"loss\":1.5,\"lr\":1e-4,\"grad_norm\":0.7,\"samples_per_s\":100,\"elapsed_s\":0.5}\n"
                   "\n"
                   "{\"step\":2,\"epoch\":0,\"loss\":1.25,\"lr\":2e-4,\"grad_norm\":0.6,\"samples_per_s\":110,\"elapsed_s\":1.0}\n"
                   "{\"step\":3,\"epoch\":0,\"lo");
  const auto train = read_train_log(dir.path("train_log.jsonl"));
  ASSERT_EQ(train.size(), 2u);
  EXPECT_EQ(train[1].step, 2);
  EXPECT_DOUBLE_EQ(train[1].loss, 1.25);
  EXPECT_DOUBLE_EQ(train[1].lr, 2e-4);
  EXPECT_DOUBLE_EQ(train[0].elapsed_s, 0.5);

  test::write_text(dir.path("eval_log.jsonl"),
                   "{\"step\":10,\"epoch\":1.0,\"metric\":\"rmse\",\"value\":0.5,\"best\":0.5,\"improved\":true,"
                   "\"metrics\":{\"count\":4,\"rmse\":0.5,\"pearson\":null}}\n"
                   "{\"step\":20,\"epoch\":2.0,\"metric\":\"rmse\",\"value\":null,\"best\":0.5,\"improved\":false,"
                   "\"metrics\":{}}\n");
  const auto evals = read_eval_log(dir.path("eval_log.jsonl"));
  ASSERT_EQ(evals.size(), 2u);
  EXPECT_EQ(evals[0].metric, "rmse");
  EXPECT_TRUE(evals[0].improved);
  EXPECT_EQ(evals[0].metrics["count"], 4);
  EXPECT_EQ(evals[1].step, 20);
  EXPECT_TRUE(std::isnan(evals[1].value));
}

TEST(ReportLogs, ABadLineBeforeTheLastNamesItsPlace) {
  test::TempDir dir;
  test::write_text(dir.path("train_log.jsonl"), "{\"step\":1}\n[1,2]\n{\"step\":3}\n");
  try {
    read_train_log(dir.path("train_log.jsonl"));
    FAIL() << "expected DataError";
  } catch (const DataError& e) {
    EXPECT_EQ(std::string(e.what()), dir.path("train_log.jsonl") + ":2: not a JSON object");
  }
  test::write_text(dir.path("eval_log.jsonl"), "{\"epoch\":1}\n{\"step\":3}\n");
  EXPECT_THROW(read_eval_log(dir.path("eval_log.jsonl")), DataError);
  EXPECT_THROW(read_train_log(dir.path("missing.jsonl")), IoError);
}

// A run directory as the trainer leaves it, without training: the fixture model saved as
// best/ with a trainer state whose configuration names a small dev file.
struct FakeRun {
  test::TempDir dir;
  std::string run, dev;

  explicit FakeRun(int evaluations, const std::string& note = "plain") {
    run = dir.path("run");
    dev = dir.path("dev.jsonl");
    fs::create_directories(run);
    const std::vector<std::string> grades = {"irrelevant", "partial", "exact"};
    const std::vector<std::string> kinds = {"chair", "lamp", "drill", "rug"};
    std::string lines;
    for (int i = 0; i < 24; ++i) {
      const std::string& kind = kinds[static_cast<size_t>(i) % kinds.size()];
      nlohmann::json j = {{"query_id", "q" + std::to_string(i / 3)},
                          {"query", "red " + kind},
                          {"title", (i % 3 == 0 ? "blue rug " : "red wooden ") + kind},
                          {"label", grades[static_cast<size_t>(i) % 3]}};
      lines += j.dump() + "\n";
    }
    test::write_text(dev, lines);

    LoadedModel m = load_model(kFixture);
    TrainerState state;
    state.step = 20;
    state.total_steps = 30;
    state.metric_name = "accuracy";
    state.higher_is_better = true;
    if (evaluations > 0) {
      state.best_metric = 0.5;
      state.best_step = 20;
    }
    state.config = {{"train", "train.jsonl"}, {"dev", dev}, {"task", "classification"}, {"lr", 5e-5},
                    {"note", note}, {"text-fields", {"title", "description"}}};
    write_checkpoint(run + "/best", [&](const std::string& tmp) {
      write_model_files(tmp, m.spec, m.model, *m.featurizer);
      write_training_state(tmp, state, nullptr);
    });

    std::string train_log;
    for (int step = 1; step <= 30; ++step) {
      nlohmann::ordered_json rec = {{"step", step}, {"epoch", step / 10}, {"loss", 1.2 / step + 0.01 * (step % 3)},
                                    {"lr", 5e-5 * std::min(1.0, step / 3.0)}, {"grad_norm", 0.5 + 0.01 * step},
                                    {"samples_per_s", 200.0}, {"elapsed_s", 0.1 * step}};
      train_log += rec.dump() + "\n";
    }
    test::write_text(run + "/train_log.jsonl", train_log);
    std::string eval_log;
    for (int e = 1; e <= evaluations; ++e) {
      const double value = e == 1 ? 0.25 : e == 2 ? 0.5 : 0.375;
      nlohmann::ordered_json rec = {
          {"step", 10 * e}, {"epoch", e}, {"metric", "accuracy"}, {"value", value}, {"best", 0.5},
          {"improved", e <= 2},
          {"metrics", {{"count", 24}, {"accuracy", value}, {"macro_f1", value - 0.1}, {"ranking", {{"ndcg_at_10", 0.9}}}}}};
      eval_log += rec.dump() + "\n";
    }
    test::write_text(run + "/eval_log.jsonl", eval_log);
  }
};

TEST(ReportRun, WritesASelfContainedReportForAClassificationRun) {
  DQE_REQUIRE_SHARED_FIXTURES();  // the fake run's model is the shared fixture
  FakeRun fake(3, "<b>bold</b> & \"quoted\"");
  ReportConfig config;
  config.run_dir = fake.run;
  config.out = fake.dir.path("report.html");
  config.threads = 1;
  write_report(config);
  const std::string html = test::read_text(config.out);
  EXPECT_FALSE(fs::exists(config.out + ".tmp"));
  EXPECT_EQ(html.rfind("<!DOCTYPE html>", 0), 0u);
  for (const char* section : {"id=\"summary\"", "id=\"training\"", "id=\"dev\"", "id=\"metrics\"", "id=\"confusion\"",
                              "id=\"histograms\"", "id=\"config\""})
    EXPECT_NE(html.find(section), std::string::npos) << section;
  EXPECT_GE(count_of(html, "<svg"), 6u);  // loss, lr, grad norm, dev x2, histograms
  EXPECT_EQ(count_of(html, "<svg"), count_of(html, "</svg>"));
  EXPECT_NE(html.find(">Training loss</text>"), std::string::npos);
  EXPECT_NE(html.find(">Learning rate</text>"), std::string::npos);
  EXPECT_NE(html.find(">best 0.5 @ step 20</text>"), std::string::npos);
  // The dev charts name metrics by their labels, as the metrics tables do.
  EXPECT_NE(html.find(">macro F1</text>"), std::string::npos);
  EXPECT_NE(html.find(">nDCG@10</text>"), std::string::npos);
  // One small chart per other metric, each on its own scale: macro F1 (0.15..0.4) and nDCG@10
  // (0.9) would otherwise share an axis, and a legend of their names overflowed the chart.
  const size_t other = html.find("<h3>Other dev metrics</h3>");
  ASSERT_NE(other, std::string::npos);
  const std::string small = html.substr(other, html.find("</div>", other) - other);
  EXPECT_EQ(count_of(small, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"280\""), 2u) << small;
  EXPECT_LT(small.find(">macro F1</text>"), small.find(">nDCG@10</text>"));
  EXPECT_LT(small.find(">nDCG@10</text>"), std::string::npos);
  // Durations read as in the progress lines (30 steps, 0.1 s each).
  EXPECT_NE(html.find(">3s <small>(200 samples/s)</small>"), std::string::npos);
  // The confusion matrix: one header row and a row per class, with the fixture's names.
  const size_t cm = html.find("<table class=\"cm\">");
  ASSERT_NE(cm, std::string::npos);
  const std::string table = html.substr(cm, html.find("</table>", cm) - cm);
  EXPECT_EQ(count_of(table, "<tr>"), 4u);
  for (const char* name : {"<th>irrelevant</th>", "<th>partial</th>", "<th>exact</th>"})
    EXPECT_NE(table.find(name), std::string::npos) << name;
  EXPECT_EQ(count_of(table, "<td class=\"total\">8</td>"), 3u);  // 24 examples, 8 per class
  // Final metrics and the per-class table, plus ranking metrics (8 queries of 3 results).
  EXPECT_NE(html.find("<td>accuracy</td>"), std::string::npos);
  EXPECT_NE(html.find("<h3>Per class</h3>"), std::string::npos);
  EXPECT_NE(html.find("<td>nDCG@10</td>"), std::string::npos);
  EXPECT_NE(html.find(">label partial (n=8)</text>"), std::string::npos);
  // Configuration, escaped.
  EXPECT_NE(html.find("<td>text-fields</td><td>title, description</td>"), std::string::npos);
  EXPECT_NE(html.find("&lt;b&gt;bold&lt;/b&gt; &amp; &quot;quoted&quot;"), std::string::npos);
  EXPECT_EQ(html.find("<b>bold</b>"), std::string::npos);
  // Self-contained: no script, no URL outside the SVG namespace.
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_EQ(without_svg_xmlns(html).find("http"), std::string::npos);
  EXPECT_EQ(html.find("nan"), std::string::npos);
}

TEST(ReportRun, DataFlagOverridesTheRecordedDevFile) {
  DQE_REQUIRE_SHARED_FIXTURES();  // the fake run's model is the shared fixture
  FakeRun fake(1);
  const std::string other = fake.dir.path("other.jsonl");
  test::write_text(other, "{\"query\":\"lamp\",\"title\":\"desk lamp\",\"label\":\"exact\"}\n"
                          "{\"query\":\"lamp\",\"title\":\"rug\",\"label\":\"irrelevant\"}\n");
  ReportConfig config;
  config.run_dir = fake.run;
  config.out = fake.dir.path("report.html");
  config.data = other;
  config.threads = 1;
  write_report(config);
  const std::string html = test::read_text(config.out);
  EXPECT_NE(html.find(html_escape(other) + " <small>(2 examples)</small>"), std::string::npos);
  EXPECT_NE(html.find("One evaluation so far."), std::string::npos);
}

TEST(ReportRun, ARunWithoutEvaluationsStillGetsAReport) {
  DQE_REQUIRE_SHARED_FIXTURES();  // the fake run's model is the shared fixture
  FakeRun fake(0);
  ReportConfig config;
  config.run_dir = fake.run;
  config.out = fake.dir.path("report.html");
  config.threads = 1;
  write_report(config);
  const std::string html = test::read_text(config.out);
  EXPECT_NE(html.find("No evaluations yet."), std::string::npos);
  EXPECT_NE(html.find(">Training loss</text>"), std::string::npos);
  EXPECT_NE(html.find("<table class=\"cm\">"), std::string::npos);
}

TEST(ReportRun, ARunBeforeItsFirstCheckpointShowsTheCurvesAlone) {
  test::TempDir dir;
  test::write_text(dir.path("train_log.jsonl"), "{\"step\":1,\"loss\":1.0,\"lr\":1e-5}\n{\"step\":2,\"loss\":0.5,\"lr\":2e-5}\n");
  test::write_text(dir.path("eval_log.jsonl"), "");
  ReportConfig config;
  config.run_dir = dir.path();
  config.out = dir.path("report.html");
  write_report(config);
  const std::string html = test::read_text(config.out);
  EXPECT_NE(html.find("No evaluations yet."), std::string::npos);
  EXPECT_NE(html.find("No checkpoint yet"), std::string::npos);
  EXPECT_NE(html.find(">Training loss</text>"), std::string::npos);
}

TEST(ReportRun, MissingRunOrLogsNameThePath) {
  test::TempDir dir;
  ReportConfig config;
  config.out = dir.path("report.html");
  config.run_dir = dir.path("nope");
  try {
    write_report(config);
    FAIL() << "expected IoError";
  } catch (const IoError& e) {
    EXPECT_EQ(std::string(e.what()), dir.path("nope") + ": no such run directory");
  }
  config.run_dir = dir.path();
  try {
    write_report(config);
    FAIL() << "expected IoError";
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find(dir.path("train_log.jsonl")), std::string::npos) << e.what();
  }
  config.batch_size = 0;
  EXPECT_THROW(write_report(config), ConfigError);
  EXPECT_FALSE(fs::exists(config.out));
}

}  // namespace
}  // namespace dqe
