// Data-parallel runs of the real dqe binary: two processes on this machine, joined by the
// environment variables torchrun sets, against one process (dist/process_group.h).
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <regex>
#include <thread>
#include <utility>

#include "dist/process_group.h"
#include "integration/run_util.h"
#include "io/safetensors.h"
#include "test_util.h"

namespace dqe {
namespace fs = std::filesystem;
namespace {

// A socket bound to 127.0.0.1 at the kernel's pick of port, listening when asked: its fd and port.
std::pair<int, int> loopback_socket(bool listening) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) throw std::runtime_error("bind");
  if (listening && ::listen(fd, 16) != 0) throw std::runtime_error("listen");
  socklen_t len = sizeof(addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  return {fd, ntohs(addr.sin_port)};
}

// A port nothing listens on now (the kernel's pick; closed again before the job binds it).
int free_port() {
  const auto [fd, port] = loopback_socket(false);
  ::close(fd);
  return port;
}

// The dqe binary (or `program`) started with extra environment variables, its stderr in a file.
class Process {
 public:
  Process(const std::vector<std::string>& args, const std::map<std::string, std::string>& env, const std::string& err,
          const std::string& program = DQE_BINARY)
      : err_(err) {
    pid_ = ::fork();
    if (pid_ == 0) {
      for (const auto& [k, v] : env) ::setenv(k.c_str(), v.c_str(), 1);
      const int fd = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      ::dup2(fd, 2);
      const int null_fd = ::open("/dev/null", O_RDWR);
      ::dup2(null_fd, 0);
      ::dup2(null_fd, 1);
      std::vector<char*> argv{const_cast<char*>(program.c_str())};
      for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      ::execv(program.c_str(), argv.data());
      ::_exit(127);
    }
  }
  ~Process() {
    if (!done_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  // The exit code (128 + signal when killed), or -1 when it is still running after timeout_s.
  int wait(double timeout_s = 120) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
    while (!done_) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        done_ = true;
        code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        break;
      }
      if (std::chrono::steady_clock::now() > until) return -1;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return code_;
  }
  void signal(int sig) { ::kill(pid_, sig); }
  std::string err() const { return test::read_text(err_); }

 private:
  pid_t pid_ = -1;
  bool done_ = false;
  int code_ = -1;
  std::string err_;
};

std::map<std::string, std::string> rank_env(int rank, int world, int port) {
  return {{"RANK", std::to_string(rank)},          {"WORLD_SIZE", std::to_string(world)},
          {"LOCAL_RANK", std::to_string(rank)},    {"LOCAL_WORLD_SIZE", std::to_string(world)},
          {"MASTER_ADDR", "127.0.0.1"},            {"MASTER_PORT", std::to_string(port)},
          {"GLOO_SOCKET_IFNAME", "lo"}};
}

std::vector<std::string> split(const std::string& args) {
  std::vector<std::string> out;
  std::istringstream in(args);
  for (std::string a; in >> a;) out.push_back(a);
  return out;
}

// Runs `args` (plus --batch-size per process) on `world` processes, all to completion.
std::vector<int> run_job(const test::TempDir& dir, const std::string& args, int world, int batch_size,
                         std::vector<std::string>* errs = nullptr) {
  const int port = free_port();
  std::vector<std::unique_ptr<Process>> procs;
  std::vector<std::string> argv = split(args + " --batch-size " + std::to_string(batch_size));
  for (int r = 0; r < world; ++r)
    procs.push_back(std::make_unique<Process>(argv, world > 1 ? rank_env(r, world, port) : std::map<std::string, std::string>{},
                                              dir.path("err" + std::to_string(world) + "_" + std::to_string(r) + ".txt")));
  std::vector<int> codes;
  for (auto& p : procs) {
    codes.push_back(p->wait());
    if (errs) errs->push_back(p->err());
  }
  return codes;
}

// Largest absolute difference between two checkpoints' tensors (they must have the same names).
double max_difference(const std::string& a_dir, const std::string& b_dir) {
  const auto a = load_safetensors(a_dir + "/model.safetensors");
  const auto b = load_safetensors(b_dir + "/model.safetensors");
  EXPECT_EQ(a.size(), b.size());
  double worst = 0;
  for (const auto& [name, t] : a) {
    auto it = b.find(name);
    if (it == b.end()) {
      ADD_FAILURE() << name << " missing";
      continue;
    }
    worst = std::max(worst, (t - it->second).abs().max().item<double>());
  }
  return worst;
}

// Whether a run has written an evaluation (the train log is flushed with it): it is training.
bool has_evaluated(const std::string& run) {
  std::error_code ec;
  return fs::file_size(run + "/eval_log.jsonl", ec) > 0 && !ec;
}

// The two runs' evaluation logs agree: the same steps, and every metric to 5e-5 (the shares
// are padded in batches of their own, so the sums differ in float rounding only; a tiny
// model's scores spread little, and its Pearson correlation magnifies that rounding: 1.2e-5
// on an AMD EPYC's OpenBLAS kernels).
void expect_same_evaluations(const std::string& run, const std::string& reference) {
  const auto a = test::read_jsonl_file(run + "/eval_log.jsonl");
  const auto b = test::read_jsonl_file(reference + "/eval_log.jsonl");
  ASSERT_EQ(a.size(), b.size());
  ASSERT_FALSE(a.empty());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i]["step"], b[i]["step"]);
    ASSERT_EQ(a[i]["metrics"].size(), b[i]["metrics"].size()) << a[i].dump();
    for (auto it = b[i]["metrics"].begin(); it != b[i]["metrics"].end(); ++it) {
      if (!it->is_number()) continue;
      ASSERT_TRUE(a[i]["metrics"].contains(it.key())) << it.key();
      EXPECT_NEAR(a[i]["metrics"][it.key()].get<double>(), it->get<double>(), 5e-5)
          << it.key() << " at step " << b[i]["step"];
    }
  }
}

