#include <iostream>

#include "cli/app.h"
#include "dqe/trainer.h"

namespace dqe::cli {

void add_train_command(CLI::App& app, CliState& state) {
  TrainConfig& c = state.train;
  CLI::App* cmd = app.add_subcommand("train", "Fine-tune (or train from scratch) a relevance model");
  state.train_cmd = cmd;
  cmd->add_option("--config", state.config_files, "JSON file of flag values (keys are long flag names); repeatable: later files, then explicit flags, win");
  cmd->add_option("--train", c.train_path, "Training data (JSONL)")->required();
  cmd->add_option("--dev", c.dev_path, "Dev data for evaluation and early stopping (JSONL)")->required();
  cmd->add_option("--out", c.out_dir, "Run directory: best/, last/, train_log.jsonl, eval_log.jsonl")->required();
  cmd->add_option("--init", c.init,
                  "Start from this model: dqe checkpoint, run directory, Hugging Face BERT directory or PEFT LoRA adapter");
  cmd->add_option("--tokenizer", c.tokenizer, "vocab.txt (WordPiece) or .model (SentencePiece) for a model trained from scratch");
  cmd->add_flag("--dump-config", state.dump_config,
                "Print the effective configuration as JSON (a valid --config file) and exit");
  cmd->add_option("--task", c.task, "regression, classification or binary")
      ->capture_default_str()
      ->check(CLI::IsMember({"regression", "classification", "binary"}));

  cmd->add_option("--labels", c.labels,
                  "Class names from least to most relevant (classification; binary: negative,positive)")
      ->delimiter(',');
  const char* shape = "Model shape (from scratch; ignored with --init)";
  cmd->add_option("--layers", c.layers, "Transformer layers")->capture_default_str()->group(shape);
  cmd->add_option("--hidden", c.hidden, "Hidden size")->capture_default_str()->group(shape);
  cmd->add_option("--heads", c.heads, "Attention heads")->capture_default_str()->group(shape);
  cmd->add_option("--intermediate", c.intermediate, "Feed-forward size")->capture_default_str()->group(shape);
  cmd->add_option("--vocab-size", c.vocab_size, "Size of the WordPiece vocabulary built from the training texts")
      ->capture_default_str()
      ->group(shape);
  cmd->add_option("--match-types", c.match_types,
                  "Mark tokens shared by query and result with their own token types (auto: on from scratch, "
                  "as the --init model otherwise)")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "on", "off"}))
      ->group(shape);
  cmd->add_flag("--lexical-features", c.lexical_features,
                "Add an MLP of lexical match features (exact, stemmed and partial term matches, IDF, BM25, "
                "numbers) to the logits")
      ->group(shape);
  cmd->add_option("--fusion", c.fusion,
                  "How side inputs (lexical features, --features-field, --attributes-field, --image-field) meet the "
                  "text: gate, concat, or add (added to the logits)")
      ->capture_default_str()
      ->check(CLI::IsMember({"gate", "concat", "add"}))
      ->group(shape);
  cmd->add_option("--modality-dropout", c.modality_dropout,
                  "Probability of dropping a whole side input from a training line (robustness to lines lacking it)")
      ->capture_default_str()
      ->group(shape);
  cmd->add_option("--lower-case", c.lower_case, "Lower-case and strip accents (uncased model)")
      ->capture_default_str()
      ->group(shape);

  const char* peft = "Parameter-efficient fine-tuning (LoRA, AdaLoRA, bottleneck adapters)";
  cmd->add_option("--peft", c.peft,
                  "none; lora or adalora: freeze the --init model and train LoRA (AdaLoRA) updates of its Linears "
                  "and the heads, checkpoints being Hugging Face PEFT adapters; or adapter: the same with bottleneck "
                  "adapters (Houlsby) after each layer's attention and feed-forward outputs, in dqe's own layout")
      ->capture_default_str()
      ->check(CLI::IsMember({"none", "lora", "adalora", "adapter"}))
      ->group(peft);
  cmd->add_option("--lora-rank", c.lora_rank, "Rank r of each update B A")->capture_default_str()->group(peft);
  cmd->add_option("--lora-alpha", c.lora_alpha, "The updates are scaled by alpha / r")->capture_default_str()->group(peft);
  cmd->add_option("--lora-dropout", c.lora_dropout, "Dropout on the updates' input")->capture_default_str()->group(peft);
  cmd->add_option("--lora-targets", c.lora_targets,
                  "Linears to adapt, by the ends of their Hugging Face names (query, key, value, dense, "
                  "attention.output.dense, intermediate.dense, output.dense, pooler.dense; PEFT's rule: a name "
                  "selects every module ending in it), or all-linear")
      ->delimiter(',')
      ->capture_default_str()
      ->group(peft);
  cmd->add_option("--adapter-size", c.adapter_size,
                  "Bottleneck adapters: the bottleneck's width (down [size, hidden], up [hidden, size]), at most "
                  "the base's hidden size")
      ->capture_default_str()
      ->group(peft);
  cmd->add_option("--adalora-init-r", c.adalora_init_r, "AdaLoRA: initial rank of each update P Lambda Q")
      ->capture_default_str()
      ->group(peft);
  cmd->add_option("--adalora-target-r", c.adalora_target_r, "AdaLoRA: average rank per module after pruning")
      ->capture_default_str()
      ->group(peft);
  cmd->add_option("--adalora-tinit", c.adalora_tinit, "AdaLoRA: steps before pruning starts (-1: a tenth of the steps)")
      ->capture_default_str()
      ->group(peft);
  cmd->add_option("--adalora-tfinal", c.adalora_tfinal,
                  "AdaLoRA: last steps, with the final ranks fixed (-1: 30% of the steps)")
      ->capture_default_str()
      ->group(peft);
  cmd->add_option("--adalora-delta-t", c.adalora_delta_t, "AdaLoRA: steps between two rank allocations")
      ->capture_default_str()
      ->group(peft);
  cmd->add_option("--adalora-beta1", c.adalora_beta1, "AdaLoRA: moving-average factor of the importance")
      ->capture_default_str()
      ->group(peft);
  cmd->add_option("--adalora-beta2", c.adalora_beta2, "AdaLoRA: moving-average factor of its uncertainty")
      ->capture_default_str()
      ->group(peft);
  cmd->add_option("--adalora-orth-reg-weight", c.adalora_orth_reg_weight,
                  "AdaLoRA: weight of the orthogonality regulariser of P and Q")
      ->capture_default_str()
      ->group(peft);
  cmd->add_option("--base", c.base,
                  "The base model of an --init adapter or of the adapter run resumed, when it moved from where the "
                  "adapter recorded it")
      ->group(peft);

  const char* distill = "Distillation";
  cmd->add_option("--teacher", c.teachers,
                  "A model whose outputs the student learns (repeat for an ensemble: their average), computed once "
                  "before the first step")
      ->group(distill);
  cmd->add_option("--distill-temperature", c.distill_temperature,
                  "Temperature of the teacher's and the student's class distributions (classification, binary)")
      ->capture_default_str()
      ->group(distill);
  cmd->add_option("--distill-alpha", c.distill_alpha,
                  "Loss = alpha * distillation (MSE on the teacher's scores; KL for classes) + (1 - alpha) * labels")
      ->capture_default_str()
      ->group(distill);
  cmd->add_option("--unlabeled", c.unlabeled, "JSONL pairs without labels that only the teacher labels")->group(distill);
  cmd->add_option("--keep-layers", c.keep_layers, "Keep this many of the --init model's encoder layers (0: all)")
      ->capture_default_str()
      ->group(distill);
  cmd->add_option("--keep-which", c.keep_which,
                  "Which layers --keep-layers keeps: bottom (the top ones dropped) or alternate (the top layer and "
                  "every n/k-th below it)")
      ->capture_default_str()
      ->check(CLI::IsMember({"bottom", "alternate"}))
      ->group(distill);

  const char* opt = "Optimisation";
  add_schedule_options(*cmd, c, "the training data", "Examples");
  cmd->add_option("--dropout", state.train_dropout,
                  "Dropout probability of the encoder and classifier (default: 0.1 from scratch, the --init model's own)")
      ->group(opt);
  cmd->add_option("--max-len", c.max_len, "Longest input in tokens (0: the model's, else 128)")->capture_default_str()->group(opt);
  cmd->add_option("--seed", c.seed, "Random seed (same seed and threads give the same metrics)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber)
      ->group(opt);
  add_compute_options(*cmd, c.threads, c.precision, c.device, opt);

  add_distributed_options(*cmd, c.distributed);
  const char* adv = "Adversarial training";
  cmd->add_option("--adv", c.adv,
                  "none, fgm or pgd: perturb the word embeddings along the loss's gradient and learn from the "
                  "perturbed loss beside the clean one")
      ->capture_default_str()
      ->check(CLI::IsMember({"none", "fgm", "pgd"}))
      ->group(adv);
  cmd->add_option("--adv-eps", c.adv_eps, "L2 radius of one example's perturbation")->capture_default_str()->group(adv);
  cmd->add_option("--adv-steps", c.adv_steps, "PGD: steps of the perturbation's climb")->capture_default_str()->group(adv);
  cmd->add_option("--adv-alpha", c.adv_alpha, "PGD: size of each step")->capture_default_str()->group(adv);
  cmd->add_option("--augment", c.augment,
                  "Share of training examples given attack-like text noise each batch (typos, duplicated words, query "
                  "words inserted into below-average results with their label kept); 0: off")
      ->capture_default_str()
      ->group(adv);

  const char* ev = "Evaluation and checkpoints";
  cmd->add_option("--eval-every", c.eval_every, "Evaluate on dev every N steps (0: each epoch)")->capture_default_str()->group(ev);
  cmd->add_option("--patience", c.patience, "Stop after N evaluations without improvement (0: never)")
      ->capture_default_str()
      ->group(ev);
  cmd->add_option("--eval-batch-size", c.eval_batch_size, "Batch size for dev evaluation")->capture_default_str()->group(ev);
  cmd->add_flag("--resume", c.resume, "Continue the run in --out from its last checkpoint")->group(ev);
  cmd->add_option("--detect-fpr", c.detect_fpr,
                  "Calibrate suspect detection (score --detect) to this false-positive rate on dev and save its "
                  "statistics with the best model (0: none)")
      ->capture_default_str()
      ->group(ev);
  cmd->add_option("--detect-sample", c.detect_sample,
                  "Training pairs whose pooled vectors give detection's mean and covariance")
      ->capture_default_str()
      ->group(ev);

  const char* bad = "Bad input";
  cmd->add_option("--max-bad-lines", c.max_bad_lines, "Skip up to N malformed lines instead of stopping")
      ->capture_default_str()
      ->group(bad);
  cmd->add_option("--rejects", c.rejects, "Write skipped lines here (JSONL with line and error)")->group(bad);
  add_field_options(*cmd, c.fields);
}

int run_train(CliState& state) {
  if (state.dump_config) {
    state.train.validate();  // a dumped config is a valid one
    std::cout << state.train.to_json().dump(2) << "\n";
    return kOk;
  }
  TrainResult r = train(state.train, stop_token());
  if (r.interrupted) {
    std::cerr << "dqe: interrupted at step " << r.steps << "; resume with: dqe train ... --out " << state.train.out_dir
              << " --resume\n";
    return exit_code_of_signal(r.interrupt_signal);
  }
  std::cout << "best dev " << r.metric_name << " " << r.best_metric << " at step " << r.best_step << " (" << r.best_dir
            << ")\n";
  return kOk;
}

}  // namespace dqe::cli
