// Relevance fine-tuning as an engine objective: the training and dev records, the model as
// train/model_builder.h builds it (from --resume's last/, from --init, or from scratch), the
// task's loss, and dev evaluation through the predictor. With --peft lora the --init model is a
// frozen base with LoRA updates added (model/peft/): the optimizer gets the updates and the
// heads, and checkpoints are PEFT adapters (model/model_dir.h). With --peft adalora
// the updates are AdaLoRA's: the loss adds the orthogonality regulariser, a rank allocator
// prunes after each optimizer step (model/peft/adalora.h), and its state goes with every checkpoint.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <spdlog/spdlog.h>

#include "data/dataset.h"
#include "data/featurizer.h"
#include "deploy/distill.h"
#include "dqe/engine.h"
#include "dqe/evaluator.h"
#include "dqe/trainer.h"
#include "infer/predictor.h"
#include "model/model_dir.h"
#include "model/peft/adalora.h"
#include "model/peft/lora.h"
#include "train/rank_loss.h"

namespace dqe::training {

class FinetuneObjective : public Objective {
 public:
  // Reads the data and loads or builds the model (resume: from last_dir). Throws DataError,
  // ModelError, ConfigError naming the file or flag; Interrupted when stop is asked meanwhile.
  FinetuneObjective(const TrainConfig& config, const RunContext& ctx, const std::string& last_dir);

  std::vector<RoleParameter> trainable_parameters() override;
  int64_t steps_per_epoch(int64_t grad_accum) const override;
  ChunkPlan plan_chunk(int64_t epoch, int64_t chunk, uint64_t order_seed) override;
  std::unique_ptr<PreparedBatch> prepare(int64_t index, uint64_t step_seed) override;
  MicroLoss forward(PreparedBatch& batch) override;
  bool has_embedding_seam() const override { return true; }
  MicroLoss forward_embeds(PreparedBatch& batch, const EmbeddingHook& hook) override;
  void after_optimizer_step(int64_t step, int64_t total_steps) override;
  Evaluation evaluate() override;
  void write_checkpoint_files(const std::string& dir, bool best) override;
  void set_training(bool training) override;
  std::string empty_epoch_message() const override;
  std::string data_fingerprint() const override { return fingerprint_; }

  const ModelSpec& spec() const { return spec_; }
  // AdaLoRA: each adapted module's rank now; empty for other runs.
  std::vector<std::pair<std::string, int64_t>> adalora_ranks() const;

 private:
  struct RunRecords {
    std::vector<Record> train, dev, unlabeled;
  };
  // The constructor's steps: the data read (and its fingerprint), the model described, the
  // pairs encoded with their targets (and the teacher's), AdaLoRA's schedule and allocator.
  RunRecords read_records(spdlog::logger& log);
  void log_model(spdlog::logger& log) const;
  void encode(RunRecords& records, spdlog::logger& log);
  // Refuses a --select-metric that this task's dev evaluation does not give (a ranking metric
  // without query ids, or another task's metric), before the first step.
  void check_select_metric() const;
  // --rank-loss: each training row's query group and gain, and the batches of one epoch's plan.
  void plan_query_groups(const std::vector<Record>& train, const std::vector<double>& labels, spdlog::logger& log);
  void start_adalora(AdaLoraSpec& adalora, const std::string& last_dir, spdlog::logger& log);
  // The model's logits of dev_, in a data-parallel job sharded over the processes.
  torch::Tensor dev_logits() const;

  const TrainConfig& config_;
  const TaskHead& head_;
  RunContext ctx_;
  ModelSpec spec_;
  SequenceModel model_{nullptr};
  std::shared_ptr<const Featurizer> featurizer_;
  std::vector<Example> train_;
  std::vector<Example> dev_;  // this process's share of the dev pairs (all in one process)
  size_t dev_rows_ = 0;       // the dev pairs of the job
  std::vector<Record> train_records_;  // kept for --augment only
  std::vector<float> targets_;  // standardised for regression
  LabelledSet dev_labels_;
  std::vector<size_t> lengths_;
  std::vector<std::vector<size_t>> batches_;  // the planned chunk (one per epoch)
  std::optional<Predictions> last_dev_predictions_;
  std::string fingerprint_;
  std::unique_ptr<RankAllocator> allocator_;  // AdaLoRA's, or null
  // train_'s first labelled_rows_ examples are labelled; the rest are --unlabeled pairs.
  int64_t labelled_rows_ = 0;
  RankLoss rank_loss_ = RankLoss::kNone;
  std::vector<int64_t> group_of_row_;
  std::vector<float> gains_;
  int64_t group_batches_per_epoch_ = 0;
  // Distillation: its spec, and the teacher's targets of train_'s examples, computed once.
  std::optional<DistillSpec> distill_;
  torch::Tensor teacher_;
};

}  // namespace dqe::training
