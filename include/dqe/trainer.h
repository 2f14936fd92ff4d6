// Fine-tuning: AdamW (no weight decay on biases and LayerNorm), linear warmup then linear
// decay, gradient clipping and accumulation, dev evaluation every N steps with early
// stopping, best/ and last/ checkpoints, and --resume from last/.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "dqe/distributed.h"
#include "dqe/jsonl_reader.h"
#include "dqe/knobs.h"
#include "dqe/run_context.h"

namespace dqe {

struct TrainConfig {
  std::string train_path;
  std::string dev_path;
  // Run directory: best/, last/, train_log.jsonl, eval_log.jsonl.
  std::string out_dir;
  // A dqe checkpoint, run directory or Hugging Face BERT directory to start from.
  std::string init;
  // vocab.txt (WordPiece) or .model (SentencePiece); without it and without --init a
  // WordPiece vocabulary is built from the training texts.
  std::string tokenizer;
  // "regression", "classification" or "binary".
  std::string task = "regression";
  // Class names from least to most relevant (classification; binary: negative, positive).
  // Their order gives the ranking gains and the score. Default: the sorted names in the
  // training data, or 0..K-1 for integer labels.
  std::vector<std::string> labels;

  // Model shape when training from scratch (ignored with --init).
  int64_t layers = 4;
  int64_t hidden = 256;
  int64_t heads = 4;
  int64_t intermediate = 1024;
  int64_t vocab_size = 8000;
  // Dropout of the encoder and classifier. Unset: 0.1 for a new model, the --init model's
  // own otherwise; set, it applies to an --init model too.
  std::optional<double> dropout;
  // Lexical match token types (TaskSpec::match_types): "auto" turns them on for a model
  // trained from scratch and keeps the --init model's setting; "on" adds them to an --init
  // model too; "off".
  std::string match_types = "auto";
  // Add an MLP of the pairs' lexical match features (data/lexical.h) to the logits; an --init
  // model that has them keeps them.
  bool lexical_features = false;
  // How side inputs (lexical features, a log's features, attributes, image vectors; data/log_inputs.h)
  // meet the pooled text vector (model/model_spec.h, Fusion): "gate", "concat" or "add" (the side MLPs
  // added to the logits, dqe's first layout). Concat is the default: on the controlled data the
  // two are within 0.5% of each other (gate ahead after 1500 steps on three seeds, concat after
  // 300), and concat's MLP over [pooled; e] is the one that can express an interaction between
  // the text and a side input (README, "Side inputs").
  std::string fusion = "concat";
  // The probability that training drops a whole side input from a line, so that the model
  // scores lines lacking it gracefully.
  double modality_dropout = 0.1;
  // Lower-case and strip accents (uncased model); with --init the model's own setting wins.
  bool lower_case = true;

  // Parameter-efficient fine-tuning: "none" (every weight trains), "lora" or "adalora": the
  // --init model is a frozen base, and LoRA (AdaLoRA) updates of its Linears train with the
  // heads; checkpoints are adapters in Hugging Face PEFT's layout. An --init LoRA adapter
  // continues training its updates. "adapter": the same with bottleneck adapters
  // (model/peft/bottleneck.h) instead, in dqe's own layout; "prefix": with prefix tuning
  // (model/peft/prefix.h).
  std::string peft = "none";
  // LoRA: the rank r of each update B A (A [r, in], B [out, r]).
  int64_t lora_rank = 8;
  // LoRA: the update is scaled by alpha / r.
  double lora_alpha = 16;
  // LoRA: dropout on the update's input.
  double lora_dropout = 0.1;
  // LoRA: the Linears adapted, by the ends of their Hugging Face names (query, key, value,
  // dense, attention.output.dense, intermediate.dense, output.dense, pooler.dense; PEFT's
  // rule: "output.dense" also selects attention.output.dense), or "all-linear". PEFT's default
  // for BERT.
  std::vector<std::string> lora_targets = {"query", "value"};
  // Bottleneck adapters: the bottleneck's width (down [size, hidden], up [hidden, size]), at
  // most the base's hidden size.
  int64_t adapter_size = 64;
  // Prefix tuning (--peft prefix): virtual tokens in front of every layer's keys and values,
  // and whether the table trains through PEFT's reparametrisation (an MLP), saved projected.
  int64_t prefix_tokens = 20;
  bool prefix_projection = false;
  // AdaLoRA (--peft adalora; alpha, dropout and targets are the --lora-* flags'): the initial
  // rank of each update P Λ Q.
  int64_t adalora_init_r = 12;
  // AdaLoRA: the average rank per adapted module that pruning ends at.
  int64_t adalora_target_r = 8;
  // AdaLoRA: steps before pruning starts (-1: a tenth of the run's steps).
  int64_t adalora_tinit = -1;
  // AdaLoRA: steps at the end with the final ranks fixed, >= 1 (-1: 30% of the run's steps).
  int64_t adalora_tfinal = -1;
  // AdaLoRA: steps between two budget allocations.
  int64_t adalora_delta_t = 1;
  // AdaLoRA: moving-average factors of the importance and of its uncertainty.
  double adalora_beta1 = 0.85;
  double adalora_beta2 = 0.85;
  // AdaLoRA: weight of the orthogonality regulariser of P and Q.
  double adalora_orth_reg_weight = 0.5;
  // Where the base of the --init adapter, or of the run being resumed, is when it is no longer
  // where the adapter recorded it.
  std::string base;

