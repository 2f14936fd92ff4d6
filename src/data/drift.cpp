#include "data/drift.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "dqe/errors.h"

namespace dqe {
namespace {
constexpr double kMinShare = 1e-4;
}

size_t ScoreReference::bin_of(double score) const {
  return static_cast<size_t>(std::upper_bound(edges.begin(), edges.end(), score) - edges.begin());
}

nlohmann::json ScoreReference::to_json() const { return {{"edges", edges}, {"fractions", fractions}}; }

ScoreReference ScoreReference::from_json(const nlohmann::json& j, const std::string& origin) {
  ScoreReference r;
  try {
    r.edges = j.at("edges").get<std::vector<double>>();
    r.fractions = j.at("fractions").get<std::vector<double>>();
  } catch (const nlohmann::json::exception&) {
    throw ModelError(origin + ": expected {\"edges\": [...], \"fractions\": [...]}");
  }
  if (r.fractions.size() != r.edges.size() + 1 || !std::is_sorted(r.edges.begin(), r.edges.end()))
    throw ModelError(origin + ": edges must be sorted and one fewer than fractions");
  return r;
}

ScoreReference make_score_reference(const std::vector<double>& scores, int bins) {
  ScoreReference r;
  std::vector<double> sorted;
  for (double s : scores)
    if (std::isfinite(s)) sorted.push_back(s);
  std::sort(sorted.begin(), sorted.end());
  if (sorted.empty() || bins < 2) {
    r.fractions = {1.0};
    return r;
  }
  for (int i = 1; i < bins; ++i) {
    const double q = sorted[static_cast<size_t>(i) * sorted.size() / static_cast<size_t>(bins)];
    // The edge goes halfway between the quantile and the next lower dev score, not on the
    // quantile itself: dev scores are often tied (a bf16 output has 128 values in [2, 4)),
    // and a score that differs from a tied one by rounding alone (fp32 against bf16) must
    // land in the same bin, or a tie on an edge reads as drift.
    const auto first_q = std::lower_bound(sorted.begin(), sorted.end(), q);
    if (first_q == sorted.begin()) continue;  // nothing below: no edge
    const double edge = *(first_q - 1) + (q - *(first_q - 1)) / 2;
    if (r.edges.empty() || edge > r.edges.back()) r.edges.push_back(edge);
  }
  std::vector<int64_t> counts(r.edges.size() + 1, 0);
  for (double s : sorted) ++counts[r.bin_of(s)];
  for (int64_t c : counts) r.fractions.push_back(static_cast<double>(c) / static_cast<double>(sorted.size()));
  return r;
}

double population_stability_index(const ScoreReference& reference, const std::vector<int64_t>& counts) {
  int64_t total = 0;
  for (int64_t c : counts) total += c;
  if (total == 0 || counts.size() != reference.fractions.size()) return 0;
  double psi = 0;
  for (size_t i = 0; i < counts.size(); ++i) {
    const double actual = std::max(kMinShare, static_cast<double>(counts[i]) / static_cast<double>(total));
    const double expected = std::max(kMinShare, reference.fractions[i]);
    psi += (actual - expected) * std::log(actual / expected);
  }
  return psi;
}

std::string describe_shift(const ScoreReference& reference, const std::vector<int64_t>& counts) {
  int64_t total = 0;
  for (int64_t c : counts) total += c;
  if (total == 0 || counts.size() != reference.fractions.size()) return "";
  size_t worst = 0;
  double worst_delta = -1;
  for (size_t i = 0; i < counts.size(); ++i) {
    const double delta = std::fabs(static_cast<double>(counts[i]) / static_cast<double>(total) - reference.fractions[i]);
    if (delta > worst_delta) {
      worst_delta = delta;
      worst = i;
    }
  }
  char range[96];
  if (reference.edges.empty()) std::snprintf(range, sizeof range, "all scores");
  else if (worst == 0) std::snprintf(range, sizeof range, "scores below %.4g", reference.edges[0]);
  else if (worst == reference.edges.size()) std::snprintf(range, sizeof range, "scores from %.4g up", reference.edges.back());
  else std::snprintf(range, sizeof range, "scores in [%.4g, %.4g)", reference.edges[worst - 1], reference.edges[worst]);
  char line[192];
  std::snprintf(line, sizeof line, "%.1f%% of %s vs %.1f%% on dev",
                100.0 * static_cast<double>(counts[worst]) / static_cast<double>(total), range,
                100.0 * reference.fractions[worst]);
  return line;
}

}  // namespace dqe
