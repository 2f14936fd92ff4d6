// int8 weights (dqe's own layout): the 2-D weights of the encoder's Linears, the pooler and the
// word embeddings stored as int8 with one float32 scale per output row ("X.weight" I8 beside
// "X.weight_scale" F32 [rows]), symmetric (scale = max |row| / 127). Loading dequantizes them
// (dequantize_weights), so that every command reads such a file like any other; for inference
// the encoder's Linears then run LibTorch's int8 kernels on the stored int8 weights
// (attach_int8_kernels, onednn), and training computes in float32. Writing them is
// deploy/quantize.h's.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>

#include <torch/torch.h>

namespace dqe {

struct BertModelImpl;

// A Linear's int8 twin, for inference: the weight as int8 with one scale per output row,
// packed once for LibTorch's quantized engine, and run by its dynamic int8 linear (the input
// quantized per call, an int8 matmul, a float32 output). The float Linear beside it stays, for
// training and for passes that need gradients.
class Int8Linear {
 public:
  Int8Linear(const torch::Tensor& int8_weight, const torch::Tensor& scales, const torch::Tensor& bias);
  torch::Tensor forward(const torch::Tensor& x) const;

 private:
  struct Packed;
  std::shared_ptr<const Packed> packed_;
};

// The quantized engine Int8Linear runs on: onednn where this LibTorch has it (x86), else
// none (""), and int8 weights are then dequantized and run in float32. Selects it.
std::string select_int8_engine();

// The suffix of an int8 weight's scales: "bert.encoder.layer.0.output.dense.weight_scale".
constexpr const char* kScaleSuffix = "_scale";

// Whether int8 stores this tensor quantized: a 2-D ".weight" of the encoder's layers, the
// pooler or the word embeddings (the classifier, biases and LayerNorms stay float32).
bool int8_quantizable(const std::string& name, const torch::Tensor& tensor);

// Per-row symmetric int8 of a 2-D float tensor: the int8 values and the float32 scales.
std::pair<torch::Tensor, torch::Tensor> quantize_rows_int8(const torch::Tensor& weight);

// The int8 weights of a model file (before dequantize_weights) with their scales: each integer
// "X.weight" that has an "X.weight_scale", and that scale.
std::map<std::string, torch::Tensor> int8_entries(const std::map<std::string, torch::Tensor>& tensors);

// Int8 twins beside the encoder's Linears whose weights `int8` (as int8_entries gives them)
// holds, so that inference runs LibTorch's int8 kernels; call it after the float weights (and
// biases) are loaded. Returns how many Linears got one: 0 when there is none or this build has
// no quantized engine (they then run dequantized, in float32).
int64_t attach_int8_kernels(BertModelImpl& bert, const std::map<std::string, torch::Tensor>& int8);

// Float32 tensors again: each integer "X.weight" that has an "X.weight_scale" multiplied by
// its scales (the scales removed); other tensors untouched. Throws ModelError naming origin
// for scales without their weight or of the wrong shape.
std::map<std::string, torch::Tensor> dequantize_weights(std::map<std::string, torch::Tensor> tensors,
                                                        const std::string& origin);

}  // namespace dqe