  // Distillation (distill.h): teacher models whose outputs the student learns (several: their
  // average, an ensemble's), computed once before the first step.
  std::vector<std::string> teachers;
  // Distillation: temperature of the teacher's and the student's class distributions.
  double distill_temperature = 2.0;
  // Distillation: the loss is alpha * distillation + (1 - alpha) * labels.
  double distill_alpha = 0.5;
  // Distillation: JSONL pairs without labels (e.g. search logs) that only the teacher labels.
  std::string unlabeled;
  // --init: keep this many of its encoder layers (0: all), chosen as --keep-which says
  // ("bottom" drops the top ones, "alternate" keeps the top one and every n/k-th below; deploy/deploy.h).
  int64_t keep_layers = 0;
  std::string keep_which = "bottom";

  int64_t epochs = 3;
  // When > 0, stop after this many optimizer steps (overrides epochs for the schedule).
  int64_t max_steps = 0;
  int64_t batch_size = 32;
  // Optimizer step every N batches.
  int64_t grad_accum = 1;
  // Peak learning rate, reached after warmup.
  double lr = 5e-5;
  // Fraction of the steps spent warming up linearly from 0.
  double warmup_ratio = 0.1;
  double weight_decay = 0.01;
  // Gradients are clipped to this global L2 norm (0 turns clipping off).
  double max_grad_norm = 1.0;
  // Longest input in tokens, special tokens included (0: the model's, else 128).
  int64_t max_len = 0;
  uint64_t seed = 42;

  // Adversarial training (train/adversarial_step.h): "none", "fgm" or "pgd": the word embeddings
  // are perturbed along the loss's gradient and the perturbed loss is learned beside the clean one.
  std::string adv = "none";
  // L2 radius of the perturbation of one example's word embeddings.
  double adv_eps = 1.0;
  // PGD: steps of the perturbation's climb.
  int64_t adv_steps = 3;
  // PGD: size of each step.
  double adv_alpha = 0.3;
  // --adv-eps and --adv-alpha as shares of each example's word-embedding L2 norm, instead of
  // absolute sizes (which suit one model's embeddings and not another's).
  bool adv_relative = false;
  // Share of training examples given text noise that mirrors the attacks (train/augment.h:
  // typos, duplicated words, query words inserted into below-average results with their
  // label kept), drawn anew for each batch; 0 turns it off.
  double augment = 0;
  // Ranking (train/rank_loss.h): "none", or a loss over the results of one query_id
  // ("listnet", "ranknet", "lambdaloss"); batches are then whole query groups.
  std::string rank_loss = "none";
  // Loss = rank_weight * ranking loss + (1 - rank_weight) * the task's pointwise loss, which
  // keeps the scores on the label scale (thresholds, RMSE).
  double rank_weight = 0.5;
  // A query with more training results than this gives a random draw of this many per epoch.
  int64_t rank_group_cap = 16;
  // Suspect detection (infer/detect.h): the false-positive rate on dev that its thresholds are
  // calibrated to, saved with the best model (0: no detection statistics are saved).
  double detect_fpr = 0.01;
  // Training pairs whose pooled vectors give the mean and covariance of the distance signal.
  int64_t detect_sample = 4000;
  // Compute threads (0: all cores available).
  int threads = 0;
  // "auto" (bf16 autocast on a GPU or where the CPU has native bf16, else fp32), "fp32" or "bf16".
  std::string precision = "auto";
  // "auto" (a GPU when there is one), "cpu", "cuda" or "cuda:N".
  std::string device = "auto";
  // Evaluate on dev every N optimizer steps (0: at the end of each epoch).
  int64_t eval_every = 0;
  // Stop after this many evaluations without improvement (0: never).
  int64_t patience = 3;
  // The dev metric that selects the best checkpoint and stops early, by its key in the metric
  // registry (dqe/metrics.h: "ndcg_at_10", "mrr", "spearman" ...); "": the task's own (RMSE,
  // accuracy or ROC-AUC).
  std::string select_metric;
  int64_t eval_batch_size = 64;
  // Continue the run in out_dir from its last/ checkpoint.
  bool resume = false;
  // Data parallelism, when launched by torchrun, srun or their variables (dist/process_group.h).
  DistributedOptions distributed;