// Waits until `process` trains (it has logged an evaluation into `run`); fails the test when
// it exits first or takes over a minute.
void wait_until_training(const std::string& run, Process& process) {
  const auto start = std::chrono::steady_clock::now();
  while (!has_evaluated(run)) {
    ASSERT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(60)) << process.err();
    ASSERT_EQ(process.wait(0.05), -1) << process.err();
  }
}

// The error of a process that failed: one line, saying what the data-parallel job lost.
std::string expect_one_line_error(const std::string& err) {
  const size_t at = err.find("dqe: error: ");
  EXPECT_NE(at, std::string::npos) << err;
  if (at == std::string::npos) return "";
  const std::string line = err.substr(at);
  EXPECT_EQ(std::count(line.begin(), line.end(), '\n'), 1) << line;
  EXPECT_NE(line.find("data parallel: rank 0 of 2"), std::string::npos) << line;
  return line;
}

const char* kTinyModel =
    " --layers 1 --hidden 32 --heads 2 --intermediate 64 --dropout 0 --precision fp32 --threads 1 --seed 7";

class DistributedTest : public ::testing::Test {
 protected:
  void SetUp() override {
    test::write_toy_set(dir_.path("train.jsonl"), 64, 1);  // 4 global batches of 16
    test::write_toy_set(dir_.path("dev.jsonl"), 24, 2);
    std::string corpus;
    const std::vector<std::string> words = {"acme", "oak", "chair", "lamp", "brass", "pine", "table", "steel", "drill"};
    std::mt19937 rng(5);
    for (int i = 0; i < 200; ++i) {
      const int n = 2 + static_cast<int>(rng() % 6);  // lengths differ: batches are padded differently
      for (int w = 0; w < n; ++w) corpus += words[rng() % words.size()] + (w + 1 < n ? " " : "\n");
    }
    test::write_text(dir_.path("corpus.txt"), corpus);
  }

  std::string train_args(const std::string& out, const std::string& extra = "") const {
    return "train --train " + dir_.path("train.jsonl") + " --dev " + dir_.path("dev.jsonl") + " --out " +
           dir_.path(out) + " --max-len 24 --lr 3e-3 --warmup-ratio 0 --patience 0" + kTinyModel + extra;
  }

