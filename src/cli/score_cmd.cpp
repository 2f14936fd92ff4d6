#include <cmath>
#include <cstdio>
#include <iostream>

#include "cli/app.h"

namespace dqe::cli {

void add_score_command(CLI::App& app, CliState& state) {
  CLI::App* cmd = app.add_subcommand("score", "Score query-result pairs; every input line is written back with its score");
  state.score_cmd = cmd;
  cmd->add_option("--config", state.config_files, "JSON file of flag values (keys are long flag names); repeatable");
  bind_knobs(*cmd, state.score);
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
