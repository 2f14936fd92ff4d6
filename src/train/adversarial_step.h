// Adversarial training as a step strategy of the engine: the word embeddings of a micro-batch
// are perturbed in the direction that raises its loss, and the loss on the perturbed input is
// learned from beside the clean one (the gradients of both are summed).
//   FGM (Miyato et al., 2017): one step r = eps * g / ||g||, g the loss's gradient with
//   respect to the word embeddings, the norm taken per example over its [time, hidden].
//   PGD (Madry et al., 2018): K steps of alpha * g / ||g||, each projected back onto the
//   eps ball around the clean embeddings; the last one is learned from.
// The objective provides the seam between embeddings and encoder (Objective::forward_embeds).
#pragma once

#include <cstdint>
#include <string>

#include <torch/torch.h>

#include "dqe/engine.h"

namespace dqe::training {

struct AdversarialOptions {
  std::string method = "fgm";  // "fgm" or "pgd"
  double eps = 1.0;            // L2 radius of a perturbation, per example
  int64_t steps = 3;           // PGD's steps
  double alpha = 0.3;          // PGD's step size
  // eps and alpha as shares of each example's word-embedding L2 norm (over its [time, hidden]).
  bool relative = false;
};

// g / ||g|| per example (the first dimension), scaled by `size` (a number, or one per example
// shaped [n, 1, ...]); zero where g is zero.
torch::Tensor normalized_step(const torch::Tensor& gradient, double size);
torch::Tensor normalized_step(const torch::Tensor& gradient, const torch::Tensor& size);
// delta projected onto the L2 ball of radius eps, per example (eps as size above).
torch::Tensor project_to_ball(const torch::Tensor& delta, double eps);
torch::Tensor project_to_ball(const torch::Tensor& delta, const torch::Tensor& eps);

// An absolute radius above this share of the mean example's word-embedding norm is warned of.
// By an estimate from the embeddings' scale (not a measurement), the default 1.0 is about 18%
// of a pretrained BERT's (about 1 a token, some 30 tokens) and over half of a small model's at
// initialisation (std 0.02: about 0.3 a token), where the issue saw it reach the constant
// predictor.
constexpr double kLargeEpsShare = 0.3;
constexpr double kSuggestedEpsShare = 0.1;
// The warning for an absolute eps large against the mean norm measured; "" when it is not.
std::string eps_warning(const AdversarialOptions& options, double mean_norm);

class AdversarialStep : public StepStrategy {
 public:
  explicit AdversarialStep(AdversarialOptions options);
  // The clean pass's loss; its sums add "adv_loss", the perturbed pass's loss.
  MicroLoss run(Objective& objective, PreparedBatch& batch, double scale) override;

  // Wall time spent in clean passes and in adversarial ones (the strategy's cost).
  double clean_seconds() const { return clean_seconds_; }
  double adversarial_seconds() const { return adversarial_seconds_; }

 private:
  AdversarialOptions options_;
  bool checked_scale_ = false;  // eps against the first batch's norms, warned of once
  double clean_seconds_ = 0;
  double adversarial_seconds_ = 0;
};

}  // namespace dqe::training
