#include "cli/app.h"

#include <algorithm>
#include <filesystem>
#include <atomic>
#include <csignal>
#include <map>
#include <set>
#include <cstdio>
#include <fstream>
#include <iostream>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "base/process_stop.h"
#include "dqe/errors.h"
#include "dqe/runtime.h"
#include "model/model_spec.h"

namespace dqe::cli {
namespace {

// The only process-wide stop flag: set by the signal handler, read through StopTokens.
std::atomic<int> g_stop_signal{0};

extern "C" void on_stop_signal(int signal_number) {
  // The first signal asks the work to stop at its next safe point; a second one ends the
  // process at once, as if no handler were installed.
  if (g_stop_signal.exchange(signal_number) != 0) {
    std::signal(signal_number, SIG_DFL);
    std::raise(signal_number);
  }
}

// SIGHUP's count: `dqe serve` reloads its models when it changes.
std::atomic<int> g_reload_signals{0};

extern "C" void on_reload_signal(int) { g_reload_signals.fetch_add(1); }

}  // namespace

const std::atomic<int>* reload_requests() {
  std::signal(SIGHUP, on_reload_signal);
  return &g_reload_signals;
}

StopToken stop_token() { return StopToken(&g_stop_signal); }

int exit_code_of_signal(int signal_number) { return signal_number == SIGTERM ? kTerminated : kInterrupted; }

std::string version_text() {
  configure_threads(0);
  return std::string("dqe ") + DQE_VERSION + "\n" + runtime_description() + "\n" +
         "devices: cpu" + (torch::cuda::is_available() ? ", cuda (" + std::to_string(torch::cuda::device_count()) + ")" : "") +
         (torch::cuda::is_available() ? "" : " (this LibTorch has no CUDA, or no GPU is visible)");
}

void add_config_options(CLI::App& cmd, CliState& state) {
  cmd.add_option("--config", state.config_files,
                 "JSON file of flag values (keys are long flag names); repeatable: later files, then explicit flags, win");
  cmd.add_flag("--dump-config", state.dump_config, "Print the effective configuration as JSON (a valid --config file) and exit");
}

void add_field_options(CLI::App& cmd, FieldMap& fields) { visit_field_knobs(fields, KnobBinder(cmd)); }

bool field_options_given(const CLI::App& cmd) {
  std::vector<std::string> names;
  const FieldMap defaults;
  visit_field_knobs(defaults, knob_visitors::Names{names});
  for (const std::string& name : names)
    if (cmd.count("--" + name) > 0) return true;
  return false;
}

std::unique_ptr<CLI::App> make_app(CliState& state) {
  auto app = std::make_unique<CLI::App>(
      "dqe: fine-tune BERT encoders to judge e-commerce search results (train, eval, score, pretrain, export, info, "
      "serve)",
      "dqe");
  app->set_version_flag("--version", [] { return version_text(); }, "Print dqe's version, LibTorch, BLAS and devices");
  app->require_subcommand(1);
  add_train_command(*app, state);
  add_eval_command(*app, state);
  add_score_command(*app, state);
  add_report_command(*app, state);
  add_pretrain_command(*app, state);
  add_tokenizer_command(*app, state);
  add_export_command(*app, state);
  add_info_command(*app, state);
  add_serve_command(*app, state);
  return app;
}

void finalize(CliState& state) {
  if (state.eval_cmd && field_options_given(*state.eval_cmd)) state.eval.fields = state.eval_fields;
  if (state.score_cmd && field_options_given(*state.score_cmd)) state.score.fields = state.score_fields;
  if (state.serve_cmd && field_options_given(*state.serve_cmd)) state.serve.fields = state.serve_fields;
}

namespace {

// Edits (insertions, deletions, substitutions) that turn a into b.
size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = up;
    }
  }
  return row[b.size()];
}

// "; did you mean X?" for the closest of candidates, when it is close enough to be a typo.
std::string suggestion(const std::string& word, const std::vector<std::string>& candidates, const std::string& prefix,
                       const std::string& suffix = "") {
  std::string best;
  size_t best_distance = std::max<size_t>(2, word.size() / 3) + 1;
  for (const auto& c : candidates) {
    const size_t d = edit_distance(word, c);
    if (d < best_distance || (c.rfind(word, 0) == 0 && best.empty())) {
      best = c;
      best_distance = std::min(best_distance, d);
    }
  }
  return best.empty() ? "" : "; did you mean " + prefix + best + suffix + "?";
}

// The long names of a command's options, without the dashes.
std::vector<std::string> long_names(const CLI::App& cmd) {
  std::vector<std::string> names;
  for (const CLI::Option* opt : cmd.get_options())
    for (const auto& n : opt->get_lnames()) names.push_back(n);
  return names;
}

