#include <iostream>

#include "cli/app.h"
#include "cli/knob_binding.h"
#include "dqe/model_info.h"

namespace dqe::cli {

void add_info_command(CLI::App& app, CliState& state) {
  state.info_cmd = app.add_subcommand(
      "info",
      "Say what a model is, to choose which to ship: kind, task and labels, shape, parameters and bytes by dtype, "
      "inputs, detection statistics and drift reference, dev metric at training, the formats it exports to");
  bind_knobs(*state.info_cmd, state.info);
  state.info_cmd->add_option("MODEL", state.info.model, "The model (as --model)");
}

int run_info(CliState& state) {
  const nlohmann::ordered_json info = describe_model(state.info);
  std::cout << (state.info.json ? info.dump(2) + "\n" : format_model_info(info));
  return kOk;
}

}  // namespace dqe::cli
