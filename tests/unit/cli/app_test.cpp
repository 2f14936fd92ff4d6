// Parses argv into configs without training anything.
#include "cli/app.h"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <map>
#include <set>

#include "dqe/errors.h"
#include "test_util.h"

namespace dqe::cli {
namespace {

struct Parsed {
  CliState state;
  std::unique_ptr<CLI::App> app;
};

std::unique_ptr<Parsed> parse(std::vector<std::string> args) {
  auto p = std::make_unique<Parsed>();
  p->app = make_app(p->state);
  parse_args(*p->app, std::move(args));
  finalize(p->state);
  return p;
}

TEST(CliParse, TrainFlagsLandInTrainConfig) {
  auto p = parse({"train", "--train", "t.jsonl", "--dev", "d.jsonl", "--out", "run", "--task", "classification",
                  "--epochs", "5", "--batch-size", "8", "--lr", "3e-4", "--max-len", "64", "--seed", "7", "--threads",
                  "2", "--eval-every", "50", "--patience", "2", "--resume", "--text-fields", "name,desc",
                  "--query-field", "q", "--grad-accum", "4"});
  const TrainConfig& c = p->state.train;
  EXPECT_TRUE(p->state.train_cmd->parsed());
  EXPECT_EQ(c.train_path, "t.jsonl");
  EXPECT_EQ(c.dev_path, "d.jsonl");
  EXPECT_EQ(c.out_dir, "run");
  EXPECT_EQ(c.task, "classification");
  EXPECT_EQ(c.epochs, 5);
  EXPECT_EQ(c.batch_size, 8);
  EXPECT_DOUBLE_EQ(c.lr, 3e-4);
  EXPECT_EQ(c.max_len, 64);
  EXPECT_EQ(c.seed, 7u);
  EXPECT_EQ(c.threads, 2);
  EXPECT_EQ(c.eval_every, 50);
  EXPECT_EQ(c.patience, 2);
  EXPECT_EQ(c.grad_accum, 4);
  EXPECT_TRUE(c.resume);
  EXPECT_EQ(c.fields.text, (std::vector<std::string>{"name", "desc"}));
  EXPECT_EQ(c.fields.query, "q");
  EXPECT_NO_THROW(c.validate());
}

TEST(CliParse, DefaultsComeFromTheConfigStruct) {
  auto p = parse({"train", "--train", "t", "--dev", "d", "--out", "o"});
  TrainConfig defaults;
  EXPECT_DOUBLE_EQ(p->state.train.lr, defaults.lr);
  EXPECT_EQ(p->state.train.batch_size, defaults.batch_size);
  EXPECT_EQ(p->state.train.task, "regression");
  EXPECT_FALSE(p->state.train.resume);
}

TEST(CliParse, ConfigFilesThenExplicitFlagsWin) {
  test::TempDir dir;
  test::write_text(dir.path("a.json"), R"({"lr": 0.001, "batch-size": 16, "layers": 2, "text-fields": ["t", "d"]})");
  test::write_text(dir.path("b.json"), R"({"batch-size": 8, "resume": true})");
  auto p = parse({"train", "--config", dir.path("a.json"), "--train", "t", "--dev", "d", "--out", "o", "--config",
                  dir.path("b.json"), "--layers", "6"});
  const TrainConfig& c = p->state.train;
  EXPECT_DOUBLE_EQ(c.lr, 0.001);  // from a.json
  EXPECT_EQ(c.batch_size, 8);     // b.json overrides a.json
  EXPECT_EQ(c.layers, 6);         // the explicit flag overrides a.json
  EXPECT_TRUE(c.resume);
  EXPECT_EQ(c.fields.text, (std::vector<std::string>{"t", "d"}));
}

TEST(CliParse, ShippedPresetsParse) {
  for (const char* preset : {"tiny", "mini", "base", "finetune"}) {
    auto p = parse({"train", "--config", std::string(DQE_SOURCE_DIR) + "/configs/" + preset + ".json", "--train", "t",
                    "--dev", "d", "--out", "o"});
    EXPECT_NO_THROW(p->state.train.validate()) << preset;
  }
  auto mini = parse({"train", "--config", std::string(DQE_SOURCE_DIR) + "/configs/mini.json", "--train", "t", "--dev",
                     "d", "--out", "o"});
  EXPECT_EQ(mini->state.train.layers, 4);
  EXPECT_EQ(mini->state.train.hidden, 256);
  EXPECT_EQ(mini->state.train.heads, 4);
}

TEST(CliParse, BadConfigFilesNameTheFileAndKey) {
  test::TempDir dir;
  test::write_text(dir.path("c.json"), R"({"lerning-rate": 0.1})");
  try {
    parse({"train", "--config", dir.path("c.json"), "--train", "t", "--dev", "d", "--out", "o"});
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("c.json: unknown option \"lerning-rate\""), std::string::npos) << e.what();
  }
  test::write_text(dir.path("d.json"), "[1, 2]");
  EXPECT_THROW(parse({"train", "--config", dir.path("d.json")}), ConfigError);
  EXPECT_THROW(parse({"train", "--config", dir.path("missing.json")}), ConfigError);
  EXPECT_THROW(parse({"train", "--config"}), ConfigError);

