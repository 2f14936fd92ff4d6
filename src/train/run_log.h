// The logs of a training run, one JSON object per line: train_log.jsonl (a record per
// optimizer step) and eval_log.jsonl (a record per evaluation). The engine writes them,
// `dqe report`, pretraining's summary and scripts/bench/bench_rates.py read them: one schema
// for both sides, defined here.
#pragma once

#include <cstdint>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace dqe {

// One line of train_log.jsonl. Numbers a reader finds missing or null read as NaN.
struct TrainLogRecord {
  int64_t step = 0;          // optimizer steps taken, this one included
  int64_t epoch = 0;         // the epoch the step belongs to (0-based)
  double loss = 0;           // the objective's loss of the step
  double lr = 0;             // learning rate the step used
  double grad_norm = 0;      // global L2 norm of the gradients, before clipping
  double samples_per_s = 0;  // examples per second since this process started
  int64_t tokens = 0;        // padded token positions computed over the run so far
  double tokens_per_s = 0;   // padded token positions per second since this process started
  double elapsed_s = 0;      // seconds of training over the run so far, resumes included
  // The objective's own numbers of the step (pretraining: "accuracy"), flat in the record.
  nlohmann::ordered_json extra = nlohmann::ordered_json::object();
};

// One line of eval_log.jsonl.
struct EvalLogRecord {
  int64_t step = 0;
  double epoch = 0;          // epochs done: step / steps per epoch
  std::string metric;        // the selection metric
  double value = 0;          // its value; NaN (null in the file) when undefined
  std::optional<double> best;
  bool improved = false;
  nlohmann::ordered_json metrics = nlohmann::ordered_json::object();  // every metric, as eval writes them
};

// The keys every train_log.jsonl record has, in order.
const std::vector<std::string>& train_log_keys();

nlohmann::ordered_json to_json(const TrainLogRecord& record);
nlohmann::ordered_json to_json(const EvalLogRecord& record);

// Read a run's logs. Throw IoError naming the path when it cannot be opened and DataError
// "path:line: problem" for a malformed line, except that a malformed last line (a write cut
// short by a crash or a run still in progress) is ignored.
std::vector<TrainLogRecord> read_train_log(const std::string& path);
std::vector<EvalLogRecord> read_eval_log(const std::string& path);

// Appends to a run's two logs. On --resume the records after the resumed step are dropped
// first, so that a resumed run continues the log instead of repeating steps.
class RunLog {
 public:
  // resume_step < 0 starts both logs empty. Throws IoError naming the directory.
  RunLog(const std::string& run_dir, int64_t resume_step);
  void write(const TrainLogRecord& record);
  // Flushes the step log too, so that both are on disk at every evaluation.
  void write(const EvalLogRecord& record);
  void flush();

 private:
  std::ofstream train_, eval_;
};

// Keeps the records of a JSONL log up to and including step. step < 0 empties it.
void truncate_log(const std::string& path, int64_t step);

}  // namespace dqe
