// Listwise and pairwise losses over the results of one query (--rank-loss), and the batches of
// whole query groups they need. The losses compare a batch's scores within each group:
//   listnet     ListNet (Cao et al., 2007): cross-entropy between the softmax of the gains and
//               the softmax of the scores (top-one probabilities).
//   ranknet     RankNet (Burges et al., 2005): the logistic loss log(1 + exp(-(s_i - s_j))) of
//               every pair with gain_i > gain_j, a mean over the group's pairs.
//   lambdaloss  LambdaLoss's NDCG-Loss2 (Wang et al., 2018): the pairs' logistic losses in bits,
//               each weighted by |G_i - G_j| * |1/D(|r_i - r_j|) - 1/D(|r_i - r_j| + 1)|, with
//               G = (2^gain - 1) / ideal DCG, D(k) = log2(1 + k) and r the ranks the scores
//               give now; summed over the group's pairs.
// Each is a mean over the batch's groups that order at least one pair (a group whose results
// are all judged alike has nothing to rank).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <torch/torch.h>

namespace dqe::training {

enum class RankLoss { kNone, kListNet, kRankNet, kLambdaLoss };

// "none", "listnet", "ranknet", "lambdaloss" (the --rank-loss choices); throws ConfigError.
RankLoss parse_rank_loss(const std::string& name);

// The loss of scores [n] (differentiable) against gains [n] (>= 0), over groups given as
// [begin, end) row ranges. A zero that keeps the graph when no group orders a pair.
torch::Tensor rank_loss(RankLoss kind, const torch::Tensor& scores, const torch::Tensor& gains,
                        const std::vector<std::pair<int64_t, int64_t>>& groups);

// One epoch of batches of whole query groups: group_of_row[r] is row r's group; the groups
// are shuffled, a group of more than group_cap rows gives group_cap of them drawn at random
// (a different draw each epoch), and groups are packed in that order into batches of at most
// batch_size rows, a group's rows next to each other. Deterministic for the arguments.
// Requires 1 <= group_cap <= batch_size.
std::vector<std::vector<size_t>> plan_group_batches(const std::vector<int64_t>& group_of_row, int64_t batch_size,
                                                    int64_t group_cap, uint64_t seed);

// The [begin, end) ranges of equal neighbours in a batch's groups (plan_group_batches keeps a
// group's rows together).
std::vector<std::pair<int64_t, int64_t>> group_ranges(const std::vector<int64_t>& group_of_batch_row);

}  // namespace dqe::training
