// Bottleneck adapters: where they sit, their parameter counts, step 0 equal to the base, the
// size's bounds and dqe's adapter_config.json.
#include "model/peft/bottleneck.h"

#include <gtest/gtest.h>

#include "bert_util.h"
#include "dqe/errors.h"
#include "model/peft/adapter.h"
#include "model/peft/lora.h"
#include "model/sequence_model.h"
#include "model/weights.h"

namespace dqe {
namespace {

BertConfig tiny_config() { return test::tiny_bert_config(50, 32, 2, 4, 64, 16); }

torch::Tensor logits_of(SequenceModel& model) {
  torch::manual_seed(3);
  const auto ids = torch::randint(1, 50, {3, 10}, torch::kLong);
  const auto type_ids = torch::zeros({3, 10}, torch::kLong);
  auto mask = torch::ones({3, 10}, torch::kLong);
  mask[2].slice(0, 6).zero_();
  torch::NoGradGuard no_grad;
  model->eval();
  return model->forward(ids, type_ids, mask);
}

TEST(Bottleneck, ParameterCountsFollowFromSizeLayersAndHidden) {
  const BertConfig c = tiny_config();
  const int64_t head = 32 * 3 + 3;
  for (int64_t size : {1, 8, 32}) {
    SequenceModel model(c, 3);
    BottleneckSpec spec;
    spec.size = size;
    add_adapter(model, c, spec);
    init_weights(model, c);
    set_trainable(model, {Role::kEmbeddings, Role::kEncoder, Role::kPooler}, false);
    // Two adapters a layer, each down [size, 32] + its bias and up [32, size] + its bias.
    const int64_t want = 2 * 2 * (32 * size + size + size * 32 + 32);
    int64_t adapters = 0, trainable = 0;
    for (const auto& p : model->role_parameters()) {
      if (p.role == Role::kAdapter) adapters += p.tensor.numel();
      if (p.tensor.requires_grad()) trainable += p.tensor.numel();
    }
    EXPECT_EQ(adapters, want) << "size " << size;
    EXPECT_EQ(bottleneck_parameter_count(c, size), want) << "size " << size;
    EXPECT_EQ(trainable, want + head) << "size " << size;
    int64_t saved = 0;
    for (const auto& [name, t] : adapter_tensors(*model)) saved += t.numel();
    EXPECT_EQ(saved, want + head);
    // Nothing of the adapters goes into a plain checkpoint's model.safetensors.
    for (const auto& [name, t] : checkpoint_weights(model, false))
      EXPECT_EQ(name.find(".adapter."), std::string::npos) << name;
  }
}

TEST(Bottleneck, NamesShapesAndInitialisation) {
  const BertConfig c = tiny_config();
  SequenceModel model(c, 1);
  BottleneckSpec spec;
  spec.size = 8;
  add_adapter(model, c, spec);
  init_weights(model, c);
  std::map<std::string, torch::Tensor> by_name;
  for (const auto& p : model->role_parameters())
    if (p.role == Role::kAdapter) by_name[p.name] = p.tensor;
  ASSERT_EQ(by_name.size(), 2u * 2 * 4);
  for (const char* site : {"attention.output", "output"}) {
    for (int layer = 0; layer < 2; ++layer) {
      const std::string at = "bert.encoder.layer." + std::to_string(layer) + "." + site + ".adapter.";
      ASSERT_EQ(by_name.count(at + "down.weight"), 1u) << at;
      EXPECT_EQ(by_name[at + "down.weight"].sizes(), torch::IntArrayRef({8, 32}));
      EXPECT_EQ(by_name[at + "down.bias"].sizes(), torch::IntArrayRef({8}));
      EXPECT_EQ(by_name[at + "up.weight"].sizes(), torch::IntArrayRef({32, 8}));
      EXPECT_EQ(by_name[at + "up.bias"].sizes(), torch::IntArrayRef({32}));
      EXPECT_EQ(by_name[at + "up.weight"].abs().max().item<double>(), 0.0);
      EXPECT_EQ(by_name[at + "up.bias"].abs().max().item<double>(), 0.0);
      // down as torch.nn.Linear's default: uniform in +-1/sqrt(fan_in), not BERT's N(0, 0.02).
      const double bound = 1.0 / std::sqrt(32.0);
      EXPECT_LE(by_name[at + "down.weight"].abs().max().item<double>(), bound);
      EXPECT_GT(by_name[at + "down.weight"].abs().max().item<double>(), 0.5 * bound);
    }
  }
  EXPECT_EQ(bottleneck_adapters(*model)->adapters.front().first, "bert.encoder.layer.0.attention.output.adapter");
  EXPECT_EQ(bottleneck_adapters(*model)->adapters.back().first, "bert.encoder.layer.1.output.adapter");
}

// Up at zero: the adapted model computes exactly what its base does; once up moves, it does not.
TEST(Bottleneck, StepZeroIsTheBaseAndTheAdaptersAreInThePath) {
  const BertConfig c = tiny_config();
  torch::manual_seed(1);
  SequenceModel base(c, 2);
  init_weights(base, c);
  SequenceModel adapted(c, 2);
  BottleneckSpec spec;
  spec.size = 4;
  add_adapter(adapted, c, spec);
  init_weights(adapted, c);
  const auto weights = checkpoint_weights(base, false);
  load_weights(adapted, {weights.begin(), weights.end()}, "base", false);
  const torch::Tensor want = logits_of(base);
  EXPECT_TRUE(torch::equal(logits_of(adapted), want));

  for (auto& [name, adapter] : bottleneck_adapters(*adapted)->adapters) {
    torch::NoGradGuard no_grad;
    adapter->up->weight.normal_(0.0, 0.1);
    // Each adapter alone changes the logits.
    EXPECT_FALSE(torch::allclose(logits_of(adapted), want, 1e-6, 1e-6)) << name;
    adapter->up->weight.zero_();
  }

  // At step 0 the gradient reaches up (down's output feeds it) but not down (up is zero).
  adapted->train();
  set_trainable(adapted, {Role::kEmbeddings, Role::kEncoder, Role::kPooler}, false);
  const auto ids = torch::randint(1, 50, {2, 6}, torch::kLong);
  adapted->forward(ids, torch::zeros_like(ids), torch::ones_like(ids)).sum().backward();
  for (auto& [name, adapter] : bottleneck_adapters(*adapted)->adapters) {
    ASSERT_TRUE(adapter->up->weight.grad().defined()) << name;
    EXPECT_GT(adapter->up->weight.grad().abs().max().item<double>(), 0.0) << name;
    EXPECT_EQ(adapter->down->weight.grad().abs().max().item<double>(), 0.0) << name;
  }
  for (const auto& p : adapted->role_parameters())
    if (p.role == Role::kEncoder) EXPECT_FALSE(p.tensor.grad().defined()) << p.name;
}

TEST(Bottleneck, SizeIsBoundedByTheHiddenSize) {
  auto message = [](int64_t size, int64_t hidden) {
    try {
      check_adapter_size(size, hidden);
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("(accepted)");
  };
  EXPECT_EQ(message(0, 32), "--adapter-size must be between 1 and the base's hidden size 32, got 0");
  EXPECT_EQ(message(33, 32), "--adapter-size must be between 1 and the base's hidden size 32, got 33");
  EXPECT_EQ(message(32, 32), "(accepted)");
  EXPECT_EQ(message(1, 32), "(accepted)");
  const BertConfig c = tiny_config();
  SequenceModel model(c, 1);
  BottleneckSpec spec;
  spec.size = 64;
  EXPECT_THROW(add_adapter(model, c, spec), ConfigError);
}

TEST(Bottleneck, AdapterConfigRoundTripsAndRefusesOtherTypes) {
  BottleneckSpec spec;
  spec.size = 16;
  spec.base.path = "runs/base";
  const nlohmann::json j = spec.adapter_config({"classifier", "lexical"}, BertConfig{});
  EXPECT_EQ(j["peft_type"], "BOTTLENECK");
  EXPECT_EQ(j["task_type"], "SEQ_CLS");
  EXPECT_EQ(j["adapter_size"], 16);
  EXPECT_EQ(j["non_linearity"], "gelu");
  EXPECT_EQ(j["modules_to_save"], nlohmann::json({"classifier", "lexical"}));
  const BottleneckSpec back = bottleneck_spec_from_adapter_config(j, "a.json");
  EXPECT_EQ(back.size, 16);
  EXPECT_EQ(back.base.path, "runs/base");

  nlohmann::json lora = j;
  lora["peft_type"] = "LORA";
  EXPECT_THROW(bottleneck_spec_from_adapter_config(lora, "a.json"), ModelError);
  nlohmann::json no_size = j;
  no_size.erase("adapter_size");
  try {
    bottleneck_spec_from_adapter_config(no_size, "a.json");
    FAIL() << "an adapter without adapter_size was read";
  } catch (const ModelError& e) {
    EXPECT_EQ(std::string(e.what()), "a.json: adapter_size must be an integer >= 1");
  }
  nlohmann::json bad_size = j;
  bad_size["adapter_size"] = 0;
  EXPECT_THROW(bottleneck_spec_from_adapter_config(bad_size, "a.json"), ModelError);
}

}  // namespace
}  // namespace dqe
