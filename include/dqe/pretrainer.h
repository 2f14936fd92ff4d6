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
#include "dqe/knobs.h"
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

  // The knob table (dqe/knobs.h), in the order of --help and to_json().
  template <typename Self, typename Visitor>
  static void visit_knobs(Self& c, Visitor&& v);

  // Throws ConfigError naming the flag.
  void validate() const;
  // Every knob under its flag's name (a valid --config file; the run's config.json).
  nlohmann::ordered_json to_json() const;
};

template <typename Self, typename Visitor>
void PretrainConfig::visit_knobs(Self& c, Visitor&& v) {
  v(Knob("corpus", "Text file (or .gz), one text per line").mandatory().hide_default().changeable_on_resume(), c.corpus);
  v(Knob("out", "Run directory: best/, last/, train_log.jsonl, eval_log.jsonl").mandatory().hide_default().changeable_on_resume(),
    c.out_dir);
  v(Knob("init", "Continue pretraining this model: Hugging Face BERT directory or dqe checkpoint").hide_default(), c.init);
  v(Knob("tokenizer",
         "vocab.txt, SentencePiece .model or a 'dqe tokenizer train' directory (default: build WordPiece from the corpus)")
        .hide_default(),
    c.tokenizer);

  visit_model_shape_knobs(c, v, "the corpus");
  v(Knob("lower-case", "Lower-case and strip accents (uncased model)").in("Model shape (from scratch; ignored with --init)"),
    c.lower_case);

  const char* mlm = "Masking";
  v(Knob("mask-prob", "Fraction of tokens predicted (80% [MASK], 10% random, 10% kept)")
        .check(bound::open(0, 1), "in (0, 1)")
        .in(mlm),
    c.mask_prob);
  v(Knob("whole-word", "Mask all pieces of a word together").as_flag().in(mlm), c.whole_word);

  const char* opt = "Optimisation";
  visit_schedule_knobs(c, v, "the corpus", "Texts");
  v(Knob("dropout", "Dropout probability of the encoder (default: 0.1 from scratch, the --init model's own)")
        .check(bound::closed_open(0, 1), "in [0, 1)")
        .hide_default()
        .in(opt),
    c.dropout);
  v(Knob("max-len", "Longest sequence in tokens; longer texts are cut")
        .check(bound::closed(3, kMaxSequenceLength), "between 3 and " + std::to_string(kMaxSequenceLength))
        .in(opt),
    c.max_len);
  v(Knob("seed", "Random seed").in(opt), c.seed);
  visit_compute_knobs(c, v, opt);
  v(Knob("chunk-lines", "Lines read, tokenized and shuffled together (bounds memory)").check(bound::at_least(1), ">= 1").in(opt),
    c.chunk_lines);

  visit_distributed_knobs(c.distributed, v);

  const char* ev = "Evaluation and checkpoints";
  v(Knob("held-out-every", "Hold back every Nth line to measure MLM loss and accuracy").check(bound::at_least(2), ">= 2").in(ev),
    c.held_out_every);
  v(Knob("held-out-max", "At most this many held-back lines").check(bound::at_least(1), ">= 1").in(ev), c.held_out_max);
  v(Knob("eval-every", "Evaluate every N steps (0: each epoch)").check(bound::at_least(0), ">= 0").in(ev), c.eval_every);
  v(Knob("eval-batch-size", "Batch size for evaluation")
        .check(bound::closed(1, static_cast<double>(kMaxBatchSize)), "between 1 and " + std::to_string(kMaxBatchSize))
        .changeable_on_resume()
        .in(ev),
    c.eval_batch_size);
  v(Knob("resume", "Continue the run in --out from its last checkpoint").as_flag().changeable_on_resume().in(ev), c.resume);
}

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
