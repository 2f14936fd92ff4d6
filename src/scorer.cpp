#include <malloc.h>
#include "dqe/scorer.h"

#include <chrono>
#include <limits>

#include "detail/log.h"
#include "detail/output_file.h"
#include "dqe/checkpoint.h"
#include "dqe/dataset.h"
#include "dqe/errors.h"
#include "dqe/evaluator.h"
#include "dqe/output.h"
#include "dqe/progress.h"
#include "dqe/runtime.h"

namespace dqe {

ScoreSummary score(const ScoreConfig& config) {
  if (config.batch_size <= 0) throw ConfigError("--batch-size must be > 0");
  if (config.max_len < 0) throw ConfigError("--max-len must be >= 0");
  if (config.filter && !config.threshold) throw ConfigError("--filter needs --threshold");
  if (config.chunk_lines <= 0) throw ConfigError("chunk size must be > 0");
  if (config.psi_warn < 0) throw ConfigError("--psi-warn must be >= 0");
  check_no_aliases(
      {{"--output", config.output, true}, {"--rejects", config.rejects, true}, {"--input", config.input, false}});
  bool add_score = false, add_pred = false, add_probs = false, add_keep = false;
  for (const auto& f : config.add_fields) {
    if (f == "score") add_score = true;
    else if (f == "pred") add_pred = true;
    else if (f == "probs") add_probs = true;
    else if (f == "keep") add_keep = true;
    else throw ConfigError("--fields: unknown field \"" + f + "\" (choose among score, pred, probs, keep)");
  }
  const c10::Device device = resolve_device(config.device);
  const Precision precision = resolve_precision(config.precision, device);
  const int threads = configure_threads(config.threads);
  auto log = detail::logger("score");
  log->info(runtime_description() + ", " + device.str() + ", " + precision_name(precision));
  const Ensemble ensemble = load_ensemble(config.models, config.max_len, config.fields, device);
  const TaskSpec& task = ensemble.task();
  // The drift check compares with the dev scores saved with a single model.
  const std::optional<ScoreReference>& reference =
      ensemble.members.size() == 1 ? ensemble.members.front().score_reference : std::nullopt;
  ReaderOptions ro;
  ro.fields = task.fields;
  ro.max_bad_lines = config.max_bad_lines;
  ro.rejects_path = config.rejects;
  ro.keep_raw = true;
  JsonlReader reader(config.input, ro);
  detail::OutputFile output(config.output);  // before any work: an unwritable output fails now

  ScoreSummary summary;
  std::vector<int64_t> bin_counts(reference ? reference->fractions.size() : 0, 0);
  const auto t0 = std::chrono::steady_clock::now();
  Progress progress("score", 0, "lines");
  std::vector<Record> chunk;
  std::vector<std::pair<std::string, std::string>> added;
  chunk.reserve(static_cast<size_t>(config.chunk_lines));
  bool more = true;
  while (more) {
    chunk.clear();
    Record rec;
    while (static_cast<int64_t>(chunk.size()) < config.chunk_lines && (more = reader.next(rec)))
      chunk.push_back(std::move(rec));
    if (chunk.empty()) break;
    const Predictions p = predict_ensemble(ensemble, chunk, config.input, config.batch_size, precision, threads);
    std::ostream& out = output.stream();
    for (size_t i = 0; i < chunk.size(); ++i) {
      if (reference) ++bin_counts[reference->bin_of(p.scores[i])];
      added.clear();
      if (add_score) added.emplace_back("score", nlohmann::json(p.scores[i]).dump());
      if (task.task == Task::kClassification) {
        if (add_pred) added.emplace_back("pred", nlohmann::json(task.labels[static_cast<size_t>(p.classes[i])]).dump());
        if (add_probs) added.emplace_back("probs", nlohmann::json(p.probs[i]).dump());
      }
      if (config.threshold) {
        const bool keep = p.scores[i] >= *config.threshold;
        if (add_keep) added.emplace_back("keep", keep ? "true" : "false");
        summary.kept += keep;
        if (!keep && config.filter) {
          ++summary.filtered;
          continue;
        }
      }
      // The line as read with the fields spliced in: every other byte (big integers, escapes,
      // spacing, an id nlohmann would round to a double) goes out as it came in.
      out << set_members(chunk[i].raw, added) << '\n';
      // A closed pipe or a full disk stops the run at the first failed write, not at the end.
      output.check();
      ++summary.written;
    }
    output.flush();
    summary.lines += static_cast<int64_t>(chunk.size());
    progress.update(summary.lines);
#ifdef __GLIBC__
    // A chunk's many small JSON allocations fragment glibc's per-thread arenas; handing the
    // free pages back after each chunk keeps peak memory flat however long the input is.
    malloc_trim(0);
#endif
  }
  progress.finish();
  summary.rejected = reader.bad_lines();
  if (summary.lines == 0) throw DataError(config.input + ": no records to score");
  output.commit();
  summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  summary.psi = std::numeric_limits<double>::quiet_NaN();
  if (reference && summary.lines < kMinDriftLines) {
    summary.drift_note = "too few lines for a drift check (" + std::to_string(summary.lines) + " < " +
                         std::to_string(kMinDriftLines) + ")";
  } else if (reference) {
    summary.psi = population_stability_index(*reference, bin_counts);
    summary.shift = describe_shift(*reference, bin_counts);
    if (config.psi_warn > 0 && summary.psi > config.psi_warn)
      log->warn("score distribution differs from dev (PSI {:.3f} > {:.2f}): {}", summary.psi, config.psi_warn,
                summary.shift);
  }
  return summary;
}

}  // namespace dqe
