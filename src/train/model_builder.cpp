#include "train/model_builder.h"

#include <algorithm>
#include <filesystem>
#include <string>

#include "deploy/deploy.h"
#include "dqe/errors.h"
#include "model/heads/task_head.h"
#include "model/peft/adapter.h"
#include "model/weights.h"
#include "model/prune.h"
#include "train/peft_setup.h"
#include "train/train_util.h"

namespace dqe::training {
namespace fs = std::filesystem;

// The task a new run trains: its classes, label scaling, length and inputs, from the flags,
// the training records and, with --init, the model it starts from.
TaskSpec task_of_new_run(const TrainConfig& cfg, const std::vector<Record>& train, const std::optional<ModelSpec>& init) {
  TaskSpec ts;
  ts.task = parse_task(cfg.task);
  ts.fields = cfg.fields;
  ts.lower_case = cfg.lower_case;
  ts.fusion = parse_fusion(cfg.fusion);
  if (init) {
    ts.lower_case = init->task.lower_case;
    ts.match_types = cfg.match_types == "on" || (cfg.match_types == "auto" && init->task.match_types);
    ts.lexical_features = cfg.lexical_features || (!init->mlm_encoder && init->task.lexical_features);
  } else {
    ts.match_types = cfg.match_types != "off";
    ts.lexical_features = cfg.lexical_features;
  }
  ts.labels = cfg.labels;
  task_head(ts.task).fit_labels(ts, train, cfg.train_path, init ? &*init : nullptr);
  if (init) {
    ts.max_len = cfg.max_len > 0 ? cfg.max_len : init->task.max_len;
    if (ts.max_len > init->bert.max_position_embeddings)
      throw ConfigError("--max-len " + std::to_string(ts.max_len) + " exceeds the model's max_position_embeddings (" +
                        std::to_string(init->bert.max_position_embeddings) + ")");
  } else {
    ts.max_len = cfg.max_len > 0 ? cfg.max_len : 128;
  }
  return ts;
}

namespace {

BuiltModel from_loaded(LoadedModel& loaded) { return BuiltModel{loaded.spec, loaded.model, loaded.featurizer}; }

// --resume: the run's own model from last/, its task unchanged.
BuiltModel resumed_model(const TrainConfig& cfg, const std::string& last_dir, spdlog::logger& log) {
  LoadOptions lo;
  lo.base = cfg.base;
  LoadedModel loaded = load_model(last_dir, lo);
  BuiltModel m = from_loaded(loaded);
  if (m.spec.task.task != parse_task(cfg.task))
    throw ConfigError("--task " + cfg.task + " differs from the run's task " + task_name(m.spec.task.task));
  detail::apply_dropout_flag(cfg.dropout, /*resume=*/true, m.model, m.spec.bert, log);
  return m;
}

// --init: the model with the run's task (a new head where it lacks one), its adapter planned by
// --peft, and the layers --keep-layers keeps.
BuiltModel init_model(const TrainConfig& cfg, const std::vector<Record>& train, spdlog::logger& log) {
  const ModelSpec init_spec = model_spec_of(cfg.init, cfg.base);
  LoadOptions lo;
  lo.allow_new_head = true;
  lo.task = task_of_new_run(cfg, train, init_spec);
  lo.fit_records = &train;
  if (lo.task->match_types) lo.min_type_vocab = 4;
  lo.base = cfg.base;
  const PeftPlan peft = plan_peft(cfg, init_spec);
  if (peft.adapter && peft.adapter->positions_taken() > 0) {
    // A prefix's virtual tokens take the first positions; the pairs get the rest.
    const int64_t taken = peft.adapter->positions_taken(), all = init_spec.bert.max_position_embeddings;
    if (lo.task->max_len > all - taken) {
      if (cfg.max_len > 0)
        throw ConfigError("--max-len " + std::to_string(cfg.max_len) + " exceeds the " + std::to_string(all - taken) +
                          " positions left to the text: --init " + cfg.init + " has " + std::to_string(all) +
                          " and the --peft " + cfg.peft + " adapter takes " + std::to_string(taken));
      log.info("{}: pairs are cut to {} tokens, the {} positions less the {} the --peft {} adapter takes", cfg.init,
               all - taken, all, taken, cfg.peft);
      lo.task->max_len = all - taken;
    }
  }
  lo.adapter = peft.adapter;
  lo.merge_adapter = peft.merge_init;
  if (peft.merge_init)
    log.info("{}: {} adapter; its updates are merged into its base, and every weight trains", cfg.init,
             init_spec.adapter->kind() == "adalora" ? "an AdaLoRA" : "a LoRA");
  LoadedModel loaded = load_model(cfg.init, lo);
  if (peft.adapter && init_spec.adapter) check_continued_adapter(cfg, *peft.adapter, *loaded.spec.adapter);
  BuiltModel m = from_loaded(loaded);
  if (cfg.keep_layers > 0) {
    const std::vector<int64_t> layers = layers_to_keep(m.spec.bert.num_hidden_layers, cfg.keep_layers, cfg.keep_which);
    m.model = keep_model_layers(m.spec, m.model, *m.featurizer, layers);
    std::string kept;
    for (int64_t l : layers) kept += (kept.empty() ? "" : " ") + std::to_string(l);
    log.info("{}: kept {} of its encoder layers ({}: {})", cfg.init, layers.size(), cfg.keep_which, kept);
  }
  for (const auto& name : loaded.report.missing) log.info("{}: {} is newly initialised", cfg.init, name);
  detail::apply_dropout_flag(cfg.dropout, /*resume=*/false, m.model, m.spec.bert, log);
  if (!loaded.report.unexpected.empty())
    log.info("{}: {} tensors not used by the model (e.g. {})", cfg.init, loaded.report.unexpected.size(),
             loaded.report.unexpected.front());
  return m;
}

// From scratch: a tokenizer (--tokenizer, or WordPiece built from the training texts), the
// shape flags, side inputs fitted on the training records, weights drawn anew.
BuiltModel new_model(const TrainConfig& cfg, const std::vector<Record>& train, spdlog::logger& log) {
  TaskSpec ts = task_of_new_run(cfg, train, std::nullopt);
  std::vector<std::string> texts;
  if (cfg.tokenizer.empty()) {
    texts.reserve(train.size() * 2);
    for (const auto& r : train) {
      texts.push_back(r.query);
      texts.push_back(r.text);
    }
  }
  std::shared_ptr<const Tokenizer> tokenizer =
      detail::new_tokenizer(cfg.tokenizer, ts.lower_case, cfg.vocab_size, texts, cfg.train_path, log);
  BuiltModel m;
  m.spec.bert = detail::new_model_shape(cfg, *tokenizer, ts.max_len, ts.match_types ? 4 : 2);
  m.spec.has_dqe_section = true;
  m.spec.task = ts;
  m.featurizer = std::make_shared<const Featurizer>(Featurizer::fit(ts, tokenizer, train));
  m.spec.task.fields = m.featurizer->task().fields;  // the side fields it reads, saved with the model
  m.model = SequenceModel(m.spec.bert, task_head(ts.task).num_outputs(ts), m.featurizer->side_dims(), nullptr, ts.fusion);
  init_weights(m.model, m.spec.bert);
  return m;
}

}  // namespace

BuiltModel build_finetune_model(const TrainConfig& cfg, const std::vector<Record>& train, const std::string& last_dir,
                                spdlog::logger& log) {
  BuiltModel m = cfg.resume ? resumed_model(cfg, last_dir, log)
                 : cfg.init.empty() ? new_model(cfg, train, log)
                                    : init_model(cfg, train, log);
  m.model->modality_dropout = cfg.modality_dropout;
  // Every adapter kind (LoRA, bottleneck, prefix): the base's encoder, its LayerNorms
  // included, is frozen (no gradients, no optimizer state); the adapter and the heads train.
  if (m.spec.adapter) set_trainable(m.model, {Role::kEmbeddings, Role::kEncoder, Role::kPooler}, false);
  return m;
}

BuiltModel build_mlm_encoder(const PretrainConfig& cfg, const std::vector<std::string>& vocab_texts,
                             const std::string& last_dir, spdlog::logger& log) {
  BuiltModel m;
  if (cfg.resume || !cfg.init.empty()) {
    LoadOptions lo;
    lo.allow_new_head = true;
    if (!cfg.resume && is_adapter_dir(resolve_model_dir(cfg.init)))
      throw ConfigError("--init " + cfg.init + " is a PEFT adapter; pretrain from a plain model (dqe export --merge "
                        "makes one of a LoRA adapter)");
    LoadedModel loaded = load_model(cfg.resume ? last_dir : cfg.init, lo);
    m = from_loaded(loaded);
    m.weights_file = (fs::path(loaded.dir) / "model.safetensors").string();
    if (!cfg.resume) {
      m.spec.has_dqe_section = true;
      m.spec.task.max_len = std::min(cfg.max_len, m.spec.bert.max_position_embeddings);
    }
    detail::apply_dropout_flag(cfg.dropout, cfg.resume, m.model, m.spec.bert, log);
  } else {
    std::shared_ptr<const Tokenizer> tokenizer =
        detail::new_tokenizer(cfg.tokenizer, cfg.lower_case, cfg.vocab_size, vocab_texts, cfg.corpus, log);
    // Four token types: the match types that fine-tuning uses (TaskSpec::match_types).
    m.spec.bert = detail::new_model_shape(cfg, *tokenizer, cfg.max_len, 4);
    m.spec.has_dqe_section = true;
    m.spec.task.lower_case = cfg.lower_case;
    m.spec.task.match_types = true;
    m.spec.task.max_len = cfg.max_len;
    m.featurizer = std::make_shared<const Featurizer>(m.spec.task, tokenizer);
    m.model = SequenceModel(m.spec.bert, task_head(m.spec.task.task).num_outputs(m.spec.task));
    init_weights(m.model, m.spec.bert);
  }
  m.spec.mlm_encoder = true;
  return m;
}

}  // namespace dqe::training
