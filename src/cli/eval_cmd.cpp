#include <iostream>

#include "cli/app.h"

namespace dqe::cli {

void add_eval_command(CLI::App& app, CliState& state) {
  EvalConfig& c = state.eval;
  CLI::App* cmd = app.add_subcommand("eval", "Evaluate a model on labelled data and print its metrics");
  state.eval_cmd = cmd;
  cmd->add_option("--config", state.config_files, "JSON file of flag values (keys are long flag names); repeatable");
  cmd->add_option("--model", c.models,
                  "Model: checkpoint, run directory (its best), Hugging Face directory or PEFT LoRA adapter; repeat "
                  "it to average several (an ensemble)")
      ->required();
  cmd->add_option("--base", c.base, "The base model of adapters (LoRA or bottleneck), when it moved from where they recorded it");
  cmd->add_option("--data", c.data, "Labelled data (JSONL)")->required();
  cmd->add_option("--metrics-out", c.metrics_out, "Write the metrics as JSON here");
  cmd->add_option("--max-len", c.max_len, "Longest input in tokens (0: the model's)")->capture_default_str();
  cmd->add_option("--batch-size", c.batch_size, "Examples per batch")->capture_default_str();
  add_compute_options(*cmd, c);
  cmd->add_option("--max-bad-lines", c.max_bad_lines, "Skip up to N malformed lines instead of stopping")->capture_default_str();
  cmd->add_option("--rejects", c.rejects, "Write skipped lines here");
  const char* gate = "Regression gates (exit 4 when one fails)";
  cmd->add_option("--baseline", state.gate.baseline, "Earlier --metrics-out JSON to compare with")->group(gate);
  cmd->add_option("--max-regression", state.gate_max_regression,
                  "How much worse than --baseline a gated metric may be, in its own units")
      ->capture_default_str()
      ->group(gate);
  cmd->add_option("--fail-under", state.gate.fail_under,
                  "metric=value: fail when the metric (as printed, e.g. ndcg_at_10) is below value (repeatable)")
      ->group(gate);
  cmd->add_option("--fail-over", state.gate.fail_over,
                  "metric=value: fail when the metric (as printed, e.g. rmse) is above value (repeatable)")
      ->group(gate);
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