  // Values of another JSON type than the flag's are refused, not coerced: true for a path
  // named a file "true", 1 passed for a boolean, a one-element list for a number.
  const std::vector<std::string> train = {"train", "--train", "t", "--dev", "d", "--out", "o", "--config"};
  for (const auto& [json, says] : std::vector<std::pair<std::string, std::string>>{
           {R"({"rejects": true})", "\"rejects\" takes a string, not true"},
           {R"({"lower-case": 1})", "\"lower-case\" takes true or false, not 1"},
           {R"({"lr": [0.1]})", "\"lr\" takes one value, not a list"},
           {R"({"lr": "0.1"})", "\"lr\" takes a number, not \"0.1\""},
           {R"({"seed": true})", "\"seed\" takes a number, not true"},
           {R"({"lr": ""})", "\"lr\" takes a number, not \"\""}}) {
    test::write_text(dir.path("typed.json"), json);
    std::vector<std::string> args = train;
    args.push_back(dir.path("typed.json"));
    try {
      parse(args);
      ADD_FAILURE() << json << " was taken";
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(dir.path("typed.json") + ": " + says), std::string::npos) << e.what();
    }
  }
  // Lists take their items' type; a class list may hold numbers.
  test::write_text(dir.path("typed.json"), R"({"lr": 0.1, "lower-case": false, "labels": [1, 2, 3], "task": "classification"})");
  std::vector<std::string> args = train;
  args.push_back(dir.path("typed.json"));
  const auto typed = parse(args);
  EXPECT_DOUBLE_EQ(typed->state.train.lr, 0.1);
  EXPECT_EQ(typed->state.train.labels, (std::vector<std::string>{"1", "2", "3"}));
}

TEST(CliParse, BadArgvFailsToParse) {
  EXPECT_THROW(parse({}), CLI::ParseError);                                          // no subcommand
  EXPECT_THROW(parse({"fly"}), ConfigError);                                         // unknown subcommand
  EXPECT_THROW(parse({"train", "--dev", "d", "--out", "o"}), CLI::ParseError);        // --train missing
  EXPECT_THROW(parse({"train", "--train", "t", "--dev", "d", "--out", "o", "--task", "ranking"}), CLI::ParseError);
  EXPECT_THROW(parse({"train", "--train", "t", "--dev", "d", "--out", "o", "--batch-size", "many"}), CLI::ParseError);
  EXPECT_THROW(parse({"train", "--train", "t", "--dev", "d", "--out", "o", "--bogus"}), ConfigError);
  EXPECT_THROW(parse({"eval", "--data", "d"}), CLI::ParseError);                      // --model missing
  EXPECT_THROW(parse({"score", "--model", "m", "--threshold", "high"}), CLI::ParseError);
  // A seed past 2^64 - 1 is refused by name, not saturated to the largest one.
  const std::vector<std::string> train = {"train", "--train", "t", "--dev", "d", "--out", "o", "--seed"};
  auto with_seed = [&](const std::string& seed) {
    std::vector<std::string> args = train;
    args.push_back(seed);
    return args;
  };
  try {
    parse(with_seed("99999999999999999999"));
    ADD_FAILURE() << "an overflowing seed was taken";
  } catch (const CLI::ParseError& e) {
    EXPECT_NE(std::string(e.what()).find("out of range: at most 18446744073709551615, got 99999999999999999999"),
              std::string::npos)
        << e.what();
  }
  EXPECT_EQ(parse(with_seed("18446744073709551615"))->state.train.seed, 18446744073709551615ULL);
  EXPECT_THROW(parse(with_seed("7.5")), CLI::ParseError);
  EXPECT_THROW(parse(with_seed("0x10")), CLI::ParseError);
}

