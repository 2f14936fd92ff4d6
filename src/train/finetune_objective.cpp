#include "train/finetune_objective.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <random>
#include <tuple>
#include <unordered_map>

#include "base/format.h"
#include "base/log.h"
#include "data/log_inputs.h"
#include "deploy/deploy.h"
#include "deploy/distill.h"
#include "dist/process_group.h"
#include "dist/shares.h"
#include "dqe/errors.h"
#include "dqe/evaluator.h"
#include "dqe/gate.h"
#include "dqe/metrics.h"
#include "model/heads/task_head.h"
#include "model/peft/adapter.h"
#include "model/peft/lora.h"
#include "train/augment.h"
#include "train/model_builder.h"
#include "train/rank_loss.h"
#include "train/train_util.h"

namespace dqe::training {
namespace fs = std::filesystem;

namespace {

struct FinetuneBatch : PreparedBatch {
  Batch batch;
  torch::Tensor target;
  // Distillation: the teacher's targets of the rows, and which rows have a label (--unlabeled
  // ones have none), 1 or 0.
  torch::Tensor teacher;
  torch::Tensor labelled;
  int64_t labelled_rows = 0;
  // --rank-loss: the rows' gains and their query groups as [begin, end) ranges.
  torch::Tensor gains;
  std::vector<std::pair<int64_t, int64_t>> groups;
};

std::string fingerprint_of(const std::vector<Record>& train, const std::vector<Record>& dev) {
  detail::Fnv1a hash;
  for (const auto* set : {&train, &dev}) {
    for (const auto& r : *set) {
      hash.add(r.query);
      hash.add(r.text);
      hash.add(r.query_id);
      hash.add(r.label_kind == LabelKind::kString ? r.label_string : std::to_string(r.label_number));
    }
  }
  return std::to_string(train.size()) + " training and " + std::to_string(dev.size()) + " dev records, hash " +
         hash.hex();
}

}  // namespace

FinetuneObjective::FinetuneObjective(const TrainConfig& cfg, const RunContext& ctx, const std::string& last_dir)
    : config_(cfg), head_(task_head(parse_task(cfg.task))), ctx_(ctx), rank_loss_(parse_rank_loss(cfg.rank_loss)) {
  auto log = detail::logger("train");
  if (rank_loss_ != RankLoss::kNone && ctx_.plan_world_size > 1)
    throw ConfigError("--rank-loss " + cfg.rank_loss + " trains in one process: a data-parallel job would split query "
                      "groups between its ranks");
  RunRecords records = read_records(*log);
  ctx_.stop.check("while reading the data, before the first step; nothing to resume");
  // Every weight not loaded (a new model, or a head the --init model lacks) is drawn from the
  // seed, so that a run is reproducible; LibTorch's default generator is seeded at random.
  ctx_.seeds.seed_initialisation();
  BuiltModel built = build_finetune_model(cfg, records.train, last_dir, *log);
  spec_ = std::move(built.spec);
  model_ = built.model;
  featurizer_ = built.featurizer;
  model_->to(ctx_.device);  // before the optimizer takes the parameters
  log_model(*log);
  encode(records, *log);
  check_select_metric();
  if (LoraSpec* lora = spec_.adapter.as<LoraSpec>(); lora && lora->adalora) start_adalora(*lora->adalora, last_dir, *log);
}

FinetuneObjective::RunRecords FinetuneObjective::read_records(spdlog::logger& log) {
  const TrainConfig& cfg = config_;
  RunRecords records;
  ReaderOptions ro;
  ro.fields = cfg.fields;
  ro.require_label = true;
  ro.max_bad_lines = cfg.max_bad_lines;
  ro.rejects_path = cfg.rejects;
  int64_t bad_train = 0, bad_dev = 0;
  records.train = read_jsonl(cfg.train_path, ro, &bad_train);
  if (!cfg.rejects.empty()) ro.rejects_path = cfg.rejects + ".dev";
  // Dev image vectors must have the training ones' length.
  for (const auto& r : records.train)
    if (!r.image.empty()) {
      ro.fields.image_dim = static_cast<int64_t>(r.image.size());
      break;
    }
  records.dev = read_jsonl(cfg.dev_path, ro, &bad_dev);
  log.info("{}: {} examples; {}: {} examples", cfg.train_path, records.train.size(), cfg.dev_path,
           records.dev.size());
  if (bad_train + bad_dev > 0)
    log.warn("skipped {} bad lines of {} and {} of {} (--max-bad-lines {}){}", bad_train, cfg.train_path, bad_dev,
             cfg.dev_path, cfg.max_bad_lines, cfg.rejects.empty() ? "" : "; they are in " + cfg.rejects + "*");
  if (!cfg.unlabeled.empty()) {
    ReaderOptions uo = ro;
    uo.require_label = false;
    uo.rejects_path = cfg.rejects.empty() ? "" : cfg.rejects + ".unlabeled";
    records.unlabeled = read_jsonl(cfg.unlabeled, uo);
    log.info("{}: {} unlabeled pairs, which only the teacher labels", cfg.unlabeled, records.unlabeled.size());
  }
  fingerprint_ = fingerprint_of(records.train, records.dev);
  if (!records.unlabeled.empty())
    fingerprint_ += "; " + fingerprint_of(records.unlabeled, {}) + " (unlabeled)";
  return records;
}

void FinetuneObjective::log_model(spdlog::logger& log) const {
  const TrainConfig& cfg = config_;
  if (const std::string inputs = describe_log_inputs(featurizer_->side_inputs()); !inputs.empty()) {
    // They switch on when the training data has the fields: said loudly, with the way out.
    std::string off;
    const FieldMap& fields = spec_.task.fields;
    for (const auto& input : featurizer_->side_inputs()) {
      std::string flag, field;
      if (std::dynamic_pointer_cast<const FeaturesInput>(input)) flag = "--features-field", field = fields.features;
      else if (std::dynamic_pointer_cast<const AttributesInput>(input)) flag = "--attributes-field", field = fields.attributes;
      else if (std::dynamic_pointer_cast<const ImageInput>(input)) flag = "--image-field", field = fields.image;
      if (!flag.empty()) off += (off.empty() ? "" : ", ") + ("\"" + field + "\" (" + flag + " \"\" leaves it out)");
    }
    log.warn("{}, switched on because the training data has the fields {}; fusion {}, modality dropout {}", inputs, off,
             fusion_name(spec_.task.fusion), format_significant(cfg.modality_dropout));
  }
  if (spec_.task.lexical_features)
    if (auto lexical = std::dynamic_pointer_cast<const LexicalInput>(featurizer_->side_inputs().front()))
      log.info("lexical features on: word statistics of {} distinct results", lexical->stats().docs);
  // Said now, not at deploy time: what the model will not export to, and the flag that changes it.
  if (const std::string why = hf_incompatibility(spec_, *featurizer_); !why.empty())
    log.info("this model will not export to Hugging Face (dqe export --format hf): {}", why);
  const TaskSpec& ts = spec_.task;
  int64_t num_params = 0, trainable = 0;
  for (const auto& p : model_->parameters()) {
    num_params += p.numel();
    if (p.requires_grad()) trainable += p.numel();
  }
  log.info("model: {} layers x {} hidden x {} heads, {:.1f}M parameters; task {}{}; max length {}",
           spec_.bert.num_hidden_layers, spec_.bert.hidden_size, spec_.bert.num_attention_heads, num_params / 1e6,
           task_name(ts.task),
           head_.num_outputs(ts) > 1 ? " (" + std::to_string(ts.labels.size()) + " classes)" : "",
           ts.max_len);
  if (spec_.adapter)
    log.info("{} of the frozen base {}: {} trainable parameters ({:.3g}%)", spec_.adapter->describe(),
             spec_.adapter->base.path, trainable, 100.0 * static_cast<double>(trainable) / static_cast<double>(num_params));
}

void FinetuneObjective::encode(RunRecords& records, spdlog::logger& log) {
  const TrainConfig& cfg = config_;
  const TaskSpec& ts = spec_.task;
  // A data-parallel process tokenises its share of the training pairs and the job gathers
  // them (every process plans the job's batches from all lengths); of the dev pairs it keeps
  // the share it evaluates.
  train_ = examples_in_shares(ctx_, *featurizer_, records.train);
  const LabelledSet train_labels = labels_of(records.train, ts, cfg.train_path);
  dev_rows_ = records.dev.size();
  const auto [dev_first, dev_last] = ctx_.share_of(dev_rows_);
  dev_ = featurizer_->encode_all(records.dev, ctx_.threads, dev_first, dev_last);
  dev_labels_ = labels_of(records.dev, ts, cfg.dev_path);
  if (ctx_.world_size > 1) {
    const auto [first, last] = ctx_.share_of(records.train.size());
    log.info("this process tokenised {} of the {} training pairs and holds {} of the {} dev pairs", last - first,
             records.train.size(), dev_.size(), dev_rows_);
  }
  ctx_.stop.check("while encoding the data, before the first step; nothing to resume");
  // Labels go through float before scaling, as they always have: the recorded runs depend on it.
  targets_.reserve(train_labels.labels.size());
  for (double label : train_labels.labels) targets_.push_back(head_.target(label, ts));
  labelled_rows_ = static_cast<int64_t>(train_.size());
  if (!records.unlabeled.empty()) {
    std::vector<Example> extra = examples_in_shares(ctx_, *featurizer_, records.unlabeled);
    train_.insert(train_.end(), std::make_move_iterator(extra.begin()), std::make_move_iterator(extra.end()));
    targets_.resize(train_.size(), 0.0f);
  }
  lengths_ = lengths_of(train_);
  if (rank_loss_ != RankLoss::kNone) plan_query_groups(records.train, train_labels.labels, log);
  // Attack-like noise re-encodes a batch's records each step (train/augment.h): keep them before
  // distillation takes them over.
  if (cfg.augment > 0) train_records_ = records.train;
  if (!cfg.teachers.empty()) {
    distill_ = DistillSpec{cfg.teachers, cfg.distill_temperature, cfg.distill_alpha};
    std::vector<Record> pairs = std::move(records.train);
    pairs.insert(pairs.end(), std::make_move_iterator(records.unlabeled.begin()),
                 std::make_move_iterator(records.unlabeled.end()));
    teacher_ = teacher_targets(*distill_, pairs, ts, ctx_, cfg.eval_batch_size);
    log.info("distillation: loss = {} x teacher ({}) + {} x labels, over {} labelled and {} unlabeled pairs",
             format_significant(distill_->alpha),
             head_.distillation_text(distill_->temperature),
             format_significant(1 - distill_->alpha), labelled_rows_,
             static_cast<int64_t>(train_.size()) - labelled_rows_);
  }
}

void FinetuneObjective::plan_query_groups(const std::vector<Record>& train, const std::vector<double>& labels,
                                          spdlog::logger& log) {
  const TrainConfig& cfg = config_;
  std::unordered_map<std::string, int64_t> group_of_query;
  group_of_row_.reserve(train.size());
  // A line without the query id field has its query text as its id (io/jsonl_reader.cpp).
  for (const Record& r : train)
    group_of_row_.push_back(group_of_query.try_emplace(r.query_id, group_of_query.size()).first->second);
  for (double g : head_.gains(labels)) gains_.push_back(static_cast<float>(g));
  std::vector<int64_t> sizes(group_of_query.size(), 0);
  for (int64_t g : group_of_row_) ++sizes[static_cast<size_t>(g)];
  const int64_t larger = std::count_if(sizes.begin(), sizes.end(), [&](int64_t n) { return n > cfg.rank_group_cap; });
  const int64_t single = std::count(sizes.begin(), sizes.end(), 1);
  // The schedule's epoch: the batches of one plan (another epoch's differs by a few at most).
  group_batches_per_epoch_ =
      static_cast<int64_t>(plan_group_batches(group_of_row_, cfg.batch_size, cfg.rank_group_cap, 0).size());
  log.info("ranking: loss = {} x {} over the results of each query + {} x the task's loss; {} queries in batches of "
           "whole queries (at most {} results each: {} larger ones give a random draw per epoch; {} with one result "
           "only have the pointwise term)",
           format_significant(cfg.rank_weight), cfg.rank_loss, format_significant(1 - cfg.rank_weight),
           group_of_query.size(), cfg.rank_group_cap, larger, single);
}

void FinetuneObjective::start_adalora(AdaLoraSpec& a, const std::string& last_dir, spdlog::logger& log) {
  const TrainConfig& cfg = config_;
  if (!cfg.resume) {
    // PEFT needs the run's length (total_step); a resumed run has it in its adapter_config.json.
    a.total_step = cfg.max_steps > 0 ? cfg.max_steps : cfg.epochs * steps_per_epoch(cfg.grad_accum);
    std::tie(a.tinit, a.tfinal) = adalora_phases(cfg, a.total_step);
  }
  allocator_ = std::make_unique<RankAllocator>(model_, a);
  if (cfg.resume) allocator_->load(last_dir);
  log.info("AdaLoRA: ranks {} -> {} per module on average (total {} -> {}); {} steps at full rank, pruning every {} "
           "until step {}, then {} steps at the final ranks; orthogonality weight {}",
           a.init_r, a.target_r, allocator_->init_budget(), allocator_->target_budget(), a.tinit, a.delta_t,
           a.total_step - a.tfinal, a.tfinal, format_significant(a.orth_reg_weight));
}

std::vector<RoleParameter> FinetuneObjective::trainable_parameters() {
  std::vector<RoleParameter> out;
  for (auto& p : model_->role_parameters())
    if (p.tensor.requires_grad()) out.push_back(std::move(p));
  return out;
}

int64_t FinetuneObjective::steps_per_epoch(int64_t grad_accum) const {
  const int64_t batch = config_.batch_size * ctx_.plan_world_size;  // the job's global batch
  const int64_t batches = rank_loss_ != RankLoss::kNone
                              ? group_batches_per_epoch_
                              : (static_cast<int64_t>(lengths_.size()) + batch - 1) / batch;
  return (batches + grad_accum - 1) / grad_accum;
}

ChunkPlan FinetuneObjective::plan_chunk(int64_t /*epoch*/, int64_t /*chunk*/, uint64_t order_seed) {
  if (rank_loss_ != RankLoss::kNone) {
    batches_ = plan_group_batches(group_of_row_, config_.batch_size, config_.rank_group_cap, order_seed);
    return {static_cast<int64_t>(batches_.size()), /*last_in_epoch=*/true};
  }
  // Every process plans the job's global batches and keeps its slice of each (dist/process_group.h).
  batches_ = plan_training_batches(lengths_, config_.batch_size * ctx_.plan_world_size, order_seed);
  if (ctx_.world_size > 1)
    for (auto& rows : batches_) rows = rows_of_rank(rows, ctx_.rank, ctx_.world_size);
  return {static_cast<int64_t>(batches_.size()), /*last_in_epoch=*/true};
}

std::unique_ptr<PreparedBatch> FinetuneObjective::prepare(int64_t index, uint64_t step_seed) {
  auto b = std::make_unique<FinetuneBatch>();
  const auto& rows = batches_[static_cast<size_t>(index)];
  if (rows.empty()) {
    b->weight = 0;  // this process's slice of a short last batch: it only joins the all-reduce
    return b;
  }
  if (config_.augment > 0) {
    // The batch's noise is drawn from its step seed: a resumed run draws the same.
    std::mt19937_64 rng(step_seed ^ 0x6175676d656e74ULL);
    std::bernoulli_distribution noisy(config_.augment);
    std::vector<Example> examples;
    examples.reserve(rows.size());
    for (size_t r : rows) {
      const bool irrelevant = head_.is_low(targets_[r]);
      // Unlabeled pairs (--unlabeled) keep their text: only a judged label says what is irrelevant.
      const bool noise = noisy(rng) && static_cast<int64_t>(r) < labelled_rows_;
      examples.push_back(noise ? featurizer_->encode(augment_record(train_records_[r], irrelevant, rng)) : train_[r]);
    }
    std::vector<size_t> all(rows.size());
    for (size_t i = 0; i < all.size(); ++i) all[i] = i;
    b->batch = featurizer_->collate(examples, all, ctx_.device);
  } else {
    b->batch = featurizer_->collate(train_, rows, ctx_.device);
  }
  std::vector<float> y;
  y.reserve(rows.size());
  for (size_t r : rows) y.push_back(targets_[r]);
  b->target = torch::tensor(y).to(ctx_.device);
  std::vector<float> labelled;
  labelled.reserve(rows.size());
  for (size_t r : rows) labelled.push_back(static_cast<int64_t>(r) < labelled_rows_ ? 1.0f : 0.0f);
  b->labelled_rows = static_cast<int64_t>(std::count(labelled.begin(), labelled.end(), 1.0f));
  b->labelled = torch::tensor(labelled).to(ctx_.device);
  if (teacher_.defined()) {
    std::vector<int64_t> index(rows.begin(), rows.end());
    b->teacher = teacher_.index_select(0, torch::tensor(index)).to(ctx_.device);
  }
  if (rank_loss_ != RankLoss::kNone) {
    std::vector<float> gains;
    std::vector<int64_t> groups;
    for (size_t r : rows) gains.push_back(gains_[r]), groups.push_back(group_of_row_[r]);
    b->gains = torch::tensor(gains).to(ctx_.device);
    b->groups = group_ranges(groups);
  }
  b->weight = 1;  // the loss is the micro-batch's mean
  b->samples = static_cast<int64_t>(rows.size());
  b->tokens = b->batch.ids.numel();
  return b;
}

MicroLoss FinetuneObjective::forward(PreparedBatch& prepared) { return forward_embeds(prepared, nullptr); }

MicroLoss FinetuneObjective::forward_embeds(PreparedBatch& prepared, const EmbeddingHook& hook) {
  auto& b = static_cast<FinetuneBatch&>(prepared);
  torch::Tensor logits;
  {
    AutocastGuard autocast(ctx_.precision, ctx_.device);
    torch::Tensor embeds = model_->bert->embed(b.batch.ids);
    if (hook) embeds = hook(embeds);
    logits = model_->run_embeds(embeds, b.batch.type_ids, b.batch.mask, b.batch.side).logits.to(torch::kFloat32);
  }
  MicroLoss out;
  const Task task = spec_.task.task;
  // The labels' loss, a mean over the rows that have one (--unlabeled rows have none).
  torch::Tensor label_loss;
  if (b.labelled_rows > 0) {
    const bool all = b.labelled_rows == b.samples;
    const auto reduction = all ? at::Reduction::Mean : at::Reduction::None;
    label_loss = head_.loss(logits, b.target, reduction);
    if (!all) label_loss = (label_loss * b.labelled).sum() / static_cast<double>(b.labelled_rows);
  }
  if (distill_) {
    const torch::Tensor d = distillation_loss(logits, b.teacher, task, distill_->temperature);
    out.sums.emplace_back("distill_loss", d.item<double>());
    out.loss = distill_->alpha * d;
    if (label_loss.defined() && distill_->alpha < 1) out.loss = out.loss + (1 - distill_->alpha) * label_loss;
  } else {
    out.loss = label_loss;
  }
  if (rank_loss_ != RankLoss::kNone) {
    const torch::Tensor rank = rank_loss(rank_loss_, head_.rank_scores(logits), b.gains, b.groups);
    out.sums.emplace_back("rank_loss", rank.item<double>());
    out.loss = config_.rank_weight * rank + (1 - config_.rank_weight) * out.loss;
  }
  if (const AdaLoraSpec* adalora = allocator_ ? &*spec_.adapter.as<LoraSpec>()->adalora : nullptr;
      adalora && adalora->orth_reg_weight > 0) {
    // PEFT adds the regulariser to the model's loss in its forward, so every micro-batch has it.
    const torch::Tensor orth = adalora_orth_loss(model_);
    out.loss = out.loss + adalora->orth_reg_weight * orth;
    out.sums.emplace_back("orth_reg", orth.item<double>());
  }
  return out;
}

void FinetuneObjective::after_optimizer_step(int64_t step, int64_t /*total_steps*/) {
  // total_step is the spec's: the engine's schedule, recorded when the run started.
  if (allocator_) allocator_->update_and_allocate(step);
}

std::vector<std::pair<std::string, int64_t>> FinetuneObjective::adalora_ranks() const {
  return allocator_ ? allocator_->ranks() : std::vector<std::pair<std::string, int64_t>>{};
}

torch::Tensor FinetuneObjective::dev_logits() const {
  const Predictor predictor(model_, featurizer_, ctx_.precision, config_.eval_batch_size);
  // dev_ is this process's share; every process measures the same whole.
  return logits_in_shares(ctx_, dev_rows_, head_.num_outputs(spec_.task),
                          [&](size_t, size_t) { return predictor.run(dev_).logits; });
}

void FinetuneObjective::check_select_metric() const {
  if (config_.select_metric.empty()) return;
  const MetricInfo& metric = *find_metric(config_.select_metric);  // validate() checked the name
  // What the dev evaluation gives, from predictions of zeros: which metrics, not their values.
  const int64_t rows = static_cast<int64_t>(dev_labels_.labels.size());
  const Predictions zeros = predictions_from_logits(torch::zeros({rows, head_.num_outputs(spec_.task)}), spec_.task);
  const nlohmann::json metrics =
      compute_metrics(spec_.task, zeros, dev_labels_.labels, dev_labels_.query_ids, false).metrics;
  if (metric_node(metrics, metric.path) != nullptr) return;
  std::string given;
  for (const MetricInfo& m : metric_registry())
    if (m.direction != Direction::kNeither && metric_node(metrics, m.path) != nullptr)
      given += (given.empty() ? "" : ", ") + m.key;
  const bool ranking = metric.path.rfind("ranking.", 0) == 0;
  throw ConfigError("--select-metric " + config_.select_metric + ": the " + task_name(spec_.task.task) + " task's dev " +
                    "evaluation of " + config_.dev_path + " has no " + metric.key +
                    (ranking ? " (ranking metrics need a query_id field with results grouped per query)" : "") +
                    "; it gives " + given);
}

Evaluation FinetuneObjective::evaluate() {
  // Dev evaluation is bounded and its result is saved: it is not cut short by a stop request.
  Predictions predictions = predictions_from_logits(dev_logits(), spec_.task);
  for (double score : predictions.scores)
    if (!std::isfinite(score))
      throw Error("training diverged: the model's dev predictions are not finite; lower --lr or check the labels");
  const EvalResult ev = compute_metrics(spec_.task, predictions, dev_labels_.labels, dev_labels_.query_ids,
                                        spec_.has_dqe_section);
  last_dev_predictions_ = std::move(predictions);
  Evaluation out;
  out.metric = ev.primary_name;
  out.value = ev.primary;
  out.higher_is_better = ev.higher_is_better;
  out.metrics = ev.metrics;
  out.summary = "dev " + ev.primary_name + " " + format_significant(ev.primary);
  if (!config_.select_metric.empty()) {
    // --select-metric: that metric selects the best checkpoint and stops early; the task's own
    // is shown beside it.
    const MetricInfo& metric = *find_metric(config_.select_metric);
    const nlohmann::json metrics = ev.metrics;
    out.metric = metric.key;
    out.value = metric_value(metrics, metric.path);
    out.higher_is_better = metric.higher_is_better();
    // Undefined (Spearman of constant predictions): the worst value, so that it is never the best.
    const bool defined = std::isfinite(out.value);
    if (!defined)
      out.value = metric.higher_is_better() ? std::numeric_limits<double>::lowest() : std::numeric_limits<double>::max();
    out.summary = "dev " + metric.key + " " + (defined ? format_significant(out.value) : std::string("n/a")) + " (" +
                  ev.primary_name + " " + format_significant(ev.primary) + ")";
  }
  return out;
}

void FinetuneObjective::write_checkpoint_files(const std::string& dir, bool best) {
  std::optional<ScoreReference> reference;
  if (best && last_dev_predictions_) reference = make_score_reference(last_dev_predictions_->scores);
  write_model_files(dir, spec_, model_, *featurizer_, {}, reference ? &*reference : nullptr);
  if (allocator_) allocator_->save(dir);
}

void FinetuneObjective::set_training(bool training) { model_->train(training); }

std::string FinetuneObjective::empty_epoch_message() const { return config_.train_path + ": no training examples"; }

}  // namespace dqe::training
