#include "infer/predictor.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>

#include "base/format.h"
#include "base/log.h"
#include "dqe/errors.h"
#include "model/int8.h"

namespace dqe {

namespace fs = std::filesystem;

Predictions predictions_from_logits(const torch::Tensor& logits, const TaskSpec& task) {
  Predictions p = task_head(task.task).decode(logits, task);
  const torch::Tensor values = logits.to(torch::kFloat64).contiguous();
  auto acc = values.accessor<double, 2>();
  p.logits.resize(static_cast<size_t>(values.size(0)));
  for (int64_t i = 0; i < values.size(0); ++i) {
    auto& row = p.logits[static_cast<size_t>(i)];
    row.resize(static_cast<size_t>(values.size(1)));
    for (int64_t c = 0; c < values.size(1); ++c) row[static_cast<size_t>(c)] = acc[i][c];
  }
  return p;
}

void require_finite(const Predictions& predictions, const std::vector<Record>& records, const std::string& path) {
  for (size_t i = 0; i < predictions.scores.size() && i < records.size(); ++i)
    if (!std::isfinite(predictions.scores[i]))
      throw ModelError((path == "-" ? std::string("<stdin>") : path) + ":" + std::to_string(records[i].line) +
                       ": the model's score is not finite (it overflowed on this input)");
}

Predictor::Predictor(SequenceModel model, std::shared_ptr<const Featurizer> featurizer, Precision precision,
                     int64_t batch_size, StopToken stop)
    : model_(std::move(model)), featurizer_(std::move(featurizer)), precision_(precision), batch_size_(batch_size),
      stop_(stop) {
  if (batch_size_ <= 0) throw ConfigError("--batch-size must be > 0");
}

ModelOutputs Predictor::run(const std::vector<Example>& examples, bool with_pooled,
                            const std::function<void(int64_t done)>& on_batch) const {
  torch::InferenceMode guard;
  SequenceModel model = model_;
  const c10::Device device = device_of(*model);
  AutocastGuard autocast(precision_, device);
  const bool was_training = model->is_training();
  model->eval();
  const int64_t n = static_cast<int64_t>(examples.size());
  ModelOutputs out;
  out.diagnostics.resize(examples.size());
  for (size_t i = 0; i < examples.size(); ++i) {
    out.diagnostics[i].tokens = static_cast<int64_t>(examples[i].text.ids.size());
    out.diagnostics[i].unknown_tokens = examples[i].unknown_tokens;
    out.diagnostics[i].truncated = examples[i].text.truncated;
  }
  int64_t done = 0;
  for (const auto& rows : plan_inference_batches(lengths_of(examples), batch_size_)) {
    stop_.check("while predicting");
    Batch batch = featurizer_->collate(examples, rows, device);
    ModelOutput o = model->run(batch.ids, batch.type_ids, batch.mask, batch.side);
    torch::Tensor logits = o.logits.to(torch::kCPU, torch::kFloat32);
    if (!out.logits.defined()) out.logits = torch::empty({n, logits.size(1)}, torch::kFloat32);
    const torch::Tensor index = torch::tensor(std::vector<int64_t>(rows.begin(), rows.end()), torch::kInt64);
    out.logits.index_copy_(0, index, logits);
    if (with_pooled) {
      torch::Tensor pooled = o.pooled.to(torch::kCPU, torch::kFloat32);
      if (!out.pooled.defined()) out.pooled = torch::empty({n, pooled.size(1)}, torch::kFloat32);
      out.pooled.index_copy_(0, index, pooled);
    }
    done += static_cast<int64_t>(rows.size());
    if (on_batch) on_batch(done);
  }
  if (was_training) model->train();
  if (!out.logits.defined()) out.logits = torch::empty({0, model->classifier->weight.size(0)}, torch::kFloat32);
  return out;
}

ModelOutputs Predictor::run(const std::vector<Record>& records, int threads, bool with_pooled,
                            const std::function<void(int64_t done)>& on_batch) const {
  return run(featurizer_->encode_all(records, threads), with_pooled, on_batch);
}

TaskSpec inference_task(const ModelSpec& spec, int64_t max_len, const std::optional<FieldMap>& fields) {
  TaskSpec task = spec.task;
  if (fields) task.fields = *fields;
  if (max_len > 0) {
    if (max_len < 3 || max_len > text_positions(spec))
      throw ConfigError("--max-len must be between 3 and the model's max_position_embeddings (" +
                        std::to_string(spec.bert.max_position_embeddings) + ")" +
                        (text_positions(spec) < spec.bert.max_position_embeddings
                             ? " less the " + std::to_string(spec.adapter->positions_taken()) +
                                   " its adapter takes (" + std::to_string(text_positions(spec)) + ")"
                             : ""));
    task.max_len = max_len;
  }
  return task;
}

namespace {

bool same_fields(const FieldMap& a, const FieldMap& b) {
  return a.query == b.query && a.text == b.text && a.label == b.label && a.query_id == b.query_id && a.id == b.id;
}

// Adds to `read` the side fields that `member` (of model `path`) reads: a side input is read
// through the field of the members that use it, which must agree.
void add_side_fields(FieldMap& read, const FieldMap& member, const std::string& path) {
  struct Kind {
    std::string FieldMap::*field;
    const char* name;
    const char* flag;
  };
  for (const Kind& kind : {Kind{&FieldMap::features, "features", "--features-field"},
                           Kind{&FieldMap::attributes, "attributes", "--attributes-field"},
                           Kind{&FieldMap::image, "image vectors", "--image-field"}}) {
    const std::string& wanted = member.*kind.field;
    if (wanted.empty()) continue;  // the member has no such input
    std::string& have = read.*kind.field;
    if (have.empty()) have = wanted;
    else if (have != wanted)
      throw ConfigError("--model " + path + ": it reads its " + kind.name + " from field \"" + wanted +
                        "\" and an earlier member from \"" + have + "\"; give " + kind.flag + " to read them one way");
  }
  if (member.image_dim > 0) {
    if (read.image_dim > 0 && read.image_dim != member.image_dim)
      throw ConfigError("--model " + path + ": its image vectors have " + std::to_string(member.image_dim) +
                        " numbers, another member's " + std::to_string(read.image_dim) +
                        "; an ensemble reads one image field");
    read.image_dim = member.image_dim;
  }
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
    const std::string member = (p.is_absolute() ? p : std::filesystem::path(dir) / p).string();
    std::error_code ec;
    if (std::filesystem::is_regular_file(std::filesystem::path(member) / "ensemble.json", ec))
      throw ModelError(file.string() + ": member " + m.get<std::string>() +
                       " is itself an ensemble; ensembles do not nest, so list its members here");
    out.push_back(member);
  }
  return out;
}

ModelArg parse_model_arg(const std::string& arg) {
  const size_t eq = arg.find('=');
  std::error_code ec;
  // A directory whose name holds '=' is still a directory.
  if (eq != std::string::npos && arg.find('/') > eq && !fs::exists(arg, ec)) {
    ModelArg m{arg.substr(0, eq), arg.substr(eq + 1)};
    if (m.name.empty() || m.dir.empty())
      throw ConfigError("--model " + arg + ": give NAME=DIR, with a name and a directory");
    return m;
  }
  // The last component that is a name: "runs/kitchen/" and "runs/kitchen/." are "kitchen".
  std::string name;
  for (const auto& part : fs::path(arg).lexically_normal())
    if (!part.empty() && part != "." && part != "/") name = part.string();
  if (name.empty() || name == "..") name = fs::weakly_canonical(arg, ec).filename().string();
  return {name.empty() ? arg : name, arg};
}

Ensemble load_ensemble(const std::vector<std::string>& model_args, int64_t max_len, const std::optional<FieldMap>& fields,
                       const RunContext& ctx, int64_t batch_size, const std::string& base) {
  if (model_args.empty()) throw ConfigError("--model is required");
  std::vector<std::string> models;
  std::vector<std::string> names;
  for (const auto& arg : model_args) {
    ModelArg named = parse_model_arg(arg);
    for (auto& m : ensemble_members(named.dir)) {
      models.push_back(std::move(m));
      names.push_back(named.name);
    }
  }
  Ensemble e;
  e.names = std::move(names);
  // The members loaded so far whose weights are an adapter's base, by base directory and hash.
  std::map<std::string, size_t> base_owner;
  for (const auto& path : models) {
    ctx.stop.check("while loading models");
    LoadOptions lo;
    lo.base = base;
    LoadedModel loaded = load_model(path, lo);
    TaskSpec task = inference_task(loaded.spec, max_len, fields);
    if (!e.predictors.empty()) {
      const TaskSpec& first = e.task();
      if (task.task != first.task)
        throw ConfigError("--model " + path + ": its task (" + task_name(task.task) + ") differs from --model " +
                          models.front() + "'s (" + task_name(first.task) + "); an ensemble needs one task");
      if (task.labels != first.labels)
        throw ConfigError("--model " + path + ": its class names differ from --model " + models.front() +
                          "'s; an ensemble needs the same classes in the same order");
      // The input is read once, through the first member's field names (and each side input
      // through those of the members that use it); a flag given on the command line applies
      // to every member alike.
      if (!fields && !same_fields(task.fields, first.fields))
        throw ConfigError("--model " + path + ": it reads other JSON fields than --model " + models.front() +
                          " (query, text, label, query id or id); give the field flags to read them one way");
    }
    if (loaded.spec.adapter && !loaded.base_dir.empty()) {
      // Aliased before moving to the device, so that a shared base is moved once.
      const std::string& hash = loaded.spec.adapter->base.hash;
      const std::string key = fs::weakly_canonical(loaded.base_dir).string() + "\n" + hash;
      auto [it, first] = base_owner.emplace(key, e.members.size());
      ++e.adapters;
      if (first)
        ++e.adapter_bases;
      else
        e.shared_base_bytes += share_encoder_weights(e.members[it->second].model, loaded.model);
    }
    loaded.model->to(ctx.device);
    if (!loaded.int8.empty() && ctx.device.is_cpu()) {
      // An int8 export: its Linears run LibTorch's int8 kernels on the stored weights.
      const int64_t attached = attach_int8_kernels(*loaded.model->bert, loaded.int8);
      auto log = detail::logger("model");
      if (attached > 0)
        log->info("{}: {} Linears run int8 kernels (LibTorch's {} engine)", path, attached, select_int8_engine());
      else
        log->info("{}: int8 weights run dequantized in float32 (this LibTorch has no quantized engine)", path);
    }
    if (e.predictors.empty()) e.read_fields = task.fields;
    else add_side_fields(e.read_fields, task.fields, path);
    e.predictors.emplace_back(loaded.model, std::make_shared<const Featurizer>(loaded.featurizer->with_task(task)),
                              ctx.precision, batch_size, ctx.stop);
    e.members.push_back(std::move(loaded));
  }
  // --base points adapters at their base; on full models it would pass unread.
  if (!base.empty() && e.adapters == 0)
    throw ConfigError("--base " + base + " applies to adapters, and no --model is one (each holds its own encoder)");
  return e;
}

std::string Ensemble::sharing_summary() const {
  if (adapters <= adapter_bases) return "";
  return std::to_string(adapters) + " adapters on " + std::to_string(adapter_bases) +
         (adapter_bases == 1 ? " base" : " bases") + ", each base held once (" +
         format_fixed(static_cast<double>(shared_base_bytes) / 1e6, 1) + " MB not loaded again)";
}

Predictions predict_ensemble(const Ensemble& ensemble, const std::vector<Record>& records, int threads,
                             const std::function<void(int64_t done)>& on_batch, const std::vector<size_t>& members) {
  std::vector<size_t> all;
  if (members.empty())
    for (size_t m = 0; m < ensemble.predictors.size(); ++m) all.push_back(m);
  const std::vector<size_t>& chosen = members.empty() ? all : members;
  Predictions sum;
  const size_t k = chosen.size();
  const int64_t n = static_cast<int64_t>(records.size());
  for (size_t m = 0; m < k; ++m) {
    const Predictor& predictor = ensemble.predictors.at(chosen[m]);
    const int64_t before = static_cast<int64_t>(m) * n;
    auto progress = on_batch ? std::function<void(int64_t)>([&](int64_t done) { on_batch(before + done); }) : nullptr;
    Predictions p = predictions_from_logits(predictor.run(records, threads, false, progress).logits, predictor.task());
    if (k == 1) return p;
    if (m == 0) {
      sum = std::move(p);
      sum.logits.clear();  // members' logits are on their own scales: an average has none
      continue;
    }
    for (size_t i = 0; i < p.scores.size(); ++i) sum.scores[i] += p.scores[i];
    for (size_t i = 0; i < p.probs.size(); ++i)
      for (size_t c = 0; c < p.probs[i].size(); ++c) sum.probs[i][c] += p.probs[i][c];
  }
  const double count = static_cast<double>(k);
  for (auto& s : sum.scores) s /= count;
  for (auto& row : sum.probs)
    for (auto& v : row) v /= count;
  task_head(ensemble.task().task).classes_of_average(sum);
  return sum;
}

}  // namespace dqe
