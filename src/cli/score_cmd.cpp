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
  std::snprintf(line, sizeof line, "[score] %ld lines, %ld written", static_cast<long>(s.lines),
                static_cast<long>(s.written));
  std::cerr << line;
  // Kept and filtered mean something only against a threshold.
  if (state.score.threshold)
    std::fprintf(stderr, ", %ld kept, %ld filtered at %g", static_cast<long>(s.kept), static_cast<long>(s.filtered),
                 *state.score.threshold);
  std::fprintf(stderr, ", %ld rejected, %.0f pairs/s", static_cast<long>(s.rejected),
               s.seconds > 0 ? static_cast<double>(s.lines) / s.seconds : 0.0);
  if (!std::isnan(s.psi)) std::fprintf(stderr, ", PSI vs dev %.3f (%s)", s.psi, s.shift.c_str());
  else if (!s.drift_note.empty()) std::fprintf(stderr, ", %s", s.drift_note.c_str());
  if (!s.notes.empty()) std::cerr << "; " << s.notes;
  if (!s.routed.empty()) {
    std::cerr << ", by model:";
    for (size_t k = 0; k < s.routed.size(); ++k)
      std::cerr << (k ? ", " : " ") << s.routed[k].first << " " << s.routed[k].second;
  }
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