  // What a two-process run at --batch-size 8 ("two") and a one-process run at 16 ("one")
  // of the same command logged: the train logs, each of `steps` lines, and rank 0's stderr.
  struct TwoAndOne {
    std::vector<nlohmann::json> one, two;
    std::string rank0_err;
  };
  // Fails the test (fatally) when a run fails or logs another number of steps.
  void run_two_and_one(const std::function<std::string(const std::string&)>& args, size_t steps, TwoAndOne& out) {
    std::vector<std::string> errs;
    const auto two = run_job(dir_, args("two"), 2, 8, &errs);
    ASSERT_EQ(two, (std::vector<int>{0, 0})) << errs[0] << errs[1];
    out.rank0_err = errs[0];
    const auto one = run_job(dir_, args("one"), 1, 16, &errs);
    ASSERT_EQ(one, (std::vector<int>{0})) << errs.back();
    out.one = test::read_jsonl_file(dir_.path("one/train_log.jsonl"));
    out.two = test::read_jsonl_file(dir_.path("two/train_log.jsonl"));
    ASSERT_EQ(out.one.size(), steps);
    ASSERT_EQ(out.two.size(), steps);
  }

  test::TempDir dir_;
};

// From rank 0's closing line "... K of N buckets a step went out during the backward pass":
// {K, N}, or {-1, -1} when it is missing.
std::pair<double, int> buckets_sent_during_backward(const std::string& err) {
  static const std::regex line(R"(([\d.]+) of (\d+) buckets a step went out during the backward pass)");
  std::smatch m;
  if (!std::regex_search(err, m, line)) return {-1, -1};
  return {std::stod(m[1]), std::stoi(m[2])};
}

TEST_F(DistributedTest, TwoProcessesAtBatch8TakeTheStepsOfOneAtBatch16) {
  std::vector<std::string> errs;
  // Buckets of 10 kB: the gradients go out in many all-reduces, during the backward pass.
  const auto two = run_job(dir_, train_args("two", " --max-steps 6 --bucket-mb 0.01"), 2, 8, &errs);
  ASSERT_EQ(two, (std::vector<int>{0, 0})) << errs[0] << errs[1];
  EXPECT_NE(errs[0].find("global batch 16 (2 processes x --batch-size 8)"), std::string::npos) << errs[0];
  const auto [sent, buckets] = buckets_sent_during_backward(errs[0]);
  EXPECT_GT(buckets, 5) << errs[0];
  EXPECT_EQ(sent, buckets) << errs[0];  // a plain step's one pass completes every gradient
  // Rank 1 writes no log lines of its own (its info lines are rank 0's).
  EXPECT_EQ(errs[1].find("global batch"), std::string::npos) << errs[1];
  const auto one = run_job(dir_, train_args("one", " --max-steps 6"), 1, 16, &errs);
  ASSERT_EQ(one, (std::vector<int>{0})) << errs.back();

  const auto single = test::read_jsonl_file(dir_.path("one/train_log.jsonl"));
  ASSERT_EQ(single.size(), 6u);
  const auto logged = test::read_jsonl_file(dir_.path("two/train_log.jsonl"));
  ASSERT_EQ(logged.size(), 6u);  // only rank 0 logs, once per step
  for (size_t i = 0; i < logged.size(); ++i) {
    // The logged loss is the job's: the mean over the global batch.
    EXPECT_NEAR(logged[i]["loss"].get<double>(), single[i]["loss"].get<double>(), 1e-5) << "step " << i + 1;
    EXPECT_NEAR(logged[i]["grad_norm"].get<double>(), single[i]["grad_norm"].get<double>(), 1e-4) << "step " << i + 1;
  }
  EXPECT_LT(max_difference(dir_.path("two/last"), dir_.path("one/last")), 1e-5);
  // Each process predicted half of the dev rows; gathered, they give one process's metrics.
  expect_same_evaluations(dir_.path("two"), dir_.path("one"));
  // Rank 0 calibrated the detection thresholds into best/ (the others wrote nothing).
  EXPECT_TRUE(fs::exists(dir_.path("two/best/detect_stats.safetensors")));
}

