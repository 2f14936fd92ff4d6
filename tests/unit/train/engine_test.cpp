// The engine's recipe (optimizer groups and learning-rate schedule, pinned: weight decay on
// every parameter, or a constant rate, must fail here) and its run directories.
#include "dqe/engine.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <set>

#include "bert_util.h"
#include "dqe/errors.h"
#include "model/sequence_model.h"
#include "model/weights.h"
#include "test_util.h"

namespace dqe {
namespace {

BertConfig tiny_config() { return test::tiny_bert_config(50, 16, 2, 2, 32, 32); }

TEST(AdamW, NoWeightDecayOnBiasesAndLayerNorm) {
  SequenceModel model(tiny_config(), 3, SideInputDims{{"lexical", 14}});
  std::vector<std::pair<std::string, torch::Tensor>> params;
  for (const auto& item : model->named_parameters()) params.emplace_back(item.key(), item.value());
  auto optimizer = training::make_adamw(model->role_parameters(), 1e-3, 0.01);
  ASSERT_EQ(optimizer->param_groups().size(), 2u);
  std::set<const void*> decayed, not_decayed;
  for (const auto& group : optimizer->param_groups()) {
    const auto& options = static_cast<const torch::optim::AdamWOptions&>(group.options());
    EXPECT_DOUBLE_EQ(options.lr(), 1e-3);
    for (const auto& p : group.params())
      (options.weight_decay() > 0 ? decayed : not_decayed).insert(p.unsafeGetTensorImpl());
    if (options.weight_decay() > 0) EXPECT_DOUBLE_EQ(options.weight_decay(), 0.01);
  }
  size_t biases = 0, norms = 0, matrices = 0;
  for (const auto& [name, p] : params) {
    const bool bias = name.size() > 5 && name.compare(name.size() - 5, 5, ".bias") == 0;
    const bool norm = name.find("LayerNorm") != std::string::npos;
    biases += bias;
    norms += norm && !bias;
    matrices += !bias && !norm;
    const bool want_decay = !bias && !norm;
    EXPECT_EQ(decayed.count(p.unsafeGetTensorImpl()), want_decay ? 1u : 0u) << name;
    EXPECT_EQ(not_decayed.count(p.unsafeGetTensorImpl()), want_decay ? 0u : 1u) << name;
  }
  // Every kind is present: embeddings and linear weights, LayerNorm weights, biases.
  EXPECT_GT(biases, 10u);
  EXPECT_GT(norms, 4u);
  EXPECT_GT(matrices, 10u);
}

// Linear warmup from 0 over `warmup` steps to the peak, then linear decay to 0 at `total`,
// values derived by hand: step s (0-based) of warmup W gets peak * (s + 1) / W.
TEST(LinearSchedule, WarmsUpThenDecaysToZero) {
  const double peak = 1e-3;
  EXPECT_DOUBLE_EQ(training::linear_schedule(peak, 0, 100, 10), 1e-4);
  EXPECT_DOUBLE_EQ(training::linear_schedule(peak, 4, 100, 10), 5e-4);
  EXPECT_DOUBLE_EQ(training::linear_schedule(peak, 9, 100, 10), 1e-3);
  EXPECT_DOUBLE_EQ(training::linear_schedule(peak, 10, 100, 10), 1e-3);  // (100 - 10) / 90
  EXPECT_DOUBLE_EQ(training::linear_schedule(peak, 55, 100, 10), 5e-4);  // (100 - 55) / 90
  EXPECT_DOUBLE_EQ(training::linear_schedule(peak, 99, 100, 10), peak / 90);
  EXPECT_DOUBLE_EQ(training::linear_schedule(peak, 100, 100, 10), 0);
  // No warmup: the peak at once.
  EXPECT_DOUBLE_EQ(training::linear_schedule(peak, 0, 10, 0), 1e-3);
  EXPECT_DOUBLE_EQ(training::linear_schedule(peak, 5, 10, 0), 5e-4);
}

namespace fs = std::filesystem;

// A run directory is dqe's own: a new run refuses a directory holding anything else (nothing
// of the user's is replaced), and a second process cannot take one in use.
TEST(RunDirectory, RefusesTheUsersDirectoriesAndOneInUse) {
  test::TempDir dir;
  { training::RunDirectory fresh(dir.path("new"), /*resume=*/false); }
  EXPECT_TRUE(fs::exists(dir.path("new/dqe_run.json")));
  { training::RunDirectory again(dir.path("new"), false); }  // no checkpoint yet: a new start

  fs::create_directories(dir.path("mine/last.tmp"));
  test::write_text(dir.path("mine/notes.txt"), "keep me");
  try {
    training::RunDirectory refused(dir.path("mine"), false);
    FAIL() << "a directory of the user's was taken as a run";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("is not empty and not a dqe run directory"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(fs::exists(dir.path("mine/last.tmp")));
  EXPECT_EQ(test::read_text(dir.path("mine/notes.txt")), "keep me");
  EXPECT_FALSE(fs::exists(dir.path("mine/dqe_run.json")));

  training::RunDirectory held(dir.path("busy"), false);
  try {
    training::RunDirectory second(dir.path("busy"), false);
    FAIL() << "two runs took one directory";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("is in use by another dqe run"), std::string::npos) << e.what();
  }
  EXPECT_THROW(training::RunDirectory(dir.path("new"), /*resume=*/true), ConfigError);  // nothing to resume
  // A kill while the first start wrote its marker leaves only dqe's temporary file: a new start
  // takes the directory and removes it (the run was refused for good).
  fs::create_directories(dir.path("killed"));
  test::write_text(dir.path("killed/.dqe_run.json.tmp-AbCdEfGhIj"), "{\"form");
  { training::RunDirectory again(dir.path("killed"), false); }
  EXPECT_EQ(std::distance(fs::directory_iterator(dir.path("killed")), fs::directory_iterator()), 1);
  EXPECT_TRUE(fs::exists(dir.path("killed/dqe_run.json")));
  test::write_text(dir.path("file"), "x");
  EXPECT_THROW(training::RunDirectory(dir.path("file"), false), ConfigError);
}

}  // namespace
}  // namespace dqe
