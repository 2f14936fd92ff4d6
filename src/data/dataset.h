// From records to tensors: match types, length-bucketed batch plans and padding (data/featurizer.h turns records into examples).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "data/task_spec.h"
#include "dqe/jsonl_reader.h"
#include "dqe/tokenizer.h"

namespace dqe {

// Marks tokens that occur on both sides of the pair (TaskSpec::match_types): type 0 -> 2
// on the query side, 1 -> 3 on the result side. Special tokens keep their type.
void mark_matches(Encoding& encoding, const Tokenizer& tokenizer);

// A padded batch: mask is 1 for real tokens; side holds the side inputs' tensors by name,
// [batch, dim] each (none for text alone).
struct Batch {
  torch::Tensor ids, type_ids, mask;
  std::map<std::string, torch::Tensor> side;
  std::vector<size_t> rows;  // which inputs, in batch order
};
// Pads the text of the rows, built on the CPU and then moved to device. encoding_of(row)
// gives a row's encoding.
Batch collate_text(const std::vector<size_t>& rows, const std::function<const Encoding&(size_t)>& encoding_of,
                   int64_t pad_id, const c10::Device& device = c10::Device(c10::kCPU));
// The same for a vector of encodings.
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
