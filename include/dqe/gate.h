// Regression gates for CI: compare the metrics of `dqe eval` with a baseline of the same
// shape (an earlier --metrics-out) and with absolute floors and ceilings. A gate fails
// closed: one that would compare nothing, or a bound it cannot check, is a usage error,
// never a silent pass.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "dqe/knobs.h"
#include "dqe/metrics.h"

namespace dqe {

// How much worse than the baseline a gated metric may be when --max-regression is not given.
constexpr double kDefaultMaxRegression = 0.01;

struct GateConfig {
  // A previous --metrics-out file; empty for none.
  std::string baseline;
  // A gated metric may be worse than the baseline by at most this much (in its own units);
  // kDefaultMaxRegression when unset. Set only with a baseline.
  std::optional<double> max_regression;
  // "metric=value": fail when the metric is below value (floors) or above it (ceilings).
  // Metric names as eval prints them ("ndcg_at_10") or as JSON paths ("ranking.ndcg_at_10").
  std::vector<std::string> fail_under;
  std::vector<std::string> fail_over;
  // "metric" or "metric=tolerance": compare only these metrics with the baseline, each with
  // its own tolerance: a number in the metric's units, or "N%" of the baseline's value; without
  // one, max_regression. Empty: every gated metric the baseline has, at max_regression.
  std::vector<std::string> gate_metrics;
  // Compare with a baseline measured on other data (another fingerprint, eval's
  // data_fingerprint); refused otherwise.
  bool allow_other_data = false;

  // The knob table (dqe/knobs.h) of eval's gate flags; the Gate checks them.
  template <typename Self, typename Visitor>
  static void visit_knobs(Self& c, Visitor&& v) {
    const char* g = "Regression gates (exit 4 when one fails)";
    v(Knob("baseline", "Earlier --metrics-out JSON to compare with").hide_default().in(g), c.baseline);
    v(Knob("max-regression", "How much worse than --baseline a gated metric may be, in its own units")
          .unset_means(knob_number_text(kDefaultMaxRegression))
          .in(g),
      c.max_regression);
    v(Knob("fail-under", "metric=value: fail when the metric (as printed, e.g. ndcg_at_10) is below value (repeatable)")
          .hide_default()
          .in(g),
      c.fail_under);
    v(Knob("fail-over", "metric=value: fail when the metric (as printed, e.g. rmse) is above value (repeatable)")
          .hide_default()
          .in(g),
      c.fail_over);
    v(Knob("gate-metric",
           "metric[=tolerance]: compare only these metrics with --baseline, each with its own tolerance, absolute "
           "(0.005) or relative to the baseline (0.5%); without one, --max-regression (repeatable)")
          .hide_default()
          .in(g),
      c.gate_metrics);
    v(Knob("allow-other-data", "Compare with a --baseline measured on other data (its data_fingerprint differs)")
          .as_flag()
          .in(g),
      c.allow_other_data);
  }
};

// Looks up a dotted path ("rmse", "ranking.mrr") in a metrics object; NaN when absent or null.
double metric_value(const nlohmann::json& metrics, const std::string& path);
// The node at a dotted path (null for a metric that was NaN), or nullptr when it is absent.
const nlohmann::json* metric_node(const nlohmann::json& metrics, const std::string& path);

struct GateResult {
  // One entry per comparison, in order: "rmse 0.4312 <= baseline 0.4300 + 0.0100 ok".
  std::vector<std::string> checks;
  // One line per failed comparison, naming the metric and both values.
  std::vector<std::string> failures;

  bool passed() const { return failures.empty(); }
  // The checks on one line, then the verdict: "rmse ... ok; ndcg_at_10 ... ok: passed".
  std::string summary() const;
};

class Gate {
 public:
  // Validates the bounds and reads the baseline, so that a gate that cannot work stops
  // before any evaluation. Throws ConfigError naming the flag for a malformed or non-finite
  // bound, an unknown metric (listing the valid names), a negative or non-finite
  // --max-regression, --max-regression without --baseline, and a baseline that is not a
  // metrics object or holds no gated metric with a value; IoError when it cannot be read.
  explicit Gate(const GateConfig& config);

  // Whether any gate was asked for.
  bool active() const { return !bounds_.empty() || !baseline_.empty(); }

  // Compares the metrics of a run (as evaluate() returns them) with the baseline and bounds.
  // A gated metric that the baseline has but that is null in the run (undefined on this
  // data: e.g. Pearson of constant predictions) fails, as does a bound on such a metric.
  // Throws ConfigError when a bound or the baseline names a metric the run did not produce
  // at all (another task, or no ranking metrics because no query has two results).
  GateResult check(const nlohmann::json& metrics) const;

 private:
  struct Bound {
    const MetricInfo* metric;
    double limit;
    bool floor;  // --fail-under; else a ceiling (--fail-over)
  };
  std::vector<Bound> bounds_;
  // A baseline comparison: the metric, its baseline value, and how much worse it may be
  // (absolute, or a share of the baseline's value when relative).
  struct Compared {
    const MetricInfo* metric;
    double before;
    double tolerance;
    bool relative;
  };
  std::string baseline_path_;
  // The metrics compared with the baseline (those with a value), in registry order or as
  // --gate-metric lists them.
  std::vector<Compared> baseline_;
  // The baseline's data: records and fingerprint (eval's), when it recorded them.
  nlohmann::json baseline_data_;
  bool allow_other_data_ = false;
  double max_regression_ = kDefaultMaxRegression;
};

}  // namespace dqe