// Flags of Hugging Face's Trainer and example scripts (hyphenated) that mean what one of ours
// means: the first of ours that the command has is taken for them.
struct SameMeaning {
  const char* theirs;
  std::vector<const char*> ours;
};
const SameMeaning kSameMeaning[] = {
    {"learning-rate", {"lr"}},
    {"num-train-epochs", {"epochs"}},
    {"output-dir", {"out"}},
    {"per-device-train-batch-size", {"batch-size"}},
    {"per-device-eval-batch-size", {"eval-batch-size", "batch-size"}},
    {"gradient-accumulation-steps", {"grad-accum"}},
    {"model-name-or-path", {"init", "model"}},
    {"max-seq-length", {"max-len"}},
    {"eval-steps", {"eval-every"}},
    {"train-file", {"train", "corpus"}},
    {"validation-file", {"dev", "data"}},
    {"early-stopping-patience", {"patience"}},
    {"mlm-probability", {"mask-prob"}},
};

// Flags whose meaning is close to one of ours but not the same, or that other tools use for
// one of ours: what to write instead.
struct Hint {
  const char* theirs;
  std::vector<std::pair<const char*, const char*>> ours;  // (our flag the command must have, advice)
};
const Hint kHints[] = {
    {"bf16", {{"precision", "--precision bf16"}}},
    {"fp16", {{"precision", "--precision bf16 (dqe has no fp16 mode)"}}},
    {"no-cuda", {{"device", "--device cpu"}}},
    {"use-cpu", {{"device", "--device cpu"}}},
    {"warmup-steps", {{"warmup-ratio", "--warmup-ratio (a fraction of the steps, not a count)"}}},
    {"resume-from-checkpoint", {{"resume", "--resume (it continues the --out run from its last/)"}}},
    {"dev", {{"data", "--data"}}},
    {"test", {{"data", "--data"}}},
    {"eval-file", {{"data", "--data"}, {"dev", "--dev"}}},
    {"input", {{"data", "--data"}}},
    {"data", {{"input", "--input"}, {"train", "--train"}}},
    {"output", {{"metrics-out", "--metrics-out"}, {"out", "--out"}}},
    {"model", {{"init", "--init"}}},
};

bool has_name(const std::vector<std::string>& names, const std::string& name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

// Our flag for name (hyphenated) when it is another tool's spelling of it; "" otherwise.
std::string same_meaning(const std::string& name, const std::vector<std::string>& names) {
  for (const SameMeaning& s : kSameMeaning)
    if (name == s.theirs)
      for (const char* ours : s.ours)
        if (has_name(names, ours)) return ours;
  return "";
}

// "; did you mean X?" for a flag another tool spells so, else for the closest typo.
std::string advice(const std::string& name, const std::vector<std::string>& names, const std::string& prefix) {
  std::string hyphens = name;
  std::replace(hyphens.begin(), hyphens.end(), '_', '-');
  for (const Hint& h : kHints)
    if (hyphens == h.theirs)
      for (const auto& [ours, text] : h.ours)
        if (has_name(names, ours)) return std::string("; did you mean ") + text + "?";
  return suggestion(name, names, prefix);
}

}  // namespace

