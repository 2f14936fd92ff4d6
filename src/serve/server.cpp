#include "dqe/server.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <memory>
#include <mutex>
#include <sstream>
#include <thread>

#include <httplib.h>

#include "base/checks.h"
#include "base/hash.h"
#include "base/log.h"
#include "dqe/errors.h"
#include "dqe/session.h"
#include "infer/detect.h"
#include "infer/predictor.h"
#include "io/output_file.h"
#include "model/model_dir.h"
#include "serve/auth.h"
#include "serve/batcher.h"
#include "serve/mask.h"
#include "serve/metrics.h"
#include "serve/v2.h"

namespace dqe {

void ServeConfig::validate() const {
  check_knobs(*this);
  check_compute_flags(threads, precision, device);
  if (detect_fpr && !detect) throw ConfigError("--detect-fpr needs --detect");
  if (detect && models.size() > 1)
    throw ConfigError("--detect reads one model's detection statistics; give a single --model");
  if (tls_cert.empty() != tls_key.empty()) throw ConfigError("--tls-cert and --tls-key go together");
  if (metrics_auth && auth_tokens.empty()) throw ConfigError("--metrics-auth needs --auth-tokens");
  if (log_payloads && access_log.empty()) throw ConfigError("--log-payloads needs --access-log");
  if (max_lines > queue_lines)
    throw ConfigError("--max-lines (" + std::to_string(max_lines) + ") exceeds --queue-lines (" +
                      std::to_string(queue_lines) + "): such a request could never be queued");
}

namespace service {
namespace {

using Clock = std::chrono::steady_clock;
using json = nlohmann::json;
using ojson = nlohmann::ordered_json;

// What is served: the session and what the routes say about it. A reload builds a new one.
struct Served {
  std::shared_ptr<const InferenceSession> session;
  std::string name, version, task;
  V2Inputs inputs;
  double load_seconds = 0;
  // The label each record's scores are counted under: its route, or the model's name.
  bool routed = false;
  std::map<std::string, ScoreReference> references;
};

// A digest of what the models' directories hold (names, sizes, modification times), so that a
// replaced model reports another version.
std::string version_of(const Ensemble& ensemble) {
  detail::Fnv1a h;
  for (const LoadedModel& m : ensemble.members) {
    for (const std::string& dir : {m.dir, m.base_dir}) {
      if (dir.empty()) continue;
      h.add(dir);
      std::error_code ec;
      std::vector<std::pair<std::string, std::pair<uintmax_t, int64_t>>> files;
      for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
        if (!entry.is_regular_file(ec)) continue;
        struct stat st {};
        if (::stat(entry.path().c_str(), &st) != 0) continue;
        files.push_back({entry.path().filename().string(), {static_cast<uintmax_t>(st.st_size),
                                                            static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 +
                                                                st.st_mtim.tv_nsec}});
      }
      std::sort(files.begin(), files.end());
      for (const auto& [name, meta] : files) {
        h.add(name);
        h.add(static_cast<double>(meta.first));
        h.add(static_cast<double>(meta.second));
      }
    }
  }
  return h.hex();
}

Served load_served(const ServeConfig& config, const RunContext& ctx) {
  const auto t0 = Clock::now();
  SessionConfig sc;
  sc.models = config.models;
  sc.base = config.base;
  sc.max_len = config.max_len;
  sc.batch_size = std::min(config.forward_batch, config.max_batch);
  sc.fields = config.fields;
  sc.route_field = config.adapter_field;
  sc.detect = config.detect;
  sc.detect_fpr = config.detect_fpr;
  Served s;
  auto session = std::make_shared<const InferenceSession>(sc, ctx);
  const Ensemble& e = session->ensemble();
  s.name = config.name.empty() ? parse_model_arg(config.models.front()).name : config.name;
  s.version = version_of(e);
  s.task = task_name(session->task().task);
  s.inputs = v2_inputs(session->read_fields(), session->route_field());
  s.routed = !session->route_field().empty();
  if (s.routed) {
    for (size_t i = 0; i < e.members.size(); ++i) {
      const std::string& route = e.names[i];
      const bool alone = std::count(e.names.begin(), e.names.end(), route) == 1;
      if (alone && e.members[i].score_reference) s.references.emplace(route, *e.members[i].score_reference);
    }
  } else if (e.members.size() == 1 && e.members.front().score_reference) {
    s.references.emplace(s.name, *e.members.front().score_reference);
  }
  s.session = std::move(session);
  s.load_seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  return s;
}

std::vector<double> score_buckets(const Served& s) {
  if (s.references.size() == 1 && !s.references.begin()->second.edges.empty())
    return s.references.begin()->second.edges;
  return {-2, -1, 0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1, 1.5, 2, 2.5, 3, 4, 5};
}

// Appends one JSON line a request; opened once, O_APPEND, so that lines of rotating writers
// never interleave mid-line.
class AccessLog {
 public:
  explicit AccessLog(const std::string& path) : path_(path) {
    fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (fd_ < 0) throw IoError(path + ": cannot open the access log (" + std::strerror(errno) + ")");
  }
  ~AccessLog() {
    if (fd_ >= 0) ::close(fd_);
  }
  void write(const ojson& entry) {
    const std::string line = entry.dump(-1, ' ', false, ojson::error_handler_t::replace) + "\n";
    std::lock_guard<std::mutex> lock(mutex_);
    if (::write(fd_, line.data(), line.size()) != static_cast<ssize_t>(line.size()) && !warned_) {
      warned_ = true;
      detail::logger("serve")->warn("{}: cannot write the access log ({})", path_, std::strerror(errno));
    }
  }

