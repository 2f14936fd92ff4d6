#include "train/mlm_objective.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <random>

#include "base/format.h"
#include "base/log.h"
#include "dist/shares.h"
#include "dqe/errors.h"
#include "io/safetensors.h"
#include "model/heads/task_head.h"
#include "model/peft/adapter.h"
#include "model/peft/lora.h"
#include "train/model_builder.h"
#include "train/train_util.h"

namespace dqe::training {
namespace fs = std::filesystem;

CorpusReader::CorpusReader(const std::string& path) : path_(path), buf_(path), in_(&buf_) {
  // The reader's own error ("truncated gzip stream") reaches the user, not "read error".
  in_.exceptions(std::ios::badbit);
}

bool CorpusReader::next(std::string& line) {
  if (!std::getline(in_, line)) {
    if (in_.bad()) throw IoError(path_ + ": read error after line " + std::to_string(line_no_));
    return false;
  }
  ++line_no_;
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return true;
}

namespace {

bool is_blank(const std::string& line) { return line.find_first_not_of(" \t\v\f") == std::string::npos; }

// Line i (0-based) is held back when i % every == 0, for the first `max` such lines.
bool held_back(int64_t index, const PretrainConfig& c) {
  return index % c.held_out_every == 0 && index / c.held_out_every < c.held_out_max;
}

// [CLS] text [SEP], cut to max_len, all token type 0. Empty when the text has no tokens.
Encoding encode_line(const Tokenizer& tok, const std::string& line, int64_t max_len) {
  std::vector<int64_t> pieces = tok.encode(line);
  if (pieces.empty()) return {};
  if (static_cast<int64_t>(pieces.size()) > max_len - 2) pieces.resize(static_cast<size_t>(max_len - 2));
  Encoding e;
  e.ids.reserve(pieces.size() + 2);
  e.ids.push_back(tok.cls_id());
  e.ids.insert(e.ids.end(), pieces.begin(), pieces.end());
  e.ids.push_back(tok.sep_id());
  e.type_ids.assign(e.ids.size(), 0);
  return e;
}

struct MlmBatch : PreparedBatch {
  torch::Tensor ids, type_ids, mask, labels;  // labels [batch, time], kIgnoreLabel where not predicted
};

// Masks the rows and pads rows [keep_begin, keep_end) of them. With rng null, row r is masked
// from its own seed fixed_seed + r: held-back rows then get the same masks at every
// evaluation. A data-parallel process masks the whole global batch, as one process would,
// and keeps its slice, so that its masks do not depend on the world size.
MlmBatch make_batch(const std::vector<Encoding>& seqs, const std::vector<size_t>& rows, const MaskingVocab& vocab,
                    const MaskingOptions& options, int64_t pad_id, std::mt19937_64* rng, uint64_t fixed_seed = 0,
                    size_t keep_begin = 0, size_t keep_end = SIZE_MAX) {
  keep_end = std::min(keep_end, rows.size());
  const size_t kept = keep_end > keep_begin ? keep_end - keep_begin : 0;
  std::vector<Encoding> masked(kept);
  std::vector<std::vector<int64_t>> labels(kept);
  std::vector<size_t> order(kept);
  for (size_t i = 0; i < rows.size() && i < keep_end; ++i) {
    std::mt19937_64 row_rng;
    if (!rng) row_rng.seed(fixed_seed + rows[i]);
    MaskedSequence m = mask_sequence(seqs[rows[i]].ids, vocab, options, rng ? *rng : row_rng);
    if (i < keep_begin) continue;
    const size_t k = i - keep_begin;
    masked[k].ids = std::move(m.ids);
    masked[k].type_ids = seqs[rows[i]].type_ids;
    labels[k] = std::move(m.labels);
    order[k] = k;
  }
  MlmBatch b;
  if (kept == 0) {
    b.weight = 0;  // this process's slice of a short last batch: it only joins the all-reduce
    return b;
  }
  Batch padded = collate(masked, order, pad_id);
  b.ids = padded.ids;
  b.type_ids = padded.type_ids;
  b.mask = padded.mask;
  b.labels = torch::full(padded.ids.sizes(), kIgnoreLabel, torch::kInt64);
  auto acc = b.labels.accessor<int64_t, 2>();
  for (size_t i = 0; i < labels.size(); ++i)
    for (size_t j = 0; j < labels[i].size(); ++j) acc[static_cast<int64_t>(i)][static_cast<int64_t>(j)] = labels[i][j];
  b.weight = static_cast<double>(b.labels.ne(kIgnoreLabel).sum().item<int64_t>());
  b.samples = static_cast<int64_t>(rows.size());
  b.tokens = b.ids.numel();
  return b;
}

// Loss (summed over predicted tokens) and number of correct predictions.
struct MlmOutput {
  torch::Tensor loss_sum;
  int64_t predicted = 0, correct = 0;
};

MlmOutput mlm_forward(SequenceModel& model, BertLmHead& head, const MlmBatch& b, Precision precision) {
  MlmOutput out;
  const c10::Device device = device_of(*model);
  AutocastGuard autocast(precision, device);
  torch::Tensor hidden = model->bert->encode(b.ids.to(device), b.type_ids.to(device), b.mask.to(device));
  torch::Tensor labels = b.labels.to(device);
  torch::Tensor selected = labels.ne(kIgnoreLabel);
  torch::Tensor targets = labels.masked_select(selected);
  out.predicted = targets.numel();
  if (out.predicted == 0) return out;
  torch::Tensor states = hidden.index({selected});
  torch::Tensor logits = head->forward(states, model->bert->embeddings->word_embeddings->weight).to(torch::kFloat32);
  out.loss_sum = torch::nn::functional::cross_entropy(
      logits, targets, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum));
  out.correct = logits.argmax(-1).eq(targets).sum().item<int64_t>();
  return out;
}

}  // namespace

