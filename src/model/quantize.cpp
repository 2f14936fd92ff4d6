#include "model/quantize.h"

#include "dqe/errors.h"

namespace dqe {
namespace {

bool starts_with(const std::string& s, const std::string& prefix) { return s.compare(0, prefix.size(), prefix) == 0; }
bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

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

bool int8_quantizable(const std::string& name, const torch::Tensor& tensor) {
  if (tensor.dim() != 2 || !tensor.is_floating_point() || !ends_with(name, ".weight")) return false;
  return starts_with(name, "bert.encoder.layer.") || starts_with(name, "bert.pooler.") ||
         name == "bert.embeddings.word_embeddings.weight";
}

std::pair<torch::Tensor, torch::Tensor> quantize_rows_int8(const torch::Tensor& weight) {
  torch::NoGradGuard no_grad;
  const torch::Tensor w = weight.detach().to(torch::kCPU, torch::kFloat32);
  // An all-zero row (BERT's padding embedding) keeps scale 1 so that it divides by nothing.
  torch::Tensor scale = w.abs().amax(1) / 127.0;
  scale = torch::where(scale > 0, scale, torch::ones_like(scale));
  torch::Tensor q = torch::round(w / scale.unsqueeze(1)).clamp(-127, 127).to(torch::kInt8);
  return {q, scale};
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

std::map<std::string, torch::Tensor> int8_entries(const std::map<std::string, torch::Tensor>& tensors) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& [name, t] : tensors) {
    if (!ends_with(name, kScaleSuffix)) continue;
    const auto w = tensors.find(name.substr(0, name.size() - std::string(kScaleSuffix).size()));
    if (w == tensors.end() || w->second.is_floating_point()) continue;  // dequantize_weights says why
    out.emplace(name, t);
    out.emplace(w->first, w->second);
  }
  return out;
}

int64_t attach_int8_kernels(SequenceModel& model, const std::map<std::string, torch::Tensor>& int8) {
  if (int8.empty() || select_int8_engine().empty()) return 0;
  int64_t attached = 0;
  for (auto& slot : model->bert->linear_slots()) {
    const auto w = int8.find(slot.name + ".weight");
    const auto s = int8.find(slot.name + ".weight" + kScaleSuffix);
    if (w == int8.end() || s == int8.end() || w->second.sizes() != slot.linear->weight.sizes()) continue;
    *slot.int8 = std::make_shared<const Int8Linear>(w->second, s->second, slot.linear->bias.detach());
    ++attached;
  }
  return attached;
}

std::map<std::string, torch::Tensor> dequantize_weights(std::map<std::string, torch::Tensor> tensors,
                                                        const std::string& origin) {
  std::vector<std::string> scales;
  for (const auto& [name, t] : tensors)
    if (ends_with(name, kScaleSuffix)) scales.push_back(name);
  for (const auto& scale_name : scales) {
    const std::string weight_name = scale_name.substr(0, scale_name.size() - std::string(kScaleSuffix).size());
    const auto w = tensors.find(weight_name);
    if (w == tensors.end() || w->second.is_floating_point())
      throw ModelError(origin + ": \"" + scale_name + "\" scales no int8 weight \"" + weight_name + "\"");
    const torch::Tensor& scale = tensors.at(scale_name);
    if (w->second.dim() != 2 || scale.dim() != 1 || scale.size(0) != w->second.size(0))
      throw ModelError(origin + ": \"" + scale_name + "\" must hold one scale per row of \"" + weight_name + "\"");
    w->second = w->second.to(torch::kFloat32) * scale.to(torch::kFloat32).unsqueeze(1);
    tensors.erase(scale_name);
  }
  return tensors;
}

}  // namespace dqe
