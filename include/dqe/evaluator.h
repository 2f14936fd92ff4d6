// The task's metrics of predictions, and `dqe eval`.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "dqe/jsonl_reader.h"
#include "dqe/knobs.h"
#include "dqe/run_context.h"
#include "infer/predictor.h"
#include "model/model_spec.h"

namespace dqe {

// labels are encode_label() values. Ranking metrics are added when some query has two or
// more results. For a regression model trained by dqe (label_mean known), also the RMSE of
// predicting the training mean ("train_mean_rmse"), the constant predictor to beat.
EvalResult compute_metrics(const TaskSpec& task, const Predictions& predictions, const std::vector<double>& labels,
                           const std::vector<std::string>& query_ids, bool has_training_mean = false);

// Records' labels and query ids for compute_metrics. Throws DataError "path:line: ..." for a
// label the task cannot read.
struct LabelledSet {
  std::vector<double> labels;
  std::vector<std::string> query_ids;
};
LabelledSet labels_of(const std::vector<Record>& records, const TaskSpec& task, const std::string& path);

// A fingerprint of labelled records by content (query, text, query id, label), whatever file
// or compression held them: eval writes it with its metrics ("data_fingerprint": {"records",
// "hash"}), and a gate against those metrics refuses other data.
std::string data_fingerprint(const std::vector<Record>& records);

struct EvalConfig {
  // Checkpoint, Hugging Face or run directory; with several, their predictions are averaged.
  std::vector<std::string> models;
  std::string data;
  std::string metrics_out;  // optional JSON output
  // Longest input; 0 means the model's own.
  int64_t max_len = 0;
  int64_t batch_size = 64;
  int threads = 0;
  // "auto" (bf16 autocast on a GPU or where the CPU has native bf16, else fp32), "fp32"
  // (exact) or "bf16".
  std::string precision = "auto";
  // "auto" (a GPU when there is one), "cpu", "cuda" or "cuda:N".
  std::string device = "auto";
  int64_t max_bad_lines = 0;
  std::string rejects;
  // Where the base of LoRA adapters among the models is, when not where they recorded it.
  std::string base;
  // The field naming, on each line, the model that judges it (as score's); the metrics are then
  // given per model ("by_adapter") and overall.
  std::string adapter_field;
  // Overrides the field names saved with the model.
  std::optional<FieldMap> fields;

  // The knob table (dqe/knobs.h), in --help's order; the field names (fields) are bound by the
  // CLI, which sets them only when given.
  template <typename Self, typename Visitor>
  static void visit_knobs(Self& c, Visitor&& v) {
    v(Knob("model", "Model: checkpoint, run directory (its best), Hugging Face directory or PEFT adapter, as DIR or "
                    "NAME=DIR; repeat it to average several (an ensemble) or to route lines (--adapter-field)")
          .mandatory()
          .hide_default(),
      c.models);
    v(Knob("base", "The base model of adapters (LoRA or bottleneck), when it moved from where they recorded it").hide_default(),
      c.base);
    v(Knob("adapter-field", "JSON field naming the --model that judges each line (as in score); metrics per model "
                            "and overall")
          .hide_default(),
      c.adapter_field);
    v(Knob("data", "Labelled data (JSONL)").mandatory().hide_default(), c.data);
    v(Knob("metrics-out", "Write the metrics as JSON here").hide_default(), c.metrics_out);
    v(Knob("max-len", "Longest input in tokens (0: the model's)")
          .check(bound::closed(0, kMaxSequenceLength), "0 (the model's) or between 3 and the model's limit"),
      c.max_len);
    v(Knob("batch-size", "Examples per batch")
          .check(bound::closed(1, static_cast<double>(kMaxBatchSize)), "between 1 and " + std::to_string(kMaxBatchSize)),
      c.batch_size);
    visit_compute_knobs(c, v);
    v(Knob("max-bad-lines", "Skip up to N malformed lines instead of stopping").check(bound::at_least(0), ">= 0"),
      c.max_bad_lines);
    v(Knob("rejects", "Write skipped lines here").hide_default(), c.rejects);
  }

  // Throws ConfigError naming the flag.
  void validate() const;
};

// Runs the models on the data and computes the metrics; writes them to metrics_out when set.
// stop is checked between batches (Interrupted).
EvalResult evaluate(const EvalConfig& config, const StopToken& stop = {});

}  // namespace dqe
