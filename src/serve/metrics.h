// The service's metrics in Prometheus' text exposition format (version 0.0.4): request counts
// by route and status, latency, batch-size and score histograms, queue depth, requests in
// flight, suspects by reason, the drift of the served scores and the models' load. Names and
// labels are fixed here; deploy/prometheus/dqe-alerts.yml alerts on them.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "data/drift.h"

namespace dqe::service {

// Counts of observations at or below each bound (cumulative when written), their sum and count.
struct Histogram {
  std::vector<double> bounds;  // increasing; +Inf is implied
  std::vector<uint64_t> counts;
  double sum = 0;
  uint64_t count = 0;

  explicit Histogram(std::vector<double> upper_bounds = {});
  void observe(double value);
};

// The last `window` scores' bins against a model's dev distribution: PSI as score computes it
// (data/drift.h), NaN until the window holds kMinDriftLines scores.
class DriftWindow {
 public:
  DriftWindow(ScoreReference reference, int64_t window);
  void add(double score);
  double psi() const;
  int64_t lines() const { return static_cast<int64_t>(filled_); }

 private:
  ScoreReference reference_;
  std::vector<size_t> ring_;  // bin of each score in the window
  size_t next_ = 0, filled_ = 0;
  std::vector<int64_t> counts_;
};

// "a\"b" for a label value: backslash, double quote and newline escaped.
std::string escape_label(const std::string& value);
// A sample value: shortest round-trip decimal, NaN, +Inf, -Inf.
std::string sample_text(double value);

class Metrics {
 public:
  // score_buckets: the score histogram's bounds (the dev deciles when the model has them).
  Metrics(std::vector<double> score_buckets, int64_t queue_capacity);

  void request(const std::string& route, int status, double seconds);
  void batch(int64_t records);
  void queue_depth(int64_t records);
  void in_flight(int delta);
  void set_ready(bool ready);
  // A model's served scores (and, with detection, each line's suspect reasons).
  void scored(const std::string& model, const std::vector<double>& scores);
  void suspects(const std::string& model, const std::string& reason, int64_t lines);
  // The drift windows, one for each model with dev scores; replaced on reload.
  void set_drift(std::map<std::string, DriftWindow> windows);
  // What each model is, and how long loading took; replaced on reload.
  struct ModelInfo {
    std::string model, version, task;
    double load_seconds = 0;
  };
  void set_models(std::vector<ModelInfo> models);
  void reloaded(bool ok);

  // The exposition text.
  std::string text() const;

 private:
  mutable std::mutex mutex_;
  std::vector<double> score_buckets_;
  int64_t queue_capacity_;
  std::map<std::pair<std::string, std::string>, uint64_t> requests_;  // (route, code)
  std::map<std::string, Histogram> latency_;                          // by route
  Histogram batch_sizes_;
  int64_t queue_depth_ = 0;
  int64_t in_flight_ = 0;
  bool ready_ = false;
  std::map<std::string, uint64_t> scored_;
  std::map<std::string, Histogram> scores_;
  std::map<std::pair<std::string, std::string>, uint64_t> suspects_;  // (model, reason)
  std::map<std::string, DriftWindow> drift_;
  std::vector<ModelInfo> models_;
  uint64_t reloads_ok_ = 0, reloads_failed_ = 0;
};

}  // namespace dqe::service
