#include "dqe/gate.h"

#include <cmath>
#include <limits>
#include <optional>
#include <stdexcept>

#include "base/format.h"
#include "dqe/errors.h"
#include "model/model_spec.h"

namespace dqe {
namespace {

// Above float noise, far below any tolerance a person would give: a run compared with its
// own metrics passes at --max-regression 0.
constexpr double kSlack = 1e-12;


// Counts read as counts ("40"), scores with the eval table's four decimals ("0.4312").
std::string show(const MetricInfo& metric, double v) {
  return metric.direction == Direction::kNeither ? format_number(v) : format_fixed(v, 4);
}

// The whole of text as a number (NaN and infinities included), or nullopt.
std::optional<double> whole_number(const std::string& text) {
  try {
    size_t used = 0;
    const double v = std::stod(text, &used);
    if (used == text.size()) return v;
  } catch (const std::exception&) {
  }
  return std::nullopt;
}

// The metric a --fail-under, --fail-over or --gate-metric names; throws ConfigError naming the flag.
const MetricInfo* named_metric(const std::string& name, const std::string& flag) {
  const MetricInfo* metric = find_metric(name);
  if (metric == nullptr)
    throw ConfigError(flag + ": unknown metric \"" + name + "\" (valid: " + metric_keys_list() + ")");
  return metric;
}

// "name=value" -> (metric, value); throws ConfigError naming the flag.
std::pair<const MetricInfo*, double> parse_bound(const std::string& text, const std::string& flag) {
  const size_t eq = text.find('=');
  if (eq == std::string::npos || eq == 0) throw ConfigError(flag + " expects metric=value, got \"" + text + "\"");
  const std::string name = text.substr(0, eq), number = text.substr(eq + 1);
  const MetricInfo* metric = named_metric(name, flag);
  const std::optional<double> v = whole_number(number);
  if (!v) throw ConfigError(flag + " expects a number after \"" + name + "=\", got \"" + number + "\"");
  // A NaN bound compares false both ways: the gate would pass whatever the metric.
  if (!std::isfinite(*v)) throw ConfigError(flag + " " + text + ": the bound must be a finite number");
  return {metric, *v};
}

void append(std::string& list, const std::string& item) { list += (list.empty() ? "" : ", ") + item; }

// "metric" or "metric=0.005" or "metric=0.5%" -> (metric, tolerance, relative); the tolerance
// is nullopt when not given. Throws ConfigError naming --gate-metric.
struct GateMetric {
  const MetricInfo* metric;
  std::optional<double> tolerance;
  bool relative;
};
GateMetric parse_gate_metric(const std::string& text) {
  const size_t eq = text.find('=');
  const std::string name = text.substr(0, eq);
  const MetricInfo* metric = named_metric(name, "--gate-metric");
  if (eq == std::string::npos) return {metric, std::nullopt, false};
  std::string number = text.substr(eq + 1);
  const bool relative = !number.empty() && number.back() == '%';
  if (relative) number.pop_back();
  const std::optional<double> v = whole_number(number);
  if (!v)
    throw ConfigError("--gate-metric " + text + ": expected a tolerance after \"" + name +
                      "=\", a number (0.005) or a percentage of the baseline (0.5%)");
  if (!std::isfinite(*v) || *v < 0)
    throw ConfigError("--gate-metric " + text + ": the tolerance must be finite and >= 0");
  return {metric, relative ? *v / 100 : *v, relative};
}

// eval's record of its data: {"records": n, "hash": "0123abcd..."}, or null.
const nlohmann::json* data_record(const nlohmann::json& metrics) {
  const auto it = metrics.find("data_fingerprint");
  if (it == metrics.end() || !it->is_object() || !it->contains("hash") || !(*it)["hash"].is_string()) return nullptr;
  return &*it;
}

// "dev.jsonl: 40 records, fingerprint 0123abcd..." from eval's metrics.
std::string data_text(const nlohmann::json& metrics) {
  std::string out = metrics.contains("data") && metrics["data"].is_string() ? metrics["data"].get<std::string>() : "?";
  if (const nlohmann::json* d = data_record(metrics)) {
    if (d->contains("records")) out += ": " + (*d)["records"].dump() + " records";
    out += ", fingerprint " + (*d)["hash"].get<std::string>();
  }
  return out;
}

// The registry's keys of the metrics a run has (null ones included), for messages.
std::string keys_present(const nlohmann::json& metrics) {
  std::string out;
  for (const MetricInfo& m : metric_registry())
    if (metric_node(metrics, m.path) != nullptr) append(out, m.key);
  return out.empty() ? "none" : out;
}

}  // namespace

const nlohmann::json* metric_node(const nlohmann::json& metrics, const std::string& path) {
  const nlohmann::json* node = &metrics;
  size_t start = 0;
  while (true) {
    const size_t dot = path.find('.', start);
    const std::string key = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (!node->is_object() || !node->contains(key)) return nullptr;
    node = &(*node)[key];
    if (dot == std::string::npos) return node;
    start = dot + 1;
  }
}

double metric_value(const nlohmann::json& metrics, const std::string& path) {
  const nlohmann::json* node = metric_node(metrics, path);
  return node != nullptr && node->is_number() ? node->get<double>() : std::numeric_limits<double>::quiet_NaN();
}

std::string GateResult::summary() const {
  std::string s;
  for (const auto& c : checks) s += (s.empty() ? "" : "; ") + c;
  if (passed()) return s + ": passed";
  return s + ": failed (" + std::to_string(failures.size()) + " of " + std::to_string(checks.size()) + ")";
}

Gate::Gate(const GateConfig& config) : baseline_path_(config.baseline), allow_other_data_(config.allow_other_data) {
  for (const auto& text : config.fail_under) {
    auto [metric, limit] = parse_bound(text, "--fail-under");
    bounds_.push_back({metric, limit, true});
  }
  for (const auto& text : config.fail_over) {
    auto [metric, limit] = parse_bound(text, "--fail-over");
    bounds_.push_back({metric, limit, false});
  }
  if (config.max_regression) {
    const double m = *config.max_regression;
    if (!std::isfinite(m) || m < 0)
      throw ConfigError("--max-regression must be a finite number >= 0, got " + format_significant(m));
    if (config.baseline.empty())
      throw ConfigError("--max-regression needs --baseline (there is nothing to regress from)");
    max_regression_ = m;
  }
  std::vector<GateMetric> chosen;
  for (const std::string& text : config.gate_metrics) chosen.push_back(parse_gate_metric(text));
  if (!chosen.empty() && config.baseline.empty())
    throw ConfigError("--gate-metric needs --baseline (it chooses what is compared with it)");
  if (config.allow_other_data && config.baseline.empty())
    throw ConfigError("--allow-other-data needs --baseline");
  if (config.baseline.empty()) return;

  // Read now, before the evaluation runs and before --metrics-out may overwrite the file.
  nlohmann::json base;
  try {
    base = read_json_file(config.baseline);
  } catch (const IoError& e) {
    throw IoError(std::string("--baseline ") + e.what());
  } catch (const Error& e) {
    throw ConfigError(std::string("--baseline ") + e.what());
  }
  if (!base.is_object())
    throw ConfigError("--baseline " + config.baseline + ": expected a JSON object of metrics (eval --metrics-out)");
  for (const char* key : {"data", "data_fingerprint"})
    if (base.contains(key)) baseline_data_[key] = base[key];
  for (const GateMetric& g : chosen) {
    const double v = metric_value(base, g.metric->path);
    if (!std::isfinite(v))
      throw ConfigError("--gate-metric " + g.metric->key + ": --baseline " + config.baseline + " has no value for it");
    baseline_.push_back({g.metric, v, g.tolerance.value_or(max_regression_), g.tolerance && g.relative});
  }
  if (chosen.empty())
    for (const MetricInfo& m : metric_registry()) {
      const double v = metric_value(base, m.path);
      if (m.gated && std::isfinite(v)) baseline_.push_back({&m, v, max_regression_, false});
    }
  if (baseline_.empty()) {
    std::string gated;
    for (const MetricInfo& m : metric_registry())
      if (m.gated) append(gated, m.key);
    throw ConfigError("--baseline " + config.baseline + ": no gated metric with a value, nothing to compare (gated: " +
                      gated + ")");
  }
}

GateResult Gate::check(const nlohmann::json& metrics) const {
  // Usage errors first, so that no verdict is given on a gate that cannot be checked whole.
  std::string missing, common;
  for (const Compared& c : baseline_)
    append(metric_node(metrics, c.metric->path) != nullptr ? common : missing, c.metric->key);
  const auto fingerprint = [](const nlohmann::json& j) {
    const nlohmann::json* d = j.is_object() ? data_record(j) : nullptr;
    return d ? (*d)["hash"].get<std::string>() : std::string();
  };
  const std::string before_data = fingerprint(baseline_data_), now_data = fingerprint(metrics);
  if (!allow_other_data_ && !before_data.empty() && !now_data.empty() && before_data != now_data)
    throw ConfigError("--baseline " + baseline_path_ + " was measured on other data (" + data_text(baseline_data_) +
                      "; this run: " + data_text(metrics) +
                      "): gate like with like, or add --allow-other-data to compare anyway");
  if (!baseline_.empty() && common.empty())
    throw ConfigError("--baseline " + baseline_path_ + ": no gated metric in common with this run (baseline: " +
                      missing + "; this run: " + keys_present(metrics) + ")");
  if (!missing.empty())
    throw ConfigError("--baseline " + baseline_path_ + " has " + missing +
                      ", which this run did not produce (it has: " + keys_present(metrics) + ")");
  for (const Bound& b : bounds_)
    if (metric_node(metrics, b.metric->path) == nullptr)
      throw ConfigError(std::string(b.floor ? "--fail-under " : "--fail-over ") + b.metric->key +
                        ": this run has no such metric (it has: " + keys_present(metrics) + ")");

  GateResult r;
  for (const Compared& c : baseline_) {
    const MetricInfo& m = *c.metric;
    const double before = c.before;
    const double allowed = c.relative ? c.tolerance * std::abs(before) : c.tolerance;
    const double now = metric_value(metrics, m.path);
    const bool higher = m.higher_is_better();
    const std::string relation =
        m.key + " " + show(m, now) + (higher ? " >= baseline " : " <= baseline ") + show(m, before) +
        (higher ? " - " : " + ") +
        (c.relative ? format_significant(100 * c.tolerance, 4) + "% (" + format_fixed(allowed, 4) + ")"
                    : format_fixed(allowed, 4));
    if (std::isnan(now)) {
      r.checks.push_back(relation + " failed");
      r.failures.push_back(m.key + " is undefined (null) in this run; the baseline has " + show(m, before));
      continue;
    }
    const double worse_by = higher ? before - now : now - before;
    const bool ok = worse_by <= allowed + kSlack;
    r.checks.push_back(relation + (ok ? " ok" : " failed"));
    if (!ok)
      r.failures.push_back(m.key + " " + show(m, now) + " is worse than the baseline " + show(m, before) + " by " +
                           format_fixed(worse_by, 4) + " (allowed " + format_fixed(allowed, 4) + ")");
  }
  for (const Bound& b : bounds_) {
    const MetricInfo& m = *b.metric;
    const double v = metric_value(metrics, m.path);
    const std::string relation = m.key + " " + show(m, v) + (b.floor ? " >= " : " <= ") + show(m, b.limit);
    const char* kind = b.floor ? "floor" : "ceiling";
    if (std::isnan(v)) {
      r.checks.push_back(relation + " failed");
      r.failures.push_back(m.key + " is undefined (null) in this run; the " + kind + " is " + show(m, b.limit));
      continue;
    }
    const bool ok = b.floor ? v >= b.limit : v <= b.limit;
    r.checks.push_back(relation + (ok ? " ok" : " failed"));
    if (!ok)
      r.failures.push_back(m.key + " " + show(m, v) + (b.floor ? " is below the floor " : " is above the ceiling ") +
                           show(m, b.limit));
  }
  return r;
}

}  // namespace dqe
