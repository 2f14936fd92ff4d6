// Adversarial step strategies (FGM, PGD) on a tiny real model, against independent oracles:
// hand-derived numbers, random perturbations of the same size, and gradients recomputed here.
#include "train/adversarial_step.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "dqe/errors.h"
#include "model/sequence_model.h"
#include "model/weights.h"

namespace dqe::training {
namespace {

struct TinyBatch : PreparedBatch {
  torch::Tensor ids, types, mask, target;
};

// Regression on a tiny BERT: the loss is the MSE of the logit against a target.
class TinyObjective : public Objective {
 public:
  TinyObjective() {
    config_.vocab_size = 40;
    config_.hidden_size = 16;
    config_.num_hidden_layers = 1;
    config_.num_attention_heads = 2;
    config_.intermediate_size = 32;
    config_.max_position_embeddings = 16;
    torch::manual_seed(3);
    model = SequenceModel(config_, 1);
    init_weights(model, config_);
    set_dropout(model, config_, 0.0);  // the passes see the same network
  }
  torch::Tensor loss_of(const TinyBatch& b, const torch::Tensor& embeds) {
    return torch::mse_loss(model->run_embeds(embeds, b.types, b.mask).logits.squeeze(1), b.target);
  }

  std::vector<RoleParameter> trainable_parameters() override { return model->role_parameters(); }
  int64_t steps_per_epoch(int64_t) const override { return 1; }
  ChunkPlan plan_chunk(int64_t, int64_t, uint64_t) override { return {}; }
  std::unique_ptr<PreparedBatch> prepare(int64_t, uint64_t) override { return nullptr; }
  MicroLoss forward(PreparedBatch& batch) override { return forward_embeds(batch, nullptr); }
  bool has_embedding_seam() const override { return true; }
  MicroLoss forward_embeds(PreparedBatch& batch, const EmbeddingHook& hook) override {
    auto& b = static_cast<TinyBatch&>(batch);
    torch::Tensor embeds = model->bert->embed(b.ids);
    if (hook) embeds = hook(embeds);
    return {loss_of(b, embeds), {}};
  }
  Evaluation evaluate() override { return {}; }
  void write_checkpoint_files(const std::string&, bool) override {}
  void set_training(bool) override {}
  std::string empty_epoch_message() const override { return ""; }
  std::string data_fingerprint() const override { return ""; }

  SequenceModel model{nullptr};