MlmObjective::MlmObjective(const PretrainConfig& cfg, const RunContext& ctx, const std::string& last_dir)
    : config_(cfg), ctx_(ctx) {
  auto log = detail::logger("pretrain");
  // Pass 1 over the corpus: the held-back lines, the training line count per chunk (for
  // the schedule), and, when a vocabulary must be built, the training texts.
  const bool build_vocab = cfg.init.empty() && cfg.tokenizer.empty() && !cfg.resume;
  constexpr int64_t kMaxVocabLines = 2000000;
  std::vector<std::string> held_texts, vocab_texts;
  {
    CorpusReader reader(cfg.corpus);
    detail::Fnv1a hash;
    std::string line;
    while (reader.next(line)) {
      const int64_t index = reader.line_no() - 1;
      if (index % 100000 == 0) ctx_.stop.check("while reading the corpus, before the first step; nothing to resume");
      hash.add(line);
      if (index / cfg.chunk_lines >= static_cast<int64_t>(chunk_train_lines_.size())) chunk_train_lines_.push_back(0);
      if (is_blank(line)) {
        ++counts_.empty_lines;
        continue;
      }
      if (held_back(index, cfg)) {
        held_texts.push_back(line);
        continue;
      }
      ++chunk_train_lines_.back();
      ++counts_.train_lines;
      if (build_vocab && static_cast<int64_t>(vocab_texts.size()) < kMaxVocabLines) vocab_texts.push_back(line);
    }
    fingerprint_ = std::to_string(reader.line_no()) + " lines, hash " + hash.hex();
  }
  counts_.held_out_lines = static_cast<int64_t>(held_texts.size());
  if (counts_.train_lines == 0)
    throw DataError(cfg.corpus + ": no text lines to pretrain on (" + std::to_string(counts_.empty_lines) + " blank, " +
                    std::to_string(held_texts.size()) + " held back to measure the loss)");
  log->info("{}: {} lines for training, {} held back, {} empty lines skipped", cfg.corpus, counts_.train_lines,
            held_texts.size(), counts_.empty_lines);

  // Every weight not loaded (a new encoder, or a head the --init model lacks) is drawn from
  // the seed, so that a run is reproducible; LibTorch's default generator is seeded at random.
  ctx_.seeds.seed_initialisation();
  BuiltModel built = build_mlm_encoder(cfg, vocab_texts, last_dir, *log);
  spec_ = std::move(built.spec);
  model_ = built.model;
  featurizer_ = built.featurizer;
  const std::string& weights_path = built.weights_file;  // where the MLM head may come from
  vocab_texts.clear();
  vocab_texts.shrink_to_fit();
  const Tokenizer& tokenizer = featurizer_->tokenizer();
  masking_vocab_ = MaskingVocab::from_tokenizer(tokenizer);
  masking_.mask_prob = cfg.mask_prob;
  masking_.whole_word = cfg.whole_word;

  head_ = BertLmHead(spec_.bert);
  init_weights(head_, spec_.bert);
  if (!weights_path.empty() && load_lm_head(head_, load_safetensors(weights_path), weights_path))
    log->info("{}: masked-language-model head loaded", weights_path);
  else if (!weights_path.empty())
    log->info("{}: no masked-language-model head (cls.predictions.*); starting a new one", weights_path);

  model_->to(ctx_.device);  // before the optimizer takes the parameters
  head_->to(ctx_.device);
  int64_t num_params = 0;
  for (const auto& p : model_->bert->parameters()) num_params += p.numel();
  log->info("encoder: {} layers x {} hidden x {} heads, {:.1f}M parameters, vocabulary {}; max length {}; masking {}{}",
            spec_.bert.num_hidden_layers, spec_.bert.hidden_size, spec_.bert.num_attention_heads, num_params / 1e6,
            tokenizer.vocab_size(), spec_.task.max_len, cfg.mask_prob, cfg.whole_word ? " (whole words)" : "");

  held_ = encode_lines_in_shares(held_texts);
  if (ctx_.world_size > 1)
    log->info("each process tokenises 1/{} of each chunk of --chunk-lines {} and of the held-back lines; the job "
              "gathers them",
              ctx_.world_size, cfg.chunk_lines);
}