// A mistyped command or flag is named with the close match, before CLI11 would complain
// about a required flag instead; Hugging Face's underscore spellings are ours too.
TEST(CliParse, MistypedNamesGetSuggestionsAndUnderscoresAreAccepted) {
  auto message_of = [](std::vector<std::string> args) {
    try {
      parse(std::move(args));
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("(parsed)");
  };
  EXPECT_EQ(message_of({"trian", "--train", "t"}),
            "unknown command \"trian\"; did you mean \"train\"? (commands: train, eval, score, report, pretrain, "
            "tokenizer, export, info, serve)");
  EXPECT_EQ(message_of({"train", "--trian", "t", "--dev", "d", "--out", "o"}),
            "dqe train: unknown option --trian; did you mean --train? ('dqe train --help' lists them)");
  EXPECT_NE(message_of({"tokenizer", "train", "--corpus", "c", "--out", "o", "--vocab-sise", "9"}).find("did you mean --vocab-size?"),
            std::string::npos);
  EXPECT_NE(message_of({"tokenizer", "trian"}).find("did you mean \"train\"?"), std::string::npos);
  EXPECT_EQ(message_of({"train", "--train", "t", "--dev", "d", "--out", "o", "--zzzzzz"}),
            "dqe train: unknown option --zzzzzz ('dqe train --help' lists them)");

  auto p = parse({"train", "--train", "t", "--dev", "d", "--out", "o", "--max_steps", "7", "--warmup_ratio=0.25"});
  EXPECT_EQ(p->state.train.max_steps, 7);
  EXPECT_DOUBLE_EQ(p->state.train.warmup_ratio, 0.25);
  test::TempDir dir;
  // A Trainer name whose meaning differs from ours is answered with ours.
  test::write_text(dir.path("hf.json"), R"({"max_steps": 9, "warmup_steps": 100})");
  EXPECT_NE(message_of({"train", "--config", dir.path("hf.json"), "--train", "t", "--dev", "d", "--out", "o"})
                .find("unknown option \"warmup_steps\" for dqe train; did you mean --warmup-ratio (a fraction"),
            std::string::npos);
  // One whose meaning is ours is taken for it.
  test::write_text(dir.path("hf.json"), R"({"max_steps": 9, "learning_rate": 0.1})");
  p = parse({"train", "--config", dir.path("hf.json"), "--train", "t", "--dev", "d", "--out", "o"});
  EXPECT_EQ(p->state.train.max_steps, 9);
  EXPECT_DOUBLE_EQ(p->state.train.lr, 0.1);
  // Flags of the command line, not settings: refused inside a config file.
  for (const char* key : {"help", "config", "dump-config"}) {
    test::write_text(dir.path("c.json"), std::string("{\"") + key + "\": true}");
    EXPECT_NE(message_of({"train", "--config", dir.path("c.json"), "--train", "t", "--dev", "d", "--out", "o"})
                  .find("is a command-line flag, not a setting"),
              std::string::npos)
        << key;
  }
}

TEST(CliParse, ValuesThatParseButMakeNoSenseFailValidation) {
  auto p = parse({"train", "--train", "t", "--dev", "d", "--out", "o", "--batch-size", "0"});
  try {
    p->state.train.validate();
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("--batch-size"), std::string::npos);
  }
  p = parse({"train", "--train", "t", "--dev", "d", "--out", "o", "--hidden", "100", "--heads", "3"});
  EXPECT_THROW(p->state.train.validate(), ConfigError);
  p = parse({"train", "--train", "t", "--dev", "d", "--out", "o", "--init", "m", "--tokenizer", "v.txt"});
  EXPECT_THROW(p->state.train.validate(), ConfigError);
}

// "keep" is score >= --threshold: asked for without one, the output would silently lack it.
TEST(CliParse, FieldsKeepNeedsAThreshold) {
  auto p = parse({"score", "--model", "m", "--fields", "score,keep"});
  try {
    p->state.score.validate();
    FAIL() << "--fields keep was accepted without --threshold";
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()), "--fields keep needs --threshold (keep is score >= threshold)");
  }
  EXPECT_NO_THROW(parse({"score", "--model", "m", "--fields", "score,keep", "--threshold", "2"})->state.score.validate());
  EXPECT_NO_THROW(parse({"score", "--model", "m"})->state.score.validate());  // the default list adds keep only with one
}

TEST(CliParse, RepeatedModelsMakeAnEnsemble) {
  auto p = parse({"score", "--model", "a", "--model", "b", "--input", "x.jsonl"});
  EXPECT_EQ(p->state.score.models, (std::vector<std::string>{"a", "b"}));
  p = parse({"eval", "--model", "a", "--data", "d.jsonl", "--model", "b", "--model", "c"});
  EXPECT_EQ(p->state.eval.models, (std::vector<std::string>{"a", "b", "c"}));
}

TEST(CliParse, EvalAndScoreKeepModelFieldsUnlessGiven) {
  auto p = parse({"eval", "--model", "m", "--data", "d.jsonl", "--metrics-out", "m.json"});
  EXPECT_EQ(p->state.eval.models, std::vector<std::string>{"m"});
  EXPECT_EQ(p->state.eval.metrics_out, "m.json");
  EXPECT_FALSE(p->state.eval.fields.has_value());
  p = parse({"eval", "--model", "m", "--data", "d.jsonl", "--label-field", "grade"});
  ASSERT_TRUE(p->state.eval.fields.has_value());
  EXPECT_EQ(p->state.eval.fields->label, "grade");

  p = parse({"score", "--model", "m"});
  EXPECT_EQ(p->state.score.input, "-");
  EXPECT_EQ(p->state.score.output, "-");
  EXPECT_FALSE(p->state.score.threshold.has_value());
  p = parse({"score", "--model", "m", "--input", "in.jsonl", "--output", "out.jsonl", "--threshold", "0.7", "--filter"});
  ASSERT_TRUE(p->state.score.threshold.has_value());
  EXPECT_DOUBLE_EQ(*p->state.score.threshold, 0.7);
  EXPECT_TRUE(p->state.score.filter);
}