 private:
  BertConfig config_;
};

TinyBatch make_batch() {
  torch::manual_seed(11);
  TinyBatch b;
  b.ids = torch::randint(5, 40, {4, 7}, torch::kInt64);
  b.types = torch::zeros({4, 7}, torch::kInt64);
  b.mask = torch::ones({4, 7}, torch::kInt64);
  b.mask.index_put_({3, torch::indexing::Slice(5, 7)}, 0);  // a padded example
  b.target = torch::tensor({2.0f, -1.5f, 0.5f, 3.0f});
  return b;
}

double loss_at(TinyObjective& o, const TinyBatch& b, const torch::Tensor& delta) {
  torch::NoGradGuard no_grad;
  return o.loss_of(b, o.model->bert->embed(b.ids) + delta).item<double>();
}

std::vector<torch::Tensor> gradients(TinyObjective& o) {
  std::vector<torch::Tensor> out;
  for (auto& p : o.model->parameters()) out.push_back(p.grad().defined() ? p.grad().clone() : torch::zeros_like(p));
  return out;
}

TEST(AdversarialTest, NormalizedStepAndProjectionByHand) {
  const torch::Tensor g = torch::tensor({3.0f, 4.0f, 0.0f, 0.0f}).view({2, 2});
  const torch::Tensor step = normalized_step(g, 2.0);
  EXPECT_FLOAT_EQ(step[0][0].item<float>(), 1.2f);  // 2 * 3 / 5
  EXPECT_FLOAT_EQ(step[0][1].item<float>(), 1.6f);
  EXPECT_FLOAT_EQ(step[1][0].item<float>(), 0.0f);  // a zero gradient gives no step, not NaN
  EXPECT_FLOAT_EQ(step[1][1].item<float>(), 0.0f);
  const torch::Tensor d = torch::tensor({6.0f, 8.0f, 0.3f, 0.4f}).view({2, 2});
  const torch::Tensor p = project_to_ball(d, 5.0);
  EXPECT_FLOAT_EQ(p[0][0].item<float>(), 3.0f);  // norm 10 -> 5
  EXPECT_FLOAT_EQ(p[0][1].item<float>(), 4.0f);
  EXPECT_FLOAT_EQ(p[1][0].item<float>(), 0.3f);  // inside the ball: unchanged
  EXPECT_FLOAT_EQ(p[1][1].item<float>(), 0.4f);
}

// FGM's perturbation raises the loss, more than any of 50 random perturbations of the same
// per-example size: its direction is the gradient's.
TEST(AdversarialTest, FgmPerturbedLossExceedsCleanAndRandomDirections) {
  TinyObjective o;
  TinyBatch b = make_batch();
  const double eps = 0.05;  // small beside the embeddings: the loss is near its linear part
  AdversarialStep fgm({"fgm", eps, 1, 0.1});
  MicroLoss out = fgm.run(o, b, 1.0);
  ASSERT_EQ(out.sums.size(), 1u);
  EXPECT_EQ(out.sums[0].first, "adv_loss");
  const double clean = out.loss.item<double>();
  const double adversarial = out.sums[0].second;
  EXPECT_NEAR(clean, loss_at(o, b, torch::zeros({4, 7, 16})), 1e-6);
  EXPECT_GT(adversarial, clean);
  torch::manual_seed(99);
  for (int k = 0; k < 50; ++k) {
    torch::Tensor r = torch::randn({4, 7, 16});
    r = r / r.flatten(1).norm(2, 1).view({4, 1, 1}) * eps;
    EXPECT_LT(loss_at(o, b, r), adversarial) << "random direction " << k;
  }
  EXPECT_GT(fgm.clean_seconds(), 0);
  EXPECT_GT(fgm.adversarial_seconds(), 0);
}

// The accumulated gradients are those of the clean loss plus those of the loss at
// r = eps g / ||g||, both recomputed here with autograd.
TEST(AdversarialTest, FgmAccumulatesCleanPlusPerturbedGradients) {
  TinyObjective o;
  TinyBatch b = make_batch();
  const double eps = 0.7, scale = 2.0;
  torch::Tensor e = o.model->bert->embed(b.ids).detach().requires_grad_(true);
  const torch::Tensor g = torch::autograd::grad({o.loss_of(b, e)}, {e})[0];
  torch::Tensor r = torch::empty_like(g);
  for (int64_t i = 0; i < g.size(0); ++i) r[i] = g[i] * (eps / g[i].norm().item<double>());
  o.model->zero_grad();
  (o.loss_of(b, o.model->bert->embed(b.ids)) / scale).backward();
  (o.loss_of(b, o.model->bert->embed(b.ids) + r) / scale).backward();
  const std::vector<torch::Tensor> want = gradients(o);

  o.model->zero_grad();
  AdversarialStep fgm({"fgm", eps, 1, 0.1});
  fgm.run(o, b, scale);
  const std::vector<torch::Tensor> got = gradients(o);
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_TRUE(torch::allclose(got[i], want[i], 1e-4, 1e-6)) << "parameter " << i;
}

// --adv-relative: each example's radius is R times its own word-embedding norm, so the
// gradients are those of the clean loss plus those at r_i = R ||e_i|| g_i / ||g_i||, recomputed
// here; examples of different norms get perturbations of different sizes.
TEST(AdversarialTest, RelativeFgmSizesEachExampleToItsNorm) {
  TinyObjective o;
  TinyBatch b = make_batch();
  const double share = 0.1, scale = 1.0;
  torch::Tensor e = o.model->bert->embed(b.ids).detach().requires_grad_(true);
  const torch::Tensor g = torch::autograd::grad({o.loss_of(b, e)}, {e})[0];
  torch::Tensor r = torch::empty_like(g);
  std::vector<double> radii;
  for (int64_t i = 0; i < g.size(0); ++i) {
    radii.push_back(share * e[i].detach().norm().item<double>());
    r[i] = g[i] * (radii.back() / g[i].norm().item<double>());
  }
  EXPECT_GT(*std::max_element(radii.begin(), radii.end()) - *std::min_element(radii.begin(), radii.end()), 1e-3);
  o.model->zero_grad();
  (o.loss_of(b, o.model->bert->embed(b.ids)) / scale).backward();
  (o.loss_of(b, o.model->bert->embed(b.ids) + r) / scale).backward();
  const std::vector<torch::Tensor> want = gradients(o);

  o.model->zero_grad();
  AdversarialOptions options{"fgm", share, 1, 0.1};
  options.relative = true;
  AdversarialStep fgm(options);
  fgm.run(o, b, scale);
  const std::vector<torch::Tensor> got = gradients(o);
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_TRUE(torch::allclose(got[i], want[i], 1e-4, 1e-6)) << "parameter " << i;
}

// An absolute eps large against the embeddings is warned of with a size that suits them; the
// default against a pretrained BERT's norm (about 5.5 for 30 tokens) and a relative eps are not.
TEST(AdversarialTest, WarnsOfAnEpsLargeAgainstTheEmbeddings) {
  const AdversarialOptions fgm{"fgm", 1.0, 1, 0.3};
  const std::string why = eps_warning(fgm, 1.85);
  EXPECT_NE(why.find("--adv-eps 1 is 54% of an example's word-embedding norm here (1.85"), std::string::npos) << why;
  EXPECT_NE(why.find("try --adv-eps 0.19 (10% of it), or --adv-relative --adv-eps 0.1"), std::string::npos) << why;
  EXPECT_EQ(eps_warning(fgm, 5.5), "");
  AdversarialOptions relative = fgm;
  relative.relative = true;
  EXPECT_EQ(eps_warning(relative, 1.85), "");
  EXPECT_EQ(eps_warning(fgm, 0.0), "");
}

// PGD with one step of size eps is FGM; with several steps it still raises the loss.
TEST(AdversarialTest, PgdOneFullStepIsFgmAndMoreStepsClimb) {
  TinyObjective o;
  TinyBatch b = make_batch();
  AdversarialStep fgm({"fgm", 0.4, 1, 0.1});
  fgm.run(o, b, 1.0);
  const std::vector<torch::Tensor> fgm_grads = gradients(o);
  o.model->zero_grad();
  AdversarialStep pgd1({"pgd", 0.4, 1, 0.4});
  pgd1.run(o, b, 1.0);
  const std::vector<torch::Tensor> pgd_grads = gradients(o);
  for (size_t i = 0; i < fgm_grads.size(); ++i) EXPECT_TRUE(torch::allclose(fgm_grads[i], pgd_grads[i], 1e-5, 1e-7));

  o.model->zero_grad();
  AdversarialStep pgd({"pgd", 0.4, 4, 0.15});
  MicroLoss out = pgd.run(o, b, 1.0);
  EXPECT_GT(out.sums[0].second, out.loss.item<double>());
}

TEST(AdversarialTest, RefusesAnUnknownMethod) {
  EXPECT_THROW(AdversarialStep({"freelb", 1, 1, 1}), ConfigError);
}

}  // namespace
}  // namespace dqe::training