TEST_F(DistributedTest, AProcessWithoutRowsInAStepStillTakesItWithTheOthers) {
  // 65 rows: the epoch's last global batch has one row, which rank 1 takes; rank 0 has none,
  // makes no backward pass and sends its buckets after it, in the order rank 1 sent its own
  // during its pass.
  test::write_toy_set(dir_.path("train65.jsonl"), 65, 3);
  auto args = [&](const std::string& out) {
    return "train --train " + dir_.path("train65.jsonl") + " --dev " + dir_.path("dev.jsonl") + " --out " +
           dir_.path(out) + " --max-len 24 --lr 3e-3 --warmup-ratio 0 --patience 0 --epochs 1 --bucket-mb 0.01" +
           kTinyModel;
  };
  TwoAndOne runs;
  run_two_and_one(args, 5, runs);
  if (HasFatalFailure()) return;
  const auto& a = runs.one;
  const auto& b = runs.two;
  bool saw_single_row = false;
  for (size_t i = 0; i < a.size(); ++i) {
    // "tokens" counts from the start: one row of --max-len 24 adds at most 24.
    const int64_t step_tokens = a[i]["tokens"].get<int64_t>() - (i > 0 ? a[i - 1]["tokens"].get<int64_t>() : 0);
    saw_single_row |= step_tokens <= 24;
    EXPECT_EQ(b[i]["tokens"], a[i]["tokens"]) << "step " << i + 1;
    EXPECT_NEAR(b[i]["loss"].get<double>(), a[i]["loss"].get<double>(), 1e-5) << "step " << i + 1;
  }
  EXPECT_TRUE(saw_single_row) << "no step had the one-row batch";
  // Rank 0 tokenised the first half of the pairs and rank 1 the rest; both trained on all.
  EXPECT_NE(runs.rank0_err.find("this process tokenised 32 of the 65 training pairs and holds 12 of the 24 dev pairs"),
            std::string::npos)
      << runs.rank0_err;
  EXPECT_LT(max_difference(dir_.path("two/last"), dir_.path("one/last")), 1e-5);
  // Rank 0 sent during the pass on the 4 full steps, not on the one-row step.
  const auto [sent, buckets] = buckets_sent_during_backward(runs.rank0_err);
  EXPECT_GT(buckets, 5) << runs.rank0_err;
  EXPECT_LT(sent, buckets) << runs.rank0_err;
}

TEST_F(DistributedTest, ATeacherLabelsThePairsInSharesForTheSameSteps) {
  std::vector<std::string> errs;
  ASSERT_EQ(run_job(dir_, train_args("teacher", " --max-steps 8"), 1, 16, &errs), (std::vector<int>{0})) << errs.back();
  // Each process has the teacher label half of the training pairs; gathered, the targets are
  // one process's (to float rounding: the halves are padded in batches of their own).
  auto args = [&](const std::string& out) {
    return train_args(out, " --max-steps 4 --teacher " + dir_.path("teacher/best") + " --distill-alpha 0.7");
  };
  TwoAndOne runs;
  run_two_and_one(args, 4, runs);
  if (HasFatalFailure()) return;
  for (size_t i = 0; i < runs.one.size(); ++i)
    EXPECT_NEAR(runs.two[i]["loss"].get<double>(), runs.one[i]["loss"].get<double>(), 1e-5) << "step " << i + 1;
  EXPECT_LT(max_difference(dir_.path("two/last"), dir_.path("one/last")), 1e-5);
}

