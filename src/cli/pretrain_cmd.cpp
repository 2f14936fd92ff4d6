#include <iostream>

#include "cli/app.h"
#include "dqe/trainer.h"

namespace dqe::cli {

void add_pretrain_command(CLI::App& app, CliState& state) {
  PretrainConfig& c = state.pretrain;
  CLI::App* cmd = app.add_subcommand(
      "pretrain", "Masked-language-model pretraining of the encoder on unlabeled text (a valid --init for train)");
  state.pretrain_cmd = cmd;
  cmd->add_option("--config", state.config_files, "JSON file of flag values (keys are long flag names); repeatable: later files, then explicit flags, win");
  cmd->add_option("--corpus", c.corpus, "Text file (or .gz), one text per line")->required();
  cmd->add_option("--out", c.out_dir, "Run directory: best/, last/, train_log.jsonl, eval_log.jsonl")->required();
  cmd->add_option("--init", c.init, "Continue pretraining this model: Hugging Face BERT directory or dqe checkpoint");
  cmd->add_option("--tokenizer", c.tokenizer,
                  "vocab.txt, SentencePiece .model or a 'dqe tokenizer train' directory (default: build WordPiece from the corpus)");
  cmd->add_flag("--dump-config", state.dump_config,
                "Print the effective configuration as JSON (a valid --config file) and exit");

  const char* shape = "Model shape (from scratch; ignored with --init)";
  cmd->add_option("--layers", c.layers, "Transformer layers")->capture_default_str()->group(shape);
  cmd->add_option("--hidden", c.hidden, "Hidden size")->capture_default_str()->group(shape);
  cmd->add_option("--heads", c.heads, "Attention heads")->capture_default_str()->group(shape);
  cmd->add_option("--intermediate", c.intermediate, "Feed-forward size")->capture_default_str()->group(shape);
  cmd->add_option("--vocab-size", c.vocab_size, "Size of the WordPiece vocabulary built from the corpus")
      ->capture_default_str()
      ->group(shape);
  cmd->add_option("--lower-case", c.lower_case, "Lower-case and strip accents (uncased model)")
      ->capture_default_str()
      ->group(shape);

  const char* mlm = "Masking";
  cmd->add_option("--mask-prob", c.mask_prob, "Fraction of tokens predicted (80% [MASK], 10% random, 10% kept)")
      ->capture_default_str()
      ->group(mlm);
  cmd->add_flag("--whole-word", c.whole_word, "Mask all pieces of a word together")->group(mlm);

  const char* opt = "Optimisation";
  add_schedule_options(*cmd, c, "the corpus", "Texts");
  cmd->add_option("--dropout", state.pretrain_dropout,
                  "Dropout probability of the encoder (default: 0.1 from scratch, the --init model's own)")
      ->group(opt);
  cmd->add_option("--max-len", c.max_len, "Longest sequence in tokens; longer texts are cut")->capture_default_str()->group(opt);
  cmd->add_option("--seed", c.seed, "Random seed")->capture_default_str()->check(CLI::NonNegativeNumber)->group(opt);
  add_compute_options(*cmd, c.threads, c.precision, c.device, opt);
  cmd->add_option("--chunk-lines", c.chunk_lines, "Lines read, tokenized and shuffled together (bounds memory)")
      ->capture_default_str()
      ->group(opt);

  add_distributed_options(*cmd, c.distributed);

  const char* ev = "Evaluation and checkpoints";
  cmd->add_option("--held-out-every", c.held_out_every, "Hold back every Nth line to measure MLM loss and accuracy")
      ->capture_default_str()
      ->group(ev);
  cmd->add_option("--held-out-max", c.held_out_max, "At most this many held-back lines")->capture_default_str()->group(ev);
  cmd->add_option("--eval-every", c.eval_every, "Evaluate every N steps (0: each epoch)")->capture_default_str()->group(ev);
  cmd->add_option("--eval-batch-size", c.eval_batch_size, "Batch size for evaluation")->capture_default_str()->group(ev);
  cmd->add_flag("--resume", c.resume, "Continue the run in --out from its last checkpoint")->group(ev);
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
