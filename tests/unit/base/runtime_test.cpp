#include "dqe/runtime.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "dqe/errors.h"
#include "infer/predictor.h"
#include "model/model_dir.h"
#include "test_util.h"

namespace dqe {
namespace {

nlohmann::json fixture_cases(const std::string& fixture) {
  std::ifstream in(fixture + "/expected.json");
  return nlohmann::json::parse(in);
}

// The fixture's cases, encoded as the oracle encoded them.
std::vector<Example> encode_cases(const nlohmann::json& expected, const Tokenizer& tokenizer) {
  std::vector<Example> inputs;
  for (const auto& c : expected["cases"]) {
    inputs.emplace_back();
    inputs.back().text = tokenizer.encode_pair(c["query"].get<std::string>(), c["title"].get<std::string>(),
                                               c["max_len"].get<size_t>());
  }
  return inputs;
}

torch::Tensor logits_of(const LoadedModel& m, const std::vector<Example>& inputs, Precision precision) {
  return Predictor(m.model, m.featurizer, precision, 4).run(inputs).logits;
}

// More threads than cores only make them wait for each other: capped to the cores.
TEST(Threads, CappedToTheCoresAvailable) {
  const int all = configure_threads(0);
  EXPECT_GE(all, 1);
  EXPECT_EQ(configure_threads(all + 1000), all);
  EXPECT_EQ(configure_threads(1), 1);
  // A data-parallel job's processes on one node share the CPUs; --threads is taken as given.
  EXPECT_EQ(configure_threads(0, all), 1);
  EXPECT_EQ(configure_threads(0, 2), std::max(1, all / 2));
  EXPECT_EQ(configure_threads(1, 4), 1);
  configure_threads(0);
  EXPECT_NE(runtime_description().find(std::to_string(all) + " threads ("), std::string::npos) << runtime_description();
}

// Threads wait passively only beside busy neighbours; the user's OMP_WAIT_POLICY or
// GOMP_SPINCOUNT always wins, and the log says who chose.
TEST(Threads, OmpWaitPolicyIsDqesOnlyWhenTheUserSetNone) {
  EXPECT_FALSE(wait_passively(0));
  EXPECT_TRUE(wait_passively(1));
  EXPECT_TRUE(wait_passively(64));
  const char* names[] = {"OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "DQE_OMP_WAIT_CHOICE"};
  std::vector<std::optional<std::string>> saved;
  for (const char* n : names) saved.push_back(std::getenv(n) ? std::optional<std::string>(std::getenv(n)) : std::nullopt);
  for (const char* n : names) ::unsetenv(n);

  EXPECT_EQ(omp_wait_description(), "OpenMP waits: libgomp's default (spinning)");
  ::setenv("OMP_WAIT_POLICY", "passive", 1);
  EXPECT_FALSE(choose_omp_wait_policy());
  EXPECT_EQ(std::getenv("GOMP_SPINCOUNT"), nullptr);
  EXPECT_STREQ(std::getenv("OMP_WAIT_POLICY"), "passive");
  EXPECT_EQ(omp_wait_description(), "OpenMP waits: OMP_WAIT_POLICY=passive (from the environment)");
  ::unsetenv("OMP_WAIT_POLICY");
  ::setenv("GOMP_SPINCOUNT", "300000", 1);
  EXPECT_FALSE(choose_omp_wait_policy());
  EXPECT_STREQ(std::getenv("GOMP_SPINCOUNT"), "300000");
  EXPECT_EQ(omp_wait_description(), "OpenMP waits: GOMP_SPINCOUNT=300000 (from the environment)");
  // What a re-executed dqe sees after choosing: no second choice (and no second re-execution).
  ::unsetenv("GOMP_SPINCOUNT");
  ::setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
  ::setenv("DQE_OMP_WAIT_CHOICE", "2 threads of other processes were runnable at start", 1);
  EXPECT_FALSE(choose_omp_wait_policy());
  EXPECT_EQ(omp_wait_description(),
            "OpenMP waits: OMP_WAIT_POLICY=PASSIVE (dqe's choice: 2 threads of other processes were runnable at start)");

  for (size_t i = 0; i < saved.size(); ++i) {
    if (saved[i]) ::setenv(names[i], saved[i]->c_str(), 1);
    else ::unsetenv(names[i]);
  }
}

TEST(Precision, NamesResolveAndAutoFollowsTheCpu) {
  EXPECT_EQ(resolve_precision("fp32"), Precision::kFp32);
  EXPECT_EQ(resolve_precision("bf16"), Precision::kBf16);
  EXPECT_EQ(resolve_precision("auto"), cpu_has_native_bf16() ? Precision::kBf16 : Precision::kFp32);
  try {
    resolve_precision("half", c10::Device(c10::kCPU), "--precision");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("--precision"), std::string::npos);
  }
}

TEST(Precision, AutocastGuardCoversItsScopeOnly) {
  torch::nn::Linear linear(8, 4);
  torch::Tensor x = torch::randn({2, 8});
  {
    AutocastGuard fp32(Precision::kFp32);
    EXPECT_EQ(linear(x).scalar_type(), torch::kFloat32);
  }
  {
    AutocastGuard bf16(Precision::kBf16);
    EXPECT_EQ(linear(x).scalar_type(), torch::kBFloat16);
    {
      AutocastGuard nested(Precision::kBf16);
      EXPECT_EQ(linear(x).scalar_type(), torch::kBFloat16);
    }
    EXPECT_EQ(linear(x).scalar_type(), torch::kBFloat16) << "a nested guard switched autocast off early";
  }
  EXPECT_EQ(linear(x).scalar_type(), torch::kFloat32);
}

// bf16 is an approximation: it tracks the exact fp32 logits of the Hugging Face fixture
// (whose weights are large for its size, so errors of a few percent of the logit range
// show), but does not equal them: fp32 stays the exact path.
TEST(Precision, Bf16LogitsOfTheFixtureAreCloseToFp32) {
  DQE_REQUIRE_SHARED_FIXTURES();
  const std::string fixture = std::string(DQE_SHARED_DIR) + "/fixtures/tiny-bert-hf";
  LoadedModel m = load_model(fixture);
  const nlohmann::json expected = fixture_cases(fixture);
  const std::vector<Example> inputs = encode_cases(expected, *m.tokenizer);
  torch::Tensor fp32 = logits_of(m, inputs, Precision::kFp32);
  torch::Tensor bf16 = logits_of(m, inputs, Precision::kBf16);
  EXPECT_EQ(bf16.scalar_type(), torch::kFloat32);
  size_t i = 0;
  for (const auto& c : expected["cases"]) {
    const auto want = c["logits"].get<std::vector<float>>();
    for (size_t k = 0; k < want.size(); ++k) {
      EXPECT_NEAR(fp32[static_cast<int64_t>(i)][static_cast<int64_t>(k)].item<float>(), want[k], 1e-4);
      EXPECT_NEAR(bf16[static_cast<int64_t>(i)][static_cast<int64_t>(k)].item<float>(), want[k], 0.3);
    }
    ++i;
  }
  EXPECT_FALSE(torch::equal(fp32, bf16));
  const torch::Tensor a = fp32.flatten() - fp32.mean(), b = bf16.flatten() - bf16.mean();
  const double correlation = (a * b).sum().item<double>() / std::sqrt((a * a).sum().item<double>() * (b * b).sum().item<double>());
  EXPECT_GT(correlation, 0.99);
  const double range = (fp32.max() - fp32.min()).item<double>();
  EXPECT_LT((fp32 - bf16).abs().max().item<double>(), 0.05 * range);
}

TEST(Device, NamesResolveAndAutoFollowsTheBuild) {
  EXPECT_TRUE(resolve_device("cpu").is_cpu());
  EXPECT_EQ(resolve_device("auto").is_cuda(), torch::cuda::is_available());
  for (const std::string bad : {"gpu", "cuda:", "cuda:x", "cuda:-1", "CPU", ""}) {
    try {
      resolve_device(bad);
      FAIL() << bad;
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find("--device must be auto, cpu, cuda or cuda:N"), std::string::npos) << e.what();
    }
  }
  // On a GPU, auto precision is bf16 whatever the CPU has.
  EXPECT_EQ(resolve_precision("auto", c10::Device(c10::kCUDA, 0)), Precision::kBf16);
  EXPECT_EQ(resolve_precision("fp32", c10::Device(c10::kCUDA, 0)), Precision::kFp32);
}

TEST(Device, CudaWithoutAGpuIsAConfigErrorNamingTheFlag) {
  if (torch::cuda::is_available()) GTEST_SKIP() << "a GPU is visible";
  for (const std::string name : {"cuda", "cuda:0"}) {
    try {
      resolve_device(name, "--device");
      FAIL() << name;
    } catch (const ConfigError& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find("--device " + name + ": no GPU is usable"), std::string::npos) << what;
      EXPECT_NE(what.find("--device cpu"), std::string::npos) << what;
    }
  }
}

