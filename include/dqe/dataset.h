// From records to tensors: label encoding per task, pair encoding, length-bucketed
// batches with dynamic padding.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "dqe/config.h"
#include "dqe/jsonl_reader.h"
#include "dqe/lexical.h"
#include "dqe/tokenizer.h"

namespace dqe {

// Class names for classification, from the training records: sorted distinct strings, or
// "0".."K-1" when every label is an integer. Throws DataError naming path:line on a mix.
std::vector<std::string> collect_class_labels(const std::vector<Record>& records, const std::string& path);

// The numeric label of a record for the task: the value (regression), the class id
// (classification: a known name, or an integer id in range), or 0/1 (binary).
// Throws DataError "path:line: ..." otherwise.
double encode_label(const Record& record, const TaskSpec& task, const std::string& path);

struct EncodedSet {
  std::vector<Encoding> inputs;
  std::vector<double> labels;  // encode_label() values; empty when unlabeled
  std::vector<std::string> query_ids;
};

// Marks tokens that occur on both sides of the pair (TaskSpec::match_types): type 0 -> 2
// on the query side, 1 -> 3 on the result side. Special tokens keep their type.
void mark_matches(Encoding& encoding, const Tokenizer& tokenizer);

// Tokenizes every record (on `threads` threads) and encodes labels when with_labels. When
// task.lexical_features, also computes the lexical features with lexical (required then).
EncodedSet encode_records(const std::vector<Record>& records, const Tokenizer& tokenizer, const TaskSpec& task,
                          const std::string& path, bool with_labels, int threads,
                          const LexicalStats* lexical = nullptr);

// A padded batch. mask is 1 for real tokens. features is [batch, F] when the inputs have
// lexical features, else undefined.
struct Batch {
  torch::Tensor ids, type_ids, mask, features;
  std::vector<size_t> rows;  // which inputs, in batch order
};
// Built on the CPU, then moved to device.
Batch collate(const std::vector<Encoding>& inputs, const std::vector<size_t>& rows, int64_t pad_id,
              const c10::Device& device = c10::Device(c10::kCPU));

// Training order for one epoch: a seeded shuffle, then within windows of 50 batches the
// inputs are sorted by length and cut into batches (little padding), and the batch order
// is shuffled again. Deterministic for (lengths, batch_size, seed).
std::vector<std::vector<size_t>> plan_training_batches(const std::vector<size_t>& lengths, int64_t batch_size,
                                                       uint64_t seed);

// Inference order: longest first (a large batch fails early if memory is short), cut into batches.
std::vector<std::vector<size_t>> plan_inference_batches(const std::vector<size_t>& lengths, int64_t batch_size);

std::vector<size_t> lengths_of(const std::vector<Encoding>& inputs);

}  // namespace dqe
