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
#include "dqe/runtime.h"

namespace dqe {

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
    torch::Tensor logits = model->forward(batch.ids, batch.type_ids, batch.mask).to(torch::kCPU, torch::kFloat32);
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

EvalResult evaluate(const EvalConfig& config) {
  if (config.batch_size <= 0) throw ConfigError("--batch-size must be > 0");
  if (config.max_len < 0) throw ConfigError("--max-len must be >= 0");
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
  LoadedModel loaded = load_model(config.model);
  loaded.model->to(device);
  const TaskSpec task = inference_task(loaded.spec, config.max_len, config.fields);
  ReaderOptions ro;
  ro.fields = task.fields;
  ro.require_label = true;
  ro.max_bad_lines = config.max_bad_lines;
  ro.rejects_path = config.rejects;
  std::vector<Record> records = read_jsonl(config.data, ro);
  log->info("{}: {} examples; model {} ({} task, max length {})", config.data, records.size(), loaded.dir,
            task_name(task.task), task.max_len);
  EncodedSet set = encode_records(records, *loaded.tokenizer, task, config.data, true, threads);
  torch::Tensor logits =
      predict_logits(loaded.model, set.inputs, config.batch_size, loaded.tokenizer->pad_id(), precision);
  EvalResult result = compute_metrics(task, predictions_from_logits(logits, task), set.labels, set.query_ids);
  if (task.task == Task::kRegression && loaded.spec.has_dqe_section) {
    // The constant predictor a model has to beat: the mean of its training labels.
    double sq = 0;
    for (double y : set.labels) sq += (y - task.label_mean) * (y - task.label_mean);
    const double rmse = std::sqrt(sq / static_cast<double>(set.labels.size()));
    result.metrics["train_mean_rmse"] = rmse;
    char line[96];
    std::snprintf(line, sizeof line, "rmse of predicting the training mean (%.4f): %.4f\n", task.label_mean, rmse);
    result.table += line;
  }
  result.metrics["data"] = config.data;
  result.metrics["model"] = loaded.dir;
  if (!config.metrics_out.empty()) write_file_atomic(config.metrics_out, result.metrics.dump(2) + "\n");
  return result;
}

}  // namespace dqe
