#include <iostream>

#include "cli/app.h"
#include "cli/knob_binding.h"
#include "dqe/trainer.h"

namespace dqe::cli {

void add_train_command(CLI::App& app, CliState& state) {
  CLI::App* cmd = app.add_subcommand("train", "Fine-tune (or train from scratch) a relevance model");
  state.train_cmd = cmd;
  add_config_options(*cmd, state);
  bind_knobs(*cmd, state.train);
}

int run_train(CliState& state) {
  if (state.dump_config) {
    state.train.validate();  // a dumped config is a valid one
    std::cout << state.train.to_json().dump(2) << "\n";
    return kOk;
  }
  TrainResult r = train(state.train, stop_token());
  if (r.interrupted) {
    std::cerr << "dqe: interrupted at step " << r.steps << "; resume with: dqe train ... --out " << state.train.out_dir
              << " --resume\n";
    return exit_code_of_signal(r.interrupt_signal);
  }
  std::cout << "best dev " << r.metric_name << " " << r.best_metric << " at step " << r.best_step << " (" << r.best_dir
            << ")\n";
  return kOk;
}

}  // namespace dqe::cli
