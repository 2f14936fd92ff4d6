// `dqe report`: one self-contained HTML file (inline SVG and CSS, no script, no network)
// describing a training run: loss, learning-rate and dev-metric curves, the best model's
// metrics on labelled data, a confusion matrix or predicted-vs-true plot, score histograms
// per label and the effective configuration. The chart and table builders are pure
// functions, declared here so that they can be tested on their own.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "dqe/knobs.h"
#include "dqe/run_context.h"
#include "train/run_log.h"

namespace dqe {

struct ReportConfig {
  // A training run's directory (train_log.jsonl, eval_log.jsonl, best/, last/).
  std::string run_dir;
  std::string out = "report.html";
  // Labelled data to run the best model on; empty means the dev file recorded in the run's
  // configuration.
  std::string data;
  int64_t batch_size = 64;
  // Compute threads (0: all cores available).
  int threads = 0;
  // "auto" (bf16 autocast on a GPU or where the CPU has native bf16, else fp32), "fp32"
  // (exact) or "bf16": as in eval, so that the report's metrics are eval's.
  std::string precision = "auto";
  // "auto" (a GPU when there is one), "cpu", "cuda" or "cuda:N".
  std::string device = "auto";
  // Longest input in tokens; 0 means the model's own.
  int64_t max_len = 0;

  // The knob table (dqe/knobs.h), in --help's order.
  template <typename Self, typename Visitor>
  static void visit_knobs(Self& c, Visitor&& v) {
    v(Knob("run", "Training run directory (train_log.jsonl, eval_log.jsonl, best/)").mandatory().hide_default(), c.run_dir);
    v(Knob("out", "HTML file to write"), c.out);  // not empty: checked by validate()
    v(Knob("data", "Labelled data to run the best model on (default: the run's dev file)").hide_default(), c.data);
    v(Knob("max-len", "Longest input in tokens (0: the model's)")
          .check(bound::closed(0, kMaxSequenceLength), "0 (the model's) or between 3 and the model's limit"),
      c.max_len);
    v(Knob("batch-size", "Examples per batch")
          .check(bound::closed(1, static_cast<double>(kMaxBatchSize)), "between 1 and " + std::to_string(kMaxBatchSize)),
      c.batch_size);
    visit_compute_knobs(c, v);
  }

  // Throws ConfigError naming the flag.
  void validate() const;
};

// Writes the report to config.out atomically. The best model's metrics come from the same
// predictor and metrics as `dqe eval` (same device and precision, same numbers); a
// pretraining run shows its held-back MLM metrics instead. Throws IoError naming the path when
// the run directory or its logs are missing, ModelError for a broken checkpoint, DataError for
// a malformed log line or data line, ConfigError for a bad value; Interrupted when stop asks.
void write_report(const ReportConfig& config, const StopToken& stop = {});

// ---- Pieces of the report, exposed for tests ----

// &, <, >, " and ' replaced by entities.
std::string html_escape(std::string_view text);

// Trailing moving average: element i is the mean of values[max(0, i - window + 1) .. i].
// window 0 is taken as 1.
std::vector<double> moving_average(const std::vector<double>& values, size_t window);

// About `target` evenly spaced "nice" values (steps of 1, 2 or 5 times a power of ten)
// covering [lo, hi]: the first is <= lo and the last >= hi. lo == hi is widened first.
std::vector<double> nice_ticks(double lo, double hi, int target = 5);
// A tick's label, with as many decimals as the tick step needs.
std::string format_tick(double value, double step);

struct Histogram {
  double lo = 0, hi = 1;
  // counts[i] covers [lo + i * w, lo + (i + 1) * w), w = (hi - lo) / bins; the last bin
  // also holds hi. Values outside [lo, hi] go to the first or last bin; NaN is skipped.
  std::vector<int64_t> counts;
  double bin_width() const { return counts.empty() ? 0 : (hi - lo) / static_cast<double>(counts.size()); }
};
// Throws std::invalid_argument when bins is 0 or hi <= lo.
Histogram histogram(const std::vector<double>& values, double lo, double hi, size_t bins);

// confusion[true][predicted] over k classes. Throws std::invalid_argument on a size
// mismatch or an id outside [0, k).
std::vector<std::vector<int64_t>> confusion_matrix(const std::vector<int64_t>& truth,
                                                   const std::vector<int64_t>& predicted, size_t k);

// min(n, max_count) distinct indices in [0, n), increasing; a seeded random choice when
// n > max_count, so that a plot of many points stays light and reproducible.
std::vector<size_t> subsample_indices(size_t n, size_t max_count, uint64_t seed);

// Rows of the same label value for histograms per label. Regression labels with more than
// max_groups distinct values are grouped into max_groups equal-width ranges.
struct LabelGroup {
  std::string name;
  std::vector<size_t> rows;
};
std::vector<LabelGroup> group_by_label(const std::vector<double>& labels, const std::vector<std::string>& class_names,
                                       size_t max_groups = 8);

// Colours for series and classes, cycled.
const std::string& palette_color(size_t i);

struct ChartSeries {
  std::string name;  // legend text; empty: not in the legend
  std::vector<double> x, y;
  std::string color = "#1f77b4";
  double stroke_width = 1.5;
  double opacity = 1.0;
  bool dots = false;  // a dot at each point
  bool dashed = false;
};

struct ChartMarker {
  double x = 0, y = 0;
  std::string label;
  std::string color = "#d62728";
};

struct LineChart {
  std::string title;
  std::string x_label, y_label;
  std::vector<ChartSeries> series;
  std::vector<ChartMarker> markers;
  int width = 580, height = 300;
};
// An <svg> element with axes, tick labels, a title, the axis labels and a legend of the named
// series and labelled markers (circled on the plot). Non-finite points are skipped.
std::string svg_line_chart(const LineChart& chart);

// Predicted (y) against true (x) values: one dot per point, and the y = x diagonal.
std::string svg_scatter(const std::string& title, const std::string& x_label, const std::string& y_label,
                        const std::vector<double>& x, const std::vector<double>& y, int width = 560,
                        int height = 420);

// Bars of a histogram, titled, with count ticks on the y axis.
std::string svg_histogram(const Histogram& h, const std::string& title, const std::string& x_label,
                          const std::string& color, int width = 280, int height = 190);

// A <table> of the matrix (rows: true class, columns: predicted), each cell shaded by its
// share of the row, with row totals.
std::string html_confusion_matrix(const std::vector<std::string>& class_names,
                                  const std::vector<std::vector<int64_t>>& matrix);

// Flattens nested objects to dotted keys; arrays of scalars are joined with ", ".
std::vector<std::pair<std::string, std::string>> flatten_json(const nlohmann::ordered_json& j);

}  // namespace dqe
