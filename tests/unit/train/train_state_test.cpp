#include "train/train_state.h"

#include <gtest/gtest.h>

#include "dqe/errors.h"
#include "io/checkpoint_dir.h"
#include "test_util.h"

namespace dqe {
namespace {

TEST(TrainerState, WrittenBesideAModelAndReadBack) {
  test::TempDir dir;
  TrainerState state;
  state.step = 7;
  state.seed = 3;
  state.best_metric = 0.25;
  write_checkpoint(dir.path("ckpt"), [&](const std::string& tmp) { write_training_state(tmp, state, nullptr); });
  const TrainerState back = load_trainer_state(dir.path("ckpt"), nullptr);
  EXPECT_EQ(back.step, 7);
  EXPECT_EQ(back.seed, 3u);
  ASSERT_TRUE(back.best_metric);
  EXPECT_EQ(*back.best_metric, 0.25);
  EXPECT_THROW(load_trainer_state(dir.path("nowhere"), nullptr), ModelError);
}

TEST(TrainerState, RejectsUnknownFormatVersion) {
  auto j = nlohmann::json::parse(to_json(TrainerState{}).dump());
  EXPECT_NO_THROW(trainer_state_from_json(j, "s.json"));
  j["format_version"] = 99;
  EXPECT_THROW(trainer_state_from_json(j, "s.json"), ModelError);
  // Found by the config fuzzer: a string version and a float step escaped as other errors.
  EXPECT_THROW(trainer_state_from_json(nlohmann::json::parse(R"({"format_version":"1"})"), "s"), ModelError);
  EXPECT_THROW(trainer_state_from_json(nlohmann::json::parse(
                   R"({"format_version":1,"step":1e19,"epoch":0,"batch_in_epoch":0,"total_steps":0,"seed":1})"), "s"),
               ModelError);
}

}  // namespace
}  // namespace dqe