// --max-regression is set on the gate only when given, so that the gate can refuse it
// without --baseline instead of ignoring it.
TEST(CliParse, MaxRegressionIsUnsetUnlessGiven) {
  auto p = parse({"eval", "--model", "m", "--data", "d.jsonl", "--baseline", "b.json"});
  EXPECT_EQ(p->state.gate.baseline, "b.json");
  EXPECT_FALSE(p->state.gate.max_regression.has_value());
  p = parse({"eval", "--model", "m", "--data", "d.jsonl", "--max-regression", "0.02", "--fail-under",
             "ndcg_at_10=0.9", "--fail-over", "rmse=0.5"});
  ASSERT_TRUE(p->state.gate.max_regression.has_value());
  EXPECT_DOUBLE_EQ(*p->state.gate.max_regression, 0.02);
  EXPECT_EQ(p->state.gate.fail_under, std::vector<std::string>{"ndcg_at_10=0.9"});
  EXPECT_EQ(p->state.gate.fail_over, std::vector<std::string>{"rmse=0.5"});
}

// --dropout is set only when given (or in a --config file), so that an --init model keeps its own.
TEST(CliParse, DropoutIsUnsetUnlessGiven) {
  auto p = parse({"train", "--train", "t", "--dev", "d", "--out", "o", "--init", "m"});
  EXPECT_FALSE(p->state.train.dropout.has_value());
  EXPECT_FALSE(p->state.train.to_json().contains("dropout"));
  p = parse({"train", "--train", "t", "--dev", "d", "--out", "o"});
  EXPECT_DOUBLE_EQ(p->state.train.to_json()["dropout"].get<double>(), kDefaultDropout);  // from scratch
  p = parse({"train", "--train", "t", "--dev", "d", "--out", "o", "--init", "m", "--dropout", "0"});
  ASSERT_TRUE(p->state.train.dropout.has_value());
  EXPECT_EQ(*p->state.train.dropout, 0.0);
  test::TempDir dir;
  test::write_text(dir.path("c.json"), R"({"dropout": 0.2})");
  p = parse({"pretrain", "--corpus", "c.txt", "--out", "pt", "--config", dir.path("c.json")});
  ASSERT_TRUE(p->state.pretrain.dropout.has_value());
  EXPECT_DOUBLE_EQ(*p->state.pretrain.dropout, 0.2);
  p = parse({"train", "--train", "t", "--dev", "d", "--out", "o", "--dropout", "1"});
  EXPECT_THROW(p->state.train.validate(), ConfigError);
}

TEST(CliParse, PretrainFlagsLandInPretrainConfig) {
  auto p = parse({"pretrain", "--corpus", "c.txt", "--out", "pt", "--whole-word", "--mask-prob", "0.2", "--max-len", "64",
                  "--epochs", "2", "--held-out-every", "50", "--chunk-lines", "1000", "--resume"});
  const PretrainConfig& c = p->state.pretrain;
  EXPECT_TRUE(p->state.pretrain_cmd->parsed());
  EXPECT_EQ(c.corpus, "c.txt");
  EXPECT_EQ(c.out_dir, "pt");
  EXPECT_TRUE(c.whole_word);
  EXPECT_DOUBLE_EQ(c.mask_prob, 0.2);
  EXPECT_EQ(c.max_len, 64);
  EXPECT_EQ(c.epochs, 2);
  EXPECT_EQ(c.held_out_every, 50);
  EXPECT_EQ(c.chunk_lines, 1000);
  EXPECT_TRUE(c.resume);
  EXPECT_THROW(parse({"pretrain", "--out", "pt"}), CLI::ParseError);
}

// --dump-config prints every flag of the command (a flag left out of to_json() would be
// lost from the record of a run and from a dumped config), and a dumped config read back with
// --config gives the same configuration.
TEST(CliParse, DumpConfigHoldsEveryFlagAndRoundTrips) {
  struct Case {
    std::vector<std::string> args;
    std::function<nlohmann::ordered_json(const CliState&)> dump;
    std::function<CLI::App*(const CliState&)> cmd;
  };
  const std::vector<Case> cases = {
      {{"train", "--train", "t", "--dev", "d", "--out", "o", "--id-field", "pid", "--rejects", "bad.jsonl", "--lr", "0.003",
        "--labels", "a,b", "--task", "classification", "--lexical-features", "--max-bad-lines", "4",
        "--peft", "lora", "--lora-rank", "4", "--lora-targets", "query,key", "--adalora-tinit", "7"},
       [](const CliState& s) { return s.train.to_json(); }, [](const CliState& s) { return s.train_cmd; }},
      {{"pretrain", "--corpus", "c.txt", "--out", "pt", "--whole-word", "--mask-prob", "0.2", "--chunk-lines", "77"},
       [](const CliState& s) { return s.pretrain.to_json(); }, [](const CliState& s) { return s.pretrain_cmd; }},
  };
  for (const Case& c : cases) {
    auto p = parse(c.args);
    const nlohmann::ordered_json dumped = c.dump(p->state);
    for (const CLI::Option* opt : c.cmd(p->state)->get_options()) {
      if (opt->get_lnames().empty()) continue;
      const std::string name = opt->get_lnames().front();
      if (name == "help" || name == "config" || name == "dump-config") continue;
      EXPECT_TRUE(dumped.contains(name)) << c.args.front() << " --dump-config leaves out --" << name;
    }
    test::TempDir dir;
    test::write_text(dir.path("dumped.json"), dumped.dump(2));
    auto again = parse({c.args.front(), "--config", dir.path("dumped.json")});
    EXPECT_EQ(c.dump(again->state), dumped) << c.args.front();
  }
}

