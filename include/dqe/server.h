// `dqe serve`: a loaded model behind HTTP. KServe's Open Inference Protocol (v2, REST) for the
// inference gateways and Triton clients that speak it, and /v1/score for the JSONL lines that
// `dqe score` reads and writes; requests of all clients are batched together for inference on
// a worker apart from the connection threads. Access control (bearer tokens by role), an
// access log that masks what it keeps of payloads, Prometheus metrics with the served scores'
// drift, reload without dropping a request, and a drain on SIGTERM. The per-line work is the
// inference session's (dqe/session.h), the same as score's.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "dqe/jsonl_reader.h"
#include "dqe/knobs.h"
#include "dqe/run_context.h"

namespace dqe {

struct ServeConfig {
  // Checkpoint, Hugging Face or run directories, or PEFT adapters; as in score, several are
  // averaged, or routed by --adapter-field.
  std::vector<std::string> models;
  std::string base;
  std::string adapter_field;
  // The model's name in /v2/models/NAME; empty: the first --model's NAME, or its directory's name.
  std::string name;
  std::string host = "127.0.0.1";
  int64_t port = 8080;  // 0: a free port (see port_file)
  // Where the port is written once the server listens (written whole: a reader never sees
  // half of it).
  std::string port_file;
  // Inference batching across requests: at most max_batch records a batch, waiting at most
  // max_delay_ms after the first for more to join.
  int64_t max_batch = 64;
  double max_delay_ms = 5;
  // A batch runs sorted by length in forward passes of at most this many records: short
  // search pairs padded to the longest of 64 random ones cost twice the compute (8: +30-40%
  // pairs/s at 64 clients on scripts/bench/serve.sh, against 64).
  int64_t forward_batch = 8;
  // Bounds: body bytes (413), lines or inputs a request (413), records waiting for
  // inference (503 with Retry-After beyond it), connection threads.
  int64_t max_body_bytes = 8 << 20;
  int64_t max_lines = 10000;
  int64_t queue_lines = 20000;
  int64_t connections = 64;
  // Seconds a read or a write on a connection may wait before the client is dropped.
  double io_timeout = 10;
  // Seconds SIGTERM waits for requests in flight before the server stops anyway.
  double drain_timeout = 30;
  int64_t max_len = 0;
  bool normalize = false;
  // Load the model's detection statistics: /v1/score adds suspect fields unless ?detect=0,
  // v2 gives the suspect outputs when asked, and /metrics counts suspects by reason.
  bool detect = false;
  std::optional<double> detect_fpr;
  // The drift gauge: PSI of the last drift_window served scores against the model's dev scores.
  int64_t drift_window = 1000;
  // Access control: "NAME SHA256_HEX_OF_TOKEN ROLE" lines (role score or admin); empty: open.
  std::string auth_tokens;
  bool metrics_auth = false;  // /metrics needs a token too
  std::string tls_cert, tls_key;
  // JSON lines, one a request, appended; payload text only with log_payloads, masked.
  std::string access_log;
  bool log_payloads = false;
  int threads = 0;
  std::string precision = "auto";
  std::string device = "auto";
  std::optional<FieldMap> fields;

