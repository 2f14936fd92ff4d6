// Regression gates for CI: compare a metrics JSON (as written by `dqe eval --metrics-out`)
// with a baseline of the same shape and with absolute floors and ceilings.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace dqe {

struct GateConfig {
  // A previous --metrics-out file; empty for none.
  std::string baseline;
  // A tracked metric may be worse than the baseline by at most this much (in its own units).
  double max_regression = 0.01;
  // "metric=value": fail when the metric is below value (floors) or above it (ceilings).
  // Metric names are the JSON keys, ranking ones as "ranking.ndcg_at_10".
  std::vector<std::string> fail_under;
  std::vector<std::string> fail_over;
};

// The metrics a gate tracks and whether higher is better; those absent from metrics are skipped.
const std::vector<std::pair<std::string, bool>>& tracked_metrics();

// Looks up "name" or "ranking.name" in a metrics object; NaN when absent or null.
double metric_value(const nlohmann::json& metrics, const std::string& name);

// One line per failed gate, naming the metric and both values; empty when all pass.
// Throws ConfigError for a malformed "metric=value" or an unknown metric in them, and
// IoError/ModelError for an unreadable baseline.
std::vector<std::string> check_gates(const nlohmann::json& metrics, const GateConfig& config);

}  // namespace dqe