// What --resume may change, written out here: where and how a run computes, never what it
// learns. The lists are the knob tables' (visit_knobs); a knob marked by mistake shows here.
TEST(CliParse, ResumeMayChangeOnlyWhereAndHowARunComputes) {
  const std::set<std::string> train = {"train", "dev", "out", "resume", "threads", "precision", "device", "eval-batch-size",
                                       "max-bad-lines", "rejects", "base", "dist-timeout", "bucket-mb", "detect-fpr",
                                       "detect-sample"};
  const std::vector<std::string> t = knobs_resume_may_change<TrainConfig>();
  EXPECT_EQ(std::set<std::string>(t.begin(), t.end()), train);
  const std::set<std::string> pretrain = {"corpus", "out", "resume", "threads", "precision", "device", "eval-batch-size",
                                          "dist-timeout", "bucket-mb"};
  const std::vector<std::string> p = knobs_resume_may_change<PretrainConfig>();
  EXPECT_EQ(std::set<std::string>(p.begin(), p.end()), pretrain);
}

// Each knob of the tables is a flag of its command under the same name, and each flag is a
// knob (but --help, --config and --dump-config, which are not settings, and the field names of
// eval and score, which the CLI sets only when given).
TEST(CliParse, TheFlagsOfEachCommandAreItsKnobs) {
  auto p = parse({"train", "--train", "t", "--dev", "d", "--out", "o"});
  const auto flags_of = [](const CLI::App* cmd) {
    std::set<std::string> names;
    for (const CLI::Option* opt : cmd->get_options())
      if (!opt->get_lnames().empty() && opt->get_lnames().front() != "help" && opt->get_lnames().front() != "config" &&
          opt->get_lnames().front() != "dump-config")
        names.insert(opt->get_lnames().front());
    return names;
  };
  const auto set_of = [](std::initializer_list<std::vector<std::string>> lists) {
    std::set<std::string> names;
    for (const auto& list : lists) names.insert(list.begin(), list.end());
    return names;
  };
  const std::vector<std::string> fields = {"query-field",    "text-fields",      "label-field", "query-id-field",
                                           "id-field",       "features-field",   "attributes-field", "image-field"};
  EXPECT_EQ(flags_of(p->state.train_cmd), set_of({knob_names<TrainConfig>()}));
  EXPECT_EQ(flags_of(p->state.pretrain_cmd), set_of({knob_names<PretrainConfig>()}));
  EXPECT_EQ(flags_of(p->state.eval_cmd), set_of({knob_names<EvalConfig>(), knob_names<GateConfig>(), fields}));
  EXPECT_EQ(flags_of(p->state.score_cmd), set_of({knob_names<ScoreConfig>(), fields}));
  EXPECT_EQ(flags_of(p->state.report_cmd), set_of({knob_names<ReportConfig>()}));
  EXPECT_EQ(flags_of(p->state.export_cmd), set_of({knob_names<ExportConfig>()}));
  const std::vector<std::string> train = knob_names<TrainConfig>();
  EXPECT_EQ(train.size(), std::set<std::string>(train.begin(), train.end()).size()) << "a knob written twice";
  EXPECT_EQ(train.size(), 82u);  // the keys of to_json() before the table, counted by hand, prefix tuning's two,
                                 // --select-metric, the three ranking knobs and --adv-relative
}

