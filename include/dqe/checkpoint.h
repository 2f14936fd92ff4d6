// Checkpoint directories: config.json (Hugging Face keys + a "dqe" section),
// model.safetensors, the tokenizer's file, the side inputs' files, and for training runs
// trainer_state.json and optimizer.pt. A LoRA adapter's directory holds, instead of
// model.safetensors, Hugging Face PEFT's adapter_config.json and adapter_model.safetensors
// (peft.h), and its config.json records the base it adapts. Written to DIR.tmp and renamed into
// place, so DIR is always complete.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "dqe/config.h"
#include "dqe/drift.h"
#include "dqe/featurizer.h"
#include "dqe/model.h"
#include "dqe/tokenizer.h"

namespace dqe {

// Where a training run is in its schedule. Saved as trainer_state.json.
struct TrainerState {
  static constexpr int kFormatVersion = 1;
  int64_t step = 0;            // optimizer steps taken
  int64_t epoch = 0;           // epoch in progress (0-based)
  int64_t batch_in_epoch = 0;  // batches of that epoch already consumed
  int64_t samples_seen = 0;
  int64_t total_steps = 0;
  uint64_t seed = 0;
  std::string metric_name;  // what best_metric measures
  bool higher_is_better = false;
  std::optional<double> best_metric;
  int64_t best_step = 0;
  int64_t evals_without_improvement = 0;
  bool finished = false;
  // Streaming runs (pretrain): the chunk of the input in progress; batch_in_epoch then
  // counts batches of that chunk.
  int64_t chunk = 0;
  // Padded token positions computed, and seconds spent, over the whole run (resumes included).
  int64_t tokens_seen = 0;
  double elapsed_s = 0;
  // What the run was trained on (the objective's fingerprint of its data), checked on --resume.
  std::string data_fingerprint;
  // The effective training configuration, for the record.
  nlohmann::ordered_json config;
};

nlohmann::ordered_json to_json(const TrainerState& state);
// Throws ModelError naming origin on an unknown format version or a missing key.
TrainerState trainer_state_from_json(const nlohmann::json& j, const std::string& origin);

// A model ready to use: its spec, weights, tokenizer and featurizer.
struct LoadedModel {
  std::string dir;
  ModelSpec spec;
  // An adapter's base: the model directory its encoder weights were loaded from.
  std::string base_dir;
  SequenceModel model{nullptr};
  std::shared_ptr<const Tokenizer> tokenizer;
  // Turns records into the model's inputs (the tokenizer, match types, side inputs).
  std::shared_ptr<const Featurizer> featurizer;
  LoadReport report;
  // Distribution of the model's dev scores at training time (score_reference.json), if saved.
  std::optional<ScoreReference> score_reference;
  // An int8 file's int8 weights and scales (quantize.h's int8_entries), for attach_int8_kernels.
  std::map<std::string, torch::Tensor> int8;
};

// Accepts a checkpoint directory, a Hugging Face directory, a PEFT adapter directory, or a run
// directory (meaning its best/ checkpoint, else last/). Throws ModelError naming the path
// otherwise.
std::string resolve_model_dir(const std::string& path);

struct LoadOptions {
  // Fine-tuning: a missing or wrongly shaped head (sequence or side) starts fresh. Without it,
  // an MLM encoder (no task head) is a ModelError that says to fine-tune it first.
  bool allow_new_head = false;
  // Fine-tuning: the task to train instead of the saved one (the result is a task model).
  std::optional<TaskSpec> task;
  // Fine-tuning: side inputs the task asks for and the directory lacks are fitted on these.
  const std::vector<Record>* fit_records = nullptr;
  // Widens the token type embeddings (match types on an --init model).
  std::optional<int64_t> min_type_vocab;
  // Where an adapter's base is, instead of where the adapter recorded it (--base).
  std::string base;
  // Fine-tuning with LoRA: a plain model gets new LoRA updates of this spec (its modules, r,
  // alpha and dropout; B at zero) and becomes their base, recorded as the path given with its
  // weights' hash. An adapter keeps its own updates and base; only its dropout is this one's.
  std::optional<LoraSpec> lora;
  // Fine-tuning with bottleneck adapters: a plain model gets new ones of this spec (up at zero)
  // and becomes their base, recorded as for LoRA. A bottleneck adapter keeps its own.
  std::optional<BottleneckSpec> bottleneck;
  // Folds an adapter's updates into its base's weights: the result is a plain model.
  bool merge_adapter = false;
};

// Loads config, tokenizer, side inputs and weights. An adapter's directory loads its base
// (LoadOptions::base, else the path it recorded) with the adapter's updates on top, unmerged;
// a base that is missing, or whose encoder weights differ from those the adapter recorded, is
// a ModelError naming both. Throws ModelError/IoError naming the file.
LoadedModel load_model(const std::string& path, const LoadOptions& options = {});

// The spec load_model(path) gives, without its weights: for an adapter, its own config.json
// (or, for an adapter dqe did not write, its base's) with its LoraSpec (whose modules are left
// empty: the weights name them).
ModelSpec model_spec_of(const std::string& path, const std::string& base = "");

// Writes a model's files into an existing directory: config.json, tokenizer_config.json, the
// tokenizer's file, model.safetensors (extra_weights, such as the MLM head's, beside the
// model's; a spec.mlm_encoder model leaves out its untrained classifier), the side inputs'
// files and, when given, score_reference.json. A LoRA model (spec.lora) writes
// adapter_config.json and adapter_model.safetensors (its updates and heads) instead of
// model.safetensors.
void write_model_files(const std::string& dir, const ModelSpec& spec, SequenceModel& model, const Featurizer& featurizer,
                       const std::vector<std::pair<std::string, torch::Tensor>>& extra_weights = {},
                       const ScoreReference* reference = nullptr);

// Writes trainer_state.json and, when given, optimizer.pt into an existing directory. The
// state file goes last: its presence marks a complete training checkpoint.
void write_training_state(const std::string& dir, const TrainerState& state, torch::optim::Optimizer* optimizer);

// Replaces the directory dir atomically with what fill writes into a fresh temporary
// directory beside it (DIR.tmp, renamed into place; a crash between the renames leaves the
// previous complete one as DIR.old, see recover_checkpoint).
void write_checkpoint(const std::string& dir, const std::function<void(const std::string& tmp_dir)>& fill);

// A model checkpoint without training state: write_checkpoint of write_model_files.
void save_checkpoint(const std::string& dir, const ModelSpec& spec, SequenceModel& model, const Featurizer& featurizer,
                     const ScoreReference* reference = nullptr);

// Reads DIR/trainer_state.json and, when given, DIR/optimizer.pt into optimizer.
TrainerState load_trainer_state(const std::string& dir, torch::optim::Optimizer* optimizer);

// Makes sure a checkpoint written by write_checkpoint is in place: when a crash hit between
// its two renames, DIR is missing and DIR.old holds the previous complete checkpoint.
void recover_checkpoint(const std::string& dir);

}  // namespace dqe
