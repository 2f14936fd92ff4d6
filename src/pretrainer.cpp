#include "dqe/pretrainer.h"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <istream>
#include <memory>
#include <random>

#include "detail/gzip_stream.h"
#include "detail/log.h"
#include "detail/train_util.h"
#include "dqe/checkpoint.h"
#include "dqe/dataset.h"
#include "dqe/errors.h"
#include "dqe/mlm.h"
#include "dqe/progress.h"
#include "dqe/runtime.h"
#include "dqe/safetensors.h"
#include "dqe/trainer.h"
#include "dqe/vocab_builder.h"
#include "dqe/wordpiece_tokenizer.h"

namespace dqe {
namespace fs = std::filesystem;
using detail::fmt_double;

void PretrainConfig::validate() const {
  if (corpus.empty()) throw ConfigError("--corpus is required");
  if (out_dir.empty()) throw ConfigError("--out is required");
  if (!init.empty() && !tokenizer.empty()) throw ConfigError("--tokenizer cannot be combined with --init (the model has its own)");
  if (resume && !init.empty()) throw ConfigError("--resume continues from --out; do not also give --init");
  if (layers <= 0) throw ConfigError("--layers must be > 0");
  if (hidden <= 0 || heads <= 0 || hidden % heads != 0) throw ConfigError("--hidden must be a positive multiple of --heads");
  if (intermediate <= 0) throw ConfigError("--intermediate must be > 0");
  if (vocab_size < 10) throw ConfigError("--vocab-size must be >= 10");
  if (dropout && (*dropout < 0 || *dropout >= 1)) throw ConfigError("--dropout must be in [0, 1)");
  if (!(mask_prob > 0 && mask_prob < 1)) throw ConfigError("--mask-prob must be in (0, 1)");
  if (epochs <= 0 && max_steps <= 0) throw ConfigError("--epochs or --max-steps must be > 0");
  if (max_steps < 0) throw ConfigError("--max-steps must be >= 0");
  if (batch_size <= 0) throw ConfigError("--batch-size must be > 0");
  if (grad_accum <= 0) throw ConfigError("--grad-accum must be > 0");
  if (!(lr > 0) || !std::isfinite(lr)) throw ConfigError("--lr must be > 0");
  if (warmup_ratio < 0 || warmup_ratio >= 1) throw ConfigError("--warmup-ratio must be in [0, 1)");
  if (weight_decay < 0) throw ConfigError("--weight-decay must be >= 0");
  if (max_grad_norm < 0) throw ConfigError("--max-grad-norm must be >= 0");
  if (max_len < 3) throw ConfigError("--max-len must be >= 3");
  if (held_out_every < 2) throw ConfigError("--held-out-every must be >= 2");
  if (held_out_max < 1) throw ConfigError("--held-out-max must be >= 1");
  if (eval_every < 0) throw ConfigError("--eval-every must be >= 0");
  if (eval_batch_size <= 0) throw ConfigError("--eval-batch-size must be > 0");
  if (chunk_lines < 1) throw ConfigError("--chunk-lines must be >= 1");
  resolve_precision(precision, resolve_device(device));
}

nlohmann::ordered_json PretrainConfig::to_json() const {
  nlohmann::ordered_json j;
  j["corpus"] = corpus;
  j["out"] = out_dir;
  j["init"] = init;
  j["tokenizer"] = tokenizer;
  j["layers"] = layers;
  j["hidden"] = hidden;
  j["heads"] = heads;
  j["intermediate"] = intermediate;
  j["vocab-size"] = vocab_size;
  if (dropout || init.empty()) j["dropout"] = dropout.value_or(kDefaultDropout);
  j["lower-case"] = lower_case;
  j["mask-prob"] = mask_prob;
  j["whole-word"] = whole_word;
  j["epochs"] = epochs;
  j["max-steps"] = max_steps;
  j["batch-size"] = batch_size;
  j["grad-accum"] = grad_accum;
  j["lr"] = lr;
  j["warmup-ratio"] = warmup_ratio;
  j["weight-decay"] = weight_decay;
  j["max-grad-norm"] = max_grad_norm;
  j["max-len"] = max_len;
  j["seed"] = seed;
  j["threads"] = threads;
  j["precision"] = precision;
  j["device"] = device;
  j["held-out-every"] = held_out_every;
  j["held-out-max"] = held_out_max;
  j["eval-every"] = eval_every;
  j["eval-batch-size"] = eval_batch_size;
  j["chunk-lines"] = chunk_lines;
  j["resume"] = resume;
  return j;
}

namespace {

// Reads the corpus line by line (plain or gzip), counting physical lines.
class CorpusReader {
 public:
  explicit CorpusReader(const std::string& path) : path_(path), buf_(path), in_(&buf_) {}
  // False at the end. Strips a trailing \r.
  bool next(std::string& line) {
    if (!std::getline(in_, line)) {
      if (in_.bad()) throw IoError(path_ + ": read error after line " + std::to_string(line_no_));
      return false;
    }
    ++line_no_;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    return true;
  }
  int64_t line_no() const { return line_no_; }

