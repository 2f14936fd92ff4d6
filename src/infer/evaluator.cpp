#include "dqe/evaluator.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "base/checks.h"
#include "base/format.h"
#include "base/hash.h"
#include "base/log.h"
#include "base/progress.h"
#include "data/dataset.h"
#include "dqe/errors.h"
#include "dqe/metrics.h"
#include "dqe/runtime.h"
#include "dqe/session.h"
#include "io/output.h"
#include "model/model_dir.h"
#include "model/model_spec.h"

namespace dqe {
namespace {

std::string join(const std::vector<std::string>& parts, const std::string& sep) {
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) out += (i ? sep : "") + parts[i];
  return out;
}

}  // namespace

EvalResult compute_metrics(const TaskSpec& task, const Predictions& predictions, const std::vector<double>& labels,
                           const std::vector<std::string>& query_ids, bool has_training_mean) {
  const TaskHead& head = task_head(task.task);
  EvalResult r = head.metrics(task, predictions, labels);
  // Which way is better is the metric registry's to say, as for the gate and the report.
  r.higher_is_better = find_metric(r.primary_name)->higher_is_better();
  auto ranking = ranking_metrics(query_ids, predictions.scores, head.gains(labels));
  if (ranking.num_queries > 0) {
    r.metrics["ranking"] = to_json(ranking);
    r.table += format_table(ranking);
  }
  if (has_training_mean) head.add_constant_baseline(task, labels, r);
  return r;
}

std::string data_fingerprint(const std::vector<Record>& records) {
  detail::Fnv1a h;
  for (const Record& r : records) {
    h.add(r.query);
    h.add(r.text);
    h.add(r.query_id);
    h.add(r.label_kind == LabelKind::kString ? r.label_string : "");
    h.add(r.label_number);
  }
  return h.hex();
}

LabelledSet labels_of(const std::vector<Record>& records, const TaskSpec& task, const std::string& path) {
  const TaskHead& head = task_head(task.task);
  LabelledSet set;
  set.labels.reserve(records.size());
  set.query_ids.reserve(records.size());
  for (const auto& r : records) {
    set.labels.push_back(head.encode_label(r, task, path));
    set.query_ids.push_back(r.query_id);
  }
  return set;
}

void EvalConfig::validate() const {
  check_knobs(*this);
  check_compute_flags(threads, precision, device);
}

EvalResult evaluate(const EvalConfig& config, const StopToken& stop) {
  config.validate();
  check_no_aliases({{"--metrics-out", config.metrics_out, true}, {"--rejects", config.rejects, true},
                    {"--data", config.data, false}});
  if (!config.metrics_out.empty()) {
    auto parent = std::filesystem::path(config.metrics_out).parent_path();
    if (!parent.empty() && !std::filesystem::is_directory(parent))
      throw IoError(config.metrics_out + ": cannot write (no such directory)");
  }
  const RunContext ctx = make_run_context(config.device, config.precision, config.threads, stop);
  auto log = detail::logger("eval");
  log->info(ctx.describe());
  const InferenceSession session(session_config_of(config), ctx);
  const Ensemble& ensemble = session.ensemble();
  if (const std::string sharing = ensemble.sharing_summary(); !sharing.empty()) log->info(sharing);
  const TaskSpec& task = session.task();
  ReaderOptions ro = session.reader_options();
  ro.require_label = true;
  ro.max_bad_lines = config.max_bad_lines;
  ro.rejects_path = config.rejects;
  int64_t bad_lines = 0;
  std::vector<Record> records = read_jsonl(config.data, ro, &bad_lines);
  if (bad_lines > 0)
    log->warn("skipped {} bad lines of {} (--max-bad-lines {}){}", bad_lines, config.data, config.max_bad_lines,
              config.rejects.empty() ? "" : "; they are in " + config.rejects);
  log->info("{}: {} examples; model {} ({} task, max length {})", config.data, records.size(),
            join(ensemble.dirs(), " + "), task_name(task.task), task.max_len);
  Progress progress("eval", static_cast<int64_t>(records.size()), "line");
  EvalResult result = session.evaluate_records(records, config.data, [&](int64_t done) { progress.update(done); });
  progress.finish();
  if (const std::string unseen = session.unseen_inputs_summary(); !unseen.empty()) log->warn("{}", unseen);
  // What the metrics were measured on, by content: a gate against them refuses other data.
  result.metrics["data_fingerprint"] = {{"records", static_cast<int64_t>(records.size())},
                                        {"hash", data_fingerprint(records)}};
  if (!config.metrics_out.empty()) write_file_atomic(config.metrics_out, result.metrics.dump(2) + "\n");
  return result;
}

}  // namespace dqe
