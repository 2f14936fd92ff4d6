#include "deploy/quantize.h"

#include "dqe/errors.h"
#include "model/int8.h"

namespace dqe {

WeightDtype parse_weight_dtype(const std::string& name) {
  if (name == "fp32") return WeightDtype::kFp32;
  if (name == "bf16") return WeightDtype::kBf16;
  if (name == "int8") return WeightDtype::kInt8;
  throw ConfigError("--dtype must be fp32, bf16 or int8, got " + name);
}

std::string weight_dtype_name(WeightDtype dtype) {
  switch (dtype) {
    case WeightDtype::kBf16: return "bf16";
    case WeightDtype::kInt8: return "int8";
    default: return "fp32";
  }
}

std::vector<std::pair<std::string, torch::Tensor>> convert_weights(
    const std::vector<std::pair<std::string, torch::Tensor>>& weights, WeightDtype dtype) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& [name, t] : weights) {
    const torch::Tensor c = t.detach().to(torch::kCPU);
    if (dtype == WeightDtype::kBf16 && c.is_floating_point()) {
      out.emplace_back(name, c.to(torch::kBFloat16));
    } else if (dtype == WeightDtype::kInt8 && int8_quantizable(name, c)) {
      auto [q, scale] = quantize_rows_int8(c);
      out.emplace_back(name, q);
      out.emplace_back(name + kScaleSuffix, scale);
    } else {
      out.emplace_back(name, c.is_floating_point() ? c.to(torch::kFloat32) : c);
    }
  }
  return out;
}

}  // namespace dqe
