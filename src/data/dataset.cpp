#include "data/dataset.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <set>

#include "dqe/errors.h"

namespace dqe {
namespace {

std::string where(const std::string& path, const Record& r) { return path + ":" + std::to_string(r.line) + ": "; }

bool is_integer(double v) { return std::isfinite(v) && v == std::floor(v) && std::fabs(v) < 1e9; }

// More classes than this is a stray label, not a task: 100000 would build 100,001 classes.
constexpr size_t kMaxClasses = 1000;

}  // namespace

std::vector<std::string> collect_class_labels(const std::vector<Record>& records, const std::string& path) {
  std::set<std::string> names;
  std::set<int64_t> ids;
  const Record* first_string = nullptr;
  const Record* first_number = nullptr;
  for (const auto& r : records) {
    if (r.label_kind == LabelKind::kString) {
      names.insert(r.label_string);
      if (names.size() > kMaxClasses)
        throw DataError(where(path, r) + "more than " + std::to_string(kMaxClasses) +
                        " distinct class names: is --label-field the class?");
      if (!first_string) first_string = &r;
    } else if (r.label_kind == LabelKind::kNumber) {
      if (!is_integer(r.label_number) || r.label_number < 0)
        throw DataError(where(path, r) + "classification label must be a class name or a non-negative integer id");
      if (r.label_number >= static_cast<double>(kMaxClasses))
        throw DataError(where(path, r) + "class id " + std::to_string(static_cast<int64_t>(r.label_number)) +
                        " is too large: at most " + std::to_string(kMaxClasses) + " classes (ids 0-" +
                        std::to_string(kMaxClasses - 1) + ")");
      ids.insert(static_cast<int64_t>(r.label_number));
      if (!first_number) first_number = &r;
    }
  }
  if (first_string && first_number) {
    const Record& later = first_string->line > first_number->line ? *first_string : *first_number;
    throw DataError(where(path, later) + "labels mix class names and numeric ids");
  }
  std::vector<std::string> labels;
  if (first_string) {
    labels.assign(names.begin(), names.end());
  } else if (!ids.empty()) {
    for (int64_t i = 0; i <= *ids.rbegin(); ++i) labels.push_back(std::to_string(i));
  }
  if (labels.size() < 2) throw DataError(path + ": classification needs at least 2 distinct labels");
  return labels;
}

double encode_label(const Record& r, const TaskSpec& task, const std::string& path) {
  if (r.label_kind == LabelKind::kNone) throw DataError(where(path, r) + "missing field \"" + task.fields.label + "\"");
  switch (task.task) {
    case Task::kRegression:
      if (r.label_kind != LabelKind::kNumber)
        throw DataError(where(path, r) + "label must be a number for regression, got \"" + r.label_string + "\"");
      return r.label_number;
    case Task::kBinary:
      if (r.label_kind == LabelKind::kNumber && (r.label_number == 0 || r.label_number == 1)) return r.label_number;
      if (r.label_kind == LabelKind::kString && task.labels.size() == 2) {
        if (r.label_string == task.labels[0]) return 0;
        if (r.label_string == task.labels[1]) return 1;
      }
      throw DataError(where(path, r) + "binary label must be 0, 1, true or false");
    case Task::kClassification: {
      if (r.label_kind == LabelKind::kString) {
        auto it = std::find(task.labels.begin(), task.labels.end(), r.label_string);
        if (it != task.labels.end()) return static_cast<double>(it - task.labels.begin());
        std::string known;
        for (const auto& l : task.labels) known += (known.empty() ? "" : ", ") + l;
        throw DataError(where(path, r) + "label \"" + r.label_string + "\" is not one of the known classes (" + known +
                        ")");
      }
      // An integer id, or a number equal to a class name such as "1".
      if (is_integer(r.label_number)) {
        const std::string as_name = std::to_string(static_cast<int64_t>(r.label_number));
        auto it = std::find(task.labels.begin(), task.labels.end(), as_name);
        if (it != task.labels.end()) return static_cast<double>(it - task.labels.begin());
        if (r.label_number >= 0 && r.label_number < static_cast<double>(task.labels.size())) return r.label_number;
      }
      throw DataError(where(path, r) + "label " + std::to_string(r.label_number) + " is not a known class id (0-" +
                      std::to_string(task.labels.size() - 1) + ")");
    }
  }
  return 0;
}

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
