// The knob table's derived views (dqe/knobs.h) on a small config written here: its JSON record,
// its checks and their messages, its resume rules.
#include "dqe/knobs.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "dqe/errors.h"

namespace dqe {
namespace {

struct ToyConfig {
  std::string data;
  std::string mode = "fast";
  double rate = 0.5;
  int64_t steps = 10;
  std::optional<double> dropout;
  bool verbose = false;
  std::vector<std::string> names = {"a", "b"};
  uint64_t seed = 7;
  int threads = 0;
  std::string precision = "auto";
  std::string device = "auto";

  template <typename Self, typename Visitor>
  static void visit_knobs(Self& c, Visitor&& v) {
    v(Knob("data", "Input").mandatory().changeable_on_resume(), c.data);
    v(Knob("mode", "How").one_of({"fast", "slow", "exact"}), c.mode);
    v(Knob("rate", "A rate").check(bound::closed_open(0, 1), "in [0, 1)"), c.rate);
    v(Knob("steps", "Steps").check(bound::closed(1, 100), "between 1 and 100"), c.steps);
    v(Knob("dropout", "Dropout").check(bound::closed_open(0, 1), "in [0, 1)"), c.dropout);
    v(Knob("verbose", "Talk").as_flag(), c.verbose);
    v(Knob("names", "Names").list(','), c.names);
    v(Knob("seed", "Seed"), c.seed);
    visit_compute_knobs(c, v);
  }
};

std::string error_of(const ToyConfig& c) {
  try {
    check_knobs(c);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(Knobs, JsonHoldsEveryKnobInTheTablesOrder) {
  ToyConfig c;
  c.data = "x.jsonl";
  c.dropout = 0.25;
  const nlohmann::ordered_json j = knobs_json(c);
  EXPECT_EQ(j.dump(),
            R"({"data":"x.jsonl","mode":"fast","rate":0.5,"steps":10,"dropout":0.25,"verbose":false,"names":["a","b"],)"
            R"("seed":7,"threads":0,"precision":"auto","device":"auto"})");
  c.dropout.reset();
  EXPECT_TRUE(knobs_json(c)["dropout"].is_null());
}

TEST(Knobs, ChecksNameTheFlagAndTheRule) {
  ToyConfig c;
  EXPECT_EQ(error_of(c), "--data is required");
  c.data = "x";
  EXPECT_EQ(error_of(c), "");
  c.mode = "quick";
  EXPECT_EQ(error_of(c), "--mode must be fast, slow or exact, got \"quick\"");
  c.mode = "exact";
  c.rate = 1;
  EXPECT_EQ(error_of(c), "--rate must be in [0, 1), got 1");
  c.rate = std::nan("");
  EXPECT_EQ(error_of(c), "--rate must be in [0, 1), got nan");
  c.rate = 0;
  c.steps = std::numeric_limits<int64_t>::max();
  EXPECT_EQ(error_of(c), "--steps must be between 1 and 100, got 9223372036854775807");
  c.steps = 100;
  c.dropout = -0.5;
  EXPECT_EQ(error_of(c), "--dropout must be in [0, 1), got -0.5");
  c.dropout.reset();  // unset: the default applies, nothing to check
  c.precision = "fp16";
  EXPECT_EQ(error_of(c), "--precision must be auto, fp32 or bf16, got \"fp16\"");
}

TEST(Knobs, ResumeRulesAndNamesComeFromTheTable) {
  EXPECT_EQ(knobs_resume_may_change<ToyConfig>(), (std::vector<std::string>{"data", "threads", "precision", "device"}));
  EXPECT_EQ(knob_names<ToyConfig>(), (std::vector<std::string>{"data", "mode", "rate", "steps", "dropout", "verbose",
                                                               "names", "seed", "threads", "precision", "device"}));
}

}  // namespace
}  // namespace dqe
