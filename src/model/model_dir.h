// Checkpoint directories: config.json (Hugging Face keys + a "dqe" section),
// model.safetensors, the tokenizer's file, the side inputs' files, and for training runs
// trainer_state.json and optimizer.pt. A LoRA adapter's directory holds, instead of
// model.safetensors, Hugging Face PEFT's adapter_config.json and adapter_model.safetensors
// (model/peft/peft.h), and its config.json records the base it adapts. Written to DIR.tmp and renamed into
// place, so DIR is always complete.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "data/drift.h"
#include "data/featurizer.h"
#include "dqe/tokenizer.h"
#include "io/checkpoint_dir.h"
#include "model/model_spec.h"
#include "model/sequence_model.h"
#include "model/weights.h"

namespace dqe {

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
  // An int8 file's int8 weights and scales (model/int8.h's int8_entries), for attach_int8_kernels.
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
  // Parameter-efficient fine-tuning: a plain model gets a new adapter of this spec (in its
  // initial state, a no-op) and becomes its base, recorded as the path given with its weights'
  // hash. An adapter's directory keeps its own adapter and base, taking of this spec what its
  // kind continues with (AdapterSpec::continue_with: LoRA's dropout).
  AdapterSpecPtr adapter;
  // Folds an adapter's updates into its base's weights: the result is a plain model.
  bool merge_adapter = false;
};

// Loads config, tokenizer, side inputs and weights. An adapter's directory loads its base
// (LoadOptions::base, else the path it recorded) with the adapter's updates on top, unmerged;
// a base that is missing, or whose encoder weights differ from those the adapter recorded, is
// a ModelError naming both. Throws ModelError/IoError naming the file.
LoadedModel load_model(const std::string& path, const LoadOptions& options = {});

// The spec load_model(path) gives, without its weights: for an adapter, its own config.json
// (or, for an adapter dqe did not write, its base's) with its adapter's spec (LoRA's modules
// are left empty: the weights name them).
ModelSpec model_spec_of(const std::string& path, const std::string& base = "");

// Writes a model's files into an existing directory: config.json, tokenizer_config.json, the
// tokenizer's file, model.safetensors (extra_weights, such as the MLM head's, beside the
// model's; a spec.mlm_encoder model leaves out its untrained classifier), the side inputs'
// files and, when given, score_reference.json. An adapter (spec.adapter) writes
// adapter_config.json and adapter_model.safetensors (its parameters and the heads) instead of
// model.safetensors.
void write_model_files(const std::string& dir, const ModelSpec& spec, SequenceModel& model, const Featurizer& featurizer,
                       const std::vector<std::pair<std::string, torch::Tensor>>& extra_weights = {},
                       const ScoreReference* reference = nullptr);

// A model checkpoint without training state: write_checkpoint of write_model_files.
void save_checkpoint(const std::string& dir, const ModelSpec& spec, SequenceModel& model, const Featurizer& featurizer,
                     const ScoreReference* reference = nullptr);

}  // namespace dqe