  FieldMap fields;
  int64_t max_bad_lines = 0;
  std::string rejects;

  // Called after every optimizer step with the step number; returning true stops the run
  // as an interruption would (last/ is written). Used by tests.
  std::function<bool(int64_t step)> stop_after_step;

  // The knob table (dqe/knobs.h): every setting above once, with its flag, help, check and
  // resume rule, in the order of --help and to_json(). Self is TrainConfig or const TrainConfig.
  template <typename Self, typename Visitor>
  static void visit_knobs(Self& c, Visitor&& v);

  // Throws ConfigError naming the flag for an invalid value or combination.
  void validate() const;
  // Every knob under its flag's name (a valid --config file; the run's config.json).
  nlohmann::ordered_json to_json() const;
};

template <typename Self, typename Visitor>
void TrainConfig::visit_knobs(Self& c, Visitor&& v) {
  v(Knob("train", "Training data (JSONL)").mandatory().hide_default().changeable_on_resume(), c.train_path);
  v(Knob("dev", "Dev data for evaluation and early stopping (JSONL)").mandatory().hide_default().changeable_on_resume(),
    c.dev_path);
  v(Knob("out", "Run directory: best/, last/, train_log.jsonl, eval_log.jsonl").mandatory().hide_default().changeable_on_resume(),
    c.out_dir);
  v(Knob("init", "Start from this model: dqe checkpoint, run directory, Hugging Face BERT directory or PEFT adapter")
        .hide_default(),
    c.init);
  v(Knob("tokenizer", "vocab.txt (WordPiece) or .model (SentencePiece) for a model trained from scratch").hide_default(),
    c.tokenizer);
  v(Knob("task", "regression, classification or binary").one_of({"regression", "classification", "binary"}), c.task);
  v(Knob("labels", "Class names from least to most relevant (classification; binary: negative,positive)")
        .list(',')
        .hide_default(),
    c.labels);

  visit_model_shape_knobs(c, v, "the training texts");
  const char* shape = "Model shape (from scratch; ignored with --init)";
  v(Knob("match-types",
         "Mark tokens shared by query and result with their own token types (auto: on from scratch, as the --init "
         "model otherwise)")
        .one_of({"auto", "on", "off"})
        .in(shape),
    c.match_types);
  v(Knob("lexical-features",
         "Add an MLP of lexical match features (exact, stemmed and partial term matches, IDF, BM25, numbers) to the "
         "logits")
        .as_flag()
        .in(shape),
    c.lexical_features);
  v(Knob("fusion",
         "How side inputs (lexical features, --features-field, --attributes-field, --image-field) meet the text: gate, "
         "concat, or add (added to the logits)")
        .one_of({"gate", "concat", "add"})
        .in(shape),
    c.fusion);
  v(Knob("modality-dropout",
         "Probability of dropping a whole side input from a training line (robustness to lines lacking it)")
        .check(bound::closed_open(0, 1), "in [0, 1)")
        .in(shape),
    c.modality_dropout);
  v(Knob("lower-case", "Lower-case and strip accents (uncased model)").in(shape), c.lower_case);

  const char* peft = "Parameter-efficient fine-tuning (LoRA, AdaLoRA, bottleneck adapters, prefix tuning)";
  v(Knob("peft",
         "none; lora or adalora: freeze the --init model and train LoRA (AdaLoRA) updates of its Linears and the heads, "
         "checkpoints being Hugging Face PEFT adapters; adapter: the same with bottleneck adapters (Houlsby) after "
         "each layer's attention and feed-forward outputs, in dqe's own layout; prefix: the same with trained keys and "
         "values in front of every layer's attention (PEFT's prefix tuning)")
        .one_of({"none", "lora", "adalora", "adapter", "prefix"})
        .in(peft),
    c.peft);
  // The bounds by the base's dimensions are checked once the base is loaded.
  v(Knob("lora-rank", "Rank r of each update B A").check(bound::closed(1, 65536), "between 1 and 65536").in(peft),
    c.lora_rank);
  v(Knob("lora-alpha", "The updates are scaled by alpha / r").check(bound::open_closed(0, 1e6), "in (0, 10^6]").in(peft),
    c.lora_alpha);
  v(Knob("lora-dropout", "Dropout on the updates' input").check(bound::closed_open(0, 1), "in [0, 1)").in(peft),
    c.lora_dropout);
  v(Knob("lora-targets",
         "Linears to adapt, by the ends of their Hugging Face names (query, key, value, dense, attention.output.dense, "
         "intermediate.dense, output.dense, pooler.dense; PEFT's rule: a name selects every module ending in it), or "
         "all-linear")
        .list(',')
        .in(peft),
    c.lora_targets);
  v(Knob("adapter-size",
         "Bottleneck adapters: the bottleneck's width (down [size, hidden], up [hidden, size]), at most the base's "
         "hidden size")
        .check(bound::closed(1, 65536), "between 1 and 65536")
        .in(peft),
    c.adapter_size);
  v(Knob("prefix-tokens",
         "Prefix tuning: virtual tokens in front of every layer's keys and values (they take the first position ids, "
         "so pairs get max_position_embeddings less these)")
        .check(bound::closed(1, 65536), "between 1 and 65536")
        .in(peft),
    c.prefix_tokens);
  v(Knob("prefix-projection",
         "Prefix tuning: train the prefix through PEFT's reparametrisation (an embedding and an MLP as wide as the "
         "hidden size); saved projected, as PEFT saves it")
        .as_flag()
        .in(peft),
    c.prefix_projection);
  v(Knob("adalora-init-r", "AdaLoRA: initial rank of each update P Lambda Q")
        .check(bound::closed(1, 65536), "between 1 and 65536")
        .in(peft),
    c.adalora_init_r);
  v(Knob("adalora-target-r", "AdaLoRA: average rank per module after pruning").check(bound::at_least(1), ">= 1").in(peft),
    c.adalora_target_r);
  v(Knob("adalora-tinit", "AdaLoRA: steps before pruning starts (-1: a tenth of the steps)")
        .check(bound::closed(-1, 1e12), "between 0 and 10^12 (or -1: a tenth of the steps)")
        .in(peft),
    c.adalora_tinit);
  v(Knob("adalora-tfinal", "AdaLoRA: last steps, with the final ranks fixed (-1: 30% of the steps)")
        .check([](double x) { return x == -1 || (x >= 1 && x <= 1e12); }, "between 1 and 10^12 (or -1: 30% of the steps)")
        .in(peft),
    c.adalora_tfinal);
  v(Knob("adalora-delta-t", "AdaLoRA: steps between two rank allocations")
        .check(bound::closed(1, 1e12), "between 1 and 10^12")
        .in(peft),
    c.adalora_delta_t);
  v(Knob("adalora-beta1", "AdaLoRA: moving-average factor of the importance").check(bound::open(0, 1), "in (0, 1)").in(peft),
    c.adalora_beta1);
  v(Knob("adalora-beta2", "AdaLoRA: moving-average factor of its uncertainty").check(bound::open(0, 1), "in (0, 1)").in(peft),
    c.adalora_beta2);
  v(Knob("adalora-orth-reg-weight", "AdaLoRA: weight of the orthogonality regulariser of P and Q")
        .check(bound::closed(0, 1e6), "in [0, 10^6]")
        .in(peft),
    c.adalora_orth_reg_weight);
  v(Knob("base",
         "The base model of an --init adapter or of the adapter run resumed, when it moved from where the adapter "
         "recorded it")
        .hide_default()
        .changeable_on_resume()
        .in(peft),
    c.base);

  const char* distill = "Distillation";
  v(Knob("teacher",
         "A model whose outputs the student learns (repeat for an ensemble: their average), computed once before the "
         "first step")
        .hide_default()
        .in(distill),
    c.teachers);
  v(Knob("distill-temperature", "Temperature of the teacher's and the student's class distributions (classification, binary)")
        .check(bound::open_closed(0, 1e3), "in (0, 1000]")
        .in(distill),
    c.distill_temperature);
  v(Knob("distill-alpha",
         "Loss = alpha * distillation (MSE on the teacher's scores; KL for classes) + (1 - alpha) * labels")
        .check(bound::open_closed(0, 1), "in (0, 1] (0 would ignore the teacher)")
        .in(distill),
    c.distill_alpha);
  v(Knob("unlabeled", "JSONL pairs without labels that only the teacher labels").hide_default().in(distill), c.unlabeled);
  v(Knob("keep-layers", "Keep this many of the --init model's encoder layers (0: all)").check(bound::at_least(0), ">= 0").in(distill),
    c.keep_layers);
  v(Knob("keep-which",
         "Which layers --keep-layers keeps: bottom (the top ones dropped) or alternate (the top layer and every n/k-th "
         "below it)")
        .one_of({"bottom", "alternate"})
        .in(distill),
    c.keep_which);

  const char* rank = "Ranking losses";
  v(Knob("rank-loss",
         "none, listnet, ranknet or lambdaloss: a loss over the results of one query_id (listwise softmax, pairwise "
         "logistic, nDCG-weighted pairs), with batches of whole query groups")
        .one_of({"none", "listnet", "ranknet", "lambdaloss"})
        .in(rank),
    c.rank_loss);
  v(Knob("rank-weight", "Loss = w * ranking loss + (1 - w) * the task's pointwise loss (keeps scores on the label scale)")
        .check(bound::closed(0, 1), "in [0, 1]")
        .in(rank),
    c.rank_weight);
  v(Knob("rank-group-cap", "Most results of one query in a batch; a larger group gives a random draw each epoch")
        .check(bound::closed(2, static_cast<double>(kMaxBatchSize)), "between 2 and " + std::to_string(kMaxBatchSize))
        .in(rank),
    c.rank_group_cap);

  const char* opt = "Optimisation";
  visit_schedule_knobs(c, v, "the training data", "Examples");
  v(Knob("dropout", "Dropout probability of the encoder and classifier (default: 0.1 from scratch, the --init model's own)")
        .check(bound::closed_open(0, 1), "in [0, 1)")
        .hide_default()
        .in(opt),
    c.dropout);
  v(Knob("max-len", "Longest input in tokens (0: the model's, else 128)")
        .check([](double x) { return x == 0 || (x >= 3 && x <= kMaxSequenceLength); },
               "0 (the model's) or between 3 and " + std::to_string(kMaxSequenceLength))
        .in(opt),
    c.max_len);
  v(Knob("seed", "Random seed (same seed and threads give the same metrics)").in(opt), c.seed);
  visit_compute_knobs(c, v, opt);

  visit_distributed_knobs(c.distributed, v);
  const char* adv = "Adversarial training";
  v(Knob("adv",
         "none, fgm or pgd: perturb the word embeddings along the loss's gradient and learn from the perturbed loss "
         "beside the clean one")
        .one_of({"none", "fgm", "pgd"})
        .in(adv),
    c.adv);
  v(Knob("adv-eps", "L2 radius of one example's perturbation").check(bound::open_closed(0, 1e6), "in (0, 10^6]").in(adv),
    c.adv_eps);
  v(Knob("adv-steps", "PGD: steps of the perturbation's climb").check(bound::closed(1, 100), "between 1 and 100").in(adv),
    c.adv_steps);
  v(Knob("adv-alpha", "PGD: size of each step").check(bound::open_closed(0, 1e6), "in (0, 10^6]").in(adv), c.adv_alpha);
  v(Knob("adv-relative",
         "--adv-eps and --adv-alpha are shares of each example's word-embedding L2 norm (e.g. 0.1), not absolute sizes")
        .as_flag()
        .in(adv),
    c.adv_relative);
  v(Knob("augment",
         "Share of training examples given attack-like text noise each batch (typos, duplicated words, query words "
         "inserted into below-average results with their label kept); 0: off")
        .check(bound::closed(0, 1), "in [0, 1] (0: off)")
        .in(adv),
    c.augment);

  const char* ev = "Evaluation and checkpoints";
  v(Knob("eval-every", "Evaluate on dev every N steps (0: each epoch)").check(bound::at_least(0), ">= 0").in(ev), c.eval_every);
  v(Knob("patience", "Stop after N evaluations without improvement (0: never)").check(bound::at_least(0), ">= 0").in(ev),
    c.patience);
  v(Knob("select-metric",
         "Dev metric that selects the best checkpoint and stops early, as eval prints it (e.g. ndcg_at_10, mrr, "
         "spearman; ranking metrics need query_id); default: the task's (rmse, accuracy, roc_auc)")
        .hide_default()
        .in(ev),
    c.select_metric);
  v(Knob("eval-batch-size", "Batch size for dev evaluation")
        .check(bound::closed(1, static_cast<double>(kMaxBatchSize)), "between 1 and " + std::to_string(kMaxBatchSize))
        .changeable_on_resume()
        .in(ev),
    c.eval_batch_size);
  v(Knob("resume", "Continue the run in --out from its last checkpoint").as_flag().changeable_on_resume().in(ev), c.resume);
  v(Knob("detect-fpr",
         "Calibrate suspect detection (score --detect) to this false-positive rate on dev and save its statistics with "
         "the best model (0: none)")
        .check(bound::closed_open(0, 1), "in [0, 1) (0: no detection statistics)")
        .changeable_on_resume()
        .in(ev),
    c.detect_fpr);
  v(Knob("detect-sample", "Training pairs whose pooled vectors give detection's mean and covariance")
        .check(bound::closed(2, 1e7), "between 2 and 10^7")
        .changeable_on_resume()
        .in(ev),
    c.detect_sample);

  const char* bad = "Bad input";
  v(Knob("max-bad-lines", "Skip up to N malformed lines instead of stopping")
        .check(bound::at_least(0), ">= 0")
        .changeable_on_resume()
        .in(bad),
    c.max_bad_lines);
  v(Knob("rejects", "Write skipped lines here (JSONL with line and error)").hide_default().changeable_on_resume().in(bad),
    c.rejects);
  visit_field_knobs(c.fields, v);
}

struct TrainResult {
  int64_t steps = 0;
  int64_t trainable_parameters = 0;  // what the optimizer updates
  bool interrupted = false;   // stopped by a signal or stop_after_step; resume to continue
  int interrupt_signal = 0;   // the signal that stopped it (0: stop_after_step)
  bool early_stopped = false;
  std::string metric_name;
  double best_metric = 0;
  int64_t best_step = 0;
  nlohmann::ordered_json final_metrics;  // metrics of the last evaluation
  std::string best_dir, last_dir;
  // AdaLoRA: the rank each adapted module ends with, in the encoder's order.
  std::vector<std::pair<std::string, int64_t>> adalora_ranks;
};

// AdaLoRA's tinit and tfinal for a run of total_steps optimizer steps: the flags' values, or
// their defaults (-1) for that length. Throws ConfigError naming both flags when they leave no
// step to prune in (PEFT's rule: tinit < total_step - tfinal).
std::pair<int64_t, int64_t> adalora_phases(const TrainConfig& config, int64_t total_steps);

// Fine-tunes (train/finetune_objective on the training engine). When stop asks, the current
// step finishes, last/ is written and the result says interrupted; before the first step,
// Interrupted is thrown (nothing to resume).
TrainResult train(const TrainConfig& config, const StopToken& stop = {});

}  // namespace dqe