// On a GPU the fixture's fp32 logits match the oracle as on the CPU, and bf16 autocast on
// the GPU tracks them.
TEST(Device, CudaLogitsOfTheFixtureMatchTheOracle) {
  DQE_REQUIRE_SHARED_FIXTURES();
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no GPU (this LibTorch has no CUDA, or none is visible)";
  const std::string fixture = std::string(DQE_SHARED_DIR) + "/fixtures/tiny-bert-hf";
  LoadedModel m = load_model(fixture);
  m.model->to(resolve_device("cuda"));
  const nlohmann::json expected = fixture_cases(fixture);
  const std::vector<Example> inputs = encode_cases(expected, *m.tokenizer);
  torch::Tensor fp32 = logits_of(m, inputs, Precision::kFp32);
  torch::Tensor bf16 = logits_of(m, inputs, Precision::kBf16);
  ASSERT_TRUE(fp32.is_cpu());
  size_t i = 0;
  for (const auto& c : expected["cases"]) {
    const auto want = c["logits"].get<std::vector<float>>();
    for (size_t k = 0; k < want.size(); ++k)
      EXPECT_NEAR(fp32[static_cast<int64_t>(i)][static_cast<int64_t>(k)].item<float>(), want[k], 1e-4);
    ++i;
  }
  const double range = (fp32.max() - fp32.min()).item<double>();
  EXPECT_LT((fp32 - bf16).abs().max().item<double>(), 0.05 * range);
}

}  // namespace
}  // namespace dqe
