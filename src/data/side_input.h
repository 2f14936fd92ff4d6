// Side inputs: numbers computed from a record beside the text (lexical match features, a log's
// features, attributes, an image vector), each read by a side head of the model.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "dqe/jsonl_reader.h"

namespace dqe {

// A side input: numbers computed from a record, beside the text, with what they were fitted
// on. Its name names its batch tensor, its head's weights ("lexical.*") and its files.
class SideInput {
 public:
  virtual ~SideInput() = default;
  virtual std::string name() const = 0;
  virtual int64_t dim() const = 0;
  virtual std::vector<float> features(const Record& record) const = 0;
  // Writes what it was fitted with into a checkpoint directory.
  virtual void save(const std::string& dir) const = 0;
  // Whether the vector's last number is 1 when the line has this input and 0 when it lacks it
  // (data/log_inputs.h); the batch then also holds that column as "<name>.present" (kPresenceSuffix), [batch, 1].
  virtual bool has_presence() const { return false; }
};

// The side inputs a model reads beside the text, by name, with their widths.
using SideInputDims = std::vector<std::pair<std::string, int64_t>>;
// A batch's "<name>.present" tensor, [batch, 1], is 1 on the lines that have side input
// <name> and 0 on those that lack it; the model zeroes the input's encoding where it is 0.
constexpr const char* kPresenceSuffix = ".present";

}  // namespace dqe
