// Smaller model files. bf16: every floating tensor stored in bfloat16 (half the file). int8:
// the 2-D weights of the encoder's Linears, the pooler and the word embeddings stored as int8
// with one float32 scale per output row ("X.weight" I8 beside "X.weight_scale" F32 [rows]),
// symmetric (scale = max |row| / 127), the rest as float32. Loading dequantizes
// (dequantize_weights, called by load_model), so that every command reads these files like any
// other; for inference (eval, score, export's dev check) the encoder's Linears then run
// LibTorch's int8 kernels on the stored int8 weights (attach_int8_kernels, onednn), and
// training computes in float32.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include <torch/torch.h>

#include "model/model.h"

namespace dqe {

enum class WeightDtype { kFp32, kBf16, kInt8 };

// "fp32", "bf16" or "int8"; throws ConfigError naming --dtype otherwise.
WeightDtype parse_weight_dtype(const std::string& name);
std::string weight_dtype_name(WeightDtype dtype);

// The suffix of an int8 weight's scales: "bert.encoder.layer.0.output.dense.weight_scale".
constexpr const char* kScaleSuffix = "_scale";

// Whether int8 stores this tensor quantized: a 2-D ".weight" of the encoder's layers, the
// pooler or the word embeddings (the classifier, biases and LayerNorms stay float32).
bool int8_quantizable(const std::string& name, const torch::Tensor& tensor);

// Per-row symmetric int8 of a 2-D float tensor: the int8 values and the float32 scales.
std::pair<torch::Tensor, torch::Tensor> quantize_rows_int8(const torch::Tensor& weight);

// The tensors as they are stored in the given dtype (float32 in, for save_safetensors).
std::vector<std::pair<std::string, torch::Tensor>> convert_weights(
    const std::vector<std::pair<std::string, torch::Tensor>>& weights, WeightDtype dtype);

// The int8 weights of a model file (before dequantize_weights) with their scales: each integer
// "X.weight" that has an "X.weight_scale", and that scale.
std::map<std::string, torch::Tensor> int8_entries(const std::map<std::string, torch::Tensor>& tensors);

// Int8 twins (model/model.h's Int8Linear) beside the encoder's Linears whose weights `int8` (as
// int8_entries gives them) holds, so that inference runs LibTorch's int8 kernels; call it
// after the float weights (and biases) are loaded. Returns how many Linears got one: 0 when
// there is none or this build has no quantized engine (they then run dequantized, in float32).
int64_t attach_int8_kernels(SequenceModel& model, const std::map<std::string, torch::Tensor>& int8);

// Float32 tensors again: each integer "X.weight" that has an "X.weight_scale" multiplied by
// its scales (the scales removed); other tensors untouched. Throws ModelError naming origin
// for scales without their weight or of the wrong shape.
std::map<std::string, torch::Tensor> dequantize_weights(std::map<std::string, torch::Tensor> tensors,
                                                        const std::string& origin);

}  // namespace dqe
