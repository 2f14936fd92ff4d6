// Inference, one path for every command: the trainer's dev evaluations, eval, score and
// report all run models through a Predictor, on the device and at the precision they are
// given, so that two commands never disagree on the same model and data.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "data/featurizer.h"
#include "dqe/jsonl_reader.h"
#include "dqe/run_context.h"
#include "model/heads/task_head.h"
#include "model/model_dir.h"
#include "model/model_spec.h"
#include "model/sequence_model.h"
#include "model/weights.h"

namespace dqe {

// What the predictor noticed about one input line.
struct LineDiagnostics {
  int64_t tokens = 0;          // the encoded pair, special tokens included
  int64_t unknown_tokens = 0;  // pieces the tokenizer did not know ([UNK])
  int64_t truncated = 0;       // tokens cut off to fit the length limit
  double unknown_rate() const { return tokens > 2 ? static_cast<double>(unknown_tokens) / static_cast<double>(tokens) : 0; }
};

struct ModelOutputs {
  torch::Tensor logits;  // [n, num_outputs], fp32 on the CPU, in input order
  torch::Tensor pooled;  // [n, hidden], fp32 on the CPU, when asked for
  std::vector<LineDiagnostics> diagnostics;
};

// The task head's reading of logits (task_head(task.task).decode).
Predictions predictions_from_logits(const torch::Tensor& logits, const TaskSpec& task);
// Throws ModelError "path:line: ..." at the first record whose score is not finite (a model or
// an input that overflows): a score of null is not written as if it were one.
void require_finite(const Predictions& predictions, const std::vector<Record>& records, const std::string& path);

class Predictor {
 public:
  // model runs where its parameters are; bf16 precision runs the encoder under autocast
  // (faster, not bit-exact); outputs are fp32. stop is checked between batches.
  Predictor(SequenceModel model, std::shared_ptr<const Featurizer> featurizer, Precision precision, int64_t batch_size,
            StopToken stop = {});

  // Batches run in length order (little padding, the longest first so that memory runs out
  // early if it does); on_batch(done) is called after each with the examples done so far.
  ModelOutputs run(const std::vector<Example>& examples, bool with_pooled = false,
                   const std::function<void(int64_t done)>& on_batch = nullptr) const;
  // Records through the featurizer (on `threads` threads), then run().
  ModelOutputs run(const std::vector<Record>& records, int threads, bool with_pooled = false,
                   const std::function<void(int64_t done)>& on_batch = nullptr) const;

  const Featurizer& featurizer() const { return *featurizer_; }
  const TaskSpec& task() const { return featurizer_->task(); }

 private:
  SequenceModel model_;
  std::shared_ptr<const Featurizer> featurizer_;
  Precision precision_;
  int64_t batch_size_;
  StopToken stop_;
};

// The model's task with the command's overrides: max_len (0 keeps the model's; otherwise
// 3..max_position_embeddings, else ConfigError naming --max-len) and field names.
TaskSpec inference_task(const ModelSpec& spec, int64_t max_len, const std::optional<FieldMap>& fields);

// One model, or several whose predictions are averaged (an ensemble, e.g. fine-tuning runs
// with different seeds). Each member keeps its own tokenizer, length and label scaling;
// they must share the task and class names.
struct Ensemble {
  std::vector<LoadedModel> members;
  std::vector<Predictor> predictors;  // one per member, reading inference_task()
  // Each member's name: the NAME of its --model NAME=DIR, else that directory's name (the
  // members of an ensemble directory all take the directory's).
  std::vector<std::string> names;

  // Adapters of one base share its weights (model/model.h's share_encoder_weights): the adapters
  // among the members, their distinct bases, and the bytes held once instead of per adapter.
  int64_t adapters = 0;
  int64_t adapter_bases = 0;
  int64_t shared_base_bytes = 0;

  const TaskSpec& task() const { return predictors.front().task(); }
  // How the input is read for every member: the first member's fields, and each side input's
  // field from the members that use it (a member without that input ignores it).
  FieldMap read_fields;
  // "3 adapters on 1 base, held once (176.4 MB not loaded again)", or "" when nothing is shared.
  std::string sharing_summary() const;
  // Every member's directory, in order.
  std::vector<std::string> dirs() const;
};

// The models a --model argument names: the directory itself, or, when it holds an
// ensemble.json ({"members": ["seed1", "seed2"]}, paths relative to it), its members.
// Throws ModelError naming the file when it is malformed.
std::vector<std::string> ensemble_members(const std::string& dir);

// A --model argument: "NAME=DIR" (a name without '/', when the whole is no existing path), or a
// directory, named after its last component. Throws ConfigError for "NAME=" or "=DIR".
struct ModelArg {
  std::string name, dir;
};
ModelArg parse_model_arg(const std::string& arg);

// Loads the models (ensemble directories expanded) onto the context's device, with
// predictors at its precision; LoRA adapters run unmerged on their base (at `base` when given,
// --base), and adapters of the same base (same directory, same weights hash) share its weights
// in memory. Throws ConfigError naming --model when there is none or when a member's task or
// class names differ from the first's.
Ensemble load_ensemble(const std::vector<std::string>& models, int64_t max_len, const std::optional<FieldMap>& fields,
                       const RunContext& ctx, int64_t batch_size, const std::string& base = "");

// The members' predictions averaged: scores, and class probabilities (the class is then
// the most probable; binary: score >= 0.5). on_batch as in Predictor::run, summed over members.
// members: the indices of the members to average (all when empty).
Predictions predict_ensemble(const Ensemble& ensemble, const std::vector<Record>& records, int threads,
                             const std::function<void(int64_t done)>& on_batch = nullptr,
                             const std::vector<size_t>& members = {});

}  // namespace dqe