std::vector<std::string> expand_config_files(CLI::App& app, std::vector<std::string> args) {
  // The subcommand is the first word that names one; --config belongs to it.
  size_t sub_at = 0;
  auto names_subcommand = [&](const std::string& word) {
    for (const CLI::App* sub : app.get_subcommands({}))
      if (sub->check_name(word)) return true;
    return false;
  };
  while (sub_at < args.size() && !names_subcommand(args[sub_at])) ++sub_at;
  if (sub_at == args.size()) return args;
  CLI::App* sub = app.get_subcommand(args[sub_at]);

  std::vector<std::string> files;
  for (size_t i = sub_at + 1; i < args.size();) {
    if (args[i] == "--config") {
      if (i + 1 >= args.size()) throw ConfigError("--config needs a file");
      files.push_back(args[i + 1]);
      args.erase(args.begin() + static_cast<std::ptrdiff_t>(i), args.begin() + static_cast<std::ptrdiff_t>(i + 2));
    } else if (args[i].rfind("--config=", 0) == 0) {
      files.push_back(args[i].substr(9));
      args.erase(args.begin() + static_cast<std::ptrdiff_t>(i));
    } else {
      ++i;
    }
  }
  if (files.empty()) return args;

  // Later files override earlier ones; remember which file set each key for messages.
  nlohmann::json merged = nlohmann::json::object();
  std::map<std::string, std::string> source;
  for (const auto& file : files) {
    nlohmann::json j;
    try {
      j = read_json_file(file);
    } catch (const Error& e) {
      throw ConfigError(std::string("--config ") + e.what());
    }
    if (!j.is_object()) throw ConfigError("--config " + file + ": expected a JSON object of flag values");
    for (auto it = j.begin(); it != j.end(); ++it) {
      merged[it.key()] = *it;
      source[it.key()] = file;
    }
  }
  std::set<std::string> given;
  for (size_t i = sub_at + 1; i < args.size(); ++i)
    if (args[i].rfind("--", 0) == 0) given.insert(args[i].substr(2, args[i].find('=') - 2));

  std::vector<std::string> inserted;
  for (auto it = merged.begin(); it != merged.end(); ++it) {
    const std::string& key = it.key();
    const std::string where = "--config " + source[key] + ": ";
    if (key == "help" || key == "config" || key == "dump-config" || key == "version")
      throw ConfigError(where + "\"" + key + "\" is a command-line flag, not a setting a config file can hold");
    std::string flag = key;
    std::replace(flag.begin(), flag.end(), '_', '-');  // Hugging Face's spelling of our keys
    const std::vector<std::string> names = long_names(*sub);
    if (!has_name(names, flag))
      if (std::string ours = same_meaning(flag, names); !ours.empty()) flag = ours;
    const CLI::Option* opt = sub->get_option_no_throw("--" + flag);
    if (opt == nullptr)
      throw ConfigError(where + "unknown option \"" + key + "\" for dqe " + sub->get_name() + advice(key, names, ""));
    if (given.count(flag) > 0) continue;  // explicit flags win
    const nlohmann::json& v = *it;
    // "" for a text flag whose default is empty is that default (--dump-config writes it so); on
    // the command line it is refused, most likely an unset shell variable.
    if (v.is_string() && v.get<std::string>().empty() && opt->get_default_str().empty()) continue;
    // A JSON value of the option's own type: true for a text flag would name a file "true", 1
    // for a boolean would pass as true, and ["x"] for one value as "x".
    const std::string full_type = opt->get_type_name();  // "FLOAT", "TEXT:{none,lora}" with a check's words
    const std::string type = full_type.substr(0, full_type.find(':'));
    const bool numeric = type == "INT" || type == "UINT" || type == "FLOAT";
    const bool list = opt->get_items_expected_max() > 1;
    if (v.is_array() && !list && opt->get_expected_min() != 0)
      throw ConfigError(where + "\"" + key + "\" takes one value, not a list");
    auto text = [&](const nlohmann::json& x) -> std::string {
      const std::string takes = numeric ? "a number" : type == "BOOLEAN" ? "true or false" : "a string";
      const bool fits = numeric ? x.is_number() : type == "BOOLEAN" ? x.is_boolean()
                                                                     : x.is_string() || (list && x.is_number());
      if (!fits && (x.is_string() || x.is_boolean() || x.is_number()))
        throw ConfigError(where + "\"" + key + "\" takes " + takes + ", not " + x.dump());
      if (x.is_string()) return x.get<std::string>();
      if (x.is_boolean()) return x.get<bool>() ? "true" : "false";
      if (x.is_number()) return x.dump();
      throw ConfigError(where + "value of \"" + key + "\" must be a string, number, bool or list of them");
    };
    if (opt->get_expected_min() == 0) {
      if (!v.is_boolean()) throw ConfigError(where + "\"" + key + "\" is a switch: use true or false");
      if (v.get<bool>()) inserted.push_back("--" + flag);
    } else if (v.is_array()) {
      if (v.empty()) continue;  // an empty list is the default of a list flag
      std::string joined;
      for (const auto& x : v) joined += (joined.empty() ? "" : ",") + text(x);
      inserted.push_back("--" + flag);
      inserted.push_back(joined);
    } else {
      inserted.push_back("--" + flag);
      inserted.push_back(text(v));
    }
  }
  args.insert(args.begin() + static_cast<std::ptrdiff_t>(sub_at + 1), inserted.begin(), inserted.end());
  return args;
}

