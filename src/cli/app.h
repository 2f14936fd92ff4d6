// The dqe command line: flags bound onto the library's config structs, one call into the
// library per subcommand, and the mapping from errors to exit codes.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "cli/knob_binding.h"
#include "dqe/evaluator.h"
#include "dqe/exporter.h"
#include "dqe/model_info.h"
#include "dqe/gate.h"
#include "dqe/pretrainer.h"
#include "dqe/report.h"
#include "dqe/run_context.h"
#include "dqe/scorer.h"
#include "dqe/server.h"
#include "dqe/trainer.h"
#include "dqe/vocab_builder.h"
#include "io/output.h"
#include "model/model_spec.h"

namespace dqe::cli {

// Exit codes (documented in README.md).
enum ExitCode : int {
  kOk = 0,
  kRuntimeError = 1,
  kUsageError = 2,
  kDataError = 3,
  kGateFailed = 4,
  kInterrupted = 130,
  kTerminated = 143,
};

// Where parsed flags land. Field-name flags are kept apart so that eval and score can
// tell "given" from "default" (the model's saved field names win unless given).
struct CliState {
  TrainConfig train;
  EvalConfig eval;
  ScoreConfig score;
  FieldMap eval_fields, score_fields;
  GateConfig gate;
  bool dump_config = false;
  // Shown by --help; the files are read by expand_config_files() before parsing.
  std::vector<std::string> config_files;
  CLI::App* train_cmd = nullptr;
  CLI::App* eval_cmd = nullptr;
  CLI::App* score_cmd = nullptr;
  ReportConfig report;
  CLI::App* report_cmd = nullptr;
  PretrainConfig pretrain;
  CLI::App* pretrain_cmd = nullptr;
  TokenizerTrainConfig tokenizer;
  CLI::App* tokenizer_train_cmd = nullptr;
  ExportConfig exporter;
  CLI::App* export_cmd = nullptr;
  InfoConfig info;
  CLI::App* info_cmd = nullptr;
  ServeConfig serve;
  FieldMap serve_fields;
  CLI::App* serve_cmd = nullptr;
};

std::unique_ptr<CLI::App> make_app(CliState& state);

// Asks the library's long work to stop: set by SIGINT and SIGTERM once run() installed its
// handler (the only process-wide state, kept out of the library).
StopToken stop_token();
// Installs SIGHUP's handler and returns the count it raises.
const std::atomic<int>* reload_requests();
// 143 for SIGTERM, 130 otherwise (SIGINT, or a stop asked by a test hook).
int exit_code_of_signal(int signal_number);

// What --version prints: dqe, LibTorch, BLAS and thread count, devices.
std::string version_text();

void add_train_command(CLI::App& app, CliState& state);
void add_eval_command(CLI::App& app, CliState& state);
void add_score_command(CLI::App& app, CliState& state);
void add_report_command(CLI::App& app, CliState& state);
void add_pretrain_command(CLI::App& app, CliState& state);
// `dqe tokenizer train`.
void add_tokenizer_command(CLI::App& app, CliState& state);
void add_export_command(CLI::App& app, CliState& state);
// `dqe info MODEL`.
void add_info_command(CLI::App& app, CliState& state);
void add_serve_command(CLI::App& app, CliState& state);
// Serves until SIGINT/SIGTERM (then drains and returns 0); SIGHUP reloads the models.
int run_serve(CliState& state);

// Adds --config and --dump-config: flags of the command line, not settings of the run.
void add_config_options(CLI::App& cmd, CliState& state);
// Adds the input field flags (--query-field ... --image-field; dqe/knobs.h).
void add_field_options(CLI::App& cmd, FieldMap& fields);
// True when any field-name flag was given on cmd.
bool field_options_given(const CLI::App& cmd);

// Sets eval's and score's field names when any was given (the model's own otherwise).
void finalize(CliState& state);

int run_train(CliState& state);
int run_eval(CliState& state);
int run_score(CliState& state);
int run_report(CliState& state);
int run_pretrain(CliState& state);
int run_tokenizer_train(CliState& state);
int run_export(CliState& state);
int run_info(CliState& state);

// Replaces "--config F" (after the subcommand, repeatable) by the flags F holds: keys are
// long flag names; later files override earlier ones and explicit flags override files.
// Throws ConfigError naming the file for an unknown key or a bad value.
std::vector<std::string> expand_config_files(CLI::App& app, std::vector<std::string> args);
// Checks the command words and option names before CLI11 sees them, so that a typo gets
// "unknown option --trian; did you mean --train?" rather than "--train is required"; rewrites
// Hugging Face's underscore spellings (--max_steps) to ours. Throws ConfigError.
std::vector<std::string> check_command_words(CLI::App& app, std::vector<std::string> args);
// Parses args (argv without the program name), --config files included.
void parse_args(CLI::App& app, std::vector<std::string> args);

// Parses argv, runs the chosen subcommand, prints "dqe: error: ..." for failures and
// returns the exit code.
int run(int argc, char** argv);

}  // namespace dqe::cli