 private:
  std::string path_;
  detail::GzipReadBuf buf_;
  std::istream in_;
  int64_t line_no_ = 0;
};

bool is_blank(const std::string& line) {
  return line.find_first_not_of(" \t\v\f") == std::string::npos;
}

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

struct MlmBatch {
  torch::Tensor ids, type_ids, mask, labels;  // labels [batch, time], kIgnoreLabel where not predicted
};

// Masks the rows and pads them (collate). With rng null, row r is masked from its own seed
// fixed_seed + r: held-back rows then get the same masks at every evaluation.
MlmBatch make_batch(const std::vector<Encoding>& seqs, const std::vector<size_t>& rows, const MaskingVocab& vocab,
                    const MaskingOptions& options, int64_t pad_id, std::mt19937_64* rng, uint64_t fixed_seed = 0) {
  std::vector<Encoding> masked(rows.size());
  std::vector<std::vector<int64_t>> labels(rows.size());
  std::vector<size_t> order(rows.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    std::mt19937_64 row_rng;
    if (!rng) row_rng.seed(fixed_seed + rows[i]);
    MaskedSequence m = mask_sequence(seqs[rows[i]].ids, vocab, options, rng ? *rng : row_rng);
    masked[i] = Encoding{std::move(m.ids), seqs[rows[i]].type_ids, {}};
    labels[i] = std::move(m.labels);
    order[i] = i;
  }
  Batch padded = collate(masked, order, pad_id);
  MlmBatch b{padded.ids, padded.type_ids, padded.mask,
             torch::full(padded.ids.sizes(), kIgnoreLabel, torch::kInt64)};
  auto acc = b.labels.accessor<int64_t, 2>();
  for (size_t i = 0; i < labels.size(); ++i)
    for (size_t j = 0; j < labels[i].size(); ++j) acc[static_cast<int64_t>(i)][static_cast<int64_t>(j)] = labels[i][j];
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

PretrainResult pretrain(const PretrainConfig& cfg) {
  cfg.validate();
  request_stop(0);
  auto log = detail::logger("pretrain");
  const fs::path out(cfg.out_dir);
  const fs::path last_dir = out / "last", best_dir = out / "best";
  if (cfg.resume) {
    recover_checkpoint(last_dir.string());
    recover_checkpoint(best_dir.string());
    if (!fs::exists(last_dir / "trainer_state.json"))
      throw ConfigError("--resume: " + last_dir.string() + " holds no pretraining checkpoint to continue from");
  } else if (fs::exists(last_dir) || fs::exists(best_dir)) {
    throw ConfigError("--out " + cfg.out_dir + " already holds a run: add --resume to continue it, or choose another directory");
  }
  if (!fs::is_regular_file(cfg.corpus)) throw IoError(cfg.corpus + ": no such corpus file");
  detail::check_writable(out);
  const c10::Device device = resolve_device(cfg.device);
  const Precision precision = resolve_precision(cfg.precision, device);
  configure_threads(cfg.threads);
  log->info(runtime_description() + ", " + device.str() + ", " + precision_name(precision));

  // Pass 1 over the corpus: the held-back lines, the training line count per chunk (for
  // the schedule), and, when a vocabulary must be built, the training texts.
  const bool build_vocab = cfg.init.empty() && cfg.tokenizer.empty() && !cfg.resume;
  constexpr int64_t kMaxVocabLines = 2000000;
  std::vector<std::string> held_texts, vocab_texts;
  std::vector<int64_t> chunk_train_lines;
  PretrainResult result;
  {
    CorpusReader reader(cfg.corpus);
    std::string line;
    while (reader.next(line)) {
      const int64_t index = reader.line_no() - 1;
      if (index / cfg.chunk_lines >= static_cast<int64_t>(chunk_train_lines.size())) chunk_train_lines.push_back(0);
      if (is_blank(line)) {
        ++result.empty_lines;
        continue;
      }
      if (held_back(index, cfg)) {
        held_texts.push_back(line);
        continue;
      }
      ++chunk_train_lines.back();
      ++result.train_lines;
      if (build_vocab && static_cast<int64_t>(vocab_texts.size()) < kMaxVocabLines) vocab_texts.push_back(line);
    }
  }
  result.held_out_lines = static_cast<int64_t>(held_texts.size());
  if (result.train_lines == 0) throw DataError(cfg.corpus + ": no text lines to pretrain on");
  log->info("{}: {} lines for training, {} held back, {} empty lines skipped", cfg.corpus, result.train_lines,
            held_texts.size(), result.empty_lines);

  ModelSpec spec;
  std::unique_ptr<Tokenizer> tokenizer;
  SequenceModel model{nullptr};
  BertLmHead head{nullptr};
  std::string weights_path;  // where the MLM head may come from
  // Every weight not loaded (a new encoder, or a head the --init model lacks) is drawn from
  // the seed, so that a run is reproducible; the default generator is seeded at random.
  torch::manual_seed(cfg.seed);
  if (cfg.resume || !cfg.init.empty()) {
    LoadedModel loaded = load_model(cfg.resume ? last_dir.string() : cfg.init, /*allow_new_head=*/true);
    spec = loaded.spec;
    tokenizer = std::move(loaded.tokenizer);
    model = loaded.model;
    weights_path = (fs::path(loaded.dir) / "model.safetensors").string();
    if (!cfg.resume) {
      spec.has_dqe_section = true;
      spec.task.max_len = std::min(cfg.max_len, spec.bert.max_position_embeddings);
    }
    detail::apply_dropout_flag(cfg.dropout, cfg.resume, model, spec.bert, *log);
  } else {
    if (!cfg.tokenizer.empty()) {
      tokenizer = fs::is_directory(cfg.tokenizer) ? load_tokenizer(cfg.tokenizer, cfg.lower_case)
                                                  : load_tokenizer_file(cfg.tokenizer, cfg.lower_case);
    } else {
      VocabBuilderOptions vo;
      vo.vocab_size = cfg.vocab_size;
      vo.lower_case = cfg.lower_case;
      auto t0 = std::chrono::steady_clock::now();
      tokenizer = std::make_unique<WordPieceTokenizer>(build_wordpiece_vocab(vocab_texts, vo), cfg.lower_case, "built vocab");
      log->info("built a WordPiece vocabulary of {} tokens from {} in {:.1f}s", tokenizer->vocab_size(), cfg.corpus,
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    BertConfig& b = spec.bert;
    b.vocab_size = tokenizer->vocab_size();
    b.hidden_size = cfg.hidden;
    b.num_hidden_layers = cfg.layers;
    b.num_attention_heads = cfg.heads;
    b.intermediate_size = cfg.intermediate;
    b.hidden_dropout_prob = b.attention_probs_dropout_prob = cfg.dropout.value_or(kDefaultDropout);
    b.max_position_embeddings = std::max<int64_t>(512, cfg.max_len);
    // Rows for the match token types that fine-tuning uses (TaskSpec::match_types).
    b.type_vocab_size = 4;
    b.pad_token_id = tokenizer->pad_id();
    b.validate("model shape");
    spec.has_dqe_section = true;
    spec.task.lower_case = cfg.lower_case;
    spec.task.match_types = true;
    spec.task.max_len = cfg.max_len;
    model = SequenceModel(b, spec.task.num_outputs());
    init_bert_weights(*model, b.initializer_range, b.pad_token_id);
  }
  spec.mlm_encoder = true;
  vocab_texts.clear();
  vocab_texts.shrink_to_fit();
  const MaskingVocab masking_vocab = MaskingVocab::from_tokenizer(*tokenizer);
  MaskingOptions masking;
  masking.mask_prob = cfg.mask_prob;
  masking.whole_word = cfg.whole_word;
  const int64_t max_len = spec.task.max_len;

  head = BertLmHead(spec.bert);
  init_bert_weights(*head, spec.bert.initializer_range, spec.bert.pad_token_id);
  if (!weights_path.empty() && load_lm_head(head, load_safetensors(weights_path), weights_path))
    log->info("{}: masked-language-model head loaded", weights_path);
  else if (!weights_path.empty())
    log->info("{}: no masked-language-model head (cls.predictions.*); starting a new one", weights_path);

  model->to(device);  // before the optimizer takes the parameters
  head->to(device);
  int64_t num_params = 0;
  for (const auto& p : model->bert->parameters()) num_params += p.numel();
  log->info("encoder: {} layers x {} hidden x {} heads, {:.1f}M parameters, vocabulary {}; max length {}; masking {}{}",
            spec.bert.num_hidden_layers, spec.bert.hidden_size, spec.bert.num_attention_heads, num_params / 1e6,
            tokenizer->vocab_size(), max_len, cfg.mask_prob, cfg.whole_word ? " (whole words)" : "");

  // The pooler and classifier take no part in MLM; they are saved as they are.
  std::vector<std::pair<std::string, torch::Tensor>> params;
  for (const auto& item : model->named_parameters())
    if (item.key().rfind("bert.pooler.", 0) != 0 && item.key().rfind("classifier.", 0) != 0)
      params.emplace_back(item.key(), item.value());
  for (const auto& item : head->named_parameters()) params.emplace_back("cls." + item.key(), item.value());
  auto optimizer_ptr = detail::make_adamw(params, cfg.lr, cfg.weight_decay);
  torch::optim::AdamW& optimizer = *optimizer_ptr;
  std::vector<torch::Tensor> trained;
  for (const auto& p : params) trained.push_back(p.second);

  int64_t steps_per_epoch = 0;
  for (int64_t lines : chunk_train_lines) {
    const int64_t batches = (lines + cfg.batch_size - 1) / cfg.batch_size;
    steps_per_epoch += (batches + cfg.grad_accum - 1) / cfg.grad_accum;
  }
  TrainerState state;
  if (cfg.resume) {
    state = load_trainer_state(last_dir.string(), &optimizer);
    if (state.finished) log->info("{} already finished at step {}; nothing to do", cfg.out_dir, state.step);
    else log->info("resuming {} at step {} (epoch {}, chunk {}, batch {})", cfg.out_dir, state.step, state.epoch + 1,
                   state.chunk + 1, state.batch_in_epoch);
  } else {
    state.seed = cfg.seed;
    state.total_steps = cfg.max_steps > 0 ? cfg.max_steps : cfg.epochs * steps_per_epoch;
    state.config = cfg.to_json();
    state.metric_name = "mlm_loss";
    state.higher_is_better = false;
  }
  const int64_t total_steps = state.total_steps;
  const int64_t warmup = static_cast<int64_t>(std::llround(cfg.warmup_ratio * static_cast<double>(total_steps)));

  std::vector<Encoding> held;
  for (const auto& text : held_texts) {
    Encoding e = encode_line(*tokenizer, text, max_len);
    if (!e.ids.empty()) held.push_back(std::move(e));
  }
  held_texts.clear();

  detail::truncate_log(out / "train_log.jsonl", cfg.resume ? state.step : -1);
  detail::truncate_log(out / "eval_log.jsonl", cfg.resume ? state.step : -1);
  std::ofstream train_log(out / "train_log.jsonl", std::ios::app);
  std::ofstream eval_log(out / "eval_log.jsonl", std::ios::app);
  if (!train_log || !eval_log) throw IoError(cfg.out_dir + ": cannot write the run's logs");
  result.best_dir = best_dir.string();
  result.last_dir = last_dir.string();

  auto save = [&](const fs::path& dir) { save_checkpoint(dir.string(), spec, model, *tokenizer, &state, &optimizer, nullptr, lm_head_weights(head)); };

  // Held-back MLM loss and accuracy, with the same masks every time.
  auto evaluate = [&]() -> std::pair<double, double> {
    if (held.empty()) return {NAN, NAN};
    torch::InferenceMode guard;
    model->eval();
    double loss = 0;
    int64_t predicted = 0, correct = 0;
    for (const auto& rows : plan_inference_batches(lengths_of(held), cfg.eval_batch_size)) {
      MlmBatch b = make_batch(held, rows, masking_vocab, masking, tokenizer->pad_id(), nullptr, cfg.seed ^ 0x9e3779b97f4a7c15ULL);
      MlmOutput o = mlm_forward(model, head, b, precision);
      if (o.predicted == 0) continue;
      loss += o.loss_sum.item<double>();
      predicted += o.predicted;
      correct += o.correct;
    }
    model->train();
    if (predicted == 0) return {NAN, NAN};
    return {loss / static_cast<double>(predicted), static_cast<double>(correct) / static_cast<double>(predicted)};
  };
  auto evaluate_and_save = [&]() {
    const auto [loss, accuracy] = evaluate();
    const bool improved = std::isfinite(loss) && (!state.best_metric || loss < *state.best_metric);
    if (improved) {
      state.best_metric = loss;
      state.best_step = state.step;
      result.best_accuracy = accuracy;
    }
    nlohmann::ordered_json rec;
    rec["step"] = state.step;
    rec["epoch"] = static_cast<double>(state.step) / static_cast<double>(std::max<int64_t>(1, steps_per_epoch));
    rec["metric"] = "mlm_loss";
    rec["value"] = loss;
    rec["best"] = state.best_metric ? nlohmann::ordered_json(*state.best_metric) : nlohmann::ordered_json(nullptr);
    rec["improved"] = improved;
    rec["metrics"] = {{"mlm_loss", loss}, {"mlm_accuracy", accuracy}};
    eval_log << rec.dump() << "\n";
    eval_log.flush();
    train_log.flush();
    log->info("step {}: held-back MLM loss {} accuracy {}{}", state.step, fmt_double(loss), fmt_double(accuracy),
              improved ? " *" : "");
    if (improved) save(best_dir);
    save(last_dir);
  };

  if (!cfg.resume) {
    // The untrained (or --init) model's score, so that the log shows what pretraining gained.
    evaluate_and_save();
  }

  Progress progress("pretrain", total_steps, "step");
  const auto t_start = std::chrono::steady_clock::now();
  const int64_t samples_at_start = state.samples_seen;
  int64_t tokens_seen = 0;
  int non_finite_in_a_row = 0;
  bool stop = state.finished;
  bool evaluated_at_current_step = true;
  model->train();
  head->train();
  while (!stop && state.step < total_steps) {
    if (cfg.max_steps == 0 && state.epoch >= cfg.epochs) break;
    CorpusReader reader(cfg.corpus);
    std::string line;
    // Skip the chunks this epoch already finished (resume).
    for (int64_t skip = 0; skip < state.chunk * cfg.chunk_lines && reader.next(line); ++skip) {
    }
    bool epoch_end = false;
    while (!stop && !epoch_end && state.step < total_steps) {
      // Read and tokenize one chunk.
      std::vector<Encoding> seqs;
      int64_t read = 0;
      while (read < cfg.chunk_lines && reader.next(line)) {
        ++read;
        const int64_t index = reader.line_no() - 1;
        if (is_blank(line) || held_back(index, cfg)) continue;
        Encoding e = encode_line(*tokenizer, line, max_len);
        if (!e.ids.empty()) seqs.push_back(std::move(e));
      }
      if (read < cfg.chunk_lines) epoch_end = true;
      const auto batches = plan_training_batches(
          lengths_of(seqs), cfg.batch_size,
          cfg.seed + 1000003ULL * static_cast<uint64_t>(state.epoch) + 7919ULL * static_cast<uint64_t>(state.chunk));
      while (!stop && state.batch_in_epoch < static_cast<int64_t>(batches.size()) && state.step < total_steps) {
        const int64_t first = state.batch_in_epoch;
        const int64_t count = std::min<int64_t>(cfg.grad_accum, static_cast<int64_t>(batches.size()) - first);
        optimizer.zero_grad();
        // Masks and dropout depend only on (seed, step, micro-batch), so a resumed run repeats them.
        std::vector<MlmBatch> micro;
        int64_t predicted = 0, samples = 0;
        for (int64_t k = 0; k < count; ++k) {
          std::mt19937_64 rng(cfg.seed * 6364136223846793005ULL + static_cast<uint64_t>(state.step) * 1442695040888963407ULL +
                              static_cast<uint64_t>(k));
          const auto& rows = batches[static_cast<size_t>(first + k)];
          micro.push_back(make_batch(seqs, rows, masking_vocab, masking, tokenizer->pad_id(), &rng));
          predicted += micro.back().labels.ne(kIgnoreLabel).sum().item<int64_t>();
          samples += static_cast<int64_t>(rows.size());
          tokens_seen += micro.back().mask.sum().item<int64_t>();
        }
        double loss_sum = 0;
        int64_t correct = 0;
        for (int64_t k = 0; k < count; ++k) {
          torch::manual_seed(cfg.seed * 6364136223846793005ULL + static_cast<uint64_t>(state.step) * 1442695040888963407ULL +
                             static_cast<uint64_t>(k) + 17);
          MlmOutput o = mlm_forward(model, head, micro[static_cast<size_t>(k)], precision);
          if (o.predicted == 0) continue;
          // Mean over every predicted token of the step, whatever micro-batch it is in.
          (o.loss_sum / static_cast<double>(predicted)).backward();
          loss_sum += o.loss_sum.item<double>();
          correct += o.correct;
        }
        const double loss_value = predicted > 0 ? loss_sum / static_cast<double>(predicted) : 0.0;
        double grad_norm = 0;
        if (cfg.max_grad_norm > 0) grad_norm = torch::nn::utils::clip_grad_norm_(trained, cfg.max_grad_norm);
        const double lr = detail::linear_schedule(cfg.lr, state.step, total_steps, warmup);
        state.batch_in_epoch = first + count;
        if (!std::isfinite(loss_value) || !std::isfinite(grad_norm)) {
          optimizer.zero_grad();
          log->warn("step {}: loss or gradient is not finite; step skipped", state.step + 1);
          if (++non_finite_in_a_row >= detail::kMaxNonFiniteSteps)
            throw Error("pretraining diverged: " + std::to_string(detail::kMaxNonFiniteSteps) +
                        " steps in a row had a non-finite loss or gradient; lower --lr (the last good checkpoint is in " +
                        last_dir.string() + ")");
          continue;
        }
        non_finite_in_a_row = 0;
        detail::set_learning_rate(optimizer, lr);
        optimizer.step();
        ++state.step;
        state.samples_seen += samples;
        evaluated_at_current_step = false;

        const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
        const double sps = elapsed > 0 ? static_cast<double>(state.samples_seen - samples_at_start) / elapsed : 0;
        nlohmann::ordered_json rec;
        rec["step"] = state.step;
        rec["epoch"] = state.epoch;
        rec["loss"] = loss_value;
        rec["accuracy"] = predicted > 0 ? static_cast<double>(correct) / static_cast<double>(predicted) : 0.0;
        rec["lr"] = lr;
        rec["grad_norm"] = grad_norm;
        rec["samples_per_s"] = sps;
        rec["tokens_per_s"] = elapsed > 0 ? static_cast<double>(tokens_seen) / elapsed : 0;
        rec["elapsed_s"] = elapsed;
        train_log << rec.dump() << "\n";
        progress.update(state.step, "loss " + fmt_double(loss_value) + " lr " + fmt_double(lr, 2) + " " +
                                        fmt_double(sps, 3) + " lines/s");

        if (cfg.eval_every > 0 && state.step % cfg.eval_every == 0) {
          progress.finish();
          evaluated_at_current_step = true;
          evaluate_and_save();
        }
        if ((cfg.stop_after_step && cfg.stop_after_step(state.step)) || stop_signal() != 0) {
          progress.finish();
          save(last_dir);
          train_log.flush();
          log->info("stopped at step {}; checkpoint written to {}; continue with the same command plus --resume",
                    state.step, last_dir.string());
          result.interrupted = true;
          result.steps = state.step;
          return result;
        }
      }
      if (state.batch_in_epoch >= static_cast<int64_t>(batches.size())) {
        state.batch_in_epoch = 0;
        if (epoch_end) {
          ++state.epoch;
          state.chunk = 0;
        } else {
          ++state.chunk;
        }
      }
    }
    if (cfg.eval_every == 0 && !evaluated_at_current_step) {
      progress.finish();
      evaluated_at_current_step = true;
      evaluate_and_save();
    }
  }
  progress.finish();
  if (!state.finished) {
    if (!evaluated_at_current_step) evaluate_and_save();
    state.finished = true;
    save(last_dir);
  }
  train_log.flush();
  eval_log.flush();

  // First and best evaluations, from the log (a resumed run did not see the first).
  std::ifstream log_in(out / "eval_log.jsonl");
  std::string rec_line;
  bool first = true;
  while (std::getline(log_in, rec_line)) {
    auto j = nlohmann::json::parse(rec_line, nullptr, false);
    if (j.is_discarded() || !j.contains("metrics")) continue;
    const double loss = j["metrics"].value("mlm_loss", NAN), accuracy = j["metrics"].value("mlm_accuracy", NAN);
    if (first) {
      result.initial_loss = loss;
      result.initial_accuracy = accuracy;
      first = false;
    }
    if (j.value("step", int64_t{-1}) == state.best_step) {
      result.best_loss = loss;
      result.best_accuracy = accuracy;
    }
  }
  result.steps = state.step;
  result.best_step = state.best_step;
  log->info("done: {} steps; held-back MLM accuracy {} -> {} (loss {} -> {}); best encoder in {}", state.step,
            fmt_double(result.initial_accuracy), fmt_double(result.best_accuracy), fmt_double(result.initial_loss),
            fmt_double(result.best_loss), best_dir.string());
  return result;
}

}  // namespace dqe
