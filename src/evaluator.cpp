#include "dqe/evaluator.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "detail/log.h"
#include "dqe/checkpoint.h"
#include "dqe/config.h"
#include "dqe/dataset.h"
#include "dqe/errors.h"
#include "dqe/metrics.h"
#include "dqe/output.h"
#include "dqe/runtime.h"

namespace dqe {
namespace {

std::string join(const std::vector<std::string>& parts, const std::string& sep) {
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) out += (i ? sep : "") + parts[i];
  return out;
}

}  // namespace

torch::Tensor predict_logits(SequenceModel& model, const std::vector<Encoding>& inputs, int64_t batch_size,
                             int64_t pad_id, Precision precision) {
  torch::InferenceMode guard;
  const c10::Device device = device_of(*model);
  AutocastGuard autocast(precision, device);
  const bool was_training = model->is_training();
  model->eval();
  const int64_t n = static_cast<int64_t>(inputs.size());
  torch::Tensor out;
  for (const auto& rows : plan_inference_batches(lengths_of(inputs), batch_size)) {
    Batch batch = collate(inputs, rows, pad_id, device);
    torch::Tensor logits = model->forward(batch.ids, batch.type_ids, batch.mask, batch.features).to(torch::kCPU, torch::kFloat32);
    if (!out.defined()) out = torch::empty({n, logits.size(1)}, torch::kFloat32);
    out.index_copy_(0, torch::tensor(std::vector<int64_t>(rows.begin(), rows.end()), torch::kInt64), logits);
  }
  if (was_training) model->train();
  if (!out.defined()) out = torch::empty({0, 1}, torch::kFloat32);
  return out;
}

Predictions predictions_from_logits(const torch::Tensor& logits, const TaskSpec& task) {
  Predictions p;
  const int64_t n = logits.size(0);
  p.scores.resize(static_cast<size_t>(n));
  if (task.task == Task::kRegression) {
    auto acc = logits.accessor<float, 2>();
    for (int64_t i = 0; i < n; ++i) p.scores[i] = acc[i][0] * task.label_std + task.label_mean;
  } else if (task.task == Task::kBinary) {
    auto probs = torch::sigmoid(logits);
    auto acc = probs.accessor<float, 2>();
    p.classes.resize(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
      p.scores[i] = acc[i][0];
      p.classes[i] = acc[i][0] >= 0.5f ? 1 : 0;
    }
  } else {
    auto probs = torch::softmax(logits, 1);
    auto acc = probs.accessor<float, 2>();
    const int64_t k = probs.size(1);
    p.classes.resize(static_cast<size_t>(n));
    p.probs.resize(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
      double weighted = 0;
      int64_t best = 0;
      p.probs[i].resize(static_cast<size_t>(k));
      for (int64_t c = 0; c < k; ++c) {
        p.probs[i][c] = acc[i][c];
        weighted += acc[i][c] * static_cast<double>(c);
        if (acc[i][c] > acc[i][best]) best = c;
      }
      p.classes[i] = best;
      p.scores[i] = k > 1 ? weighted / static_cast<double>(k - 1) : 0;
    }
  }
  return p;
}

EvalResult compute_metrics(const TaskSpec& task, const Predictions& predictions, const std::vector<double>& labels,
                           const std::vector<std::string>& query_ids) {
  EvalResult r;
  std::vector<double> gains(labels);
  if (task.task == Task::kRegression) {
    auto m = regression_metrics(predictions.scores, labels);
    r.metrics = to_json(m);
    r.table = format_table(m);
    r.primary_name = "rmse";
    r.primary = m.rmse;
    r.higher_is_better = false;
    // Gains must be >= 0: the lowest label is "no gain".
    const double lowest = labels.empty() ? 0 : *std::min_element(labels.begin(), labels.end());
    for (auto& g : gains) g -= lowest;
  } else if (task.task == Task::kBinary) {
    std::vector<int64_t> truth(labels.begin(), labels.end());
    auto m = binary_metrics(predictions.scores, truth);
    r.metrics = to_json(m);
    r.table = format_table(m);
    r.primary_name = "roc_auc";
    r.primary = m.roc_auc;
    r.higher_is_better = true;
  } else {
    std::vector<int64_t> truth(labels.begin(), labels.end());
    auto m = classification_metrics(predictions.classes, truth, task.labels);
    r.metrics = to_json(m);
    r.table = format_table(m);
    r.primary_name = "accuracy";
    r.primary = m.accuracy;
    r.higher_is_better = true;
  }
  auto ranking = ranking_metrics(query_ids, predictions.scores, gains);
  if (ranking.num_queries > 0) {
    r.metrics["ranking"] = to_json(ranking);
    r.table += format_table(ranking);
  }
  return r;
}

