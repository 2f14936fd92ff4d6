// dqe serve, started as its own process on 127.0.0.1 and a free port, spoken to with a real HTTP
// client: every route, tokens, bad requests, /v1/score against `dqe score`, v2 against /v1/score,
// the metrics against promtool, reload under load, the drain on SIGTERM, a slow client.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <future>
#include <thread>

#include <httplib.h>

#include "integration/run_util.h"
#include "test_util.h"

namespace dqe {
namespace {

using json = nlohmann::json;

int sh(const std::string& cmd) {
  const int status = std::system(cmd.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// The token's digest by another program than the server's OpenSSL call: sha256sum.
std::string sha256sum(const test::TempDir& dir, const std::string& token) {
  const std::string out = dir.path("digest");
  EXPECT_EQ(sh("printf %s '" + token + "' | sha256sum | cut -c1-64 > " + out), 0);
  std::string hex = test::read_text(out);
  while (!hex.empty() && hex.back() == '\n') hex.pop_back();
  return hex;
}

// A `dqe serve` child process; stopped with SIGTERM when it goes away.
class ServerProcess {
 public:
  ServerProcess(const test::TempDir& dir, const std::string& name, const std::string& args) {
    port_file_ = dir.path(name + ".port");
    err_ = dir.path(name + ".err");
    std::remove(port_file_.c_str());
    pid_ = fork();
    if (pid_ == 0) {
      const std::string cmd = "exec " + std::string(DQE_BINARY) + " serve --host 127.0.0.1 --port 0 --port-file " +
                              port_file_ + " " + args + " 2>" + err_ + " </dev/null";
      execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    while (std::chrono::steady_clock::now() < deadline) {
      std::ifstream in(port_file_);
      if (in >> port_) return;
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ADD_FAILURE() << "dqe serve did not listen: " << test::read_text(err_);
  }
  ~ServerProcess() {
    if (pid_ > 0) stop();
  }
  int port() const { return port_; }
  pid_t pid() const { return pid_; }
  std::string stderr_text() const { return test::read_text(err_); }
  // SIGTERM, then the exit code.
  int stop() {
    kill(pid_, SIGTERM);
    return wait();
  }
  // The exit code, once the process ends.
  int wait() {
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  httplib::Client client(const std::string& token = "") const {
    httplib::Client c("127.0.0.1", port_);
    c.set_read_timeout(60, 0);
    if (!token.empty()) c.set_bearer_token_auth(token.c_str());
    return c;
  }

 private:
  std::string port_file_, err_;
  pid_t pid_ = -1;
  int port_ = 0;
};

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  size_t begin = 0;
  for (size_t end; (end = text.find('\n', begin)) != std::string::npos; begin = end + 1)
    lines.push_back(text.substr(begin, end - begin));
  return lines;
}

// A plain TCP connection to 127.0.0.1:port, for requests no HTTP client would send; -1 on failure.
int connect_raw(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// Everything the server sends until it closes (or 10 s pass).
std::string read_until_closed(int fd) {
  timeval wait{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &wait, sizeof wait);
  char buf[512];
  std::string answer;
  for (ssize_t got; (got = recv(fd, buf, sizeof buf, 0)) > 0;) answer.append(buf, static_cast<size_t>(got));
  return answer;
}

class ServeTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new test::TempDir();
    test::write_toy_set(path("train.jsonl"), 96, 1);
    test::write_toy_set(path("logs.jsonl"), 64, 3);
    ASSERT_EQ(sh(std::string(DQE_BINARY) + " train --train " + path("train.jsonl") + " --dev " + path("train.jsonl") +
                 " --out " + path("run") +
                 " --layers 1 --hidden 32 --heads 2 --intermediate 64 --max-len 24 --epochs 1 --batch-size 16"
                 " --threads 1 --precision fp32 >/dev/null 2>" + path("train.err")),
              0)
        << test::read_text(path("train.err"));
    std::ofstream(path("tokens")) << "# test clients\nsearch " << sha256sum(*dir_, "score-token") << " score\nops "
                                  << sha256sum(*dir_, "admin-token") << " admin\n";
    server_ = new ServerProcess(*dir_, "main",
                                "--model quality=" + path("run") + " --threads 1 --precision fp32 --detect --auth-tokens " +
                                    path("tokens") + " --access-log " + path("access.jsonl") +
                                    " --log-payloads --max-batch 8 --max-delay-ms 2 --max-lines 200 --queue-lines 400"
                                    " --max-body-bytes 65536 --io-timeout 1");
  }
  static void TearDownTestSuite() {
    delete server_;
    delete dir_;
  }
  static std::string path(const std::string& name) { return dir_->path(name); }

  static test::TempDir* dir_;
  static ServerProcess* server_;
};
test::TempDir* ServeTest::dir_ = nullptr;
ServerProcess* ServeTest::server_ = nullptr;

TEST_F(ServeTest, HealthAndMetadataRoutesAnswer) {
  httplib::Client open = server_->client();
  auto live = open.Get("/v2/health/live");
  ASSERT_TRUE(live);
  EXPECT_EQ(live->status, 200);
  auto ready = open.Get("/v2/health/ready");
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->status, 200) << "probes carry no token";
  auto meta = open.Get("/v2");
  ASSERT_TRUE(meta);
  EXPECT_EQ(json::parse(meta->body)["name"], "dqe");
  auto model = server_->client("score-token").Get("/v2/models/quality");
  ASSERT_TRUE(model);
  ASSERT_EQ(model->status, 200) << model->body;
  const json m = json::parse(model->body);
  EXPECT_EQ(m["name"], "quality");
  EXPECT_EQ(m["inputs"][0]["name"], "query");
  EXPECT_EQ(m["outputs"][0]["name"], "score");
  auto versioned = server_->client("score-token").Get("/v2/models/quality/versions/" + m["versions"][0].get<std::string>());
  ASSERT_TRUE(versioned);
  EXPECT_EQ(versioned->status, 200);
  auto other = server_->client("score-token").Get("/v2/models/other/ready");
  ASSERT_TRUE(other);
  EXPECT_EQ(other->status, 404);
  EXPECT_NE(json::parse(other->body)["error"].get<std::string>().find("unknown model \"other\""), std::string::npos);
  auto nowhere = open.Get("/v3/nothing");
  ASSERT_TRUE(nowhere);
  EXPECT_EQ(nowhere->status, 404);
  EXPECT_TRUE(json::parse(nowhere->body).contains("error"));
}

TEST_F(ServeTest, TokensAndRolesGuardTheRoutes) {
  const std::string line = R"({"query": "drill", "title": "cordless drill"})" "\n";
  auto none = server_->client().Post("/v1/score", line, "application/x-ndjson");
  ASSERT_TRUE(none);
  EXPECT_EQ(none->status, 401);
  EXPECT_EQ(none->get_header_value("WWW-Authenticate"), "Bearer");
  auto wrong = server_->client("guess").Post("/v1/score", line, "application/x-ndjson");
  ASSERT_TRUE(wrong);
  EXPECT_EQ(wrong->status, 401);
  auto scorer = server_->client("score-token").Post("/admin/reload", "", "text/plain");
  ASSERT_TRUE(scorer);
  EXPECT_EQ(scorer->status, 403);
  EXPECT_NE(scorer->body.find("client \\\"search\\\" (role score)"), std::string::npos) << scorer->body;
  auto ok = server_->client("score-token").Post("/v1/score", line, "application/x-ndjson");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200) << ok->body;
  auto metrics = server_->client().Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_EQ(metrics->status, 200) << "open without --metrics-auth";
}

// /v1/score answers what `dqe score` writes, from requests sent at once (so batched together).
TEST_F(ServeTest, ScoreRouteEqualsTheScoreCommand) {
  ASSERT_EQ(sh(std::string(DQE_BINARY) + " score --model " + path("run") + " --input " + path("logs.jsonl") +
               " --output " + path("scored.jsonl") + " --threads 1 --precision fp32 --detect 2>" + path("score.err")),
            0)
      << test::read_text(path("score.err"));
  const std::vector<std::string> input = lines_of(test::read_text(path("logs.jsonl")));
  const std::vector<std::string> expected = lines_of(test::read_text(path("scored.jsonl")));
  ASSERT_EQ(input.size(), expected.size());
  constexpr size_t kRequests = 8;
  std::vector<std::future<std::string>> answers;
  for (size_t k = 0; k < kRequests; ++k)
    answers.push_back(std::async(std::launch::async, [&, k] {
      std::string body;
      for (size_t i = k; i < input.size(); i += kRequests) body += input[i] + "\n";
      auto res = server_->client("score-token").Post("/v1/score", body, "application/x-ndjson");
      if (!res || res->status != 200) return std::string("failed: ") + (res ? res->body : "no answer");
      return res->body;
    }));
  for (size_t k = 0; k < kRequests; ++k) {
    const std::vector<std::string> got = lines_of(answers[k].get());
    size_t j = 0;
    for (size_t i = k; i < input.size(); i += kRequests, ++j) {
      ASSERT_LT(j, got.size()) << "request " << k;
      json a = json::parse(got[j]), b = json::parse(expected[i]);
      EXPECT_NEAR(a["score"].get<double>(), b["score"].get<double>(), 1e-5) << got[j];
      a.erase("score");
      b.erase("score");
      EXPECT_EQ(a, b) << "every other field as score writes it";
      // The input's bytes are kept: the line starts as the input line did, less its closing brace.
      EXPECT_EQ(got[j].substr(0, input[i].size() - 1), input[i].substr(0, input[i].size() - 1));
    }
  }
  auto filtered = server_->client("score-token").Post("/v1/score?threshold=1e9&filter=true&fields=score,keep",
                                                      input[0] + "\n", "application/x-ndjson");
  ASSERT_TRUE(filtered);
  EXPECT_EQ(filtered->status, 200);
  EXPECT_EQ(filtered->body, "") << "filtered out, as score --threshold --filter";
  auto no_detect = server_->client("score-token").Post("/v1/score?detect=0", input[0] + "\n", "application/x-ndjson");
  ASSERT_TRUE(no_detect);
  EXPECT_FALSE(json::parse(no_detect->body).contains("suspect"));
}

TEST_F(ServeTest, V2InferGivesTheScoreRoutesScores) {
  const std::vector<std::string> input = lines_of(test::read_text(path("logs.jsonl")));
  json request = {{"id", "42"}, {"parameters", {{"detect", true}}}, {"inputs", json::array()}};
  std::vector<std::string> queries, titles;
  std::string body;
  for (size_t i = 0; i < 5; ++i) {
    const json line = json::parse(input[i]);
    queries.push_back(line["query"]);
    titles.push_back(line["title"]);
    body += json{{"query", line["query"]}, {"title", line["title"]}}.dump() + "\n";
  }
  request["inputs"].push_back({{"name", "query"}, {"shape", {5}}, {"datatype", "BYTES"}, {"data", queries}});
  request["inputs"].push_back({{"name", "title"}, {"shape", {5}}, {"datatype", "BYTES"}, {"data", titles}});
  auto res = server_->client("score-token").Post("/v2/models/quality/infer", request.dump(), "application/json");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  const json out = json::parse(res->body);
  EXPECT_EQ(out["id"], "42");
  EXPECT_EQ(out["model_name"], "quality");
  const json& score = out["outputs"][0];
  EXPECT_EQ(score["datatype"], "FP64");
  ASSERT_EQ(score["data"].size(), 5u);
  EXPECT_EQ(out["outputs"][1]["name"], "suspect");
  auto plain = server_->client("score-token").Post("/v1/score", body, "application/x-ndjson");
  ASSERT_TRUE(plain);
  const std::vector<std::string> lines = lines_of(plain->body);
  ASSERT_EQ(lines.size(), 5u);
  for (size_t i = 0; i < 5; ++i)
    EXPECT_NEAR(score["data"][i].get<double>(), json::parse(lines[i])["score"].get<double>(), 1e-5);
}

// Each bad request gets its status and one line, and the server goes on serving.
TEST_F(ServeTest, BadRequestsGetAStatusAndTheServerKeepsServing) {
  httplib::Client c = server_->client("score-token");
  const std::string good = R"({"query": "drill", "title": "cordless drill"})";
  struct Case {
    std::string route, body;
    int status;
    std::string words;
  };
  std::string many;
  for (int i = 0; i < 201; ++i) many += good + "\n";
  const std::vector<Case> cases = {
      {"/v1/score", good + "\n{\"query\": \"x\"\n", 400, "request:2:"},
      {"/v1/score", good + "\n{\"title\": \"no query\"}\n", 400, "request:2:"},
      {"/v1/score", "\n\n", 400, "no line to score"},
      {"/v1/score", many, 413, "at most 200"},
      {"/v1/score", std::string(70000, 'x'), 413, "--max-body-bytes"},
      {"/v1/score?threshold=abc", good, 400, "?threshold=abc"},
      {"/v1/score?fields=margin", good, 400, "unknown field \\\"margin\\\""},
      {"/v1/score?filter=true", good, 400, "?filter needs ?threshold"},
      {"/v2/models/quality/infer", "{", 400, "not JSON"},
      {"/v2/models/quality/infer", R"({"inputs": [{"name": "query", "datatype": "BYTES", "shape": [1], "data": ["a"]}]})",
       400, "input \\\"title\\\" is required"},
      {"/v2/models/other/infer", "{}", 404, "unknown model"},
  };
  for (const Case& k : cases) {
    auto res = c.Post(k.route, k.body, "application/json");
    ASSERT_TRUE(res) << k.route;
    EXPECT_EQ(res->status, k.status) << k.route << " " << res->body;
    EXPECT_NE(res->body.find(k.words), std::string::npos) << res->body;
    EXPECT_EQ(res->body.find('\n'), std::string::npos) << "one line";
  }
  auto after = c.Post("/v1/score", good + "\n", "application/x-ndjson");
  ASSERT_TRUE(after);
  EXPECT_EQ(after->status, 200);
  // The raw outputs, through the batcher's slices, as score gives them.
  auto logits = c.Post("/v1/score?fields=score,logits", good + "\n", "application/x-ndjson");
  ASSERT_TRUE(logits);
  EXPECT_EQ(logits->status, 200) << logits->body;
  const auto line = nlohmann::json::parse(logits->body);
  ASSERT_EQ(line["logits"].size(), 1u) << logits->body;
  EXPECT_TRUE(line.contains("score")) << logits->body;
}

// A client that sends part of a request and stops is dropped after --io-timeout, while others
// are served meanwhile.
TEST_F(ServeTest, ASlowClientIsDropped) {
  const int fd = connect_raw(server_->port());
  ASSERT_GE(fd, 0);
  const std::string part = "POST /v1/score HTTP/1.1\r\nHost: x\r\n";
  ASSERT_EQ(send(fd, part.data(), part.size(), 0), static_cast<ssize_t>(part.size()));
  auto live = server_->client().Get("/v2/health/live");
  ASSERT_TRUE(live);
  EXPECT_EQ(live->status, 200);
  const auto t0 = std::chrono::steady_clock::now();
  const std::string answer = read_until_closed(fd);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  close(fd);
  EXPECT_LT(seconds, 4) << "dropped after about --io-timeout 1";
  // httplib answers the request it could not read whole with 400, then closes.
  EXPECT_TRUE(answer.empty() || answer.rfind("HTTP/1.1 400", 0) == 0) << answer;
}

// A body cut short (the client closes before sending what Content-Length said) is dropped, and
// the next request is served.
TEST_F(ServeTest, ABodyCutShortIsDropped) {
  const int fd = connect_raw(server_->port());
  ASSERT_GE(fd, 0);
  const std::string part =
      "POST /v1/score HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer score-token\r\n"
      "Content-Type: application/x-ndjson\r\nContent-Length: 5000\r\n\r\n{\"query\": \"dr";
  ASSERT_EQ(send(fd, part.data(), part.size(), 0), static_cast<ssize_t>(part.size()));
  shutdown(fd, SHUT_WR);
  const std::string answer = read_until_closed(fd);
  close(fd);
  EXPECT_EQ(answer.find("HTTP/1.1 200"), std::string::npos) << "nothing scored from half a body: " << answer;
  auto after = server_->client("score-token")
                   .Post("/v1/score", R"({"query": "drill", "title": "cordless drill"})" "\n", "application/x-ndjson");
  ASSERT_TRUE(after);
  EXPECT_EQ(after->status, 200);
}

// /metrics in Prometheus' text format, as promtool reads it, with the counts of what was served.
TEST_F(ServeTest, MetricsPassPromtoolAndCountTheTraffic) {
  httplib::Client c = server_->client("score-token");
  std::string body;
  for (const std::string& l : lines_of(test::read_text(path("logs.jsonl")))) body += l + "\n";
  auto scored = c.Post("/v1/score", body, "application/x-ndjson");  // 64 lines
  ASSERT_TRUE(scored);
  ASSERT_EQ(scored->status, 200);
  for (int i = 0; i < 1; ++i) c.Post("/v1/score", body, "application/x-ndjson");  // 128 for the drift gauge
  auto m = server_->client().Get("/metrics");
  ASSERT_TRUE(m);
  ASSERT_EQ(m->status, 200);
  EXPECT_NE(m->get_header_value("Content-Type").find("text/plain; version=0.0.4"), std::string::npos);
  const std::string& text = m->body;
  EXPECT_NE(text.find("dqe_requests_total{route=\"score\",code=\"200\"}"), std::string::npos);
  EXPECT_NE(text.find("dqe_ready 1"), std::string::npos);
  EXPECT_NE(text.find("dqe_model_info{model=\"quality\""), std::string::npos);
  EXPECT_NE(text.find("dqe_batch_size_count"), std::string::npos);
  const std::string psi_sample = "\ndqe_score_psi{model=\"quality\"} ";
  const size_t psi = text.find(psi_sample);
  ASSERT_NE(psi, std::string::npos) << "the model has dev scores";
  EXPECT_NE(text.substr(psi + psi_sample.size(), 3), "NaN") << "128 lines are enough for the drift gauge";
  std::ofstream(path("metrics.txt")) << text;
  if (sh("command -v promtool >/dev/null") != 0) GTEST_SKIP() << "promtool (Debian's prometheus) is not installed";
  EXPECT_EQ(sh("promtool check metrics < " + path("metrics.txt") + " > " + path("promtool.out") + " 2>&1"), 0)
      << test::read_text(path("promtool.out"));
}

TEST_F(ServeTest, TheAccessLogNamesClientsAndMasksPayloads) {
  auto res = server_->client("score-token")
                 .Post("/v1/score", R"({"query": "call 555 010 2030", "title": "jo@shop.com 2x4"})" "\n",
                       "application/x-ndjson");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // the log line follows the answer
  const std::vector<json> entries = test::read_jsonl_file(path("access.jsonl"));
  ASSERT_FALSE(entries.empty());
  const json& last = entries.back();
  EXPECT_EQ(last["client"], "search");
  EXPECT_EQ(last["route"], "score");
  EXPECT_EQ(last["status"], 200);
  EXPECT_EQ(last["lines"], 1);
  const std::string payload = last["payload"];
  EXPECT_EQ(payload.find("555"), std::string::npos) << payload;
  EXPECT_EQ(payload.find("jo@"), std::string::npos) << payload;
  EXPECT_NE(payload.find("<phone>"), std::string::npos) << payload;
  EXPECT_NE(payload.find("<email>"), std::string::npos) << payload;
  const std::string log = test::read_text(path("access.jsonl"));
  EXPECT_EQ(log.find("score-token"), std::string::npos) << "tokens are never logged";
}

// Reloads (SIGHUP and /admin/reload) while clients keep scoring: no request fails. Then SIGTERM
// with a request in flight: it is answered, and the server exits 0.
TEST_F(ServeTest, ReloadUnderLoadDropsNothingAndSigtermDrains) {
  std::ofstream(path("tokens2")) << "ops " << sha256sum(*dir_, "admin-token") << " admin\n";
  ServerProcess server(*dir_, "reload",
                       "--model " + path("run") + " --threads 1 --precision fp32 --auth-tokens " + path("tokens2") +
                           " --max-lines 5000 --queue-lines 10000 --drain-timeout 60");
  const std::string line = R"({"query": "drill", "title": "cordless drill"})" "\n";
  std::atomic<bool> done{false};
  std::atomic<int> ok{0}, failed{0};
  std::vector<std::thread> clients;
  for (int k = 0; k < 3; ++k)
    clients.emplace_back([&] {
      httplib::Client c = server.client("admin-token");
      while (!done) {
        auto res = c.Post("/v1/score", line, "application/x-ndjson");
        (res && res->status == 200 ? ok : failed)++;
      }
    });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  kill(server.pid(), SIGHUP);
  auto reload = server.client("admin-token").Post("/admin/reload", "", "text/plain");
  ASSERT_TRUE(reload);
  EXPECT_EQ(reload->status, 200) << reload->body;
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  done = true;
  for (auto& t : clients) t.join();
  EXPECT_GT(ok.load(), 10);
  EXPECT_EQ(failed.load(), 0);
  auto metrics = server.client().Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_NE(metrics->body.find("dqe_reloads_total{result=\"ok\"} 2"), std::string::npos) << "SIGHUP and the route";

  // A reload that fails (the model gone) keeps serving the old one.
  ASSERT_EQ(sh("mv " + path("run") + " " + path("run.moved")), 0);
  auto failed_reload = server.client("admin-token").Post("/admin/reload", "", "text/plain");
  ASSERT_EQ(sh("mv " + path("run.moved") + " " + path("run")), 0);
  ASSERT_TRUE(failed_reload);
  EXPECT_EQ(failed_reload->status, 500);
  EXPECT_NE(failed_reload->body.find("reload failed, still serving"), std::string::npos) << failed_reload->body;
  auto still = server.client("admin-token").Post("/v1/score", line, "application/x-ndjson");
  ASSERT_TRUE(still);
  EXPECT_EQ(still->status, 200);

  // SIGTERM while a large request is being scored: it is answered whole.
  std::string big;
  for (int i = 0; i < 3000; ++i) big += line;
  auto in_flight = std::async(std::launch::async, [&] {
    return server.client("admin-token").Post("/v1/score", big, "application/x-ndjson");
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  kill(server.pid(), SIGTERM);
  auto res = in_flight.get();
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(lines_of(res->body).size(), 3000u);
  EXPECT_EQ(server.wait(), 0) << server.stderr_text();
  EXPECT_NE(server.stderr_text().find("dqe serve: listening on http://127.0.0.1:"), std::string::npos);
}

// HTTPS with --tls-cert/--tls-key (a certificate made here by the openssl command), and
// --metrics-auth closing /metrics.
TEST_F(ServeTest, TlsServesHttpsAndMetricsAuthClosesMetrics) {
  if (sh("command -v openssl >/dev/null") != 0) GTEST_SKIP() << "the openssl command is not installed";
  ASSERT_EQ(sh("openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost -keyout " + path("key.pem") +
               " -out " + path("cert.pem") + " >/dev/null 2>&1"),
            0);
  ServerProcess server(*dir_, "tls",
                       "--model " + path("run") + " --threads 1 --tls-cert " + path("cert.pem") + " --tls-key " +
                           path("key.pem") + " --auth-tokens " + path("tokens") + " --metrics-auth");
  httplib::SSLClient tls("127.0.0.1", server.port());
  tls.enable_server_certificate_verification(false);
  auto ready = tls.Get("/v2/health/ready");
  ASSERT_TRUE(ready) << "no HTTPS answer: " << server.stderr_text();
  EXPECT_EQ(ready->status, 200);
  auto closed = tls.Get("/metrics");
  ASSERT_TRUE(closed);
  EXPECT_EQ(closed->status, 401);
  tls.set_bearer_token_auth("score-token");
  auto metrics = tls.Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_EQ(metrics->status, 200);
  EXPECT_FALSE(server.client().Get("/v2/health/ready")) << "plain HTTP gets no answer from an HTTPS port";
  EXPECT_NE(server.stderr_text().find("listening on https://"), std::string::npos);
  // A port in use is refused in one line, not shared.
  test::TempDir other;
  EXPECT_EQ(sh(std::string(DQE_BINARY) + " serve --model " + path("run") + " --port " + std::to_string(server.port()) +
               " 2>" + other.path("err")),
            1);
  EXPECT_NE(test::read_text(other.path("err")).find("cannot listen there"), std::string::npos)
      << test::read_text(other.path("err"));
}

}  // namespace
}  // namespace dqe