TEST_F(DistributedTest, PretrainingTwoProcessesAtBatch8MatchOneAtBatch16) {
  auto args = [&](const std::string& out) {
    return "pretrain --corpus " + dir_.path("corpus.txt") + " --out " + dir_.path(out) +
           " --max-len 12 --vocab-size 40 --lr 3e-3 --warmup-ratio 0 --held-out-every 10 --max-steps 5" +
           " --chunk-lines 70" + kTinyModel;  // 63 lines to train on a chunk: step 5 reads the second
  };
  TwoAndOne runs;
  run_two_and_one(args, 5, runs);
  if (HasFatalFailure()) return;
  // The default --bucket-mb 25 holds this model's gradients many times over; they still go
  // in 4 buckets, during the pass.
  const auto [sent, buckets] = buckets_sent_during_backward(runs.rank0_err);
  EXPECT_EQ(buckets, 4) << runs.rank0_err;
  EXPECT_EQ(sent, buckets) << runs.rank0_err;
  const auto& a = runs.one;
  const auto& b = runs.two;
  for (size_t i = 0; i < a.size(); ++i) {
    // The loss is summed over masked tokens and divided by the job's count of them: the same
    // masks, drawn for the global batch, on both sides.
    EXPECT_NEAR(b[i]["loss"].get<double>(), a[i]["loss"].get<double>(), 1e-5) << "step " << i + 1;
    EXPECT_NEAR(b[i]["accuracy"].get<double>(), a[i]["accuracy"].get<double>(), 1e-9) << "step " << i + 1;
  }
  EXPECT_LT(max_difference(dir_.path("two/last"), dir_.path("one/last")), 1e-5);
  // The held-back lines were measured in two shares and the sums gathered.
  expect_same_evaluations(dir_.path("two"), dir_.path("one"));
  EXPECT_NE(runs.rank0_err.find("each process tokenises 1/2 of each chunk"), std::string::npos) << runs.rank0_err;
}

TEST_F(DistributedTest, TorchrunStartsAJobOnItsAgentsStore) {
  // Debian's torchrun (python3-torch, which setup.sh installs).
  const std::string torchrun = "/usr/bin/torchrun";
  if (!fs::exists(torchrun)) GTEST_SKIP() << "no " << torchrun;
  const std::string port = std::to_string(free_port());
  // The flags of docs/scale-out.md's torchrun line, as written there: torch 1.13's torchrun on
  // Python 3.11 cannot read its own default "--redirects 0 --tee 0" (Std.from_str misses the
  // zero flag), so the line passes 2: each worker's stderr goes to a file and to the agent's
  // stderr, "[default<rank>]:"-prefixed. A free port is added; then dqe and this test's flags.
  std::vector<std::string> argv;
  {
    std::ifstream doc(std::string(DQE_SOURCE_DIR) + "/docs/scale-out.md");
    std::string line;
    while (std::getline(doc, line) && line.rfind("torchrun ", 0) != 0) {
    }
    ASSERT_EQ(line.rfind("torchrun ", 0), 0u) << "docs/scale-out.md has no line starting with torchrun";
    const std::vector<std::string> words = split(line);
    const auto dqe = std::find(words.begin(), words.end(), "dqe");
    ASSERT_NE(dqe, words.end()) << line;
    argv.assign(words.begin() + 1, dqe);
    EXPECT_EQ(std::vector<std::string>(dqe + 1, dqe + 2), std::vector<std::string>{"train"}) << line;
  }
  argv.insert(argv.end(), {"--master_port", port, DQE_BINARY});
  for (const auto& a : split(train_args("two", " --max-steps 4 --batch-size 8"))) argv.push_back(a);
  Process agent(argv, {{"GLOO_SOCKET_IFNAME", "lo"}}, dir_.path("torchrun.txt"), torchrun);
  ASSERT_EQ(agent.wait(180), 0) << agent.err();
  // The ranks joined the store that torchrun's agent serves, as clients.
  const std::string err = agent.err();
  EXPECT_NE(err.find("rank 0 of 2 (local 0 of 2, torchrun), Gloo, store 127.0.0.1:" + port + " (torchrun's)"),
            std::string::npos)
      << err;
  std::vector<std::string> errs;
  const auto one = run_job(dir_, train_args("one", " --max-steps 4"), 1, 16, &errs);
  ASSERT_EQ(one, (std::vector<int>{0})) << errs.back();
  EXPECT_LT(max_difference(dir_.path("two/last"), dir_.path("one/last")), 1e-5);
}

