// Dynamic batching: requests of every client queue their records here, and one inference
// worker (apart from the connection threads) takes up to max_batch records at a time, runs them
// through the session in one predict, and hands each request its slice. A batch waits for more
// records (at most max_delay after its first) only while some request is on its way: read by a
// connection thread, not yet queued (arriving()). A lone client thus never waits for company
// that is not coming. The queue is bounded in records: a request that would
// overflow it is refused at once (QueueFull) instead of waiting without limit.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <future>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "dqe/session.h"

namespace dqe::service {

class Metrics;

// What a request gets back: its records, the session that predicted (its lines are rendered with it, even if
// a reload swapped another in meanwhile), the predictions and, with detection, the signals.
struct Outcome {
  std::shared_ptr<const InferenceSession> session;
  std::vector<Record> records;  // the request's, handed back
  Predictions predictions;
  std::vector<SignalValues> signals;
};

class QueueFull : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Batcher {
 public:
  Batcher(std::shared_ptr<const InferenceSession> session, int64_t max_batch, std::chrono::microseconds max_delay,
          int64_t capacity, bool normalize, Metrics& metrics);
  ~Batcher();
  Batcher(const Batcher&) = delete;
  Batcher& operator=(const Batcher&) = delete;

  // Called by a connection thread when a request that will submit() starts (+1), and when it
  // submits or gives up (-1).
  void arriving(int delta);

  // Queues records (source names them in errors: "request:3: ..."). The future holds the
  // outcome, or the error predict threw for these records (another request's bad record never
  // fails this one). Throws QueueFull when the queue cannot take them all, Error once stopped.
  std::future<Outcome> submit(std::vector<Record> records, std::string source);

  // The session new batches use (a reload swaps one in; batches under way finish on theirs).
  void swap(std::shared_ptr<const InferenceSession> session);
  std::shared_ptr<const InferenceSession> session() const;

  // Finishes the batches queued, then stops the worker. Idempotent.
  void stop();

 private:
  struct Job {
    std::vector<Record> records;
    std::string source;
    std::promise<Outcome> promise;
  };
  void work();
  void run(std::vector<Job>& jobs, const std::shared_ptr<const InferenceSession>& session);

  const int64_t max_batch_;
  const std::chrono::microseconds max_delay_;
  const int64_t capacity_;
  const bool normalize_;
  Metrics& metrics_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Job> queue_;
  int64_t queued_records_ = 0;
  int64_t arriving_ = 0;
  bool stopping_ = false;
  std::shared_ptr<const InferenceSession> session_;
  std::thread worker_;
};

}  // namespace dqe::service
