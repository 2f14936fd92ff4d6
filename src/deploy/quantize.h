// Smaller model files for deployment: every floating tensor stored in bfloat16 (half the
// file), or the encoder's matrices as per-row int8 (model/int8.h, which also reads them back).
#pragma once

#include <string>
#include <utility>
#include <vector>

#include <torch/torch.h>

namespace dqe {

enum class WeightDtype { kFp32, kBf16, kInt8 };
// "fp32", "bf16" or "int8"; throws ConfigError naming --dtype otherwise.
WeightDtype parse_weight_dtype(const std::string& name);
std::string weight_dtype_name(WeightDtype dtype);

// The tensors as they are stored in the given dtype (float32 in, for save_safetensors).
std::vector<std::pair<std::string, torch::Tensor>> convert_weights(
    const std::vector<std::pair<std::string, torch::Tensor>>& weights, WeightDtype dtype);

}  // namespace dqe
