#include "dqe/report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <numeric>
#include <random>
#include <set>
#include <stdexcept>

#include "base/checks.h"
#include "base/format.h"
#include "base/log.h"
#include "data/dataset.h"
#include "dqe/errors.h"
#include "dqe/evaluator.h"
#include "dqe/jsonl_reader.h"
#include "dqe/metrics.h"
#include "dqe/runtime.h"
#include "dqe/session.h"
#include "io/output.h"
#include "model/heads/task_head.h"
#include "model/model_dir.h"
#include "model/model_spec.h"
#include "train/train_state.h"

namespace dqe {

namespace fs = std::filesystem;

// ---------------------------------------------------------------------------------------
// The report

namespace {

const char* kStyle = R"css(
:root { color-scheme: light; }
body { font: 14px/1.45 -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: #222; background: #f4f5f7;
       margin: 0; padding: 24px; }
main { max-width: 1300px; margin: 0 auto; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 0 0 12px; border-bottom: 1px solid #e3e3e3; padding-bottom: 6px; }
h3 { font-size: 14px; margin: 14px 0 8px; color: #444; }
.sub { color: #666; margin: 0 0 16px; word-break: break-all; }
section { background: #fff; border: 1px solid #e1e3e6; border-radius: 8px; padding: 16px 20px; margin: 0 0 18px; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(230px, 1fr)); gap: 10px; }
.card { border: 1px solid #e6e8eb; border-radius: 6px; padding: 8px 12px; background: #fafbfc; min-width: 0; }
.card .k { color: #666; font-size: 12px; text-transform: uppercase; letter-spacing: .03em; }
.card .v { font-size: 15px; font-weight: 600; overflow-wrap: anywhere; }
.card .v small { font-weight: 400; color: #666; }
.charts { display: flex; flex-wrap: wrap; gap: 14px; }
.charts svg { border: 1px solid #eceef1; border-radius: 4px; max-width: 100%; height: auto; }
.note { color: #666; font-size: 13px; margin: 8px 0 0; }
.empty { color: #888; font-style: italic; }
table { border-collapse: collapse; font-size: 13px; }
th, td { border: 1px solid #e1e3e6; padding: 4px 10px; text-align: left; vertical-align: top; }
th { background: #f6f7f9; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.tables { display: flex; flex-wrap: wrap; gap: 24px; align-items: flex-start; }
.kv td:first-child { font-family: ui-monospace, Menlo, Consolas, monospace; color: #444; }
.kv td:last-child { font-family: ui-monospace, Menlo, Consolas, monospace; overflow-wrap: anywhere; max-width: 420px; }
table.cm td { text-align: center; min-width: 72px; font-size: 15px; font-weight: 600; }
table.cm td small { display: block; font-size: 11px; font-weight: 400; opacity: .85; }
table.cm td.total { background: #f6f7f9; font-weight: 400; }
table.cm th.corner { font-weight: 400; color: #666; font-size: 12px; }
footer { color: #888; font-size: 12px; text-align: center; }
)css";

std::string card(const std::string& key, const std::string& value_html) {
  return "<div class=\"card\"><div class=\"k\">" + html_escape(key) + "</div><div class=\"v\">" + value_html +
         "</div></div>\n";
}

std::string kv_table(const std::vector<std::pair<std::string, std::string>>& rows) {
  std::string s = "<table class=\"kv\">\n";
  for (const auto& [k, v] : rows) s += "<tr><td>" + html_escape(k) + "</td><td>" + html_escape(v) + "</td></tr>\n";
  return s + "</table>\n";
}

// The registry's label of a metric key, plain text; the key itself when it is not a metric.
std::string metric_label(const std::string& key) {
  const MetricInfo* m = find_metric(key);
  return m ? m->label : key;
}

std::string metric_value(const nlohmann::ordered_json& v) {
  if (v.is_number()) return format_number(v.get<double>());
  if (v.is_null()) return "n/a";
  return html_escape(v.is_string() ? v.get<std::string>() : v.dump());
}

// Rows for the scalar metrics of an object (metric names are ours, values are numbers).
std::string metric_rows(const nlohmann::ordered_json& metrics) {
  std::string s;
  for (auto it = metrics.begin(); it != metrics.end(); ++it) {
    if (it->is_structured()) continue;
    s += "<tr><td>" + html_escape(metric_label(it.key())) + "</td><td class=\"num\">" + metric_value(*it) +
         "</td></tr>\n";
  }
  return s;
}

std::string metrics_section(const nlohmann::ordered_json& metrics) {
  std::string s = "<div class=\"tables\">\n<div><h3>Task metrics</h3><table>\n<tr><th>metric</th><th>value</th></tr>\n" +
                  metric_rows(metrics) + "</table></div>\n";
  if (auto r = metrics.find("ranking"); r != metrics.end() && r->is_object())
    s += "<div><h3>Ranking metrics</h3><table>\n<tr><th>metric</th><th>value</th></tr>\n" + metric_rows(*r) +
         "</table></div>\n";
  if (auto pc = metrics.find("per_class"); pc != metrics.end() && pc->is_object()) {
    s += "<div><h3>Per class</h3><table>\n<tr><th>class</th><th>precision</th><th>recall</th><th>F1</th>"
         "<th>support</th></tr>\n";
    for (auto it = pc->begin(); it != pc->end(); ++it) {
      s += "<tr><td>" + html_escape(it.key()) + "</td>";
      for (const char* k : {"precision", "recall", "f1", "support"})
        s += "<td class=\"num\">" + metric_value(it->value(k, nlohmann::ordered_json())) + "</td>";
      s += "</tr>\n";
    }
    s += "</table></div>\n";
  }
  return s + "</div>\n";
}

int64_t count_parameters(SequenceModel& model) {
  int64_t n = 0;
  for (const auto& p : model->parameters()) n += p.numel();
  return n;
}

std::string with_thousands(int64_t n) {
  std::string digits = std::to_string(n), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0 && digits[i - 1] != '-') out += ',';
    out += digits[i];
  }
  return out;
}

struct ModelRun {
  // The checkpoint; with a task head, the session's (which predicts as eval does, int8 kernels
  // included), without one (a pretraining run's encoder) loaded alone.
  LoadedModel loaded;
  std::optional<InferenceSession> session;
  TrainerState state;
  std::optional<TrainerState> last_state;
};

struct PredictionRun {
  std::string data;
  TaskSpec task;
  Predictions predictions;
  std::vector<double> labels;
  EvalResult result;
};

PredictionRun run_predictions(const InferenceSession& session, const std::string& data) {
  auto log = detail::logger("report");
  PredictionRun p;
  p.data = data;
  p.task = session.task();
  ReaderOptions ro;
  ro.fields = session.read_fields();
  ro.require_label = true;
  const std::vector<Record> records = read_jsonl(data, ro);
  log->info("{}: {} examples; model {} ({} task)", data, records.size(), session.ensemble().members.front().dir,
            task_name(p.task.task));
  LabelledRun run = session.run_labelled(records, data);
  p.predictions = std::move(run.predictions);
  p.labels = std::move(run.labels.labels);
  p.result = std::move(run.result);
  return p;
}

std::string header_section(const ReportConfig& config, const std::vector<TrainLogRecord>& train,
                           const std::vector<EvalLogRecord>& evals, ModelRun* run, const PredictionRun* pred) {
  std::string s = "<h1>dqe training report</h1>\n<p class=\"sub\">" + html_escape(config.run_dir) + "</p>\n";
  s += "<section id=\"summary\"><h2>Run</h2><div class=\"cards\">\n";
  if (run) {
    const ModelSpec& spec = run->loaded.spec;
    std::string task = spec.mlm_encoder ? std::string("masked-language-model pretraining") : task_name(spec.task.task);
    if (!spec.mlm_encoder && !task_head(spec.task.task).class_names(spec.task).empty() && !spec.task.labels.empty()) {
      std::string names;
      for (const auto& l : spec.task.labels) names += (names.empty() ? "" : ", ") + l;
      task += " <small>(" + html_escape(names) + ")</small>";
    }
    s += card("task", task);
    s += card("model", std::to_string(spec.bert.num_hidden_layers) + " layers &#215; " +
                           std::to_string(spec.bert.hidden_size) + " hidden &#215; " +
                           std::to_string(spec.bert.num_attention_heads) + " heads <small>(intermediate " +
                           std::to_string(spec.bert.intermediate_size) + ", vocab " +
                           std::to_string(spec.bert.vocab_size) + ", max length " +
                           std::to_string(spec.task.max_len) + ")</small>");
    s += card("parameters", with_thousands(count_parameters(run->loaded.model)));
  }
  const TrainerState* latest = run ? (run->last_state ? &*run->last_state : &run->state) : nullptr;
  std::string steps = train.empty() ? "none logged" : with_thousands(train.back().step);
  if (latest && latest->total_steps > 0) {
    steps += " <small>of " + with_thousands(latest->total_steps);
    if (latest->finished) steps += ", finished";
    steps += "</small>";
  }
  s += card("steps", steps);
  if (!train.empty()) {
    double sps = 0;
    size_t n = 0;
    for (const auto& e : train) {
      if (!std::isfinite(e.samples_per_s)) continue;
      sps += e.samples_per_s;
      ++n;
    }
    s += card("training time", format_duration(train.back().elapsed_s) + " <small>(" +
                                   format_number(n ? sps / static_cast<double>(n) : NAN, 3) + " samples/s)</small>");
  }
  if (run && run->state.best_metric) {
    s += card("best dev " + metric_label(run->state.metric_name),
              format_number(*run->state.best_metric) + " <small>at step " + with_thousands(run->state.best_step) +
                  "</small>");
  } else if (!evals.empty()) {
    s += card("last dev " + metric_label(evals.back().metric), format_number(evals.back().value) + " <small>at step " +
                                                     with_thousands(evals.back().step) + "</small>");
  }
  s += card("evaluations", std::to_string(evals.size()));
  if (run) s += card("checkpoint", html_escape(run->loaded.dir));
  if (pred)
    s += card("report data", html_escape(pred->data) + " <small>(" +
                                 with_thousands(static_cast<int64_t>(pred->labels.size())) + " examples)</small>");
  return s + "</div></section>\n";
}

std::string training_section(const std::vector<TrainLogRecord>& train) {
  std::string s = "<section id=\"training\"><h2>Training curves</h2>\n";
  if (train.empty()) return s + "<p class=\"empty\">No training steps logged yet.</p></section>\n";
  std::vector<double> steps, loss, lr, grad;
  for (const auto& e : train) {
    steps.push_back(static_cast<double>(e.step));
    loss.push_back(e.loss);
    lr.push_back(e.lr);
    grad.push_back(e.grad_norm);
  }
  // About 50 windows over the run, so the trend shows through the batch-to-batch noise.
  const size_t window = std::max<size_t>(5, train.size() / 50);
  LineChart loss_chart;
  loss_chart.title = "Training loss";
  loss_chart.x_label = "step";
  loss_chart.y_label = "loss";
  loss_chart.series.push_back({"raw", steps, loss, "#9ecae1", 1.0, 0.9, false, false});
  loss_chart.series.push_back(
      {"moving average (" + std::to_string(window) + " steps)", steps, moving_average(loss, window), "#1f77b4", 2.2});
  LineChart lr_chart;
  lr_chart.title = "Learning rate";
  lr_chart.x_label = "step";
  lr_chart.y_label = "lr";
  lr_chart.series.push_back({"", steps, lr, "#ff7f0e", 2.0});
  LineChart grad_chart;
  grad_chart.title = "Gradient norm (before clipping)";
  grad_chart.x_label = "step";
  grad_chart.y_label = "L2 norm";
  grad_chart.series.push_back({"raw", steps, grad, "#c7e9c0", 1.0, 0.9});
  grad_chart.series.push_back(
      {"moving average", steps, moving_average(grad, window), "#2ca02c", 2.2});
  s += "<div class=\"charts\">\n" + svg_line_chart(loss_chart) + svg_line_chart(lr_chart) + svg_line_chart(grad_chart);
  // Objectives' own numbers per step (pretraining: the accuracy on masked tokens).
  std::vector<double> accuracy;
  for (const auto& e : train) {
    auto it = e.extra.find("accuracy");
    accuracy.push_back(it != e.extra.end() && it->is_number() ? it->get<double>() : NAN);
  }
  if (std::any_of(accuracy.begin(), accuracy.end(), [](double v) { return std::isfinite(v); })) {
    LineChart acc_chart;
    acc_chart.title = "Training accuracy (masked tokens)";
    acc_chart.x_label = "step";
    acc_chart.y_label = "accuracy";
    acc_chart.series.push_back({"raw", steps, accuracy, "#dadaeb", 1.0, 0.9});
    acc_chart.series.push_back({"moving average", steps, moving_average(accuracy, window), "#756bb1", 2.2});
    s += svg_line_chart(acc_chart);
  }
  s += "</div>\n";
  return s + "</section>\n";
}

std::string dev_section(const std::vector<EvalLogRecord>& evals, const ModelRun* run) {
  std::string s = "<section id=\"dev\"><h2>Dev evaluations</h2>\n";
  if (evals.empty()) return s + "<p class=\"empty\">No evaluations yet.</p></section>\n";
  const std::string metric = evals.back().metric;
  std::vector<double> steps, values;
  for (const auto& e : evals) {
    steps.push_back(static_cast<double>(e.step));
    values.push_back(e.value);
  }
  LineChart primary;
  primary.title = "Dev " + metric_label(metric) + " (selection metric)";
  primary.x_label = "step";
  primary.y_label = metric_label(metric);
  primary.series.push_back({"dev " + metric_label(metric), steps, values, "#1f77b4", 2.0, 1.0, true});
  // The best point: the trainer's record when there is one, else the last improvement.
  std::optional<std::pair<int64_t, double>> best;
  if (run && run->state.best_metric) best = std::make_pair(run->state.best_step, *run->state.best_metric);
  for (const auto& e : evals)
    if (!run && e.improved) best = std::make_pair(e.step, e.value);
  if (best)
    primary.markers.push_back({static_cast<double>(best->first), best->second,
                               "best " + format_number(best->second) + " @ step " + std::to_string(best->first)});

  // The other scalar metrics of each evaluation, and nDCG@10 when ranking metrics exist, one
  // small chart each: their scales differ (an MSE near 0.2 beside a Pearson near 0.6 would share
  // one flattened axis), and a legend naming them all overflowed the chart.
  std::vector<std::pair<std::string, std::vector<double>>> others;
  for (const auto& e : evals) {
    for (auto it = e.metrics.begin(); it != e.metrics.end(); ++it)
      if (it->is_number() && it.key() != "count" && it.key() != metric && it.key() != "threshold" &&
          std::none_of(others.begin(), others.end(), [&](const auto& o) { return o.first == it.key(); }))
        others.emplace_back(it.key(), std::vector<double>());
  }
  for (auto& [key, ys] : others)
    for (const auto& e : evals) {
      auto it = e.metrics.find(key);
      ys.push_back(it != e.metrics.end() && it->is_number() ? it->get<double>() : NAN);
    }
  std::vector<double> ndcg;
  for (const auto& e : evals) {
    auto r = e.metrics.find("ranking");
    ndcg.push_back(r != e.metrics.end() && r->is_object() && r->contains("ndcg_at_10") && (*r)["ndcg_at_10"].is_number()
                       ? (*r)["ndcg_at_10"].get<double>()
                       : NAN);
  }
  if (std::any_of(ndcg.begin(), ndcg.end(), [](double v) { return std::isfinite(v); }))
    others.emplace_back("ndcg_at_10", ndcg);

  s += "<div class=\"charts\">\n" + svg_line_chart(primary) + "</div>\n";
  if (!others.empty()) {
    s += "<h3>Other dev metrics</h3>\n<div class=\"charts\">\n";
    for (size_t k = 0; k < others.size(); ++k) {
      LineChart small;
      small.title = metric_label(others[k].first);
      small.x_label = "step";
      small.width = 280;
      small.height = 190;
      small.series.push_back({"", steps, others[k].second, palette_color(k + 1), 1.8, 1.0, evals.size() < 40});
      s += svg_line_chart(small);
    }
    s += "</div>\n";
  }
  if (evals.size() == 1) s += "<p class=\"note\">One evaluation so far.</p>\n";
  return s + "</section>\n";
}

std::string predictions_section(const PredictionRun& p) {
  std::string s = "<section id=\"metrics\"><h2>Final metrics</h2>\n<p class=\"sub\">on " +
                  html_escape(p.data) + " (" + with_thousands(static_cast<int64_t>(p.labels.size())) +
                  " examples)</p>\n" + metrics_section(p.result.metrics) + "</section>\n";

  const TaskHead& head = task_head(p.task.task);
  const std::vector<std::string> names = head.class_names(p.task);
  // A task without classes (regression) plots its scores against the labels; one with classes
  // has a confusion matrix.
  if (names.empty()) {
    s += "<section id=\"predictions\"><h2>Predicted vs true</h2>\n";
    std::set<double> distinct(p.labels.begin(), p.labels.end());
    const double range = distinct.empty() ? 0 : *distinct.rbegin() - *distinct.begin();
    // Discrete labels would stack into vertical lines; a little jitter shows their density.
    const double jitter = distinct.size() <= 20 ? 0.02 * (range > 0 ? range : 1) : 0;
    const size_t max_points = 3000;
    std::vector<size_t> rows = subsample_indices(p.labels.size(), max_points, 12345);
    std::mt19937_64 rng(777);
    std::uniform_real_distribution<double> u(-jitter, jitter);
    std::vector<double> x, y;
    for (size_t r : rows) {
      x.push_back(p.labels[r] + (jitter > 0 ? u(rng) : 0));
      y.push_back(p.predictions.scores[r]);
    }
    s += "<div class=\"charts\">\n" +
         svg_scatter("Predicted vs true label", jitter > 0 ? "true label (jittered)" : "true label", "predicted", x, y) +
         "</div>\n";
    std::string note = std::to_string(rows.size()) + " of " + std::to_string(p.labels.size()) + " examples";
    if (rows.size() < p.labels.size()) note += " (a random sample)";
    if (jitter > 0) note += "; true labels jittered by up to &#177;" + format_number(jitter, 2) + " to show overlapping points";
    s += "<p class=\"note\">" + note + ".</p>\n</section>\n";
  } else {
    s += "<section id=\"confusion\"><h2>Confusion matrix</h2>\n";
    std::vector<int64_t> truth(p.labels.begin(), p.labels.end());
    s += html_confusion_matrix(names, confusion_matrix(truth, p.predictions.classes, names.size()));
    s += "<p class=\"note\">Rows: true class; columns: predicted class; percentages of the row. " + head.class_rule() +
         "</p>\n</section>\n";
  }

  s += "<section id=\"histograms\"><h2>Score histograms per label</h2>\n<div class=\"charts\">\n";
  double lo = 0, hi = 1;
  size_t bins = 25;
  if (names.empty()) {
    // The scatter plot's range: predictions and labels, a little padded, to nice ticks.
    lo = INFINITY;
    hi = -INFINITY;
    for (const auto* values : {&p.predictions.scores, &p.labels}) {
      for (double v : *values) {
        if (!std::isfinite(v)) continue;
        lo = std::min(lo, v);
        hi = std::max(hi, v);
      }
    }
    if (!(lo < hi)) {
      lo = std::isfinite(lo) ? lo - 0.5 : 0;
      hi = lo + 1;
    }
    const double pad = 0.02 * (hi - lo);
    const auto ticks = nice_ticks(lo - pad, hi + pad, 5);
    const double step = ticks.size() >= 2 ? ticks[1] - ticks[0] : 1;
    lo = ticks.front();
    hi = ticks.back();
    // Ten bins per tick interval, so that bin edges fall on the ticks.
    bins = static_cast<size_t>(std::max<long long>(1, std::llround((hi - lo) / (step / 10))));
  }
  const std::vector<LabelGroup> groups = group_by_label(p.labels, names);
  for (size_t g = 0; g < groups.size(); ++g) {
    std::vector<double> scores;
    for (size_t r : groups[g].rows) scores.push_back(p.predictions.scores[r]);
    s += svg_histogram(histogram(scores, lo, hi, bins), "label " + groups[g].name, "score", palette_color(g));
  }
  s += "</div>\n<p class=\"note\">";
  return s + head.score_meaning() + "</p>\n</section>\n";
}

// The run's configuration as trainer_state.json lists it (the flags' order), rather than
// sorted as TrainerState holds it after parsing.
nlohmann::ordered_json config_in_file_order(const ModelRun& run) {
  std::ifstream in(run.loaded.dir + "/trainer_state.json");
  auto j = nlohmann::ordered_json::parse(in, nullptr, false);
  if (!j.is_discarded() && j.is_object() && j.contains("config") && j["config"].is_object()) return j["config"];
  return run.state.config;
}

}  // namespace

void ReportConfig::validate() const {
  check_knobs(*this);
  if (out.empty()) throw ConfigError("--out must not be empty");
  check_compute_flags(threads, precision, device);
}

void write_report(const ReportConfig& config, const StopToken& stop) {
  config.validate();
  const fs::path run_dir(config.run_dir);
  if (!fs::is_directory(run_dir)) throw IoError(config.run_dir + ": no such run directory");
  check_no_aliases({{"--out", config.out, true},
                    {"--data", config.data, false},
                    {"--run's train log", (run_dir / "train_log.jsonl").string(), false},
                    {"--run's eval log", (run_dir / "eval_log.jsonl").string(), false}});
  if (auto parent = fs::path(config.out).parent_path(); !parent.empty() && !fs::is_directory(parent))
    throw IoError(config.out + ": cannot write (no such directory)");
  auto log = detail::logger("report");

  const std::vector<TrainLogRecord> train = read_train_log((run_dir / "train_log.jsonl").string());
  const std::vector<EvalLogRecord> evals = read_eval_log((run_dir / "eval_log.jsonl").string());

  // Before the first evaluation a run has no best/ (and no last/ until one is saved):
  // the report then shows the curves alone.
  std::optional<ModelRun> run;
  std::optional<PredictionRun> pred;
  std::string no_model_note;
  if (fs::is_directory(run_dir / "best") || fs::is_directory(run_dir / "last")) {
    const RunContext ctx = make_run_context(config.device, config.precision, config.threads, stop);
    log->info(ctx.describe());
    run.emplace();
    if (model_spec_of(config.run_dir).mlm_encoder) {
      LoadOptions lo;
      lo.allow_new_head = true;  // a pretraining run's encoder has no task head: nothing to predict
      run->loaded = load_model(config.run_dir, lo);
    } else {
      SessionConfig sc;
      sc.models = {config.run_dir};
      sc.max_len = config.max_len;
      sc.batch_size = config.batch_size;
      run->session.emplace(sc, ctx);
      run->loaded = run->session->ensemble().members.front();
    }
    run->state = load_trainer_state(run->loaded.dir, nullptr);
    if (fs::exists(run_dir / "last" / "trainer_state.json"))
      run->last_state = load_trainer_state((run_dir / "last").string(), nullptr);
    if (run->loaded.spec.mlm_encoder) {
      no_model_note = "A pretraining run: its encoder has no task head, so there are no predictions to show; the "
                      "held-back MLM metrics are under Dev evaluations.";
    } else {
      std::string data = config.data;
      if (data.empty()) {
        auto dev = run->state.config.find("dev");
        if (dev == run->state.config.end() || !dev->is_string() || dev->get<std::string>().empty())
          throw ConfigError(run->loaded.dir + "/trainer_state.json records no dev file; pass --data");
        data = dev->get<std::string>();
        if (!fs::exists(data))
          throw IoError(data + ": cannot open (the dev file recorded in " + run->loaded.dir +
                        "/trainer_state.json; pass --data)");
        check_no_aliases({{"--out", config.out, true}, {"the run's dev file", data, false}});
      }
      pred = run_predictions(*run->session, data);
    }
  } else {
    no_model_note = "No checkpoint yet (" + (run_dir / "best").string() + " does not exist): no predictions to show.";
  }

  std::string html = "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>dqe report: " +
                     html_escape(config.run_dir) + "</title>\n<style>" + kStyle + "</style>\n</head>\n<body>\n<main>\n";
  html += header_section(config, train, evals, run ? &*run : nullptr, pred ? &*pred : nullptr);
  html += training_section(train);
  html += dev_section(evals, run ? &*run : nullptr);
  if (pred) html += predictions_section(*pred);
  else html += "<section id=\"metrics\"><h2>Final metrics</h2><p class=\"empty\">" + html_escape(no_model_note) + "</p></section>\n";
  html += "<section id=\"config\"><h2>Configuration</h2>\n";
  if (run) {
    html += "<div class=\"tables\">\n<div><h3>Training (trainer_state.json)</h3>\n" + kv_table(flatten_json(config_in_file_order(*run))) +
            "</div>\n<div><h3>Model (config.json)</h3>\n" + kv_table(flatten_json(to_json(run->loaded.spec))) + "</div>\n</div>\n";
  } else {
    html += "<p class=\"empty\">No checkpoint yet: the configuration is saved with the first one.</p>\n";
  }
  html += "</section>\n<footer>Written by dqe report.</footer>\n</main>\n</body>\n</html>\n";
  write_file_atomic(config.out, html);
  log->info("wrote {}", config.out);
}

}  // namespace dqe