std::vector<std::string> check_command_words(CLI::App& app, std::vector<std::string> args) {
  CLI::App* cmd = &app;
  size_t i = 0;
  // The command words: "train", "tokenizer train"; flags before them are dqe's own (--help).
  while (!cmd->get_subcommands({}).empty()) {
    while (i < args.size() && args[i].rfind("-", 0) == 0) ++i;
    if (i == args.size()) return args;  // CLI11 says that a command is required
    CLI::App* next = nullptr;
    for (CLI::App* sub : cmd->get_subcommands({}))
      if (sub->check_name(args[i])) next = sub;
    if (next == nullptr) {
      std::vector<std::string> names;
      for (const CLI::App* sub : cmd->get_subcommands({})) names.push_back(sub->get_name());
      std::string known;
      for (const auto& n : names) known += (known.empty() ? "" : ", ") + n;
      throw ConfigError("unknown command \"" + args[i] + "\"" + suggestion(args[i], names, "\"", "\"") + " (commands: " + known +
                        ")");
    }
    cmd = next;
    ++i;
  }
  const std::vector<std::string> names = long_names(*cmd);
  const std::string command = cmd->get_parent() == &app ? cmd->get_name() : cmd->get_parent()->get_name() + " " + cmd->get_name();
  for (; i < args.size(); ++i) {
    std::string& word = args[i];
    if (word.size() < 3 || word.rfind("--", 0) != 0) continue;
    const size_t eq = word.find('=');
    const std::string name = word.substr(2, eq == std::string::npos ? std::string::npos : eq - 2);
    if (name == "help" || std::find(names.begin(), names.end(), name) != names.end()) continue;
    // Hugging Face's spelling (--max_steps) for ours (--max-steps).
    std::string hyphens = name;
    std::replace(hyphens.begin(), hyphens.end(), '_', '-');
    if (hyphens != name && std::find(names.begin(), names.end(), hyphens) != names.end()) {
      word = "--" + hyphens + (eq == std::string::npos ? "" : word.substr(eq));
      continue;
    }
    // Hugging Face's name for one of ours (--learning_rate for --lr).
    if (std::string ours = same_meaning(hyphens, names); !ours.empty()) {
      word = "--" + ours + (eq == std::string::npos ? "" : word.substr(eq));
      continue;
    }
    throw ConfigError("dqe " + command + ": unknown option --" + name + advice(name, names, "--") + " ('dqe " +
                      command + " --help' lists them)");
  }
  return args;
}

void parse_args(CLI::App& app, std::vector<std::string> args) {
  args = check_command_words(app, std::move(args));
  args = expand_config_files(app, std::move(args));
  std::reverse(args.begin(), args.end());  // CLI11 consumes from the back
  app.parse(args);
}

int run(int argc, char** argv) {
  CliState state;
  std::unique_ptr<CLI::App> app = make_app(state);
  try {
    parse_args(*app, std::vector<std::string>(argv + 1, argv + argc));
  } catch (const ConfigError& e) {
    std::cerr << "dqe: error: " << e.what() << "\n";
    return kUsageError;
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app->exit(e);  // --help, --version
    std::cerr << "dqe: error: " << e.what() << "\n";
    std::cerr << "Run 'dqe --help' or 'dqe COMMAND --help' for usage.\n";
    return kUsageError;
  }
  finalize(state);
  if (!state.tokenizer_train_cmd->parsed()) {
    // Training finishes its step and writes a checkpoint; eval, score and report stop between
    // batches without writing their outputs (they appear only when complete).
    std::signal(SIGINT, on_stop_signal);
    std::signal(SIGTERM, on_stop_signal);
    register_process_stop(&g_stop_signal);  // waits that no RunContext reaches end on them too
  }
  try {
    if (state.train_cmd->parsed()) return run_train(state);
    if (state.eval_cmd->parsed()) return run_eval(state);
    if (state.score_cmd->parsed()) return run_score(state);
    if (state.report_cmd->parsed()) return run_report(state);
    if (state.pretrain_cmd->parsed()) return run_pretrain(state);
    if (state.tokenizer_train_cmd->parsed()) return run_tokenizer_train(state);
    if (state.export_cmd->parsed()) return run_export(state);
    if (state.info_cmd->parsed()) return run_info(state);
    if (state.serve_cmd->parsed()) return run_serve(state);
    return kUsageError;
  } catch (const Interrupted& e) {
    std::cerr << "dqe: " << e.what() << "\n";
    return exit_code_of_signal(e.signal_number());
  } catch (const ConfigError& e) {
    std::cerr << "dqe: error: " << e.what() << "\n";
    return kUsageError;
  } catch (const DataError& e) {
    std::cerr << "dqe: error: " << e.what() << "\n";
    return kDataError;
  } catch (const std::filesystem::filesystem_error& e) {
    // A filesystem call that met what the code did not look for (a symbolic link loop): the
    // paths and the reason, not the library's "filesystem error: status: ..." wording.
    std::string paths = e.path1().string();
    if (!e.path2().empty()) paths += " and " + e.path2().string();
    std::cerr << "dqe: error: " << (paths.empty() ? std::string() : paths + ": ") << e.code().message() << "\n";
    return kRuntimeError;
  } catch (const std::exception& e) {
    // c10::Error messages carry a C++ stack trace after the first line.
    std::string msg = e.what();
    if (auto nl = msg.find('\n'); nl != std::string::npos) msg.resize(nl);
    std::cerr << "dqe: error: " << msg << "\n";
    return kRuntimeError;
  }
}

}  // namespace dqe::cli
