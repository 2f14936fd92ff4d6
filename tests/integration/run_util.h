// Helpers of the integration tests that read what training runs wrote.
#pragma once

#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "dqe/checkpoint.h"
#include "dqe/model.h"

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

// The encoder's tensors (embeddings, layers, pooler) by name: what an adapter run must leave as it was.
inline std::map<std::string, torch::Tensor> encoder_weights(LoadedModel& m) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& p : m.model->role_parameters())
    if (p.role == Role::kEmbeddings || p.role == Role::kEncoder || p.role == Role::kPooler) out[p.name] = p.tensor;
  return out;
}

}  // namespace dqe::test
