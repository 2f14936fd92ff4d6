#include <iostream>

#include "cli/app.h"

namespace dqe::cli {

void add_serve_command(CLI::App& app, CliState& state) {
  CLI::App* cmd = app.add_subcommand(
      "serve", "Serve the model over HTTP: KServe v2 inference and /v1/score JSONL, with batching, tokens and metrics");
  state.serve_cmd = cmd;
  cmd->add_option("--config", state.config_files, "JSON file of flag values (keys are long flag names); repeatable");
  bind_knobs(*cmd, state.serve);
  add_field_options(*cmd, state.serve_fields);
}

int run_serve(CliState& state) {
  ServeSignals signals;
  signals.stop = stop_token();
  signals.reloads = reload_requests();
  signals.version = DQE_VERSION;
  signals.on_listening = [](const std::string& host, int port, bool tls) {
    std::cerr << "dqe serve: listening on " << (tls ? "https://" : "http://") << host << ":" << port << std::endl;
  };
  serve(state.serve, signals);
  return kOk;
}

}  // namespace dqe::cli
