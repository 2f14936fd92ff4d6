#include "model/int8.h"

#include <algorithm>

#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/native/quantized/PackedParams.h>

#include "dqe/errors.h"
#include "model/bert.h"

namespace dqe {
namespace {

bool starts_with(const std::string& s, const std::string& prefix) { return s.compare(0, prefix.size(), prefix) == 0; }
bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

struct Int8Linear::Packed {
  c10::intrusive_ptr<LinearPackedParamsBase> params;
  int64_t in_features = 0;
};

Int8Linear::Int8Linear(const torch::Tensor& int8_weight, const torch::Tensor& scales, const torch::Tensor& bias) {
  auto packed = std::make_shared<Packed>();
  packed->in_features = int8_weight.size(1);
  // Symmetric per-row int8 (model/quantize.h): zero points 0, the rows are axis 0.
  const torch::Tensor q = at::_make_per_channel_quantized_tensor(
      int8_weight.to(torch::kChar).contiguous(), scales.to(torch::kDouble).contiguous(),
      torch::zeros({int8_weight.size(0)}, torch::kLong), 0);
  static auto prepack =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("quantized::linear_prepack", "")
          .typed<c10::intrusive_ptr<LinearPackedParamsBase>(at::Tensor, c10::optional<at::Tensor>)>();
  packed->params = prepack.call(q, bias.defined() ? c10::optional<at::Tensor>(bias.to(torch::kFloat)) : c10::nullopt);
  packed_ = std::move(packed);
}

torch::Tensor Int8Linear::forward(const torch::Tensor& x) const {
  // The kernel takes float32 rows; under bf16 autocast the input is bf16.
  std::vector<int64_t> shape = x.sizes().vec();
  const torch::Tensor rows = x.to(torch::kFloat).reshape({-1, packed_->in_features}).contiguous();
  torch::Tensor y = packed_->params->apply_dynamic(rows, /*reduce_range=*/false);
  shape.back() = y.size(1);
  return y.view(shape);
}

std::string select_int8_engine() {
  const auto& engines = at::globalContext().supportedQEngines();
  if (std::find(engines.begin(), engines.end(), at::QEngine::ONEDNN) == engines.end()) return "";
  at::globalContext().setQEngine(at::QEngine::ONEDNN);
  return "onednn";
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

int64_t attach_int8_kernels(BertModelImpl& bert, const std::map<std::string, torch::Tensor>& int8) {
  if (int8.empty() || select_int8_engine().empty()) return 0;
  int64_t attached = 0;
  for (auto& slot : bert.linear_slots()) {
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
