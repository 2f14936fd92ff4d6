#include "data/dataset.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <set>

#include "dqe/errors.h"

namespace dqe {

void mark_matches(Encoding& e, const Tokenizer& tok) {
  const int64_t cls = tok.cls_id(), sep = tok.sep_id(), pad = tok.pad_id();
  auto is_special = [&](int64_t id) { return id == cls || id == sep || id == pad; };
  // Pairs are short (<= max_len), so sorted id lists beat hashing.
  std::vector<int64_t> side[2];
  for (size_t i = 0; i < e.ids.size(); ++i)
    if (!is_special(e.ids[i])) side[e.type_ids[i] == 0 ? 0 : 1].push_back(e.ids[i]);
  for (auto& s : side) std::sort(s.begin(), s.end());
  for (size_t i = 0; i < e.ids.size(); ++i) {
    if (is_special(e.ids[i])) continue;
    const int other = e.type_ids[i] == 0 ? 1 : 0;
    if (std::binary_search(side[other].begin(), side[other].end(), e.ids[i])) e.type_ids[i] += 2;
  }
}

Batch collate_text(const std::vector<size_t>& rows, const std::function<const Encoding&(size_t)>& encoding_of,
                   int64_t pad_id, const c10::Device& device) {
  size_t longest = 0;
  for (size_t r : rows) longest = std::max(longest, encoding_of(r).ids.size());
  const int64_t b = static_cast<int64_t>(rows.size()), t = static_cast<int64_t>(longest);
  Batch batch;
  batch.ids = torch::full({b, t}, pad_id, torch::kInt64);
  batch.type_ids = torch::zeros({b, t}, torch::kInt64);
  batch.mask = torch::zeros({b, t}, torch::kInt64);
  auto ids = batch.ids.accessor<int64_t, 2>();
  auto types = batch.type_ids.accessor<int64_t, 2>();
  auto mask = batch.mask.accessor<int64_t, 2>();
  for (int64_t i = 0; i < b; ++i) {
    const Encoding& e = encoding_of(rows[static_cast<size_t>(i)]);
    for (size_t j = 0; j < e.ids.size(); ++j) {
      ids[i][static_cast<int64_t>(j)] = e.ids[j];
      types[i][static_cast<int64_t>(j)] = e.type_ids[j];
      mask[i][static_cast<int64_t>(j)] = 1;
    }
  }
  batch.rows = rows;
  if (!device.is_cpu()) {
    batch.ids = batch.ids.to(device);
    batch.type_ids = batch.type_ids.to(device);
    batch.mask = batch.mask.to(device);
  }
  return batch;
}

Batch collate(const std::vector<Encoding>& inputs, const std::vector<size_t>& rows, int64_t pad_id,
              const c10::Device& device) {
  return collate_text(rows, [&](size_t r) -> const Encoding& { return inputs[r]; }, pad_id, device);
}

std::vector<size_t> lengths_of(const std::vector<Encoding>& inputs) {
  std::vector<size_t> lengths;
  lengths.reserve(inputs.size());
  for (const auto& e : inputs) lengths.push_back(e.ids.size());
  return lengths;
}

std::vector<std::vector<size_t>> plan_training_batches(const std::vector<size_t>& lengths, int64_t batch_size,
                                                       uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<size_t> order(lengths.size());
  std::iota(order.begin(), order.end(), 0);
  std::shuffle(order.begin(), order.end(), rng);
  const size_t bs = static_cast<size_t>(batch_size);
  const size_t window = bs * 50;
  std::vector<std::vector<size_t>> batches;
  for (size_t start = 0; start < order.size(); start += window) {
    auto first = order.begin() + static_cast<std::ptrdiff_t>(start);
    auto last = order.begin() + static_cast<std::ptrdiff_t>(std::min(order.size(), start + window));
    std::stable_sort(first, last, [&](size_t a, size_t b) { return lengths[a] < lengths[b]; });
    for (auto it = first; it < last; it += static_cast<std::ptrdiff_t>(std::min<size_t>(bs, last - it)))
      batches.emplace_back(it, it + static_cast<std::ptrdiff_t>(std::min<size_t>(bs, last - it)));
  }
  std::shuffle(batches.begin(), batches.end(), rng);
  return batches;
}

std::vector<std::vector<size_t>> plan_inference_batches(const std::vector<size_t>& lengths, int64_t batch_size) {
  std::vector<size_t> order(lengths.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return lengths[a] > lengths[b]; });
  std::vector<std::vector<size_t>> batches;
  const size_t bs = static_cast<size_t>(batch_size);
  for (size_t start = 0; start < order.size(); start += bs)
    batches.emplace_back(order.begin() + static_cast<std::ptrdiff_t>(start),
                         order.begin() + static_cast<std::ptrdiff_t>(std::min(order.size(), start + bs)));
  return batches;
}

}  // namespace dqe
