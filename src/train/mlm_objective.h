// Masked-language-model pretraining as an engine objective: the corpus streamed in chunks
// (read, tokenized and shuffled together, so memory does not grow with it), BERT's masking,
// the MLM head over the encoder, and the held-back lines' loss and accuracy as evaluation.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "data/mlm.h"
#include "dqe/engine.h"
#include "dqe/pretrainer.h"
#include "io/gzip_stream.h"
#include "model/lm_head.h"
#include "model/model_dir.h"

namespace dqe::training {

// Reads the corpus line by line (plain or gzip), counting physical lines.
class CorpusReader {
 public:
  explicit CorpusReader(const std::string& path);
  // False at the end. Strips a trailing \r.
  bool next(std::string& line);
  int64_t line_no() const { return line_no_; }

 private:
  std::string path_;
  detail::GzipReadBuf buf_;
  std::istream in_;
  int64_t line_no_ = 0;
};

class MlmObjective : public Objective {
 public:
  // Counts the corpus (pass 1), builds or loads the encoder and its MLM head. Throws
  // DataError, ModelError, ConfigError naming the file or flag.
  MlmObjective(const PretrainConfig& config, const RunContext& ctx, const std::string& last_dir);

  std::vector<RoleParameter> trainable_parameters() override;
  int64_t steps_per_epoch(int64_t grad_accum) const override;
  ChunkPlan plan_chunk(int64_t epoch, int64_t chunk, uint64_t order_seed) override;
  std::unique_ptr<PreparedBatch> prepare(int64_t index, uint64_t step_seed) override;
  // The masks draw from the step seed itself; dropout from another stream.
  uint64_t dropout_seed(uint64_t step_seed) const override { return step_seed + 17; }
  MicroLoss forward(PreparedBatch& batch) override;
  Evaluation evaluate() override;
  void write_checkpoint_files(const std::string& dir, bool best) override;
  void set_training(bool training) override;
  std::string empty_epoch_message() const override;
  std::string data_fingerprint() const override { return fingerprint_; }

  const PretrainResult& counts() const { return counts_; }

 private:
  // The lines' encodings, empty ones dropped, in order (dist/shares.h).
  std::vector<Encoding> encode_lines_in_shares(const std::vector<std::string>& lines) const;

  const PretrainConfig& config_;
  RunContext ctx_;
  ModelSpec spec_;
  SequenceModel model_{nullptr};
  std::shared_ptr<const Featurizer> featurizer_;
  BertLmHead head_{nullptr};
  MaskingVocab masking_vocab_;
  MaskingOptions masking_;
  std::vector<int64_t> chunk_train_lines_;
  std::vector<Encoding> held_;
  PretrainResult counts_;  // line counts of pass 1
  std::string fingerprint_;
  // The chunk in progress: its sequences and planned batches, and the reader positioned after it.
  std::unique_ptr<CorpusReader> reader_;
  int64_t reader_epoch_ = -1, reader_next_chunk_ = 0;
  std::vector<Encoding> seqs_;
  std::vector<std::vector<size_t>> batches_;
};

}  // namespace dqe::training