  template <typename Self, typename Visitor>
  static void visit_knobs(Self& c, Visitor&& v) {
    v(Knob("model", "Model: checkpoint, run directory (its best), Hugging Face directory or PEFT adapter, as DIR or "
                    "NAME=DIR; repeat it to average several or to route lines (--adapter-field)")
          .mandatory()
          .hide_default(),
      c.models);
    v(Knob("base", "The base model of adapters, when it moved from where they recorded it").hide_default(), c.base);
    v(Knob("adapter-field", "JSON field (v2: input) naming the --model that scores each line").hide_default(),
      c.adapter_field);
    v(Knob("name", "The model's name in /v2/models/NAME (default: the first --model's NAME or directory name)")
          .hide_default(),
      c.name);
    v(Knob("host", "Address to listen on (0.0.0.0: every interface)"), c.host);
    v(Knob("port", "Port to listen on (0: a free one; see --port-file)")
          .check(bound::closed(0, 65535), "between 0 and 65535"),
      c.port);
    v(Knob("port-file", "Write the port here once listening").hide_default(), c.port_file);
    v(Knob("max-batch", "Most records an inference batch takes from the queue, across requests")
          .check(bound::closed(1, static_cast<double>(kMaxBatchSize)), "between 1 and " + std::to_string(kMaxBatchSize))
          .in("Batching and bounds"),
      c.max_batch);
    v(Knob("forward-batch", "Records per forward pass within a batch, sorted by length (fewer: less padding)")
          .check(bound::closed(1, static_cast<double>(kMaxBatchSize)), "between 1 and " + std::to_string(kMaxBatchSize))
          .in("Batching and bounds"),
      c.forward_batch);
    v(Knob("max-delay-ms", "Most milliseconds a batch waits after its first record for others to join")
          .check(bound::closed(0, 10000), "between 0 and 10000")
          .in("Batching and bounds"),
      c.max_delay_ms);
    v(Knob("max-body-bytes", "Largest request body (413 beyond)")
          .check(bound::closed(1024, 1 << 30), "between 1024 and 2^30")
          .in("Batching and bounds"),
      c.max_body_bytes);
    v(Knob("max-lines", "Most lines (or v2 inputs' rows) a request (413 beyond)")
          .check(bound::closed(1, 1e7), "between 1 and 10^7")
          .in("Batching and bounds"),
      c.max_lines);
    v(Knob("queue-lines", "Most records waiting for inference; a request beyond it gets 503 with Retry-After")
          .check(bound::closed(1, 1e9), "between 1 and 10^9")
          .in("Batching and bounds"),
      c.queue_lines);
    v(Knob("connections", "Connection threads (requests served at once; more wait for one)")
          .check(bound::closed(1, 4096), "between 1 and 4096")
          .in("Batching and bounds"),
      c.connections);
    v(Knob("io-timeout", "Seconds a read or write on a connection may wait before the client is dropped")
          .check(bound::closed(0.01, 3600), "between 0.01 and 3600")
          .in("Batching and bounds"),
      c.io_timeout);
    v(Knob("drain-timeout", "On SIGTERM: seconds requests in flight may take before the server stops anyway")
          .check(bound::closed(0, 3600), "between 0 and 3600")
          .in("Batching and bounds"),
      c.drain_timeout);
    v(Knob("max-len", "Longest input in tokens (0: the model's)")
          .check(bound::closed(0, kMaxSequenceLength), "0 (the model's) or between 3 and the model's limit"),
      c.max_len);
    v(Knob("normalize", "Fold look-alike text before tokenizing, as score --normalize").as_flag(), c.normalize);
    v(Knob("detect", "Load the model's detection statistics: suspect fields on /v1/score lines (unless ?detect=0), "
                     "suspect outputs on v2 when asked, suspects by reason in /metrics")
          .as_flag(),
      c.detect);
    v(Knob("detect-fpr", "With --detect: flag at this false-positive rate on dev instead of the model's calibrated one")
          .check(bound::open(0, 1), "in (0, 1)")
          .hide_default(),
      c.detect_fpr);
    v(Knob("drift-window", "Served scores the drift gauge (PSI against the model's dev scores) looks back over")
          .check(bound::closed(100, 1e7), "between 100 and 10^7")
          .in("Monitoring"),
      c.drift_window);
    v(Knob("auth-tokens", "File of 'NAME SHA256_HEX_OF_TOKEN ROLE' lines (role score or admin); clients send "
                          "Authorization: Bearer TOKEN; re-read on reload")
          .hide_default()
          .in("Access"),
      c.auth_tokens);
    v(Knob("metrics-auth", "With --auth-tokens: /metrics needs a token too").as_flag().in("Access"), c.metrics_auth);
    v(Knob("tls-cert", "PEM certificate: serve HTTPS (with --tls-key)").hide_default().in("Access"), c.tls_cert);
    v(Knob("tls-key", "PEM private key of --tls-cert").hide_default().in("Access"), c.tls_key);
    v(Knob("access-log", "Append one JSON line a request here: time, client, route, status, lines, latency")
          .hide_default()
          .in("Monitoring"),
      c.access_log);
    v(Knob("log-payloads", "With --access-log: also the request's text, digits, e-mail addresses and phone numbers "
                           "masked")
          .as_flag()
          .in("Monitoring"),
      c.log_payloads);
    visit_compute_knobs(c, v);
  }

  // Throws ConfigError naming the flag.
  void validate() const;
};

// What the process hands the server: its stop request (SIGINT/SIGTERM: drain and return) and
// the count of reload requests (SIGHUP), the version /v2 reports, and who to tell it listens.
struct ServeSignals {
  StopToken stop;
  const std::atomic<int>* reloads = nullptr;
  std::string version;
  // Called once the port listens (the CLI prints "dqe serve: listening on http://HOST:PORT").
  std::function<void(const std::string& host, int port, bool tls)> on_listening;
};

// Loads the models, listens, and serves until stop; returns after draining. Throws ConfigError,
// ModelError or IoError (the port taken, a file unreadable) before it serves.
void serve(const ServeConfig& config, const ServeSignals& signals);

}  // namespace dqe
