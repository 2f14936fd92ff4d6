// The model a fine-tuning run trains, built between loading and training so that the objective
// takes it as built: the run's own (--resume: its last/), the --init model made ready for the
// task (a new head, match types, a new or continued adapter or a merged one, layers kept,
// dropout), or a new model from scratch with its vocabulary and side inputs fitted on the
// training records. An adapter's base comes frozen.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <spdlog/spdlog.h>

#include "data/featurizer.h"
#include "dqe/jsonl_reader.h"
#include "dqe/pretrainer.h"
#include "dqe/trainer.h"
#include "model/model_dir.h"

namespace dqe::training {

struct BuiltModel {
  ModelSpec spec;
  SequenceModel model{nullptr};
  std::shared_ptr<const Featurizer> featurizer;
  // The weights file it was loaded from (model.safetensors), where other heads may be found;
  // empty for a new model.
  std::string weights_file;
};

// The task a new run trains: its classes, label scaling, length and inputs, from the flags,
// the training records and, with --init, the model it starts from.
TaskSpec task_of_new_run(const TrainConfig& cfg, const std::vector<Record>& train, const std::optional<ModelSpec>& init);

// Builds the run's model (weights not loaded are drawn from LibTorch's generator: seed it
// first). Throws ConfigError, ModelError naming the flag or file.
BuiltModel build_finetune_model(const TrainConfig& cfg, const std::vector<Record>& train, const std::string& last_dir,
                                spdlog::logger& log);

// The encoder a pretraining run trains (spec.mlm_encoder set): the run's own (--resume), the
// --init model (a plain one, not an adapter) at --max-len, or a new one with four token types
// (fine-tuning's match types), its WordPiece vocabulary built from vocab_texts unless
// --tokenizer names one. Seed LibTorch's generator first.
BuiltModel build_mlm_encoder(const PretrainConfig& cfg, const std::vector<std::string>& vocab_texts,
                             const std::string& last_dir, spdlog::logger& log);

}  // namespace dqe::training
