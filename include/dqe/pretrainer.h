// Masked-language-model pretraining of the encoder on unlabeled text, one text per line:
// from scratch, or continuing a Hugging Face / dqe checkpoint (domain-adaptive
// pretraining). Streams the corpus in chunks; checkpoints, --resume, progress and logs
// behave as in fine-tuning. The result is a valid --init for `dqe train`.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "dqe/distributed.h"
#include "dqe/run_context.h"

namespace dqe {

struct PretrainConfig {
  // Text file (or .gz), one text per line; empty lines are skipped and counted.
  std::string corpus;
  // Run directory: best/, last/, train_log.jsonl, eval_log.jsonl.
  std::string out_dir;
  // A Hugging Face BERT directory or dqe checkpoint to continue pretraining.
  std::string init;
  // vocab.txt, a SentencePiece .model or a `dqe tokenizer train` directory; without it and
  // without --init a WordPiece vocabulary is built from the corpus.
  std::string tokenizer;

  // Model shape when pretraining from scratch (ignored with --init).
  int64_t layers = 4;
  int64_t hidden = 256;
  int64_t heads = 4;
  int64_t intermediate = 1024;
  int64_t vocab_size = 8000;
  // Dropout of the encoder. Unset: 0.1 for a new model, the --init model's own otherwise;
  // set, it applies to an --init model too.
  std::optional<double> dropout;
  bool lower_case = true;

  // Fraction of tokens chosen for prediction (80% [MASK], 10% random, 10% kept).
  double mask_prob = 0.15;
  // Mask all pieces of a word together.
  bool whole_word = false;

  int64_t epochs = 1;
  // When > 0, stop after this many optimizer steps (overrides epochs for the schedule).
  int64_t max_steps = 0;
  int64_t batch_size = 64;
  int64_t grad_accum = 1;
  double lr = 5e-4;
  double warmup_ratio = 0.06;
  double weight_decay = 0.01;
  double max_grad_norm = 1.0;
  // Longest sequence in tokens, [CLS] and [SEP] included; longer texts are cut.
  int64_t max_len = 128;
  uint64_t seed = 42;
  int threads = 0;
  // "auto" (bf16 autocast on a GPU or where the CPU has native bf16, else fp32), "fp32" or "bf16".
  std::string precision = "auto";
  // "auto" (a GPU when there is one), "cpu", "cuda" or "cuda:N".
  std::string device = "auto";

  // Every Nth line is held back to measure MLM loss and accuracy, up to held_out_max lines.
  int64_t held_out_every = 100;
  int64_t held_out_max = 2000;
  // Evaluate on the held-back lines every N optimizer steps (0: at the end of each epoch).
  int64_t eval_every = 0;
  int64_t eval_batch_size = 128;
  // Lines read, tokenized and shuffled together; bounds memory on any corpus size.
  int64_t chunk_lines = 200000;
  bool resume = false;
  // Data parallelism, when launched by torchrun, srun or their variables (dist/process_group.h).
  DistributedOptions distributed;

  // Called after every optimizer step; returning true stops as an interruption would.
  std::function<bool(int64_t step)> stop_after_step;

  // Throws ConfigError naming the flag.
  void validate() const;
  nlohmann::ordered_json to_json() const;
};

struct PretrainResult {
  int64_t steps = 0;
  bool interrupted = false;
  int interrupt_signal = 0;    // the signal that stopped it (0: stop_after_step)
  int64_t train_lines = 0;     // lines used for training per epoch
  int64_t held_out_lines = 0;
  int64_t empty_lines = 0;
  // Held-back MLM loss and accuracy (masked tokens predicted exactly): at the start and
  // at the best evaluation (lowest loss).
  double initial_loss = 0, initial_accuracy = 0;
  double best_loss = 0, best_accuracy = 0;
  int64_t best_step = 0;
  std::string best_dir, last_dir;
};

// Pretrains (train/mlm_objective on the training engine). Stops as train() does.
PretrainResult pretrain(const PretrainConfig& config, const StopToken& stop = {});

}  // namespace dqe
