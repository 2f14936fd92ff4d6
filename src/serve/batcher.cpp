#include "serve/batcher.h"

#include <ATen/Parallel.h>

#include "base/log.h"
#include "dqe/errors.h"
#include "serve/metrics.h"

namespace dqe::service {

Batcher::Batcher(std::shared_ptr<const InferenceSession> session, int64_t max_batch,
                 std::chrono::microseconds max_delay, int64_t capacity, bool normalize, Metrics& metrics)
    : max_batch_(max_batch), max_delay_(max_delay), capacity_(capacity), normalize_(normalize), metrics_(metrics),
      session_(std::move(session)) {
  worker_ = std::thread([this] { work(); });
}

Batcher::~Batcher() { stop(); }

std::future<Outcome> Batcher::submit(std::vector<Record> records, std::string source) {
  Job job{std::move(records), std::move(source), {}};
  std::future<Outcome> future = job.promise.get_future();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_) throw Error("the server is stopping");
    const int64_t n = static_cast<int64_t>(job.records.size());
    // One request larger than the whole queue could never wait its turn: refused as too many.
    if (queued_records_ + n > capacity_ && queued_records_ > 0)
      throw QueueFull(std::to_string(queued_records_) + " records are waiting for inference (--queue-lines " +
                      std::to_string(capacity_) + ")");
    queued_records_ += n;
    queue_.push_back(std::move(job));
    metrics_.queue_depth(queued_records_);
  }
  wake_.notify_one();
  return future;
}

void Batcher::arriving(int delta) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    arriving_ += delta;
  }
  if (delta < 0) wake_.notify_one();  // a batch waiting for it need not wait longer
}

void Batcher::swap(std::shared_ptr<const InferenceSession> session) {
  std::lock_guard<std::mutex> lock(mutex_);
  session_ = std::move(session);
}

std::shared_ptr<const InferenceSession> Batcher::session() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return session_;
}

void Batcher::stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (worker_.joinable()) worker_.join();
}

void Batcher::work() {
  // OpenMP's thread count is a per-thread setting: this thread takes the process's.
  if (const int threads = session()->context().threads; threads > 0) at::set_num_threads(threads);
  for (;;) {
    std::vector<Job> jobs;
    std::shared_ptr<const InferenceSession> session;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and nothing left
      // The first request waits at most max_delay for others to fill the batch, and only while
      // another request is being read.
      const auto deadline = std::chrono::steady_clock::now() + max_delay_;
      auto queued_front = [&] {
        int64_t n = 0;
        for (const Job& j : queue_) {
          n += static_cast<int64_t>(j.records.size());
          if (n >= max_batch_) break;
        }
        return n;
      };
      while (!stopping_ && arriving_ > 0 && queued_front() < max_batch_ &&
             wake_.wait_until(lock, deadline) != std::cv_status::timeout) {
      }
      int64_t taken = 0;
      while (!queue_.empty() &&
             (jobs.empty() || taken + static_cast<int64_t>(queue_.front().records.size()) <= max_batch_)) {
        taken += static_cast<int64_t>(queue_.front().records.size());
        jobs.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      queued_records_ -= taken;
      metrics_.queue_depth(queued_records_);
      session = session_;
    }
    run(jobs, session);
  }
}

void Batcher::run(std::vector<Job>& jobs, const std::shared_ptr<const InferenceSession>& session) {
  const bool signals = session->detection() != nullptr;
  std::vector<Record> all;
  for (Job& j : jobs)
    for (Record& r : j.records) all.push_back(std::move(r));
  metrics_.batch(static_cast<int64_t>(all.size()));
  Outcome whole;
  bool ok = true;
  try {
    whole.predictions = session->predict(all, "batch", normalize_, nullptr, signals ? &whole.signals : nullptr);
  } catch (...) {
    ok = false;  // one request's record failed: each request is run again alone, below
  }
  size_t offset = 0;
  for (Job& j : jobs) {
    const size_t n = j.records.size();
    std::vector<Record> mine(std::make_move_iterator(all.begin() + static_cast<std::ptrdiff_t>(offset)),
                             std::make_move_iterator(all.begin() + static_cast<std::ptrdiff_t>(offset + n)));
    try {
      Outcome out;
      out.session = session;
      if (ok) {
        const Predictions& p = whole.predictions;
        auto slice = [&](const auto& v) {
          using V = std::decay_t<decltype(v)>;
          return v.empty() ? V() : V(v.begin() + static_cast<std::ptrdiff_t>(offset),
                                     v.begin() + static_cast<std::ptrdiff_t>(offset + n));
        };
        out.predictions.scores = slice(p.scores);
        out.predictions.classes = slice(p.classes);
        out.predictions.probs = slice(p.probs);
        out.predictions.logits = slice(p.logits);
        out.signals = slice(whole.signals);
      } else {
        out.predictions = session->predict(mine, j.source, normalize_, nullptr, signals ? &out.signals : nullptr);
      }
      out.records = std::move(mine);
      j.promise.set_value(std::move(out));
    } catch (...) {
      j.promise.set_exception(std::current_exception());
    }
    offset += n;
  }
}

}  // namespace dqe::service
