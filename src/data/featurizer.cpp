#include "data/featurizer.h"

#include <algorithm>
#include <exception>
#include <filesystem>
#include <string_view>
#include <thread>

#include "data/log_inputs.h"
#include "dqe/errors.h"
#include "io/json_file.h"
#include "io/output.h"

namespace dqe {
namespace fs = std::filesystem;

std::shared_ptr<const LexicalInput> LexicalInput::fit(const std::vector<Record>& train) {
  std::vector<std::string_view> texts;
  texts.reserve(train.size());
  for (const auto& r : train) texts.emplace_back(r.text);
  return std::make_shared<const LexicalInput>(LexicalStats::build(texts));
}

std::shared_ptr<const LexicalInput> LexicalInput::load(const std::string& dir) {
  const std::string path = (fs::path(dir) / kFile).string();
  if (!fs::exists(path)) throw ModelError(dir + ": the model uses lexical features but " + kFile + " is missing");
  return std::make_shared<const LexicalInput>(LexicalStats::from_json(read_json_file(path), path));
}

std::vector<float> LexicalInput::features(const Record& record) const {
  return lexical_features(record.query, record.text, stats_);
}

void LexicalInput::save(const std::string& dir) const {
  write_file_atomic((fs::path(dir) / kFile).string(), stats_.to_json().dump() + "\n");
}

Featurizer::Featurizer(TaskSpec task, std::shared_ptr<const Tokenizer> tokenizer,
                       std::vector<std::shared_ptr<const SideInput>> side_inputs)
    : task_(std::move(task)), tokenizer_(std::move(tokenizer)), side_inputs_(std::move(side_inputs)) {
  // The side fields the inputs read, and no others: a model without an input ignores its field.
  task_.fields = fields_for(task_.fields, side_inputs_);
}

Featurizer Featurizer::fit(TaskSpec task, std::shared_ptr<const Tokenizer> tokenizer, const std::vector<Record>& train) {
  std::vector<std::shared_ptr<const SideInput>> side;
  if (task.lexical_features) side.push_back(LexicalInput::fit(train));
  for (auto& input : fit_log_inputs(train)) side.push_back(std::move(input));
  return Featurizer(std::move(task), std::move(tokenizer), std::move(side));
}

Featurizer Featurizer::load(const std::string& dir, TaskSpec task, std::shared_ptr<const Tokenizer> tokenizer) {
  std::vector<std::shared_ptr<const SideInput>> side;
  if (task.lexical_features) side.push_back(LexicalInput::load(dir));
  for (auto& input : load_log_inputs(dir)) side.push_back(std::move(input));
  return Featurizer(std::move(task), std::move(tokenizer), std::move(side));
}

Featurizer Featurizer::with_task(TaskSpec task) const { return Featurizer(std::move(task), tokenizer_, side_inputs_); }

Example Featurizer::encode(const Record& record) const {
  Example e;
  e.text = tokenizer_->encode_pair(record.query, record.text, static_cast<size_t>(task_.max_len));
  const int64_t unk = tokenizer_->unk_id();
  e.unknown_tokens = std::count(e.text.ids.begin(), e.text.ids.end(), unk);
  if (task_.match_types) mark_matches(e.text, *tokenizer_);
  e.side.reserve(side_inputs_.size());
  for (const auto& input : side_inputs_) e.side.push_back(input->features(record));
  return e;
}

std::vector<Example> Featurizer::encode_all(const std::vector<Record>& records, int threads, size_t first,
                                            size_t last) const {
  last = std::min(last, records.size());
  first = std::min(first, last);
  const size_t n = last - first;
  std::vector<Example> out(n);
  // A thread per 256 records at most: starting threads costs more than a few encodings.
  const size_t workers = std::max<size_t>(1, std::min<size_t>(static_cast<size_t>(std::max(threads, 1)), n / 256 + 1));
  std::vector<std::thread> pool;
  std::vector<std::exception_ptr> errors(workers);
  for (size_t w = 0; w < workers; ++w) {
    pool.emplace_back([&, w] {
      try {
        for (size_t i = w; i < n; i += workers) out[i] = encode(records[first + i]);
      } catch (...) {
        errors[w] = std::current_exception();
      }
    });
  }
  for (auto& t : pool) t.join();
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
  return out;
}

Batch Featurizer::collate(const std::vector<Example>& examples, const std::vector<size_t>& rows,
                          const c10::Device& device) const {
  Batch batch = collate_text(rows, [&](size_t r) -> const Encoding& { return examples[r].text; }, tokenizer_->pad_id(), device);
  const int64_t b = static_cast<int64_t>(rows.size());
  for (size_t s = 0; s < side_inputs_.size(); ++s) {
    const int64_t dim = side_inputs_[s]->dim();
    torch::Tensor t = torch::empty({b, dim}, torch::kFloat32);
    auto acc = t.accessor<float, 2>();
    for (int64_t i = 0; i < b; ++i) {
      const auto& v = examples[rows[static_cast<size_t>(i)]].side[s];
      for (int64_t j = 0; j < dim; ++j) acc[i][j] = v[static_cast<size_t>(j)];
    }
    if (side_inputs_[s]->has_presence())
      batch.side[side_inputs_[s]->name() + kPresenceSuffix] = t.narrow(1, dim - 1, 1).contiguous().to(device);
    batch.side[side_inputs_[s]->name()] = device.is_cpu() ? t : t.to(device);
  }
  return batch;
}

void Featurizer::save(const std::string& dir) const {
  for (const auto& input : side_inputs_) input->save(dir);
}

SideInputDims Featurizer::side_dims() const {
  SideInputDims dims;
  for (const auto& input : side_inputs_) dims.emplace_back(input->name(), input->dim());
  return dims;
}

std::vector<size_t> lengths_of(const std::vector<Example>& examples) {
  std::vector<size_t> lengths;
  lengths.reserve(examples.size());
  for (const auto& e : examples) lengths.push_back(e.text.ids.size());
  return lengths;
}

}  // namespace dqe
