#include <iostream>

#include "cli/app.h"

namespace dqe::cli {

void add_eval_command(CLI::App& app, CliState& state) {
  CLI::App* cmd = app.add_subcommand("eval", "Evaluate a model on labelled data and print its metrics");
  state.eval_cmd = cmd;
  cmd->add_option("--config", state.config_files, "JSON file of flag values (keys are long flag names); repeatable");
  bind_knobs(*cmd, state.eval);
  bind_knobs(*cmd, state.gate);
  add_field_options(*cmd, state.eval_fields);
}

int run_eval(CliState& state) {
  // The new metrics must not replace the baseline they are compared with.
  check_no_aliases({{"--metrics-out", state.eval.metrics_out, true}, {"--baseline", state.gate.baseline, false}});
  // Before evaluating: a gate that cannot work stops the run at once, and the baseline is
  // read before --metrics-out is written.
  const Gate gate(state.gate);
  EvalResult r = evaluate(state.eval, stop_token());
  std::cout << r.table;
  if (!gate.active()) return kOk;
  const GateResult verdict = gate.check(r.metrics);
  for (const auto& f : verdict.failures) std::cerr << "dqe: gate failed: " << f << "\n";
  std::cerr << "dqe: gate: " << verdict.summary() << "\n";
  return verdict.passed() ? kOk : kGateFailed;
}

}  // namespace dqe::cli