 private:
  std::string path_;
  int fd_ = -1;
  std::mutex mutex_;
  bool warned_ = false;
};

std::string utc_now() {
  const auto now = std::chrono::system_clock::now();
  const std::time_t t = std::chrono::system_clock::to_time_t(now);
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[80];  // room for any int in every field: gcc checks the worst case
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms));
  return buf;
}

// What a request's handling leaves for the logger that runs after its answer is written
// (one connection thread serves one request at a time).
struct RequestNote {
  Clock::time_point start;
  bool started = false;
  std::string route = "other", client = "-";
  int64_t lines = 0;
  bool arriving = false;  // counted in Batcher::arriving
};
thread_local RequestNote t_note;

void set_error(httplib::Response& res, int status, const std::string& message) {
  res.status = status;
  res.set_content(ojson{{"error", message}}.dump(-1, ' ', false, ojson::error_handler_t::replace), "application/json");
}

void set_json(httplib::Response& res, const ojson& body) {
  res.set_content(body.dump(-1, ' ', false, ojson::error_handler_t::replace), "application/json");
}

// "true"/"1" and "false"/"0"; throws BadRequest naming the parameter otherwise.
bool bool_param(const httplib::Request& req, const std::string& key, bool fallback) {
  if (!req.has_param(key)) return fallback;
  const std::string v = req.get_param_value(key);
  if (v == "1" || v == "true") return true;
  if (v == "0" || v == "false") return false;
  throw BadRequest(400, "?" + key + "=" + v + ": expected true or false");
}

