// From records to model inputs. A featurizer belongs to a model and is saved with it: the
// text pair goes through the model's tokenizer ([CLS] query [SEP] result [SEP], with match
// token types when the task asks for them) and each side input (the lexical match features
// first) turns the record into a vector of numbers; batches are padded text tensors plus
// one tensor per side input, by name.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "data/dataset.h"
#include "data/lexical.h"
#include "data/side_input.h"
#include "data/task_spec.h"
#include "dqe/jsonl_reader.h"
#include "dqe/tokenizer.h"

namespace dqe {

// One record as the model sees it.
struct Example {
  Encoding text;
  // One vector per side input, in the featurizer's order.
  std::vector<std::vector<float>> side;
  // Tokens of the pair that the tokenizer did not know ([UNK]).
  int64_t unknown_tokens = 0;
};


// The pair's lexical match features (data/lexical.h) against word statistics of the training
// results, saved as lexical_stats.json.
class LexicalInput : public SideInput {
 public:
  static constexpr const char* kName = "lexical";
  static constexpr const char* kFile = "lexical_stats.json";
  explicit LexicalInput(LexicalStats stats) : stats_(std::move(stats)) {}
  // Fitted on the result texts of the training records.
  static std::shared_ptr<const LexicalInput> fit(const std::vector<Record>& train);
  // From DIR/lexical_stats.json; throws ModelError naming it when missing or malformed.
  static std::shared_ptr<const LexicalInput> load(const std::string& dir);

  std::string name() const override { return kName; }
  int64_t dim() const override { return kNumLexicalFeatures; }
  std::vector<float> features(const Record& record) const override;
  void save(const std::string& dir) const override;
  const LexicalStats& stats() const { return stats_; }

 private:
  LexicalStats stats_;
};

class Featurizer {
 public:
  Featurizer(TaskSpec task, std::shared_ptr<const Tokenizer> tokenizer,
             std::vector<std::shared_ptr<const SideInput>> side_inputs = {});

  // The side inputs the task asks for, fitted on the training records.
  static Featurizer fit(TaskSpec task, std::shared_ptr<const Tokenizer> tokenizer, const std::vector<Record>& train);
  // The side inputs the task asks for, as saved in a checkpoint directory.
  static Featurizer load(const std::string& dir, TaskSpec task, std::shared_ptr<const Tokenizer> tokenizer);
  // The same inputs read under another task spec (an inference --max-len or field names).
  Featurizer with_task(TaskSpec task) const;

  Example encode(const Record& record) const;
  // Records [first, last) (all of them by default), on `threads` threads, in order.
  std::vector<Example> encode_all(const std::vector<Record>& records, int threads, size_t first = 0,
                                  size_t last = SIZE_MAX) const;
  Batch collate(const std::vector<Example>& examples, const std::vector<size_t>& rows,
                const c10::Device& device = c10::Device(c10::kCPU)) const;
  // Writes the side inputs' files (the tokenizer and spec are saved by the checkpoint).
  void save(const std::string& dir) const;

  const TaskSpec& task() const { return task_; }
  const Tokenizer& tokenizer() const { return *tokenizer_; }
  std::shared_ptr<const Tokenizer> shared_tokenizer() const { return tokenizer_; }
  const std::vector<std::shared_ptr<const SideInput>>& side_inputs() const { return side_inputs_; }
  // Names and widths, for the model's side heads.
  SideInputDims side_dims() const;

 private:
  TaskSpec task_;
  std::shared_ptr<const Tokenizer> tokenizer_;
  std::vector<std::shared_ptr<const SideInput>> side_inputs_;
};

std::vector<size_t> lengths_of(const std::vector<Example>& examples);

}  // namespace dqe
