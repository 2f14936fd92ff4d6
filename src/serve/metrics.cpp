#include "serve/metrics.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "dqe/scorer.h"

namespace dqe::service {

namespace {

const std::vector<double> kLatencyBuckets = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                             0.25,  0.5,    1,     2.5,  5,     10};
const std::vector<double> kBatchBuckets = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024};

void header(std::ostream& out, const char* name, const char* type, const char* help) {
  out << "# HELP " << name << ' ' << help << "\n# TYPE " << name << ' ' << type << '\n';
}

// name{labels,le="B"} for each bucket, then _sum and _count. labels: "" or `a="b"`.
void write_histogram(std::ostream& out, const std::string& name, const std::string& labels, const Histogram& h) {
  const std::string sep = labels.empty() ? "" : ",";
  uint64_t cumulative = 0;
  for (size_t i = 0; i < h.bounds.size(); ++i) {
    cumulative += h.counts[i];
    out << name << "_bucket{" << labels << sep << "le=\"" << sample_text(h.bounds[i]) << "\"} " << cumulative << '\n';
  }
  out << name << "_bucket{" << labels << sep << "le=\"+Inf\"} " << h.count << '\n';
  const std::string braces = labels.empty() ? "" : "{" + labels + "}";
  out << name << "_sum" << braces << ' ' << sample_text(h.sum) << '\n';
  out << name << "_count" << braces << ' ' << h.count << '\n';
}

std::string label(const char* key, const std::string& value) { return std::string(key) + "=\"" + escape_label(value) + "\""; }

}  // namespace

Histogram::Histogram(std::vector<double> upper_bounds) : bounds(std::move(upper_bounds)), counts(bounds.size(), 0) {}

void Histogram::observe(double value) {
  // Bucket i counts values in (bounds[i-1], bounds[i]]; a value above every bound only in +Inf.
  const auto it = std::lower_bound(bounds.begin(), bounds.end(), value);
  if (it != bounds.end()) ++counts[static_cast<size_t>(it - bounds.begin())];
  if (!std::isnan(value)) sum += value;
  ++count;
}

DriftWindow::DriftWindow(ScoreReference reference, int64_t window)
    : reference_(std::move(reference)), ring_(static_cast<size_t>(window), 0), counts_(reference_.fractions.size(), 0) {}

void DriftWindow::add(double score) {
  const size_t bin = reference_.bin_of(score);
  if (filled_ == ring_.size()) --counts_[ring_[next_]];
  else ++filled_;
  ring_[next_] = bin;
  ++counts_[bin];
  next_ = (next_ + 1) % ring_.size();
}

double DriftWindow::psi() const {
  if (static_cast<int64_t>(filled_) < kMinDriftLines) return std::nan("");
  return population_stability_index(reference_, counts_);
}

std::string escape_label(const std::string& value) {
  std::string out;
  for (const char c : value) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

std::string sample_text(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  char buf[32];
  for (int precision = 6; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof buf, "%.*g", precision, value);
    if (std::strtod(buf, nullptr) == value) break;
  }
  return buf;
}

Metrics::Metrics(std::vector<double> score_buckets, int64_t queue_capacity)
    : score_buckets_(std::move(score_buckets)), queue_capacity_(queue_capacity), batch_sizes_(kBatchBuckets) {}

void Metrics::request(const std::string& route, int status, double seconds) {
  std::lock_guard<std::mutex> lock(mutex_);
  ++requests_[{route, std::to_string(status)}];
  auto it = latency_.find(route);
  if (it == latency_.end()) it = latency_.emplace(route, Histogram(kLatencyBuckets)).first;
  it->second.observe(seconds);
}

void Metrics::batch(int64_t records) {
  std::lock_guard<std::mutex> lock(mutex_);
  batch_sizes_.observe(static_cast<double>(records));
}

void Metrics::queue_depth(int64_t records) {
  std::lock_guard<std::mutex> lock(mutex_);
  queue_depth_ = records;
}

void Metrics::in_flight(int delta) {
  std::lock_guard<std::mutex> lock(mutex_);
  in_flight_ += delta;
}

void Metrics::set_ready(bool ready) {
  std::lock_guard<std::mutex> lock(mutex_);
  ready_ = ready;
}

void Metrics::scored(const std::string& model, const std::vector<double>& scores) {
  std::lock_guard<std::mutex> lock(mutex_);
  scored_[model] += scores.size();
  auto it = scores_.find(model);
  if (it == scores_.end()) it = scores_.emplace(model, Histogram(score_buckets_)).first;
  auto drift = drift_.find(model);
  for (const double s : scores) {
    it->second.observe(s);
    if (drift != drift_.end()) drift->second.add(s);
  }
}

