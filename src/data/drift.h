// Score drift monitoring: the distribution of dev scores is saved with the best model at
// training time, and `dqe score` compares the scores it writes with it through the
// population stability index (PSI).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace dqe {

struct ScoreReference {
  // Inner bin edges (bins - 1 quantiles of the dev scores); bin i holds scores in
  // [edges[i-1], edges[i]), the first and last bins are open-ended.
  std::vector<double> edges;
  std::vector<double> fractions;  // share of dev scores per bin, sums to 1

  size_t bin_of(double score) const;
  nlohmann::json to_json() const;
  // Throws ModelError naming origin when malformed.
  static ScoreReference from_json(const nlohmann::json& j, const std::string& origin);
};

// Quantile bins of the scores (ties merged, so there may be fewer than `bins`). Each edge lies
// halfway between a quantile and the next lower score, so rounding never moves a score that
// ties a dev score into another bin.
ScoreReference make_score_reference(const std::vector<double>& scores, int bins = 10);

// PSI = sum over bins of (actual - expected) * ln(actual / expected), with shares floored
// at 1e-4 so that an empty bin counts as very unlikely rather than infinite.
double population_stability_index(const ScoreReference& reference, const std::vector<int64_t>& counts);

// The bin whose share moved most, in words: "31.0% of scores in [1.80, 2.10) vs 10.0% on dev".
std::string describe_shift(const ScoreReference& reference, const std::vector<int64_t>& counts);

}  // namespace dqe