// Ranks started with different commands stop together before their first step, each with one
// line naming the first difference from rank 0 (exit 2): a flag that shapes the run, a model
// shape (Gloo aborted on it), and data of other content. What may differ per machine
// (--threads, the data's paths) does not stop them.
TEST_F(DistributedTest, RanksStartedDifferentlyStopWithOneLineNamingTheDifference) {
  test::write_toy_set(dir_.path("other.jsonl"), 64, 3);
  fs::copy_file(dir_.path("train.jsonl"), dir_.path("same.jsonl"));
  const std::string base = " --max-steps 2 --batch-size 8 --dist-timeout 60";
  // argv with FLAG's value replaced.
  auto with = [](std::vector<std::string> argv, const std::string& flag, const std::string& value) {
    auto it = std::find(argv.begin(), argv.end(), flag);
    EXPECT_NE(it, argv.end()) << flag;
    if (it != argv.end()) *(it + 1) = value;
    return argv;
  };
  const struct {
    std::string flag, value;  // rank 1's
    std::string expect;
  } cases[] = {
      {"--lr", "1e-3", "data parallel: rank 1 was started with --lr 0.001, rank 0 with 0.003"},
      {"--layers", "2", "data parallel: rank 1 was started with --layers 2, rank 0 with 1"},
      {"--train", dir_.path("other.jsonl"), "data parallel: rank 1's --train holds other content than rank 0's"},
  };
  int n = 0;
  for (const auto& c : cases) {
    const std::string out = "differ" + std::to_string(n++);
    const int port = free_port();
    const auto argv = split(train_args(out, base));
    Process rank0(argv, rank_env(0, 2, port), dir_.path("err0.txt"));
    Process rank1(with(argv, c.flag, c.value), rank_env(1, 2, port), dir_.path("err1.txt"));
    for (Process* p : {&rank0, &rank1}) {
      EXPECT_EQ(p->wait(60), 2) << p->err();
      const std::string err = p->err();
      EXPECT_NE(err.find("dqe: error: " + c.expect + " (every rank of a job runs the same command"), std::string::npos)
          << err;
    }
    EXPECT_FALSE(fs::exists(dir_.path(out + "/last"))) << c.flag;
  }
  // The same data under another path, on other --threads: one job.
  const int port = free_port();
  const auto argv = split(train_args("agree", base));
  Process rank0(argv, rank_env(0, 2, port), dir_.path("err0.txt"));
  Process rank1(with(with(argv, "--threads", "2"), "--train", dir_.path("same.jsonl")), rank_env(1, 2, port),
                dir_.path("err1.txt"));
  EXPECT_EQ(rank0.wait(60), 0) << rank0.err();
  EXPECT_EQ(rank1.wait(60), 0) << rank1.err();
}

// Joining a job has one deadline, --dist-timeout, whatever c10d's steps would add up to, and
// ends on SIGTERM: a rank whose store accepts and never answers gives up after it (it waited
// past 45 s at --dist-timeout 5), and a rank 0 waiting for a peer that never comes stops on
// SIGTERM with 143 (it ignored the signal).
TEST_F(DistributedTest, JoiningHasOneDeadlineAndEndsOnSigterm) {
  // A store that accepts connections (the kernel's backlog) and never answers.
  const auto [silent, silent_port] = loopback_socket(true);
  const auto start = std::chrono::steady_clock::now();
  Process rank1(split(train_args("silent", " --dist-timeout 3")), rank_env(1, 2, silent_port), dir_.path("err1.txt"));
  EXPECT_EQ(rank1.wait(60), 1) << rank1.err();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(13));  // 3 s, and the start-up
  EXPECT_NE(rank1.err().find("dqe: error: data parallel: rank 1 of 2 could not join the job at 127.0.0.1:" +
                             std::to_string(silent_port) + " within 3 s (--dist-timeout)"),
            std::string::npos)
      << rank1.err();
  ::close(silent);

  const int port = free_port();
  Process rank0(split(train_args("alone", " --dist-timeout 600")), rank_env(0, 2, port), dir_.path("err0.txt"));
  // Once its store listens, it is joining (its handlers were installed before).
  const auto started = std::chrono::steady_clock::now();
  for (;;) {
    const int probe = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    to.sin_port = htons(static_cast<uint16_t>(port));
    const bool listening = ::connect(probe, reinterpret_cast<sockaddr*>(&to), sizeof(to)) == 0;
    ::close(probe);
    if (listening) break;
    ASSERT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(60)) << rank0.err();
    ASSERT_EQ(rank0.wait(0.05), -1) << rank0.err();
  }
  rank0.signal(SIGTERM);
  EXPECT_EQ(rank0.wait(10), 143) << rank0.err();
  EXPECT_NE(rank0.err().find("dqe: terminated (joining the data-parallel job at 127.0.0.1:"), std::string::npos)
      << rank0.err();
}

