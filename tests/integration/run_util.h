// Helpers of the integration tests that read what training runs wrote.
#pragma once

#include <cmath>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "dqe/trainer.h"
#include "model/model_dir.h"
#include "model/sequence_model.h"
#include "model/weights.h"
#include "test_util.h"

namespace dqe::test {

// The JSON objects of a JSONL file (a run's logs), blank lines skipped.
inline std::vector<nlohmann::json> read_jsonl_file(const std::string& path) {
  std::vector<nlohmann::json> out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) out.push_back(nlohmann::json::parse(line));
  return out;
}

// RMSE on dev of predicting the training mean: the constant predictor to beat.
inline double constant_rmse(const std::string& train_path, const std::string& dev_path) {
  double mean = 0, sq = 0;
  const auto train = read_jsonl_file(train_path);
  for (const auto& r : train) mean += r["label"].get<double>() / static_cast<double>(train.size());
  const auto dev = read_jsonl_file(dev_path);
  for (const auto& r : dev) sq += std::pow(r["label"].get<double>() - mean, 2);
  return std::sqrt(sq / static_cast<double>(dev.size()));
}

// The toy set in dir (train.jsonl: 320 pairs, dev.jsonl: 80) and the tiny run from scratch
// that the integration tests train on it into dir/run: one layer of 32, 4 epochs of 16.
inline TrainConfig toy_run(const TempDir& dir) {
  write_toy_set(dir.path("train.jsonl"), 320, 1);
  write_toy_set(dir.path("dev.jsonl"), 80, 2);
  TrainConfig c;
  c.train_path = dir.path("train.jsonl");
  c.dev_path = dir.path("dev.jsonl");
  c.out_dir = dir.path("run");
  c.layers = 1;
  c.hidden = 32;
  c.heads = 2;
  c.intermediate = 64;
  c.vocab_size = 200;
  c.max_len = 32;
  c.lr = 2e-3;
  c.batch_size = 16;
  c.epochs = 4;
  c.threads = 2;
  c.seed = 5;
  c.patience = 0;
  return c;
}

// The encoder's tensors (embeddings, layers, pooler) by name: what an adapter run must leave as it was.
inline std::map<std::string, torch::Tensor> encoder_weights(LoadedModel& m) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& p : m.model->role_parameters())
    if (p.role == Role::kEmbeddings || p.role == Role::kEncoder || p.role == Role::kPooler) out[p.name] = p.tensor;
  return out;
}

}  // namespace dqe::test
