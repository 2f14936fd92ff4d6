// safetensors I/O: an 8-byte little-endian header length, a JSON header mapping names to
// {dtype, shape, data_offsets}, then raw little-endian data. The reader checks everything
// that could crash or exhaust memory before touching the data.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include <torch/torch.h>

namespace dqe {

// Tensors by name, converted to float32 (floating dtypes) or int64 (integer dtypes).
// Throws ModelError naming the file (and the tensor) on any inconsistency, IoError when it
// cannot be opened or is not a regular file (a directory, a FIFO).
std::map<std::string, torch::Tensor> load_safetensors(const std::string& path);

// Writes tensors (any device) in name order, atomically (write_file_atomic): bfloat16 and int8
// as they are, other floating types as float32, other integers as int64.
void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata = {{"format", "pt"}});

}  // namespace dqe