class Server {
 public:
  Server(const ServeConfig& config, const ServeSignals& signals)
      : config_(config), signals_(signals), log_(detail::logger("serve")),
        ctx_(make_run_context(config.device, config.precision, config.threads)) {
    log_->info(ctx_.describe());
    if (!config.auth_tokens.empty()) tokens_ = std::make_shared<const TokenTable>(TokenTable::read(config.auth_tokens));
    if (!config.access_log.empty()) access_log_ = std::make_unique<AccessLog>(config.access_log);
    auto served = std::make_shared<const Served>(load_served(config, ctx_));
    log_->info("model \"{}\" version {} ({}) loaded in {:.1f} s", served->name, served->version, served->task,
               served->load_seconds);
    if (const std::string sharing = served->session->ensemble().sharing_summary(); !sharing.empty())
      log_->info(sharing);
    metrics_ = std::make_unique<Metrics>(score_buckets(*served), config.queue_lines);
    publish(*served);
    served_ = served;
    batcher_ = std::make_unique<Batcher>(served->session, config.max_batch,
                                         std::chrono::microseconds(static_cast<int64_t>(config.max_delay_ms * 1000)),
                                         config.queue_lines, config.normalize, *metrics_);
    if (!config.tls_cert.empty()) {
      http_ = std::make_unique<httplib::SSLServer>(config.tls_cert.c_str(), config.tls_key.c_str());
      if (!http_->is_valid())
        throw ConfigError("--tls-cert " + config.tls_cert + " / --tls-key " + config.tls_key +
                          ": cannot load the certificate and key (PEM files that belong together?)");
    } else {
      http_ = std::make_unique<httplib::Server>();
    }
    configure();
  }

