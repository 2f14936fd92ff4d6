#include "cli/app.h"

#include <csignal>
#include <cstdio>
#include <fstream>
#include <iostream>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "dqe/errors.h"
#include "dqe/runtime.h"

namespace dqe::cli {
namespace {

// --config files are JSON objects whose keys are long flag names ("lr", "batch-size").
// Explicit flags override them, and later files override earlier ones.
class JsonConfig : public CLI::Config {
 public:
  std::string to_config(const CLI::App* app, bool default_also, bool, std::string) const override {
    nlohmann::ordered_json j;
    for (const CLI::Option* opt : app->get_options({})) {
      if (opt->get_lnames().empty() || !opt->get_configurable()) continue;
      const std::string name = opt->get_lnames()[0];
      if (opt->count() > 0) {
        auto results = opt->results();
        j[name] = results.size() == 1 ? nlohmann::ordered_json(results[0]) : nlohmann::ordered_json(results);
      } else if (default_also && !opt->get_default_str().empty()) {
        j[name] = opt->get_default_str();
      }
    }
    return j.dump(2) + "\n";
  }

  std::vector<CLI::ConfigItem> from_config(std::istream& input) const override {
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(input);
    } catch (const nlohmann::json::exception& e) {
      throw CLI::ConversionError("--config: not valid JSON (" + std::string(e.what()) + ")");
    }
    if (!j.is_object()) throw CLI::ConversionError("--config: expected a JSON object of flag values");
    std::vector<CLI::ConfigItem> items;
    for (auto it = j.begin(); it != j.end(); ++it) {
      CLI::ConfigItem item;
      item.name = it.key();
      auto add = [&](const nlohmann::json& v) {
        if (v.is_string()) item.inputs.push_back(v.get<std::string>());
        else if (v.is_boolean()) item.inputs.push_back(v.get<bool>() ? "true" : "false");
        else if (v.is_number()) item.inputs.push_back(v.dump());
        else throw CLI::ConversionError("--config: value of \"" + it.key() + "\" must be a string, number, bool or list");
      };
      if (it->is_array()) {
        for (const auto& v : *it) add(v);
      } else {
        add(*it);
      }
      items.push_back(std::move(item));
    }
    return items;
  }
};

void on_signal(int signal_number) { request_stop(signal_number); }

}  // namespace

void add_field_options(CLI::App& cmd, FieldMap& fields) {
  const char* group = "Input fields";
  cmd.add_option("--query-field", fields.query, "JSON field holding the query")->capture_default_str()->group(group);
  cmd.add_option("--text-fields", fields.text, "JSON fields joined into the result text; the first is required")
      ->delimiter(',')
      ->capture_default_str()
      ->group(group);
  cmd.add_option("--label-field", fields.label, "JSON field holding the label")->capture_default_str()->group(group);
  cmd.add_option("--query-id-field", fields.query_id, "JSON field grouping the results of one query (default: the query text)")
      ->capture_default_str()
      ->group(group);
  cmd.add_option("--id-field", fields.id, "JSON field holding the record id")->capture_default_str()->group(group);
}

bool field_options_given(const CLI::App& cmd) {
  for (const char* name : {"--query-field", "--text-fields", "--label-field", "--query-id-field", "--id-field"})
    if (cmd.count(name) > 0) return true;
  return false;
}

std::unique_ptr<CLI::App> make_app(CliState& state) {
  auto app = std::make_unique<CLI::App>(
      "dqe: fine-tune BERT encoders to judge e-commerce search results (train, eval, score)", "dqe");
  app->set_version_flag("--version", std::string("dqe ") + DQE_VERSION);
  app->require_subcommand(1);
  app->config_formatter(std::make_shared<JsonConfig>());
  add_train_command(*app, state);
  add_eval_command(*app, state);
  add_score_command(*app, state);
  return app;
}

void finalize(CliState& state) {
  if (state.eval_cmd && field_options_given(*state.eval_cmd)) state.eval.fields = state.eval_fields;
  if (state.score_cmd && field_options_given(*state.score_cmd)) state.score.fields = state.score_fields;
  if (state.score_cmd && state.score_cmd->count("--threshold") > 0) state.score.threshold = state.score_threshold;
}

int run(int argc, char** argv) {
  CliState state;
  std::unique_ptr<CLI::App> app = make_app(state);
  try {
    app->parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app->exit(e);  // --help, --version
    std::cerr << "dqe: error: " << e.what() << "\n";
    std::cerr << "Run 'dqe --help' or 'dqe COMMAND --help' for usage.\n";
    return kUsageError;
  }
  finalize(state);
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  try {
    if (state.train_cmd->parsed()) return run_train(state);
    if (state.eval_cmd->parsed()) return run_eval(state);
    if (state.score_cmd->parsed()) return run_score(state);
    return kUsageError;
  } catch (const ConfigError& e) {
    std::cerr << "dqe: error: " << e.what() << "\n";
    return kUsageError;
  } catch (const DataError& e) {
    std::cerr << "dqe: error: " << e.what() << "\n";
    return kDataError;
  } catch (const std::exception& e) {
    // c10::Error messages carry a C++ stack trace after the first line.
    std::string msg = e.what();
    if (auto nl = msg.find('\n'); nl != std::string::npos) msg.resize(nl);
    std::cerr << "dqe: error: " << msg << "\n";
    return kRuntimeError;
  }
}

}  // namespace dqe::cli
