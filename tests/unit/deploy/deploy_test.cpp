// deploy/deploy.h and model/quantize.h on hand-derived numbers.
#include <gtest/gtest.h>

#include "bert_util.h"
#include "deploy/deploy.h"
#include "deploy/quantize.h"
#include "dqe/errors.h"
#include "model/int8.h"
#include "model/prune.h"

namespace dqe {
namespace {

TEST(Quantize, RowsAreScaledByTheirLargestMagnitude) {
  const torch::Tensor w = torch::tensor({1.0f, -2.0f, 0.5f, 0.0f, 0.0f, 0.0f}).reshape({2, 3});
  auto [q, scale] = quantize_rows_int8(w);
  ASSERT_EQ(q.scalar_type(), torch::kInt8);
  EXPECT_FLOAT_EQ(scale[0].item<float>(), 2.0f / 127);
  EXPECT_FLOAT_EQ(scale[1].item<float>(), 1.0f);  // an all-zero row divides by nothing
  // 1 / (2/127) = 63.5 rounds away from zero; 0.5 / (2/127) = 31.75.
  EXPECT_EQ(q[0][0].item<int>(), 64);
  EXPECT_EQ(q[0][1].item<int>(), -127);
  EXPECT_EQ(q[0][2].item<int>(), 32);
  EXPECT_EQ(q[1].abs().sum().item<int>(), 0);
}

TEST(Quantize, Int8StoresTheEncoderAndDequantizesBack) {
  const torch::Tensor w = torch::randn({4, 8});
  const std::vector<std::pair<std::string, torch::Tensor>> weights = {
      {"bert.encoder.layer.0.attention.self.query.weight", w},
      {"bert.encoder.layer.0.attention.self.query.bias", torch::randn({4})},
      {"classifier.weight", torch::randn({1, 4})}};
  const auto stored = convert_weights(weights, WeightDtype::kInt8);
  ASSERT_EQ(stored.size(), 4u);  // the weight, its scales, the bias, the head
  std::map<std::string, torch::Tensor> file;
  for (const auto& [name, t] : stored) file.emplace(name, t.is_floating_point() ? t : t.to(torch::kInt64));
  EXPECT_EQ(file.at("bert.encoder.layer.0.attention.self.query.weight").scalar_type(), torch::kInt64);
  EXPECT_EQ(file.at("classifier.weight").scalar_type(), torch::kFloat32);
  const auto back = dequantize_weights(file, "test");
  EXPECT_EQ(back.size(), 3u);
  const torch::Tensor r = back.at("bert.encoder.layer.0.attention.self.query.weight");
  // Off by at most half a step of its row.
  const torch::Tensor step = w.abs().amax(1, true) / 127;
  EXPECT_TRUE(((r - w).abs() <= step / 2 + 1e-6).all().item<bool>());
  file.erase("bert.encoder.layer.0.attention.self.query.weight");
  EXPECT_THROW(dequantize_weights(file, "test"), ModelError);  // scales without their weight
}

TEST(Quantize, Bf16HalvesFloats) {
  const auto stored = convert_weights({{"classifier.bias", torch::ones({3})}}, WeightDtype::kBf16);
  EXPECT_EQ(stored.front().second.scalar_type(), torch::kBFloat16);
  EXPECT_THROW(parse_weight_dtype("fp8"), ConfigError);
}

TEST(Deploy, LayersToKeep) {
  EXPECT_EQ(layers_to_keep(4, 2, "bottom"), (std::vector<int64_t>{0, 1}));
  EXPECT_EQ(layers_to_keep(4, 2, "alternate"), (std::vector<int64_t>{1, 3}));
  EXPECT_EQ(layers_to_keep(12, 6, "alternate"), (std::vector<int64_t>{1, 3, 5, 7, 9, 11}));
  EXPECT_EQ(layers_to_keep(12, 4, "alternate"), (std::vector<int64_t>{2, 5, 8, 11}));
  EXPECT_EQ(layers_to_keep(3, 3, "alternate"), (std::vector<int64_t>{0, 1, 2}));
  EXPECT_THROW(layers_to_keep(4, 5, "bottom"), ConfigError);
  EXPECT_THROW(layers_to_keep(4, 0, "bottom"), ConfigError);
}

TEST(Deploy, KeepLayersRenumbers) {
  std::map<std::string, torch::Tensor> t = {{"bert.encoder.layer.0.output.dense.weight", torch::full({1}, 0.0)},
                                            {"bert.encoder.layer.1.output.dense.weight", torch::full({1}, 1.0)},
                                            {"bert.encoder.layer.2.output.dense.weight", torch::full({1}, 2.0)},
                                            {"bert.encoder.layer.10.output.dense.weight", torch::full({1}, 10.0)},
                                            {"classifier.bias", torch::full({1}, 7.0)}};
  BertConfig bert;
  keep_layers(bert, t, {2, 10});
  EXPECT_EQ(bert.num_hidden_layers, 2);
  ASSERT_EQ(t.size(), 3u);
  EXPECT_EQ(t.at("bert.encoder.layer.0.output.dense.weight").item<double>(), 2.0);
  EXPECT_EQ(t.at("bert.encoder.layer.1.output.dense.weight").item<double>(), 10.0);
  EXPECT_EQ(t.at("classifier.bias").item<double>(), 7.0);
}

}  // namespace
}  // namespace dqe

namespace dqe {
namespace {

// An encoder at BERT's initialisation (std 0.02), its Linears' weights rounded to int8 as an
// export stores them: on the int8 kernels its pooled vector stays within 2% of float32's
// (they also quantize each Linear's input), and a pass with gradients runs in float32.
TEST(Int8KernelsTest, EncoderLinearsRunNearFloat32AndTrainingStaysFloat) {
  if (select_int8_engine().empty()) GTEST_SKIP() << "this LibTorch has no quantized engine";
  const BertConfig c = test::tiny_bert_config(60, 64, 2, 2, 128, 32);
  torch::manual_seed(3);
  SequenceModel model(c, 1);
  init_weights(model, c);
  model->eval();
  std::map<std::string, torch::Tensor> int8;
  {
    torch::NoGradGuard no_grad;
    for (auto& slot : model->bert->linear_slots()) {
      auto [q, scales] = quantize_rows_int8(slot.linear->weight);
      slot.linear->weight.copy_(q.to(torch::kFloat32) * scales.unsqueeze(1));  // what loading dequantizes to
      int8[slot.name + ".weight"] = q;
      int8[slot.name + ".weight" + kScaleSuffix] = scales;
    }
  }
  const torch::Tensor ids = torch::randint(1, c.vocab_size, {4, 16});
  const torch::Tensor types = torch::zeros({4, 16}, torch::kLong), mask = torch::ones({4, 16}, torch::kLong);
  auto pooled = [&] {
    torch::InferenceMode guard;
    return model->bert->forward(ids, types, mask);
  };
  const torch::Tensor float32 = pooled();
  EXPECT_EQ(attach_int8_kernels(*model->bert, int8), 2 * 6 + 1);
  const torch::Tensor kernels = pooled();
  const double range = float32.abs().max().item<double>();
  const double error = (kernels - float32).abs().max().item<double>();
  EXPECT_GT(error, 0);  // another computation
  EXPECT_LT(error, 0.02 * range) << "range " << range;
  // Training (gradients on) ignores the twins: float32, bit for bit.
  const torch::Tensor trained = model->bert->forward(ids, types, mask);
  EXPECT_TRUE(torch::equal(trained.detach(), float32));
}

}  // namespace
}  // namespace dqe
