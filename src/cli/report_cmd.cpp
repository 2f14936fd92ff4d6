// placeholder: being written
#include "cli/app.h"

namespace dqe::cli {

void add_report_command(CLI::App& app, CliState& state) {
  state.report_cmd = app.add_subcommand("report", "Write a self-contained HTML report of a training run");
}

int run_report(CliState&) { return kRuntimeError; }

}  // namespace dqe::cli