std::vector<Encoding> MlmObjective::encode_lines_in_shares(const std::vector<std::string>& lines) const {
  // A data-parallel process tokenises its share of the lines; the job gathers them in order.
  const Tokenizer& tokenizer = featurizer_->tokenizer();
  return encodings_in_shares(ctx_, lines.size(), [&](size_t first, size_t last) {
    std::vector<Encoding> out;
    for (size_t i = first; i < last; ++i) {
      Encoding e = encode_line(tokenizer, lines[i], spec_.task.max_len);
      if (!e.ids.empty()) out.push_back(std::move(e));
    }
    return out;
  });
}

std::vector<RoleParameter> MlmObjective::trainable_parameters() {
  // The pooler and classifier take no part in MLM; they are saved as they are.
  std::vector<RoleParameter> out;
  for (auto& p : model_->role_parameters())
    if (p.role == Role::kEmbeddings || p.role == Role::kEncoder) out.push_back(std::move(p));
  for (auto& p : head_->role_parameters()) out.push_back(std::move(p));
  return out;
}

int64_t MlmObjective::steps_per_epoch(int64_t grad_accum) const {
  int64_t steps = 0;
  for (int64_t lines : chunk_train_lines_) {
    const int64_t global = config_.batch_size * ctx_.plan_world_size;  // the job's global batch
    const int64_t batches = (lines + global - 1) / global;
    steps += (batches + grad_accum - 1) / grad_accum;
  }
  return steps;
}

ChunkPlan MlmObjective::plan_chunk(int64_t epoch, int64_t chunk, uint64_t order_seed) {
  std::string line;
  if (!reader_ || reader_epoch_ != epoch || reader_next_chunk_ != chunk) {
    // A new epoch, or a resumed run: skip the chunks this epoch already finished.
    reader_ = std::make_unique<CorpusReader>(config_.corpus);
    for (int64_t skip = 0; skip < chunk * config_.chunk_lines && reader_->next(line); ++skip) {
    }
    reader_epoch_ = epoch;
  }
  std::vector<std::string> lines;
  int64_t read = 0;
  while (read < config_.chunk_lines && reader_->next(line)) {
    ++read;
    const int64_t index = reader_->line_no() - 1;
    if (is_blank(line) || held_back(index, config_)) continue;
    lines.push_back(line);
  }
  seqs_ = encode_lines_in_shares(lines);
  reader_next_chunk_ = chunk + 1;
  // Every process plans the job's global batches; prepare() keeps its slice of each.
  batches_ = plan_training_batches(lengths_of(seqs_), config_.batch_size * ctx_.plan_world_size, order_seed);
  return {static_cast<int64_t>(batches_.size()), /*last_in_epoch=*/read < config_.chunk_lines};
}