TEST_F(DistributedTest, AKilledRankEndsTheOtherWithAOneLineErrorWithinTheTimeout) {
  const int port = free_port();
  // The timeout also bounds the rendezvous: long enough for a loaded machine to start both.
  const auto argv = split(train_args("run", " --epochs 1000 --batch-size 8 --dist-timeout 20"));
  Process rank0(argv, rank_env(0, 2, port), dir_.path("err0.txt"));
  Process rank1(argv, rank_env(1, 2, port), dir_.path("err1.txt"));
  // Wait until the job trains, then kill rank 1 outright.
  ASSERT_NO_FATAL_FAILURE(wait_until_training(dir_.path("run"), rank0));
  rank1.signal(SIGKILL);
  EXPECT_EQ(rank1.wait(10), 128 + SIGKILL);
  const auto killed = std::chrono::steady_clock::now();
  const int code = rank0.wait(30);
  ASSERT_NE(code, -1) << "rank 0 still runs 30 s after rank 1 died (--dist-timeout 20)";
  EXPECT_LT(std::chrono::steady_clock::now() - killed, std::chrono::seconds(25));
  EXPECT_EQ(code, 1);
  expect_one_line_error(rank0.err());
}

TEST_F(DistributedTest, AHungRankEndsTheOtherWithAOneLineErrorAfterTheTimeout) {
  const int port = free_port();
  // Long enough for a loaded machine to start both processes and join them.
  constexpr int kTimeout = 8;
  const auto argv =
      split(train_args("run", " --epochs 1000 --batch-size 8 --dist-timeout " + std::to_string(kTimeout)));
  Process rank0(argv, rank_env(0, 2, port), dir_.path("err0.txt"));
  Process rank1(argv, rank_env(1, 2, port), dir_.path("err1.txt"));
  ASSERT_NO_FATAL_FAILURE(wait_until_training(dir_.path("run"), rank0));
  // Rank 1 stops answering but keeps its connections open: only the timeout can tell.
  rank1.signal(SIGSTOP);
  const auto hung = std::chrono::steady_clock::now();
  const int code = rank0.wait(kTimeout + 30);
  ASSERT_NE(code, -1) << "rank 0 still runs " << kTimeout + 30 << " s after rank 1 hung (--dist-timeout " << kTimeout
                      << ")";
  EXPECT_EQ(code, 1);
  // Not before the timeout: a slow rank is waited for, for --dist-timeout.
  EXPECT_GE(std::chrono::steady_clock::now() - hung, std::chrono::seconds(kTimeout - 1));
  const std::string line = expect_one_line_error(rank0.err());
  EXPECT_NE(line.find("--dist-timeout " + std::to_string(kTimeout)), std::string::npos) << line;
  rank1.signal(SIGKILL);
}

TEST_F(DistributedTest, OneProcessResumesATwoProcessRunOnTheSameGlobalBatches) {
  // Interrupted by SIGTERM on both ranks, which agree on the step to stop at; one process
  // then continues with the same command: a global batch of 2 x 8 (the run's) on one process.
  const int port = free_port();
  // Short: over many steps Adam amplifies the float noise of different padding past 1e-5.
  const std::string extra = " --max-steps 16 --eval-every 4";
  const auto argv = split(train_args("run", extra + " --batch-size 8"));
  {
    Process rank0(argv, rank_env(0, 2, port), dir_.path("err0.txt"));
    Process rank1(argv, rank_env(1, 2, port), dir_.path("err1.txt"));
    const auto start = std::chrono::steady_clock::now();
    while (!has_evaluated(dir_.path("run"))) {
      ASSERT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(60)) << rank0.err();
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    rank0.signal(SIGTERM);
    rank1.signal(SIGTERM);
    EXPECT_EQ(rank0.wait(), 143) << rank0.err();
    EXPECT_EQ(rank1.wait(), 143) << rank1.err();
  }
  const auto state = nlohmann::json::parse(test::read_text(dir_.path("run/last/trainer_state.json")));
  const int64_t stopped = state["step"].get<int64_t>();
  ASSERT_GT(stopped, 0);
  ASSERT_LT(stopped, 16) << "the run ended before it was interrupted; nothing was resumed";
  std::vector<std::string> errs;
  const auto resumed = run_job(dir_, train_args("run", extra + " --resume"), 1, 8, &errs);
  ASSERT_EQ(resumed, (std::vector<int>{0})) << errs.back();
  EXPECT_NE(errs.back().find("global batch 16 (2 processes x --batch-size 8, as the run was started; now on 1"),
            std::string::npos)
      << errs.back();
  const auto reference = run_job(dir_, train_args("one", extra), 1, 16, &errs);
  ASSERT_EQ(reference, (std::vector<int>{0})) << errs.back();
  EXPECT_LT(max_difference(dir_.path("run/last"), dir_.path("one/last")), 1e-5) << "interrupted at step " << stopped;
}

