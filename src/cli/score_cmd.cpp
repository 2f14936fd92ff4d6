#include <cmath>
#include <cstdio>
#include <iostream>

#include "cli/app.h"

namespace dqe::cli {

void add_score_command(CLI::App& app, CliState& state) {
  ScoreConfig& c = state.score;
  CLI::App* cmd = app.add_subcommand("score", "Score query-result pairs; every input line is written back with its score");
  state.score_cmd = cmd;
  cmd->add_option("--config", state.config_files, "JSON file of flag values (keys are long flag names); repeatable");
  cmd->add_option("--model", c.models,
                  "Model: checkpoint, run directory (its best), Hugging Face directory or PEFT LoRA adapter; repeat "
                  "it to average several (an ensemble)")
      ->required();
  cmd->add_option("--base", c.base, "The base model of adapters (LoRA or bottleneck), when it moved from where they recorded it");
  cmd->add_option("--input", c.input, "JSONL input, - for stdin")->capture_default_str();
  cmd->add_option("--output", c.output, "JSONL output, - for stdout (a file appears only when complete)")->capture_default_str();
  cmd->add_option("--batch-size", c.batch_size, "Examples per batch")->capture_default_str();
  cmd->add_option("--max-len", c.max_len, "Longest input in tokens (0: the model's)")->capture_default_str();
  cmd->add_option("--threshold", state.score_threshold, "Add \"keep\": score >= T (the low-quality filter)");
  cmd->add_flag("--filter", c.filter, "With --threshold, drop the lines that are not kept");
  cmd->add_option("--fields", c.add_fields, "What to add to each line: score, pred, probs, keep")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("--psi-warn", c.psi_warn,
                  "Warn when the score distribution's PSI against the model's dev scores exceeds this (0: off)")
      ->capture_default_str();
  cmd->add_option("--shard", c.shard,
                  "K/N: score only shard K (0-based) of N, by line number or --shard-key; the N outputs together are "
                  "the whole output");
  cmd->add_option("--shard-key", c.shard_key,
                  "With --shard: pick the shard by a hash of this field (e.g. query_id), keeping its lines together");
  cmd->add_flag("--normalize", c.normalize,
                "Apply NFKC, remove invisible characters and fold look-alike letters before tokenizing (changes scores)");
  cmd->add_flag("--detect", c.detect,
                "Add \"suspect\" and \"suspect_reasons\" to each line: keyword stuffing, invisible characters, mixed "
                "scripts, look-alikes, out-of-distribution inputs, instability (needs the model's detection statistics)");
  cmd->add_option("--detect-fpr", state.score_detect_fpr,
                  "With --detect: flag at this false-positive rate on dev instead of the model's calibrated one");
  add_compute_options(*cmd, c);
  cmd->add_option("--max-bad-lines", c.max_bad_lines, "Skip up to N malformed lines instead of stopping")->capture_default_str();
  cmd->add_option("--rejects", c.rejects, "Write skipped lines here");
  add_field_options(*cmd, state.score_fields);
}

int run_score(CliState& state) {
  ScoreSummary s = score(state.score, stop_token());
  char line[320];
  std::snprintf(line, sizeof line, "[score] %ld lines, %ld written, %ld kept, %ld filtered, %ld rejected, %.0f pairs/s",
                static_cast<long>(s.lines), static_cast<long>(s.written), static_cast<long>(s.kept),
                static_cast<long>(s.filtered), static_cast<long>(s.rejected),
                s.seconds > 0 ? static_cast<double>(s.lines) / s.seconds : 0.0);
  std::cerr << line;
  if (!std::isnan(s.psi)) std::fprintf(stderr, ", PSI vs dev %.3f (%s)", s.psi, s.shift.c_str());
  else if (!s.drift_note.empty()) std::fprintf(stderr, ", %s", s.drift_note.c_str());
  if (!s.notes.empty()) std::cerr << "; " << s.notes;
  if (s.normalized) std::cerr << ", normalized";
  if (s.detect_fpr > 0) {
    std::fprintf(stderr, ", %ld suspect at %g%% dev false positives", static_cast<long>(s.suspects), 100 * s.detect_fpr);
    for (const auto& [name, count] : s.suspect_counts)
      if (count > 0) std::fprintf(stderr, " (%s %ld)", name.c_str(), static_cast<long>(count));
  }
  std::cerr << "\n";
  return kOk;
}

}  // namespace dqe::cli
