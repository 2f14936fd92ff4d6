#include "dqe/gate.h"

#include <cmath>
#include <cstdio>
#include <limits>

#include "dqe/config.h"
#include "dqe/errors.h"

namespace dqe {
namespace {

std::string fmt(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4f", v);
  return buf;
}

// "name=value" -> (name, value); throws ConfigError naming the flag.
std::pair<std::string, double> parse_bound(const std::string& text, const std::string& flag) {
  const size_t eq = text.find('=');
  if (eq == std::string::npos || eq == 0) throw ConfigError(flag + " expects metric=value, got \"" + text + "\"");
  const std::string name = text.substr(0, eq);
  try {
    size_t used = 0;
    double v = std::stod(text.substr(eq + 1), &used);
    if (used != text.size() - eq - 1) throw std::invalid_argument("trailing");
    return {name, v};
  } catch (const std::exception&) {
    throw ConfigError(flag + " expects a number after \"" + name + "=\", got \"" + text.substr(eq + 1) + "\"");
  }
}

}  // namespace

const std::vector<std::pair<std::string, bool>>& tracked_metrics() {
  static const std::vector<std::pair<std::string, bool>> kTracked = {
      {"rmse", false},           {"mse", false},     {"mae", false},        {"pearson", true},
      {"spearman", true},        {"accuracy", true}, {"macro_f1", true},    {"micro_f1", true},
      {"quadratic_weighted_kappa", true},            {"f1", true},          {"roc_auc", true},
      {"pr_auc", true},          {"ranking.ndcg_at_5", true},               {"ranking.ndcg_at_10", true},
      {"ranking.mrr", true},
  };
  return kTracked;
}

double metric_value(const nlohmann::json& metrics, const std::string& name) {
  const nlohmann::json* node = &metrics;
  size_t start = 0;
  while (true) {
    const size_t dot = name.find('.', start);
    const std::string key = name.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (!node->is_object() || !node->contains(key)) return std::numeric_limits<double>::quiet_NaN();
    node = &(*node)[key];
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return node->is_number() ? node->get<double>() : std::numeric_limits<double>::quiet_NaN();
}

std::vector<std::string> check_gates(const nlohmann::json& metrics, const GateConfig& config) {
  if (config.max_regression < 0) throw ConfigError("--max-regression must be >= 0");
  std::vector<std::string> failures;
  for (const auto& [flag, bounds, below] :
       {std::make_tuple(std::string("--fail-under"), &config.fail_under, true),
        std::make_tuple(std::string("--fail-over"), &config.fail_over, false)}) {
    for (const auto& text : *bounds) {
      auto [name, limit] = parse_bound(text, flag);
      const double v = metric_value(metrics, name);
      if (std::isnan(v)) throw ConfigError(flag + ": no metric \"" + name + "\" in these results");
      if (below ? v < limit : v > limit)
        failures.push_back(name + " " + fmt(v) + (below ? " is below the floor " : " is above the ceiling ") + fmt(limit));
    }
  }
  if (!config.baseline.empty()) {
    nlohmann::json base = read_json_file(config.baseline);
    for (const auto& [name, higher_is_better] : tracked_metrics()) {
      const double now = metric_value(metrics, name), before = metric_value(base, name);
      if (std::isnan(now) || std::isnan(before)) continue;
      const double worse_by = higher_is_better ? before - now : now - before;
      if (worse_by > config.max_regression + 1e-12)
        failures.push_back(name + " " + fmt(now) + " is worse than the baseline " + fmt(before) + " by " +
                           fmt(worse_by) + " (allowed " + fmt(config.max_regression) + ")");
    }
  }
  return failures;
}

}  // namespace dqe