// Every numeric flag of every command refuses NaN, infinities, negatives and values at the
// ends of its type (a batch of 2^63 - 1 examples planned zero steps; --warmup-ratio nan
// trained at rate 0), unless the table below says why the value is a fair request.
TEST(CliParse, EveryNumericFlagRefusesNanNegativeAndSaturatingValues) {
  struct Command {
    std::vector<std::string> base;
    std::function<CLI::App*(const CliState&)> cmd;
    std::function<void(const CliState&)> validate;
  };
  const std::vector<Command> commands = {
      {{"train", "--train", "t", "--dev", "d", "--out", "o"}, [](const CliState& s) { return s.train_cmd; },
       [](const CliState& s) { s.train.validate(); }},
      {{"pretrain", "--corpus", "c", "--out", "o"}, [](const CliState& s) { return s.pretrain_cmd; },
       [](const CliState& s) { s.pretrain.validate(); }},
      {{"eval", "--model", "m", "--data", "d", "--baseline", "b.json"}, [](const CliState& s) { return s.eval_cmd; },
       [](const CliState& s) {
         s.eval.validate();
         GateConfig gate = s.gate;
         gate.baseline.clear();  // the file does not exist; --max-regression is checked without it below
         if (gate.max_regression && !(*gate.max_regression >= 0 && std::isfinite(*gate.max_regression)))
           throw ConfigError("--max-regression");
       }},
      {{"score", "--model", "m"}, [](const CliState& s) { return s.score_cmd; },
       [](const CliState& s) { s.score.validate(); }},
      {{"report", "--run", "r"}, [](const CliState& s) { return s.report_cmd; },
       [](const CliState& s) { s.report.validate(); }},
      {{"tokenizer", "train", "--corpus", "c", "--out", "o"}, [](const CliState& s) { return s.tokenizer_train_cmd; },
       [](const CliState& s) { s.tokenizer.validate(); }},
  };
  const std::vector<std::string> hostile = {"nan", "inf", "-inf", "-1", "1e400", "9223372036854775807",
                                            "-9223372036854775808", "18446744073709551615"};
  // Accepted on purpose: a seed is any non-negative number; a count that only bounds how many
  // may be skipped or waited for (CLI11 reads 2^64 - 1 into an int64 as its largest value); a
  // large finite rate, decay or norm (a diverging run stops with an error naming --lr); any
  // finite threshold.
  const std::set<std::string> largest = {"9223372036854775807", "18446744073709551615"};
  const std::map<std::string, std::set<std::string>> fair = {
      {"seed", largest},         {"max-bad-lines", largest}, {"patience", largest},    {"eval-every", largest},
      {"held-out-every", largest}, {"held-out-max", largest}, {"chunk-lines", largest},
      {"lr", {"9223372036854775807", "18446744073709551615"}},
      {"weight-decay", {"9223372036854775807", "18446744073709551615"}},
      {"max-grad-norm", {"9223372036854775807", "18446744073709551615"}},
      {"max-regression", {"9223372036854775807", "18446744073709551615"}},
      {"psi-warn", {"9223372036854775807", "18446744073709551615"}},
      {"threshold", {"-1", "9223372036854775807", "-9223372036854775808", "18446744073709551615"}},
      {"adalora-tinit", {"-1"}},  // the default: a tenth of the run's steps
      {"adalora-tfinal", {"-1"}},
  };
  size_t checked = 0;
  for (const Command& c : commands) {
    auto p = parse(c.base);
    std::vector<std::string> numeric;
    for (const CLI::Option* opt : c.cmd(p->state)->get_options()) {
      const std::string type = opt->get_type_name();
      if (!opt->get_lnames().empty() && (type == "INT" || type == "UINT" || type == "FLOAT"))
        numeric.push_back(opt->get_lnames().front());
    }
    EXPECT_FALSE(numeric.empty()) << c.base.front();
    for (const std::string& name : numeric) {
      for (const std::string& value : hostile) {
        std::vector<std::string> args = c.base;
        args.push_back("--" + name);
        args.push_back(value);
        bool refused = false;
        try {
          auto q = parse(args);
          c.validate(q->state);
        } catch (const CLI::ParseError&) {
          refused = true;
        } catch (const ConfigError&) {
          refused = true;
        }
        const auto it = fair.find(name);
        const bool accepted_on_purpose = it != fair.end() && it->second.count(value) > 0;
        EXPECT_EQ(refused, !accepted_on_purpose) << c.base.front() << " --" << name << " " << value;
        ++checked;
      }
    }
  }
  EXPECT_GT(checked, 300u);
}

