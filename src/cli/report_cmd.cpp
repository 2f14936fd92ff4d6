#include "cli/app.h"

namespace dqe::cli {

void add_report_command(CLI::App& app, CliState& state) {
  CLI::App* cmd = app.add_subcommand("report", "Write a self-contained HTML report of a training run");
  state.report_cmd = cmd;
  cmd->add_option("--config", state.config_files, "JSON file of flag values (keys are long flag names); repeatable");
  bind_knobs(*cmd, state.report);
}

int run_report(CliState& state) {
  write_report(state.report, stop_token());
  return kOk;
}

}  // namespace dqe::cli
