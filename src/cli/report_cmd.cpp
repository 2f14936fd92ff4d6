#include "cli/app.h"

namespace dqe::cli {

void add_report_command(CLI::App& app, CliState& state) {
  ReportConfig& c = state.report;
  CLI::App* cmd = app.add_subcommand("report", "Write a self-contained HTML report of a training run");
  state.report_cmd = cmd;
  cmd->add_option("--config", state.config_files, "JSON file of flag values (keys are long flag names); repeatable");
  cmd->add_option("--run", c.run_dir, "Training run directory (train_log.jsonl, eval_log.jsonl, best/)")->required();
  cmd->add_option("--out", c.out, "HTML file to write")->capture_default_str();
  cmd->add_option("--data", c.data, "Labelled data to run the best model on (default: the run's dev file)");
  cmd->add_option("--max-len", c.max_len, "Longest input in tokens (0: the model's)")->capture_default_str();
  cmd->add_option("--batch-size", c.batch_size, "Examples per batch")->capture_default_str();
  add_compute_options(*cmd, c);
}

int run_report(CliState& state) {
  write_report(state.report, stop_token());
  return kOk;
}

}  // namespace dqe::cli
