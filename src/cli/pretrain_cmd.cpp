#include <iostream>

#include "cli/app.h"
#include "cli/knob_binding.h"
#include "dqe/trainer.h"

namespace dqe::cli {

void add_pretrain_command(CLI::App& app, CliState& state) {
  CLI::App* cmd = app.add_subcommand(
      "pretrain", "Masked-language-model pretraining of the encoder on unlabeled text (a valid --init for train)");
  state.pretrain_cmd = cmd;
  add_config_options(*cmd, state);
  bind_knobs(*cmd, state.pretrain);
}

int run_pretrain(CliState& state) {
  if (state.dump_config) {
    state.pretrain.validate();  // a dumped config is a valid one
    std::cout << state.pretrain.to_json().dump(2) << "\n";
    return kOk;
  }
  PretrainResult r = pretrain(state.pretrain, stop_token());
  if (r.interrupted) {
    std::cerr << "dqe: interrupted at step " << r.steps << "; resume with: dqe pretrain ... --out "
              << state.pretrain.out_dir << " --resume\n";
    return exit_code_of_signal(r.interrupt_signal);
  }
  std::cout << "held-back MLM accuracy " << r.initial_accuracy << " -> " << r.best_accuracy << " (loss " << r.initial_loss
            << " -> " << r.best_loss << ") at step " << r.best_step << " (" << r.best_dir << ")\n";
  return kOk;
}

void add_tokenizer_command(CLI::App& app, CliState& state) {
  TokenizerTrainConfig& c = state.tokenizer;
  CLI::App* cmd = app.add_subcommand("tokenizer", "Tokenizer tools");
  cmd->require_subcommand(1);
  CLI::App* train = cmd->add_subcommand(
      "train", "Train a WordPiece vocabulary (BERT) or a SentencePiece unigram/BPE model on text, one text per line");
  state.tokenizer_train_cmd = train;
  train->add_option("--corpus", c.corpus, "Text files")->required()->expected(1, -1);
  train->add_option("--out", c.out_dir, "Output directory (vocab.txt or tokenizer.model)")->required();
  train->add_option("--type", c.type, "wordpiece, unigram or bpe")
      ->capture_default_str()
      ->check(CLI::IsMember({"wordpiece", "unigram", "bpe"}));
  train->add_option("--vocab-size", c.vocab_size, "Vocabulary size, special tokens included")->capture_default_str();
  train->add_option("--lower-case", c.lower_case, "Lower-case (WordPiece: and strip accents)")->capture_default_str();
  train->add_option("--min-frequency", c.min_frequency, "WordPiece: pieces seen fewer times are not added")
      ->capture_default_str();
}

int run_tokenizer_train(CliState& state) {
  TokenizerTrainResult r = train_tokenizer(state.tokenizer);
  std::cout << r.path << ": " << r.vocab_size << " tokens\n";
  return kOk;
}

}  // namespace dqe::cli