TEST(CliParse, LoraFlagsLandInTrainConfigAndBadOnesAreNamed) {
  auto p = parse({"train", "--train", "t", "--dev", "d", "--out", "o", "--init", "base", "--peft", "lora", "--lora-rank", "4",
                  "--lora-alpha", "8", "--lora-dropout", "0", "--lora-targets", "query,key,output.dense", "--base", "b"});
  const TrainConfig& c = p->state.train;
  EXPECT_EQ(c.peft, "lora");
  EXPECT_EQ(c.lora_rank, 4);
  EXPECT_DOUBLE_EQ(c.lora_alpha, 8);
  EXPECT_DOUBLE_EQ(c.lora_dropout, 0);
  EXPECT_EQ(c.lora_targets, (std::vector<std::string>{"query", "key", "output.dense"}));
  EXPECT_EQ(c.base, "b");
  EXPECT_NO_THROW(c.validate());
  const TrainConfig defaults;
  EXPECT_EQ(defaults.peft, "none");
  EXPECT_EQ(defaults.lora_rank, 8);
  EXPECT_DOUBLE_EQ(defaults.lora_alpha, 16);
  EXPECT_DOUBLE_EQ(defaults.lora_dropout, 0.1);
  EXPECT_EQ(defaults.lora_targets, (std::vector<std::string>{"query", "value"}));

  auto message = [](std::vector<std::string> extra) {
    std::vector<std::string> args = {"train", "--train", "t", "--dev", "d", "--out", "o"};
    args.insert(args.end(), extra.begin(), extra.end());
    try {
      parse(args)->state.train.validate();
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("(valid)");
  };
  EXPECT_EQ(message({"--peft", "lora"}), "--peft lora needs --init: the base model to adapt");
  EXPECT_EQ(message({"--peft", "lora", "--resume"}), "(valid)");  // the run's own base
  EXPECT_EQ(message({"--init", "m", "--peft", "lora", "--lora-rank", "0"}), "--lora-rank must be between 1 and 65536, got 0");
  EXPECT_NE(message({"--init", "m", "--peft", "lora", "--lora-targets", "query,vaule"})
                .find("--lora-targets: \"vaule\" names no Linear of the encoder; valid names: query, key, value, dense, "
                      "attention.output.dense, intermediate.dense, output.dense, pooler.dense, all-linear"),
            std::string::npos);
  EXPECT_NE(message({"--init", "m", "--peft", "lora", "--lora-targets", "all-linear,query"}).find("stands alone"),
            std::string::npos);
  EXPECT_NE(message({"--init", "m", "--peft", "lora", "--lora-dropout", "1"}).find("--lora-dropout"), std::string::npos);
  EXPECT_THROW(parse({"train", "--train", "t", "--dev", "d", "--out", "o", "--peft", "dora"}), CLI::ParseError);
}

TEST(CliParse, AdaLoraFlagsLandInTrainConfigAndBadOnesAreNamed) {
  auto p = parse({"train", "--train", "t", "--dev", "d", "--out", "o", "--init", "base", "--peft", "adalora",
                  "--adalora-init-r", "16", "--adalora-target-r", "4", "--adalora-tinit", "100", "--adalora-tfinal", "300",
                  "--adalora-delta-t", "10", "--adalora-beta1", "0.9", "--adalora-beta2", "0.95",
                  "--adalora-orth-reg-weight", "0.1", "--max-steps", "1000"});
  const TrainConfig& c = p->state.train;
  EXPECT_EQ(c.peft, "adalora");
  EXPECT_EQ(c.adalora_init_r, 16);
  EXPECT_EQ(c.adalora_target_r, 4);
  EXPECT_EQ(c.adalora_tinit, 100);
  EXPECT_EQ(c.adalora_tfinal, 300);
  EXPECT_EQ(c.adalora_delta_t, 10);
  EXPECT_DOUBLE_EQ(c.adalora_beta1, 0.9);
  EXPECT_DOUBLE_EQ(c.adalora_beta2, 0.95);
  EXPECT_DOUBLE_EQ(c.adalora_orth_reg_weight, 0.1);
  EXPECT_NO_THROW(c.validate());
  EXPECT_EQ(c.to_json()["adalora-tfinal"], 300);
  const TrainConfig defaults;  // PEFT's AdaLoraConfig, but for the phases (see README)
  EXPECT_EQ(defaults.adalora_init_r, 12);
  EXPECT_EQ(defaults.adalora_target_r, 8);
  EXPECT_EQ(defaults.adalora_tinit, -1);
  EXPECT_EQ(defaults.adalora_tfinal, -1);
  EXPECT_EQ(defaults.adalora_delta_t, 1);
  EXPECT_DOUBLE_EQ(defaults.adalora_beta1, 0.85);
  EXPECT_DOUBLE_EQ(defaults.adalora_beta2, 0.85);
  EXPECT_DOUBLE_EQ(defaults.adalora_orth_reg_weight, 0.5);

  auto message = [](std::vector<std::string> extra) {
    std::vector<std::string> args = {"train", "--train", "t", "--dev", "d", "--out", "o", "--init", "m", "--peft", "adalora"};
    args.insert(args.end(), extra.begin(), extra.end());
    try {
      parse(args)->state.train.validate();
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("(valid)");
  };
  EXPECT_EQ(message({}), "(valid)");
  EXPECT_EQ(message({"--adalora-target-r", "16"}), "--adalora-target-r 16 exceeds --adalora-init-r 12 (pruning only lowers ranks)");
  EXPECT_EQ(message({"--adalora-init-r", "0"}), "--adalora-init-r must be between 1 and 65536, got 0");
  EXPECT_NE(message({"--adalora-tfinal", "0"}).find("--adalora-tfinal must be between 1 and 10^12"), std::string::npos);
  EXPECT_NE(message({"--adalora-delta-t", "0"}).find("--adalora-delta-t must be between 1 and 10^12"), std::string::npos);
  EXPECT_NE(message({"--adalora-beta1", "1"}).find("--adalora-beta1 must be in (0, 1)"), std::string::npos);
  EXPECT_NE(message({"--adalora-orth-reg-weight", "-1"}).find("--adalora-orth-reg-weight"), std::string::npos);
  EXPECT_EQ(message({"--max-steps", "100", "--adalora-tinit", "40", "--adalora-tfinal", "60"}),
            "--adalora-tinit 40 and --adalora-tfinal 60 leave no step to prune in: the run has 100 steps, and tinit + "
            "tfinal must be fewer");
  EXPECT_EQ(message({"--max-steps", "100", "--adalora-tinit", "40", "--adalora-tfinal", "59"}), "(valid)");
}

TEST(CliParse, AdapterFlagsLandInTrainConfigAndBadOnesAreNamed) {
  auto p = parse({"train", "--train", "t", "--dev", "d", "--out", "o", "--init", "base", "--peft", "adapter",
                  "--adapter-size", "16"});
  const TrainConfig& c = p->state.train;
  EXPECT_EQ(c.peft, "adapter");
  EXPECT_EQ(c.adapter_size, 16);
  EXPECT_NO_THROW(c.validate());
  EXPECT_EQ(c.to_json()["adapter-size"], 16);  // recorded, so that --resume compares it
  EXPECT_EQ(TrainConfig().adapter_size, 64);

  auto message = [](std::vector<std::string> extra) {
    std::vector<std::string> args = {"train", "--train", "t", "--dev", "d", "--out", "o"};
    args.insert(args.end(), extra.begin(), extra.end());
    try {
      parse(args)->state.train.validate();
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("(valid)");
  };
  EXPECT_EQ(message({"--peft", "adapter"}), "--peft adapter needs --init: the base model to adapt");
  EXPECT_EQ(message({"--peft", "adapter", "--resume"}), "(valid)");
  EXPECT_EQ(message({"--init", "m", "--peft", "adapter", "--adapter-size", "0"}),
            "--adapter-size must be between 1 and 65536, got 0");
  EXPECT_EQ(message({"--init", "m", "--peft", "adapter", "--adapter-size", "-3"}),
            "--adapter-size must be between 1 and 65536, got -3");
}

TEST(CliParse, ExportAndBaseFlagsLand) {
  auto p = parse({"export", "--model", "run", "--out", "merged", "--merge", "--base", "b"});
  EXPECT_TRUE(p->state.export_cmd->parsed());
  EXPECT_EQ(p->state.exporter.model, "run");
  EXPECT_EQ(p->state.exporter.out, "merged");
  EXPECT_TRUE(p->state.exporter.merge);
  EXPECT_EQ(p->state.exporter.base, "b");
  EXPECT_THROW(parse({"export", "--model", "run"}), CLI::ParseError);
  EXPECT_EQ(parse({"eval", "--model", "a", "--data", "d", "--base", "b"})->state.eval.base, "b");
  EXPECT_EQ(parse({"score", "--model", "a", "--base", "b"})->state.score.base, "b");
}

TEST(CliParse, TokenizerTrainTakesSeveralCorpusFiles) {
  auto p = parse({"tokenizer", "train", "--corpus", "a.txt", "b.txt", "--out", "tok", "--type", "unigram", "--vocab-size",
                  "500", "--lower-case", "false"});
  const TokenizerTrainConfig& c = p->state.tokenizer;
  EXPECT_TRUE(p->state.tokenizer_train_cmd->parsed());
  EXPECT_EQ(c.corpus, (std::vector<std::string>{"a.txt", "b.txt"}));
  EXPECT_EQ(c.type, "unigram");
  EXPECT_EQ(c.vocab_size, 500);
  EXPECT_FALSE(c.lower_case);
  EXPECT_THROW(parse({"tokenizer", "train", "--corpus", "a.txt", "--out", "t", "--type", "bytes"}), CLI::ParseError);
  EXPECT_THROW(parse({"tokenizer"}), CLI::ParseError);
}

}  // namespace
}  // namespace dqe::cli

namespace dqe::cli {
namespace {

// Adversarial training, detection and normalisation flags land in their configs; bad values
// and combinations are refused naming the flag.
TEST(CliParse, AdversarialAndDetectionFlags) {
  auto p = parse({"train", "--train", "t", "--dev", "d", "--out", "o", "--adv", "pgd", "--adv-eps", "0.5",
                  "--adv-steps", "4", "--adv-alpha", "0.2", "--augment", "0.25", "--detect-fpr", "0.05"});
  const TrainConfig& t = p->state.train;
  EXPECT_EQ(t.adv, "pgd");
  EXPECT_DOUBLE_EQ(t.adv_eps, 0.5);
  EXPECT_EQ(t.adv_steps, 4);
  EXPECT_DOUBLE_EQ(t.adv_alpha, 0.2);
  EXPECT_DOUBLE_EQ(t.augment, 0.25);
  EXPECT_DOUBLE_EQ(t.detect_fpr, 0.05);
  EXPECT_NO_THROW(t.validate());
  EXPECT_EQ(parse({"train", "--train", "t", "--dev", "d", "--out", "o"})->state.train.adv, "none");
  EXPECT_THROW(parse({"train", "--train", "t", "--dev", "d", "--out", "o", "--adv", "freelb"}), CLI::ParseError);
  auto bad = [](std::vector<std::string> extra, const std::string& flag) {
    std::vector<std::string> args = {"train", "--train", "t", "--dev", "d", "--out", "o"};
    args.insert(args.end(), extra.begin(), extra.end());
    try {
      parse(args)->state.train.validate();
      ADD_FAILURE() << flag << " accepted";
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(flag), std::string::npos) << e.what();
    }
  };
  bad({"--adv-eps", "0"}, "--adv-eps");
  bad({"--adv-steps", "0"}, "--adv-steps");
  bad({"--augment", "1.5"}, "--augment");
  bad({"--detect-fpr", "1"}, "--detect-fpr");

  auto s = parse({"score", "--model", "m", "--normalize", "--detect", "--detect-fpr", "0.02"});
  EXPECT_TRUE(s->state.score.normalize);
  EXPECT_TRUE(s->state.score.detect);
  ASSERT_TRUE(s->state.score.detect_fpr.has_value());
  EXPECT_DOUBLE_EQ(*s->state.score.detect_fpr, 0.02);
  EXPECT_FALSE(parse({"score", "--model", "m", "--detect"})->state.score.detect_fpr.has_value());
  EXPECT_THROW(parse({"score", "--model", "m", "--detect-fpr", "0.02"})->state.score.validate(), ConfigError);
  EXPECT_THROW(parse({"score", "--model", "a", "--model", "b", "--detect"})->state.score.validate(), ConfigError);
}

}  // namespace
}  // namespace dqe::cli
