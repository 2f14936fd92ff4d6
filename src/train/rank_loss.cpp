#include "train/rank_loss.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <unordered_map>

#include "dqe/errors.h"

namespace dqe::training {

RankLoss parse_rank_loss(const std::string& name) {
  if (name == "none") return RankLoss::kNone;
  if (name == "listnet") return RankLoss::kListNet;
  if (name == "ranknet") return RankLoss::kRankNet;
  if (name == "lambdaloss") return RankLoss::kLambdaLoss;
  throw ConfigError("--rank-loss: \"" + name + "\" is not a ranking loss (choose none, listnet, ranknet or lambdaloss)");
}

namespace {

// Pairs (i, j) of a group, i more relevant than j: [pairs] index tensors, or undefined when none.
std::pair<torch::Tensor, torch::Tensor> ordered_pairs(const torch::Tensor& g) {
  const torch::Tensor more = g.unsqueeze(1) > g.unsqueeze(0);  // [n, n]: gain_i > gain_j
  const torch::Tensor idx = more.nonzero();
  if (idx.size(0) == 0) return {};
  return {idx.select(1, 0), idx.select(1, 1)};
}

torch::Tensor listnet(const torch::Tensor& s, const torch::Tensor& g) {
  return -(torch::softmax(g, 0) * torch::log_softmax(s, 0)).sum();
}

torch::Tensor ranknet(const torch::Tensor& s, const torch::Tensor& i, const torch::Tensor& j) {
  // log(1 + exp(-(s_i - s_j))) = softplus(s_j - s_i)
  return torch::softplus(s.index_select(0, j) - s.index_select(0, i)).mean();
}

torch::Tensor lambdaloss(const torch::Tensor& s, const torch::Tensor& g, const torch::Tensor& i,
                         const torch::Tensor& j) {
  const int64_t n = s.size(0);
  // Ranks (1-based) that the scores give now; ties keep the row order, as a stable sort does.
  const torch::Tensor order = std::get<1>(s.detach().sort(/*stable=*/true, /*dim=*/0, /*descending=*/true));
  torch::Tensor rank = torch::empty({n}, torch::kInt64);
  rank.index_put_({order.cpu()}, torch::arange(1, n + 1, torch::kInt64));
  rank = rank.to(s.device());
  const torch::Tensor exp_gain = torch::pow(2.0, g.to(torch::kFloat64)) - 1;
  const torch::Tensor ideal_gain = std::get<0>(exp_gain.sort(/*stable=*/true, /*dim=*/0, /*descending=*/true));
  const torch::Tensor ideal =
      (ideal_gain / torch::log2(torch::arange(2, n + 2, torch::TensorOptions(torch::kFloat64).device(s.device()))))
          .sum();
  const torch::Tensor big_g = exp_gain / ideal;
  const torch::Tensor k = (rank.index_select(0, i) - rank.index_select(0, j)).abs().to(torch::kFloat64);  // >= 1
  const torch::Tensor delta = (1 / torch::log2(1 + k) - 1 / torch::log2(2 + k)).abs();
  const torch::Tensor weight = (delta * (big_g.index_select(0, i) - big_g.index_select(0, j)).abs()).to(s.scalar_type());
  // -log2(sigmoid(s_i - s_j)) = softplus(s_j - s_i) / ln 2
  return (weight * torch::softplus(s.index_select(0, j) - s.index_select(0, i))).sum() / std::log(2.0);
}

}  // namespace

torch::Tensor rank_loss(RankLoss kind, const torch::Tensor& scores, const torch::Tensor& gains,
                        const std::vector<std::pair<int64_t, int64_t>>& groups) {
  torch::Tensor total = scores.sum() * 0;  // keeps the graph when nothing is ranked
  int64_t counted = 0;
  for (const auto& [begin, end] : groups) {
    if (end - begin < 2) continue;
    const torch::Tensor s = scores.slice(0, begin, end);
    const torch::Tensor g = gains.slice(0, begin, end).to(scores.scalar_type());
    const auto [i, j] = ordered_pairs(g);
    if (!i.defined()) continue;
    switch (kind) {
      case RankLoss::kListNet: total = total + listnet(s, g); break;
      case RankLoss::kRankNet: total = total + ranknet(s, i, j); break;
      case RankLoss::kLambdaLoss: total = total + lambdaloss(s, g, i, j); break;
      case RankLoss::kNone: return total;
    }
    ++counted;
  }
  return counted > 0 ? total / static_cast<double>(counted) : total;
}

std::vector<std::vector<size_t>> plan_group_batches(const std::vector<int64_t>& group_of_row, int64_t batch_size,
                                                    int64_t group_cap, uint64_t seed) {
  // Groups in the order of their first row, so that the plan depends on nothing but the arguments.
  std::vector<std::vector<size_t>> groups;
  std::unordered_map<int64_t, size_t> index;
  for (size_t r = 0; r < group_of_row.size(); ++r) {
    const auto [it, inserted] = index.try_emplace(group_of_row[r], groups.size());
    if (inserted) groups.emplace_back();
    groups[it->second].push_back(r);
  }
  std::mt19937_64 rng(seed);
  std::shuffle(groups.begin(), groups.end(), rng);
  const size_t cap = static_cast<size_t>(group_cap), bs = static_cast<size_t>(batch_size);
  std::vector<std::vector<size_t>> batches(1);
  for (auto& rows : groups) {
    if (rows.size() > cap) {
      std::shuffle(rows.begin(), rows.end(), rng);
      rows.resize(cap);
      std::sort(rows.begin(), rows.end());
    }
    if (batches.back().size() + rows.size() > bs) batches.emplace_back();
    batches.back().insert(batches.back().end(), rows.begin(), rows.end());
  }
  if (batches.back().empty()) batches.pop_back();
  return batches;
}

std::vector<std::pair<int64_t, int64_t>> group_ranges(const std::vector<int64_t>& group_of_batch_row) {
  std::vector<std::pair<int64_t, int64_t>> ranges;
  const int64_t n = static_cast<int64_t>(group_of_batch_row.size());
  for (int64_t begin = 0; begin < n;) {
    int64_t end = begin + 1;
    while (end < n && group_of_batch_row[static_cast<size_t>(end)] == group_of_batch_row[static_cast<size_t>(begin)]) ++end;
    ranges.emplace_back(begin, end);
    begin = end;
  }
  return ranges;
}

}  // namespace dqe::training