TaskSpec inference_task(const ModelSpec& spec, int64_t max_len, const std::optional<FieldMap>& fields) {
  TaskSpec task = spec.task;
  if (fields) task.fields = *fields;
  if (max_len > 0) {
    if (max_len < 3 || max_len > spec.bert.max_position_embeddings)
      throw ConfigError("--max-len must be between 3 and the model's max_position_embeddings (" +
                        std::to_string(spec.bert.max_position_embeddings) + ")");
    task.max_len = max_len;
  }
  return task;
}

namespace {

bool same_fields(const FieldMap& a, const FieldMap& b) {
  return a.query == b.query && a.text == b.text && a.label == b.label && a.query_id == b.query_id && a.id == b.id;
}

}  // namespace

std::vector<std::string> Ensemble::dirs() const {
  std::vector<std::string> out;
  for (const auto& m : members) out.push_back(m.dir);
  return out;
}

std::vector<std::string> ensemble_members(const std::string& dir) {
  const std::filesystem::path file = std::filesystem::path(dir) / "ensemble.json";
  if (!std::filesystem::is_regular_file(file)) return {dir};
  const nlohmann::json j = read_json_file(file.string());
  const auto it = j.find("members");
  if (it == j.end() || !it->is_array() || it->empty())
    throw ModelError(file.string() + ": needs \"members\": a non-empty list of model directories");
  std::vector<std::string> out;
  for (const auto& m : *it) {
    if (!m.is_string() || m.get<std::string>().empty())
      throw ModelError(file.string() + ": every member must be a directory name");
    const std::filesystem::path p(m.get<std::string>());
    out.push_back((p.is_absolute() ? p : std::filesystem::path(dir) / p).string());
  }
  return out;
}

Ensemble load_ensemble(const std::vector<std::string>& model_args, int64_t max_len, const std::optional<FieldMap>& fields,
                       const c10::Device& device) {
  if (model_args.empty()) throw ConfigError("--model is required");
  std::vector<std::string> models;
  for (const auto& arg : model_args)
    for (auto& m : ensemble_members(arg)) models.push_back(std::move(m));
  Ensemble e;
  for (const auto& path : models) {
    LoadedModel loaded = load_model(path);
    TaskSpec task = inference_task(loaded.spec, max_len, fields);
    if (!e.tasks.empty()) {
      const TaskSpec& first = e.tasks.front();
      if (task.task != first.task)
        throw ConfigError("--model " + path + ": its task (" + task_name(task.task) + ") differs from --model " +
                          models.front() + "'s (" + task_name(first.task) + "); an ensemble needs one task");
      if (task.labels != first.labels)
        throw ConfigError("--model " + path + ": its class names differ from --model " + models.front() +
                          "'s; an ensemble needs the same classes in the same order");
      // The input is read once, through the first member's field names; a flag given on the
      // command line applies to every member alike.
      if (!fields && !same_fields(task.fields, first.fields))
        throw ConfigError("--model " + path + ": it reads other JSON fields than --model " + models.front() +
                          " (query, text, label, query id or id); give the field flags to read them one way");
    }
    loaded.model->to(device);
    e.members.push_back(std::move(loaded));
    e.tasks.push_back(std::move(task));
  }
  return e;
}