std::unique_ptr<PreparedBatch> MlmObjective::prepare(int64_t index, uint64_t step_seed) {
  std::mt19937_64 rng(step_seed);
  const auto& rows = batches_[static_cast<size_t>(index)];
  const size_t n = rows.size(), rank = static_cast<size_t>(ctx_.rank), world = static_cast<size_t>(ctx_.world_size);
  // rows_of_rank's slice (dist/process_group.h)
  return std::make_unique<MlmBatch>(make_batch(seqs_, rows, masking_vocab_, masking_, featurizer_->tokenizer().pad_id(),
                                               &rng, 0, rank * n / world, (rank + 1) * n / world));
}

MicroLoss MlmObjective::forward(PreparedBatch& prepared) {
  MlmOutput o = mlm_forward(model_, head_, static_cast<MlmBatch&>(prepared), ctx_.precision);
  MicroLoss out;
  out.loss = o.loss_sum;
  out.sums = {{"accuracy", static_cast<double>(o.correct)}};
  return out;
}

Evaluation MlmObjective::evaluate() {
  Evaluation ev;
  ev.metric = "mlm_loss";
  ev.higher_is_better = false;
  double loss = NAN, accuracy = NAN;
  {
    // Held-back MLM loss and accuracy, with the same masks every time.
    torch::InferenceMode guard;
    model_->eval();
    // A row's masks come from its own seed, so a data-parallel process measures its share
    // of the held-back rows and the job sums the shares.
    const auto [first, last] = ctx_.share_of(held_.size());
    std::vector<size_t> share_lengths;
    for (size_t i = first; i < last; ++i) share_lengths.push_back(held_[i].ids.size());
    std::vector<double> sums{0, 0, 0};  // loss, predicted tokens, correct predictions
    for (auto rows : plan_inference_batches(share_lengths, config_.eval_batch_size)) {
      for (size_t& r : rows) r += first;
      MlmBatch b = make_batch(held_, rows, masking_vocab_, masking_, featurizer_->tokenizer().pad_id(), nullptr,
                              config_.seed ^ 0x9e3779b97f4a7c15ULL);
      MlmOutput o = mlm_forward(model_, head_, b, ctx_.precision);
      if (o.predicted == 0) continue;
      sums[0] += o.loss_sum.item<double>();
      sums[1] += static_cast<double>(o.predicted);
      sums[2] += static_cast<double>(o.correct);
    }
    if (ctx_.sum_over_processes) ctx_.sum_over_processes(sums);
    if (sums[1] > 0) {
      loss = sums[0] / sums[1];
      accuracy = sums[2] / sums[1];
    }
  }
  ev.value = loss;
  ev.metrics = {{"mlm_loss", loss}, {"mlm_accuracy", accuracy}};
  ev.summary = "held-back MLM loss " + format_significant(loss) + " accuracy " + format_significant(accuracy);
  return ev;
}

void MlmObjective::write_checkpoint_files(const std::string& dir, bool /*best*/) {
  std::vector<std::pair<std::string, torch::Tensor>> head;
  for (auto& p : head_->role_parameters()) head.emplace_back(p.name, p.tensor);
  write_model_files(dir, spec_, model_, *featurizer_, head);
}

void MlmObjective::set_training(bool training) {
  model_->train(training);
  head_->train(training);
}

std::string MlmObjective::empty_epoch_message() const {
  return config_.corpus + ": no training line has a token the tokenizer knows (" + std::to_string(counts_.train_lines) +
         " lines read)";
}

}  // namespace dqe::training