  void run() {
    httplib::Server& http = *http_;
    int port = static_cast<int>(config_.port);
    if (port == 0) {
      port = http.bind_to_any_port(config_.host);
    } else if (!http.bind_to_port(config_.host, port)) {
      port = -1;
    }
    if (port <= 0)
      throw IoError("--host " + config_.host + " --port " + std::to_string(config_.port) +
                    ": cannot listen there (the port is taken, or the address is not this machine's)");
    if (!config_.port_file.empty()) {
      detail::OutputFile out(config_.port_file);
      out.stream() << port << '\n';
      out.commit();
    }
    std::thread listener([&] { http.listen_after_bind(); });
    ready_ = true;
    metrics_->set_ready(true);
    if (signals_.on_listening) signals_.on_listening(config_.host, port, !config_.tls_cert.empty());
    int reloads_seen = signals_.reloads ? signals_.reloads->load() : 0;
    while (!signals_.stop.requested()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      if (signals_.reloads && signals_.reloads->load() != reloads_seen) {
        reloads_seen = signals_.reloads->load();
        std::string message;
        reload(message);
      }
    }
    // Drain: not ready at once (probes take this replica out), requests in flight finish.
    ready_ = false;
    metrics_->set_ready(false);
    log_->info("stopping: waiting up to {} s for {} request(s) in flight", config_.drain_timeout, in_flight_.load());
    const auto deadline = Clock::now() + std::chrono::duration<double>(config_.drain_timeout);
    while (in_flight_.load() > 0 && Clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    if (in_flight_.load() > 0) log_->warn("drain timeout: {} request(s) still in flight are cut off", in_flight_.load());
    http.stop();
    listener.join();
    batcher_->stop();
    log_->info("stopped");
  }

 private:
  void publish(const Served& s) {
    std::map<std::string, DriftWindow> windows;
    for (const auto& [label, reference] : s.references) windows.emplace(label, DriftWindow(reference, config_.drift_window));
    metrics_->set_drift(std::move(windows));
    metrics_->set_models({{s.name, s.version, s.task, s.load_seconds}});
  }

  std::shared_ptr<const Served> served() const {
    std::lock_guard<std::mutex> lock(served_mutex_);
    return served_;
  }

  // Loads the models again beside the ones serving, and swaps when ready; a failed load keeps
  // the old ones. Returns whether it swapped; message says what happened.
  bool reload(std::string& message) {
    std::lock_guard<std::mutex> one_at_a_time(reload_mutex_);
    log_->info("reloading");
    try {
      std::shared_ptr<const TokenTable> tokens;
      if (!config_.auth_tokens.empty()) tokens = std::make_shared<const TokenTable>(TokenTable::read(config_.auth_tokens));
      auto fresh = std::make_shared<const Served>(load_served(config_, ctx_));
      {
        std::lock_guard<std::mutex> lock(served_mutex_);
        served_ = fresh;
        if (tokens) tokens_ = tokens;
      }
      batcher_->swap(fresh->session);
      publish(*fresh);
      metrics_->reloaded(true);
      message = "reloaded \"" + fresh->name + "\" version " + fresh->version;
      log_->info("{} in {:.1f} s", message, fresh->load_seconds);
      return true;
    } catch (const std::exception& e) {
      std::string what = e.what();
      if (const auto nl = what.find('\n'); nl != std::string::npos) what.resize(nl);
      metrics_->reloaded(false);
      message = "reload failed, still serving version " + served()->version + ": " + what;
      log_->error(message);
      return false;
    }
  }

  std::shared_ptr<const TokenTable> tokens() const {
    std::lock_guard<std::mutex> lock(served_mutex_);
    return tokens_;
  }

  // Runs a route's handler: authorisation, in-flight count, errors as a status and one line.
  // needed: the role the route needs (nullopt: open to all, as health probes carry no token).
  void handle(const char* route, std::optional<Role> needed, const httplib::Request& req, httplib::Response& res,
              const std::function<void()>& body) {
    t_note.route = route;
    ++in_flight_;
    metrics_->in_flight(1);
    try {
      if (needed && tokens()) {
        const std::shared_ptr<const TokenTable> table = tokens();
        const std::optional<std::string> token = bearer_token(req.get_header_value("Authorization"));
        const Client* client = token ? table->find(*token) : nullptr;
        if (!client) {
          res.set_header("WWW-Authenticate", "Bearer");
          throw BadRequest(401, token ? "the token is not valid" : "this route needs Authorization: Bearer TOKEN");
        }
        t_note.client = client->name;
        if (!allows(client->role, *needed))
          throw BadRequest(403, "client \"" + client->name + "\" (role " + role_name(client->role) + ") may not call " +
                                    req.path);
      }
      body();
    } catch (const BadRequest& e) {
      set_error(res, e.status(), e.what());
    } catch (const QueueFull& e) {
      res.set_header("Retry-After", "1");
      set_error(res, 503, std::string("busy: ") + e.what());
    } catch (const DataError& e) {
      set_error(res, 400, e.what());
    } catch (const ConfigError& e) {
      set_error(res, 400, e.what());
    } catch (const std::exception& e) {
      std::string what = e.what();
      if (const auto nl = what.find('\n'); nl != std::string::npos) what.resize(nl);
      log_->error("{} {}: {}", req.method, req.path, what);
      set_error(res, 500, what);
    }
    metrics_->in_flight(-1);
    --in_flight_;
  }

  void require_ready() const {
    if (!ready_) throw BadRequest(503, "the server is not ready (starting or stopping)");
  }

  const Served& model_named(const std::shared_ptr<const Served>& s, const std::string& name) const {
    if (name != s->name) throw BadRequest(404, "unknown model \"" + name + "\" (this server serves \"" + s->name + "\")");
    return *s;
  }

  // Records of JSONL text through the batcher; counts the scores (and suspects) served.
  Outcome infer(const Served& s, std::string text, bool keep_raw) {
    const int64_t lines = static_cast<int64_t>(std::count(text.begin(), text.end(), '\n')) +
                          (!text.empty() && text.back() != '\n');
    if (lines > config_.max_lines)
      throw BadRequest(413, "the request has " + std::to_string(lines) + " lines; the server takes at most " +
                                std::to_string(config_.max_lines) + " (--max-lines)");
    ReaderOptions ro = s.session->reader_options();
    ro.keep_raw = keep_raw;
    JsonlReader reader = JsonlReader::of_text("request", std::move(text), ro);
    std::vector<Record> records;
    Record r;
    while (reader.next(r)) records.push_back(std::move(r));
    if (records.empty()) throw BadRequest(400, "the request holds no line to score");
    t_note.lines = static_cast<int64_t>(records.size());
    std::future<Outcome> pending = batcher_->submit(std::move(records), "request");
    arrived();
    Outcome out = pending.get();
    count(s, out);
    return out;
  }

  // A request to an inference route counts as arriving from its headers to its submit (or its
  // answer, when it fails before): the batcher waits for it (batcher.h).
  void arrived() {
    if (!t_note.arriving) return;
    t_note.arriving = false;
    batcher_->arriving(-1);
  }

  void count(const Served& s, const Outcome& out) {
    const std::vector<double>& scores = out.predictions.scores;
    if (!s.routed) {
      metrics_->scored(s.name, scores);
    } else {
      std::map<std::string, std::vector<double>> by_route;
      for (size_t i = 0; i < scores.size(); ++i) by_route[out.records[i].route].push_back(scores[i]);
      for (const auto& [route, v] : by_route) metrics_->scored(route, v);
    }
    if (const DetectionStats* d = out.session->detection()) {
      std::map<std::string, int64_t> reasons;
      for (const SignalValues& sv : out.signals)
        for (const std::string& reason : suspect_reasons(sv, d->calibration.thresholds)) ++reasons[reason];
      for (const auto& [reason, n] : reasons) metrics_->suspects(s.name, reason, n);
    }
  }

  void configure() {
    httplib::Server& http = *http_;
    const auto timeout = std::chrono::microseconds(static_cast<int64_t>(config_.io_timeout * 1e6));
    http.set_read_timeout(timeout);
    http.set_write_timeout(timeout);
    // An idle kept-alive connection is closed as soon as a stalled read would be.
    http.set_keep_alive_timeout(static_cast<time_t>(std::max(1.0, std::ceil(config_.io_timeout))));
    http.set_keep_alive_max_count(1000);
    http.set_payload_max_length(static_cast<size_t>(config_.max_body_bytes));
    http.set_tcp_nodelay(true);
    // SO_REUSEADDR only: httplib's default adds SO_REUSEPORT, with which a second server on a
    // port in use would share it silently instead of failing to listen.
    http.set_socket_options([](int sock) {
      const int yes = 1;
      ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    });
    const size_t threads = static_cast<size_t>(config_.connections);
    http.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };

    http.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response&) {
      arrived();  // a request of this thread that never reached the logger (its client vanished)
      t_note = RequestNote{};
      t_note.start = Clock::now();
      t_note.started = true;
      const std::string& p = req.path;
      const bool infer = p.size() > 6 && p.compare(p.size() - 6, 6, "/infer") == 0;
      if (req.method == "POST" && (p == "/v1/score" || infer)) {
        t_note.arriving = true;
        batcher_->arriving(1);
      }
      return httplib::Server::HandlerResponse::Unhandled;
    });
    // Statuses httplib sets itself (no route, a body too large, a malformed request) get a body
    // in the protocol's form too.
    http.set_error_handler(httplib::Server::HandlerWithResponse([](const httplib::Request& req, httplib::Response& res) {
      if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
      std::string message = "HTTP " + std::to_string(res.status);
      if (res.status == 404) message = "no route " + req.method + " " + req.path;
      if (res.status == 413)
        message = req.get_header_value("Content-Type").find("x-www-form-urlencoded") != std::string::npos
                      ? "a form-encoded body is limited to 8192 bytes: send Content-Type: application/x-ndjson (or "
                        "application/json for v2)"
                      : "the body exceeds the server's limit (--max-body-bytes)";
      if (res.status == 400) message = "malformed HTTP request";
      set_error(res, res.status, message);
      return httplib::Server::HandlerResponse::Handled;
    }));
    http.set_logger([this](const httplib::Request& req, const httplib::Response& res) { logged(req, res); });

    http.Get("/v2/health/live", [this](const httplib::Request& req, httplib::Response& res) {
      handle("live", std::nullopt, req, res, [&] { set_json(res, {{"live", true}}); });
    });
    http.Get("/v2/health/ready", [this](const httplib::Request& req, httplib::Response& res) {
      handle("ready", std::nullopt, req, res, [&] {
        res.status = ready_ ? 200 : 503;
        set_json(res, {{"ready", ready_.load()}});
      });
    });
    http.Get("/v2", [this](const httplib::Request& req, httplib::Response& res) {
      handle("server_metadata", std::nullopt, req, res, [&] {
        set_json(res, {{"name", "dqe"}, {"version", signals_.version}, {"extensions", ojson::array()}});
      });
    });
    http.Get(R"(/v2/models/([^/]+))", [this](const httplib::Request& req, httplib::Response& res) {
      handle("model_metadata", Role::kScore, req, res, [&] {
        const auto s = served();
        const Served& m = model_named(s, req.matches[1]);
        set_json(res, v2_model_metadata(m.name, m.version, m.inputs, m.session->task(), m.session->detection()));
      });
    });
    http.Get(R"(/v2/models/([^/]+)/versions/([^/]+))", [this](const httplib::Request& req, httplib::Response& res) {
      handle("model_metadata", Role::kScore, req, res, [&] {
        const auto s = served();
        const Served& m = model_named(s, req.matches[1]);
        if (req.matches[2] != m.version)
          throw BadRequest(404, "model \"" + m.name + "\" has no version \"" + std::string(req.matches[2]) +
                                    "\" (serving " + m.version + ")");
        set_json(res, v2_model_metadata(m.name, m.version, m.inputs, m.session->task(), m.session->detection()));
      });
    });
    http.Get(R"(/v2/models/([^/]+)/ready)", [this](const httplib::Request& req, httplib::Response& res) {
      handle("model_ready", Role::kScore, req, res, [&] {
        const auto s = served();
        const Served& m = model_named(s, req.matches[1]);
        res.status = ready_ ? 200 : 503;
        set_json(res, {{"name", m.name}, {"ready", ready_.load()}});
      });
    });
    http.Post(R"(/v2/models/([^/]+)/infer)", [this](const httplib::Request& req, httplib::Response& res) {
      handle("infer", Role::kScore, req, res, [&] {
        require_ready();
        const auto s = served();
        const Served& m = model_named(s, req.matches[1]);
        V2Request request = parse_v2_request(req.body, m.inputs, config_.max_lines);
        if (request.suspect && !m.session->detection())
          throw BadRequest(400, "suspect outputs need the server started with --detect");
        std::string text;
        for (const std::string& line : request.lines) text += line + "\n";
        Outcome out = infer(m, std::move(text), /*keep_raw=*/false);
        std::vector<std::vector<std::string>> reasons;
        if (request.suspect)
          for (const SignalValues& sv : out.signals)
            reasons.push_back(suspect_reasons(sv, out.session->detection()->calibration.thresholds));
        set_json(res, v2_response(m.name, m.version, request, out.predictions, out.session->task(), reasons));
      });
    });
    http.Post("/v1/score", [this](const httplib::Request& req, httplib::Response& res) {
      handle("score", Role::kScore, req, res, [&] {
        require_ready();
        const auto s = served();
        LineOptions line;
        if (req.has_param("fields")) {
          std::vector<std::string> names;
          std::stringstream list(req.get_param_value("fields"));
          for (std::string f; std::getline(list, f, ',');) names.push_back(f);
          try {
            line.set_fields(names, "?fields");
          } catch (const ConfigError& e) {
            throw BadRequest(400, e.what());
          }
        }
        if (req.has_param("threshold")) {
          const std::string t = req.get_param_value("threshold");
          char* end = nullptr;
          const double v = std::strtod(t.c_str(), &end);
          if (t.empty() || *end != '\0' || !std::isfinite(v))
            throw BadRequest(400, "?threshold=" + t + ": expected a finite number");
          line.threshold = v;
        }
        line.filter = bool_param(req, "filter", false);
        if (line.filter && !line.threshold) throw BadRequest(400, "?filter needs ?threshold");
        if (line.add_logits)
          if (const std::string why = s->session->logits_refusal(); !why.empty())
            throw BadRequest(400, "?fields=logits: " + why);
        if (line.add_keep && !line.threshold && req.has_param("fields"))
          throw BadRequest(400, "?fields=keep needs ?threshold (keep is score >= threshold)");
        line.normalize = config_.normalize;
        line.detect = bool_param(req, "detect", s->session->detection() != nullptr);
        if (line.detect && !s->session->detection())
          throw BadRequest(400, "?detect needs the server started with --detect");
        Outcome out = infer(*s, req.body, /*keep_raw=*/true);
        ScoredLines scored = out.session->render_lines(out.records, std::move(out.predictions),
                                                       line.detect ? out.signals : std::vector<SignalValues>(), line);
        std::string body;
        for (const std::string& l : scored.lines) body += l + "\n";
        res.set_header("X-Dqe-Lines", std::to_string(out.records.size()));
        res.set_content(std::move(body), "application/x-ndjson");
      });
    });
    http.Get("/metrics", [this](const httplib::Request& req, httplib::Response& res) {
      handle("metrics", config_.metrics_auth ? std::optional<Role>(Role::kScore) : std::nullopt, req, res,
             [&] { res.set_content(metrics_->text(), "text/plain; version=0.0.4; charset=utf-8"); });
    });
    http.Post("/admin/reload", [this](const httplib::Request& req, httplib::Response& res) {
      handle("reload", Role::kAdmin, req, res, [&] {
        std::string message;
        const bool ok = reload(message);
        if (!ok) throw Error(message);
        set_json(res, {{"reloaded", true}, {"version", served()->version}, {"message", message}});
      });
    });
  }

  // After each answer: the metrics and the access log.
  void logged(const httplib::Request& req, const httplib::Response& res) {
    arrived();
    const double seconds =
        t_note.started ? std::chrono::duration<double>(Clock::now() - t_note.start).count() : 0.0;
    metrics_->request(t_note.route, res.status, seconds);
    if (access_log_) {
      ojson entry = {{"time", utc_now()},     {"client", t_note.client}, {"method", req.method},
                     {"route", t_note.route}, {"path", req.path},        {"status", res.status},
                     {"lines", t_note.lines}, {"latency_ms", std::round(seconds * 1e6) / 1e3}};
      if (res.status >= 400 && res.body.size() < 4096) {
        const json error = json::parse(res.body, nullptr, false);
        if (error.is_object() && error.contains("error") && error["error"].is_string())
          entry["error"] = config_.log_payloads ? mask_payload(error["error"].get<std::string>())
                                                : std::string("(with --log-payloads)");
      }
      if (config_.log_payloads) entry["payload"] = mask_payload(req.body.substr(0, 4096));
      access_log_->write(entry);
    }
    t_note = RequestNote{};
  }

  ServeConfig config_;
  ServeSignals signals_;
  std::shared_ptr<spdlog::logger> log_;
  RunContext ctx_;
  std::unique_ptr<Metrics> metrics_;
  mutable std::mutex served_mutex_;
  std::shared_ptr<const Served> served_;
  std::shared_ptr<const TokenTable> tokens_;
  std::mutex reload_mutex_;
  std::unique_ptr<AccessLog> access_log_;
  std::unique_ptr<Batcher> batcher_;
  std::unique_ptr<httplib::Server> http_;
  std::atomic<bool> ready_{false};
  std::atomic<int> in_flight_{0};
};

}  // namespace
}  // namespace service

void serve(const ServeConfig& config, const ServeSignals& signals) {
  config.validate();
  service::Server server(config, signals);
  server.run();
}

}  // namespace dqe