Predictions predict_ensemble(const Ensemble& ensemble, const std::vector<Record>& records, const std::string& path,
                             int64_t batch_size, Precision precision, int threads) {
  Predictions sum;
  const double k = static_cast<double>(ensemble.members.size());
  for (size_t m = 0; m < ensemble.members.size(); ++m) {
    const LoadedModel& member = ensemble.members[m];
    EncodedSet set = encode_records(records, *member.tokenizer, ensemble.tasks[m], path, false, threads,
                                    member.model->lexical_stats.get());
    SequenceModel model = member.model;
    Predictions p = predictions_from_logits(
        predict_logits(model, set.inputs, batch_size, member.tokenizer->pad_id(), precision), ensemble.tasks[m]);
    if (ensemble.members.size() == 1) return p;
    if (m == 0) {
      sum = std::move(p);
      continue;
    }
    for (size_t i = 0; i < p.scores.size(); ++i) sum.scores[i] += p.scores[i];
    for (size_t i = 0; i < p.probs.size(); ++i)
      for (size_t c = 0; c < p.probs[i].size(); ++c) sum.probs[i][c] += p.probs[i][c];
  }
  for (auto& s : sum.scores) s /= k;
  for (auto& row : sum.probs)
    for (auto& v : row) v /= k;
  const Task task = ensemble.task().task;
  for (size_t i = 0; i < sum.classes.size(); ++i) {
    if (task == Task::kBinary) sum.classes[i] = sum.scores[i] >= 0.5 ? 1 : 0;
    else
      sum.classes[i] = std::max_element(sum.probs[i].begin(), sum.probs[i].end()) - sum.probs[i].begin();
  }
  return sum;
}

EvalResult evaluate(const EvalConfig& config) {
  if (config.batch_size <= 0) throw ConfigError("--batch-size must be > 0");
  if (config.max_len < 0) throw ConfigError("--max-len must be >= 0");
  check_no_aliases({{"--metrics-out", config.metrics_out, true}, {"--rejects", config.rejects, true},
                    {"--data", config.data, false}});
  if (!config.metrics_out.empty()) {
    auto parent = std::filesystem::path(config.metrics_out).parent_path();
    if (!parent.empty() && !std::filesystem::is_directory(parent))
      throw IoError(config.metrics_out + ": cannot write (no such directory)");
  }
  const c10::Device device = resolve_device(config.device);
  const Precision precision = resolve_precision(config.precision, device);
  const int threads = configure_threads(config.threads);
  auto log = detail::logger("eval");
  log->info(runtime_description() + ", " + device.str() + ", " + precision_name(precision));
  const Ensemble ensemble = load_ensemble(config.models, config.max_len, config.fields, device);
  const TaskSpec& task = ensemble.task();
  ReaderOptions ro;
  ro.fields = task.fields;
  ro.require_label = true;
  ro.max_bad_lines = config.max_bad_lines;
  ro.rejects_path = config.rejects;
  std::vector<Record> records = read_jsonl(config.data, ro);
  log->info("{}: {} examples; model {} ({} task, max length {})", config.data, records.size(),
            join(ensemble.dirs(), " + "), task_name(task.task), task.max_len);
  std::vector<double> labels;
  std::vector<std::string> query_ids;
  labels.reserve(records.size());
  query_ids.reserve(records.size());
  for (const auto& r : records) {
    labels.push_back(encode_label(r, task, config.data));
    query_ids.push_back(r.query_id);
  }
  const Predictions predictions = predict_ensemble(ensemble, records, config.data, config.batch_size, precision, threads);
  EvalResult result = compute_metrics(task, predictions, labels, query_ids);
  if (task.task == Task::kRegression && ensemble.members.front().spec.has_dqe_section) {
    // The constant predictor a model has to beat: the mean of its training labels.
    double sq = 0;
    for (double y : labels) sq += (y - task.label_mean) * (y - task.label_mean);
    const double rmse = std::sqrt(sq / static_cast<double>(labels.size()));
    result.metrics["train_mean_rmse"] = rmse;
    char line[96];
    std::snprintf(line, sizeof line, "rmse of predicting the training mean (%.4f): %.4f\n", task.label_mean, rmse);
    result.table += line;
  }
  result.metrics["data"] = config.data;
  if (ensemble.members.size() == 1) result.metrics["model"] = ensemble.members.front().dir;
  else result.metrics["model"] = ensemble.dirs();
  if (!config.metrics_out.empty()) write_file_atomic(config.metrics_out, result.metrics.dump(2) + "\n");
  return result;
}

}  // namespace dqe