TEST(DataParallelGroup, AllGatherGivesEveryProcessAllBytesInRankOrder) {
  // Three members of one job on threads of this process, joined over loopback.
  ::setenv("GLOO_SOCKET_IFNAME", "lo", 1);
  const int port = free_port();
  const std::vector<std::string> sent = {std::string("abc\0def", 7), "", std::string(23, 'z') + "end"};
  std::vector<std::vector<std::string>> in_rounds(3), at_once(3);
  std::vector<std::string> errors(3);
  std::vector<std::thread> members;
  for (int r = 0; r < 3; ++r)
    members.emplace_back([&, r] {
      try {
        LaunchEnvironment env;
        env.rank = r;
        env.world_size = 3;
        env.master_addr = "127.0.0.1";
        env.master_port = port;
        DistributedOptions options;
        options.timeout_s = 60;
        DataParallel group(env, options);
        // Rounds of 5 bytes: the longest share takes 6, the empty one sends padding only.
        in_rounds[static_cast<size_t>(r)] = group.all_gather(sent[static_cast<size_t>(r)], 5);
        at_once[static_cast<size_t>(r)] = group.all_gather(sent[static_cast<size_t>(r)]);
      } catch (const std::exception& e) {
        errors[static_cast<size_t>(r)] = e.what();
      }
    });
  for (auto& m : members) m.join();
  for (size_t r = 0; r < 3; ++r) {
    EXPECT_EQ(errors[r], "") << "rank " << r;
    EXPECT_EQ(in_rounds[r], sent) << "rank " << r;
    EXPECT_EQ(at_once[r], sent) << "rank " << r;
  }
}

TEST_F(DistributedTest, BadLaunchVariablesAreOneLineErrorsNamingThem) {
  struct Case {
    std::map<std::string, std::string> env;
    std::string names;
  };
  std::vector<Case> cases = {
      {{{"RANK", "0"}}, "WORLD_SIZE is not set"},
      {{{"RANK", "2"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "127.0.0.1"}, {"MASTER_PORT", "29500"}}, "RANK=\"2\""},
      {{{"RANK", "0"}, {"WORLD_SIZE", "two"}}, "WORLD_SIZE=\"two\""},
      {{{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_PORT", "29500"}}, "MASTER_ADDR is not set"},
      {{{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "127.0.0.1"}, {"MASTER_PORT", "0"}}, "MASTER_PORT=\"0\""},
      {{{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "2"}, {"MASTER_ADDR", "127.0.0.1"}}, "MASTER_PORT is not set"},
  };
  // A port another process listens on: rank 0 cannot serve the store there, and says so at once
  // (it was reported as a join that timed out).
  const auto [holder, held] = loopback_socket(true);
  cases.push_back({rank_env(0, 2, held), "MASTER_PORT=\"" + std::to_string(held) + "\": the port is in use"});
  for (const auto& c : cases) {
    Process p(split(train_args("run")), c.env, dir_.path("err.txt"));
    EXPECT_EQ(p.wait(), 2);
    const std::string err = p.err();
    EXPECT_NE(err.find("dqe: error: environment variable " + c.names), std::string::npos) << err;
    EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
  }
  ::close(holder);
}

}  // namespace
}  // namespace dqe
