#include "train/adversarial_step.h"

#include <chrono>
#include <utility>
#include <vector>

#include "base/format.h"
#include "base/log.h"
#include "dqe/errors.h"

namespace dqe::training {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// The L2 norm of each example's slice, shaped [n, 1, ...] to broadcast against it.
torch::Tensor example_norms(const torch::Tensor& t) {
  std::vector<int64_t> shape(static_cast<size_t>(t.dim()), 1);
  shape[0] = t.size(0);
  return t.flatten(1).norm(2, 1).view(shape);
}

}  // namespace

torch::Tensor normalized_step(const torch::Tensor& gradient, const torch::Tensor& size) {
  const torch::Tensor g = gradient.to(torch::kFloat32);
  const torch::Tensor norm = example_norms(g);
  // A zero gradient (nothing to climb) gives no step rather than NaN.
  return torch::where(norm > 0, g * (size / norm.clamp_min(1e-30)), torch::zeros_like(g));
}

torch::Tensor normalized_step(const torch::Tensor& gradient, double size) {
  return normalized_step(gradient, torch::scalar_tensor(size, torch::kFloat32));
}

torch::Tensor project_to_ball(const torch::Tensor& delta, const torch::Tensor& eps) {
  const torch::Tensor norm = example_norms(delta);
  return torch::where(norm > eps, delta * (eps / norm.clamp_min(1e-30)), delta);
}

torch::Tensor project_to_ball(const torch::Tensor& delta, double eps) {
  return project_to_ball(delta, torch::scalar_tensor(eps, torch::kFloat32));
}

std::string eps_warning(const AdversarialOptions& options, double mean_norm) {
  if (options.relative || !(mean_norm > 0) || options.eps <= kLargeEpsShare * mean_norm) return "";
  const double suggested = kSuggestedEpsShare * mean_norm;
  return "--adv-eps " + format_significant(options.eps, 4) + " is " + format_fixed(100.0 * options.eps / mean_norm, 0) +
         "% of an example's word-embedding norm here (" + format_significant(mean_norm, 4) +
         " on the first batch): a perturbation that large can take the model to the constant predictor; try --adv-eps " +
         format_significant(suggested, 2) + " (" + format_fixed(100.0 * kSuggestedEpsShare, 0) +
         "% of it), or --adv-relative --adv-eps " + format_significant(kSuggestedEpsShare, 2) +
         " to size every example's perturbation to its own norm";
}

AdversarialStep::AdversarialStep(AdversarialOptions options) : options_(std::move(options)) {
  if (options_.method != "fgm" && options_.method != "pgd")
    throw ConfigError("--adv must be fgm or pgd, got \"" + options_.method + "\"");
}

MicroLoss AdversarialStep::run(Objective& objective, PreparedBatch& batch, double scale) {
  if (!objective.has_embedding_seam())
    throw ConfigError("--adv: this objective has no word embeddings to perturb");
  const auto t0 = Clock::now();
  // Clean pass: a zero perturbation as a leaf, so that its gradient is the loss's gradient
  // with respect to the word embeddings, whether or not the embeddings themselves train.
  torch::Tensor probe, norms;
  MicroLoss clean = objective.forward_embeds(batch, [&](const torch::Tensor& embeds) {
    probe = torch::zeros(embeds.sizes(), embeds.options().dtype(torch::kFloat32)).requires_grad_(true);
    norms = example_norms(embeds.detach().to(torch::kFloat32));
    return embeds + probe.to(embeds.scalar_type());
  });
  (clean.loss / scale).backward();
  torch::Tensor gradient = probe.grad();
  clean_seconds_ += seconds_since(t0);
  if (!checked_scale_) {
    checked_scale_ = true;
    if (const std::string why = eps_warning(options_, norms.mean().item<double>()); !why.empty())
      detail::logger("train")->warn(why);
  }

  const auto t1 = Clock::now();
  // The radius and the step: as given, or as shares of each example's own norm.
  const torch::Tensor one = torch::scalar_tensor(1.0, torch::kFloat32);
  const torch::Tensor eps = (options_.relative ? norms : one) * options_.eps;
  const torch::Tensor alpha = (options_.relative ? norms : one) * options_.alpha;
  torch::Tensor delta;
  if (options_.method == "fgm") {
    delta = normalized_step(gradient, eps);
  } else {
    delta = project_to_ball(normalized_step(gradient, alpha), eps);
    // The intermediate steps climb with gradients of the perturbation alone: the parameters'
    // gradients are taken from the last perturbed pass only.
    for (int64_t k = 1; k < options_.steps; ++k) {
      torch::Tensor leaf = delta.detach().requires_grad_(true);
      MicroLoss step = objective.forward_embeds(
          batch, [&](const torch::Tensor& embeds) { return embeds + leaf.to(embeds.scalar_type()); });
      const torch::Tensor g = torch::autograd::grad({step.loss}, {leaf})[0];
      delta = project_to_ball(delta + normalized_step(g, alpha), eps);
    }
  }
  delta = delta.detach();
  MicroLoss adversarial = objective.forward_embeds(
      batch, [&](const torch::Tensor& embeds) { return embeds + delta.to(embeds.scalar_type()); });
  (adversarial.loss / scale).backward();
  adversarial_seconds_ += seconds_since(t1);

  clean.sums.emplace_back("adv_loss", adversarial.loss.item<double>());
  return clean;
}

}  // namespace dqe::training
