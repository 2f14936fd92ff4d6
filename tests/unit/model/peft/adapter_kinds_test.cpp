// What every adapter kind must do, checked for each kind registered in adapter_kinds() (a new
// kind is tested by being registered), on the shared Hugging Face fixture as its base: a new
// adapter leaves the base's logits exactly as they were (or, a kind that says it cannot, changes
// them); its parameters are in the path; its
// files written and loaded again give the same logits; and merging gives them too, or is
// refused in one line saying why.
#include "model/peft/adapter.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "data/dataset.h"
#include "dqe/errors.h"
#include "model/model_dir.h"
#include "model/peft/bottleneck.h"
#include "model/peft/lora.h"
#include "model/sequence_model.h"
#include "test_util.h"

namespace dqe {
namespace fs = std::filesystem;
namespace {

// The fixture's pairs through the model in one batch.
torch::Tensor logits_of_cases(LoadedModel& m) {
  std::ifstream in(test::hf_fixture() + "/expected.json");
  const auto expected = nlohmann::json::parse(in);
  std::vector<Encoding> encodings;
  std::vector<size_t> rows;
  for (const auto& c : expected["cases"]) {
    rows.push_back(encodings.size());
    encodings.push_back(m.tokenizer->encode_pair(c["query"].get<std::string>(), c["title"].get<std::string>(), 32));
  }
  torch::InferenceMode guard;
  m.model->eval();
  const Batch b = collate(encodings, rows, m.tokenizer->pad_id());
  return m.model->forward(b.ids, b.type_ids, b.mask).clone();
}

TEST(AdapterKinds, EachStartsAsItsBaseAndKeepsItsUpdatesThroughItsFiles) {
  DQE_REQUIRE_SHARED_FIXTURES();
  LoadedModel base = load_model(test::hf_fixture());
  const torch::Tensor want = logits_of_cases(base);
  ASSERT_GE(adapter_kinds().size(), 4u);  // lora, adalora, adapter, prefix
  for (const AdapterKind& kind : adapter_kinds()) {
    SCOPED_TRACE("--peft " + kind.name);
    const std::unique_ptr<AdapterSpec> spec = kind.make();
    // LoRA's default names no module until its targets are resolved against a base (as
    // training does from --lora-targets): PEFT's default targets, query and value.
    if (auto* lora = dynamic_cast<LoraSpec*>(spec.get())) {
      lora->modules = lora_modules({"query", "value"}, base.spec.bert.num_hidden_layers);
      lora->target_modules = peft_target_modules({"query", "value"}, lora->modules);
    }
    // The default bottleneck (64) is wider than this base (hidden 32).
    if (auto* bottleneck = dynamic_cast<BottleneckSpec*>(spec.get())) bottleneck->size = 8;
    EXPECT_EQ(spec->kind(), kind.name);
    EXPECT_EQ(spec->peft_type(), kind.peft_type);
    EXPECT_EQ(adapter_kind_of_peft_type(kind.peft_type), &kind);

    LoadOptions lo;
    lo.adapter = AdapterSpecPtr(*spec);
    LoadedModel adapted = load_model(test::hf_fixture(), lo);
    ASSERT_TRUE(adapted.spec.adapter);
    // A new adapter leaves its base as it was, unless its kind says it cannot (a prefix's virtual
    // tokens take attention from the first step); then it is in the path from the start.
    if (spec->starts_as_base())
      EXPECT_TRUE(torch::equal(logits_of_cases(adapted), want)) << "a new adapter changed its base's logits";
    else
      EXPECT_FALSE(torch::allclose(logits_of_cases(adapted), want, 1e-4, 1e-4)) << "says it changes its base but does not";

    // Every parameter of the adapter moved: the logits move, and only the adapter's and the
    // heads' tensors were trainable.
    int64_t adapter_parameters = 0;
    {
      torch::NoGradGuard no_grad;
      torch::manual_seed(11);
      for (const auto& p : adapted.model->role_parameters()) {
        if (p.role != Role::kAdapter) continue;
        p.tensor.add_(torch::randn_like(p.tensor) * 0.2);
        adapter_parameters += p.tensor.numel();
      }
    }
    EXPECT_GT(adapter_parameters, 0);
    const torch::Tensor moved = logits_of_cases(adapted);
    EXPECT_FALSE(torch::allclose(moved, want, 1e-4, 1e-4)) << "the adapter's parameters are not in the path";

    test::TempDir dir;
    write_model_files(dir.path(""), adapted.spec, adapted.model, *adapted.featurizer);
    EXPECT_TRUE(fs::exists(dir.path(kAdapterConfigFile)));
    EXPECT_TRUE(fs::exists(dir.path(kAdapterWeightsFile)));
    EXPECT_FALSE(fs::exists(dir.path("model.safetensors"))) << "an adapter does not copy its base";
    LoadedModel again = load_model(dir.path(""));
    ASSERT_TRUE(again.spec.adapter);
    EXPECT_EQ(again.spec.adapter->kind(), kind.name);
    EXPECT_EQ(again.spec.adapter->describe(), adapted.spec.adapter->describe());
    EXPECT_TRUE(torch::allclose(logits_of_cases(again), moved, 0, 1e-6)) << "the files lost part of the adapter";

    LoadOptions merge;
    merge.merge_adapter = true;
    const std::string why = spec->why_not_mergeable();
    if (why.empty()) {
      LoadedModel merged = load_model(dir.path(""), merge);
      EXPECT_FALSE(merged.spec.adapter);
      EXPECT_TRUE(torch::allclose(logits_of_cases(merged), moved, 1e-5, 1e-4))  // float32 rounding of W + delta
          << "merging changed the logits by " << (logits_of_cases(merged) - moved).abs().max().item<double>() << " of "
          << moved.abs().max().item<double>();
    } else {
      try {
        load_model(dir.path(""), merge);
        ADD_FAILURE() << "merged an adapter that says it cannot be: " << why;
      } catch (const ModelError& e) {
        EXPECT_NE(std::string(e.what()).find(why), std::string::npos) << e.what();
        EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << "one line";
      }
    }
  }
}

}  // namespace
}  // namespace dqe
