#include <malloc.h>
#include "dqe/scorer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>

#include "base/checks.h"
#include "base/log.h"
#include "base/progress.h"
#include "data/dataset.h"
#include "dqe/errors.h"
#include "dqe/run_context.h"
#include "dqe/session.h"
#include "infer/detect.h"
#include "infer/predictor.h"
#include "infer/shard.h"
#include "io/output.h"
#include "io/output_file.h"
#include "model/model_dir.h"

namespace dqe {

void ScoreConfig::validate() const {
  check_knobs(*this);
  if (filter && !threshold) throw ConfigError("--filter needs --threshold");
  check_flag(chunk_lines >= 1, "chunk size", ">= 1", chunk_lines);
  LineOptions().set_fields(add_fields);  // names every field it does not know
  const bool keep = std::find(add_fields.begin(), add_fields.end(), "keep") != add_fields.end();
  if (keep && !threshold && add_fields != ScoreConfig().add_fields)
    throw ConfigError("--fields keep needs --threshold (keep is score >= threshold)");
  check_compute_flags(threads, precision, device);
  parse_shard(shard, shard_key);
  if (detect_fpr && !detect) throw ConfigError("--detect-fpr needs --detect");
  if (detect && models.size() > 1)
    throw ConfigError("--detect reads one model's detection statistics; give a single --model");
}

ScoreSummary score(const ScoreConfig& config, const StopToken& stop) {
  config.validate();
  check_no_aliases(
      {{"--output", config.output, true}, {"--rejects", config.rejects, true}, {"--input", config.input, false}});
  LineOptions line;
  line.set_fields(config.add_fields);
  line.threshold = config.threshold;
  line.filter = config.filter;
  line.normalize = config.normalize;
  line.detect = config.detect;
  const RunContext ctx = make_run_context(config.device, config.precision, config.threads, stop);
  auto log = detail::logger("score");
  log->info(ctx.describe());
  SessionConfig sc = session_config_of(config);
  sc.detect = config.detect;
  sc.detect_fpr = config.detect_fpr;
  const InferenceSession session(sc, ctx);
  if (line.add_logits)
    if (const std::string why = session.logits_refusal(); !why.empty()) throw ConfigError("--fields logits: " + why);
  const Ensemble& ensemble = session.ensemble();
  if (const std::string sharing = ensemble.sharing_summary(); !sharing.empty()) log->info(sharing);
  // The drift check compares with the dev scores saved with a single model.
  const std::optional<ScoreReference>& reference =
      ensemble.members.size() == 1 ? ensemble.members.front().score_reference : std::nullopt;
  const Shard shard = parse_shard(config.shard, config.shard_key);
  if (!shard.all())
    log->info("shard {} of {}: lines by {}", shard.index, shard.count,
              shard.key.empty() ? "line number" : "the hash of field \"" + shard.key + "\"");
  ScoreSummary summary;
  summary.normalized = config.normalize;
  if (const DetectionStats* detection = session.detection()) {
    summary.detect_fpr = detection->calibration.fpr;
    for (const char* name : signal_names()) summary.suspect_counts.emplace_back(name, 0);
  }
  ReaderOptions ro = session.reader_options();
  ro.max_bad_lines = config.max_bad_lines;
  ro.rejects_path = config.rejects;
  ro.keep_raw = true;
  JsonlReader reader(config.input, ro);
  detail::OutputFile output(config.output);  // before any work: an unwritable output fails now

  std::vector<int64_t> bin_counts(reference ? reference->fractions.size() : 0, 0);
  const auto t0 = std::chrono::steady_clock::now();
  Progress progress("score", 0, "lines");
  double share_before = 0;
  std::vector<Record> chunk;
  chunk.reserve(static_cast<size_t>(config.chunk_lines));
  bool more = true;
  while (more) {
    chunk.clear();
    Record rec;
    while (static_cast<int64_t>(chunk.size()) < config.chunk_lines && (more = reader.next(rec)))
      if (in_shard(shard, rec, config.input)) chunk.push_back(std::move(rec));
    if (chunk.empty()) break;
    const int64_t before = summary.lines;
    // The share of the file read: at the chunk's end now, and the chunk's part of it as its
    // lines are scored.
    const double share = reader.fraction_read();
    const double chunk_share = share - share_before;
    const auto lines_in_chunk = static_cast<double>(chunk.size());
    auto on_batch = [&](int64_t done) {
      progress.update_share(before + done,
                            share < 0 ? share : share_before + chunk_share * static_cast<double>(done) / lines_in_chunk);
    };
    ScoredLines scored = session.score_records(chunk, line, config.input, on_batch);
    if (reference)
      for (const double v : scored.predictions.scores) ++bin_counts[reference->bin_of(v)];
    std::ostream& out = output.stream();
    for (const std::string& text : scored.lines) {
      out << text << '\n';
      // A closed pipe or a full disk stops the run at the first failed write, not at the end.
      output.check();
    }
    summary.written += static_cast<int64_t>(scored.lines.size());
    summary.kept += scored.kept;
    summary.filtered += scored.filtered;
    summary.suspects += scored.suspects;
    for (size_t k = 0; k < scored.suspect_counts.size(); ++k)
      summary.suspect_counts[k].second += scored.suspect_counts[k].second;
    if (summary.routed.empty()) summary.routed = scored.routed;
    else
      for (size_t k = 0; k < scored.routed.size(); ++k) summary.routed[k].second += scored.routed[k].second;
    output.flush();
    summary.lines += static_cast<int64_t>(chunk.size());
    progress.update_share(summary.lines, share);
    share_before = share;
#ifdef __GLIBC__
    // A chunk's many small JSON allocations fragment glibc's per-thread arenas; handing the
    // free pages back after each chunk keeps peak memory flat however long the input is.
    malloc_trim(0);
#endif
  }
  progress.finish();
  summary.rejected = reader.bad_lines();
  summary.notes = session.unseen_inputs_summary();
  // A shard of a short input may hold no line; its output is then empty.
  if (summary.lines == 0 && shard.all()) throw DataError(config.input + ": no records to score");
  if (summary.lines == 0) log->warn("shard {} holds no line of {}", shard.describe(), config.input);
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