void Metrics::suspects(const std::string& model, const std::string& reason, int64_t lines) {
  std::lock_guard<std::mutex> lock(mutex_);
  suspects_[{model, reason}] += static_cast<uint64_t>(lines);
}

void Metrics::set_drift(std::map<std::string, DriftWindow> windows) {
  std::lock_guard<std::mutex> lock(mutex_);
  drift_ = std::move(windows);
}

void Metrics::set_models(std::vector<ModelInfo> models) {
  std::lock_guard<std::mutex> lock(mutex_);
  models_ = std::move(models);
}

void Metrics::reloaded(bool ok) {
  std::lock_guard<std::mutex> lock(mutex_);
  ++(ok ? reloads_ok_ : reloads_failed_);
}

std::string Metrics::text() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::ostringstream out;
  header(out, "dqe_requests_total", "counter", "HTTP requests answered, by route and status code.");
  for (const auto& [key, n] : requests_)
    out << "dqe_requests_total{" << label("route", key.first) << ',' << label("code", key.second) << "} " << n << '\n';
  header(out, "dqe_request_duration_seconds", "histogram", "Time from a request's arrival to its answer, by route.");
  for (const auto& [route, h] : latency_) write_histogram(out, "dqe_request_duration_seconds", label("route", route), h);
  header(out, "dqe_batch_size", "histogram", "Records in each inference batch (requests are batched together).");
  write_histogram(out, "dqe_batch_size", "", batch_sizes_);
  header(out, "dqe_queue_depth", "gauge", "Records waiting for inference.");
  out << "dqe_queue_depth " << queue_depth_ << '\n';
  header(out, "dqe_queue_capacity", "gauge", "Most records the inference queue holds (--queue-lines).");
  out << "dqe_queue_capacity " << queue_capacity_ << '\n';
  header(out, "dqe_in_flight_requests", "gauge", "Requests being served.");
  out << "dqe_in_flight_requests " << in_flight_ << '\n';
  header(out, "dqe_ready", "gauge", "1 while the server takes requests, 0 while loading or draining.");
  out << "dqe_ready " << (ready_ ? 1 : 0) << '\n';
  header(out, "dqe_scored_lines_total", "counter", "Lines scored, by model.");
  for (const auto& [model, n] : scored_) out << "dqe_scored_lines_total{" << label("model", model) << "} " << n << '\n';
  header(out, "dqe_score", "histogram", "Served scores, by model (buckets: the dev scores' deciles when saved).");
  for (const auto& [model, h] : scores_) write_histogram(out, "dqe_score", label("model", model), h);
  header(out, "dqe_suspect_lines_total", "counter", "Lines flagged by detection, by model and reason.");
  for (const auto& [key, n] : suspects_)
    out << "dqe_suspect_lines_total{" << label("model", key.first) << ',' << label("reason", key.second) << "} " << n
        << '\n';
  header(out, "dqe_score_psi", "gauge",
         "Population stability index of the last served scores against the model's dev scores (NaN: too few yet).");
  for (const auto& [model, w] : drift_) out << "dqe_score_psi{" << label("model", model) << "} " << sample_text(w.psi()) << '\n';
  header(out, "dqe_score_psi_window_lines", "gauge", "Served scores in the drift window.");
  for (const auto& [model, w] : drift_) out << "dqe_score_psi_window_lines{" << label("model", model) << "} " << w.lines() << '\n';
  header(out, "dqe_model_info", "gauge", "The served models: name, version (a digest of their files) and task.");
  for (const ModelInfo& m : models_)
    out << "dqe_model_info{" << label("model", m.model) << ',' << label("version", m.version) << ','
        << label("task", m.task) << "} 1\n";
  header(out, "dqe_model_load_seconds", "gauge", "Seconds the served models took to load.");
  for (const ModelInfo& m : models_)
    out << "dqe_model_load_seconds{" << label("model", m.model) << "} " << sample_text(m.load_seconds) << '\n';
  header(out, "dqe_reloads_total", "counter", "Model reloads, by result.");
  out << "dqe_reloads_total{result=\"ok\"} " << reloads_ok_ << "\ndqe_reloads_total{result=\"failed\"} "
      << reloads_failed_ << '\n';
  return out.str();
}

}  // namespace dqe::service
