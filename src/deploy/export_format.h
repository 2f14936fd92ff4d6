// The formats `dqe export --format` writes, one class each: what a format refuses, how it
// changes the stored tensors, and what it writes beside the model's files. "dqe" is dqe's own
// checkpoint; "hf" is what Hugging Face's BertForSequenceClassification reproduces exactly.
// A new format is a class in export_format.cpp and one line in export_formats().
#pragma once

#include <map>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "deploy/quantize.h"
#include "model/model_dir.h"

namespace dqe {

class ExportFormat {
 public:
  virtual ~ExportFormat() = default;
  // --format's name.
  virtual std::string name() const = 0;
  // Why the format cannot store weights of this dtype, or "".
  virtual std::string refuses_dtype(WeightDtype dtype) const { return ""; }
  // An adapter is folded into its base (the format holds plain models only).
  virtual bool merges_adapters() const { return false; }
  // Why the format cannot reproduce the loaded model ("Hugging Face cannot reproduce DIR: ..."), or "".
  virtual std::string incompatibility(const LoadedModel& model) const { return ""; }
  // The stored tensors differ from the model's own (so the model is rebuilt from them).
  virtual bool changes_tensors() const { return false; }
  // Changes the tensors as stored and the spec with them (hf: the label scaling folded into
  // the head, the spec's scaling then the identity).
  virtual void transform(ModelSpec& spec, std::map<std::string, torch::Tensor>& tensors) const {}
  // Writes what the format needs beside the model's files in dir (hf: its config.json).
  virtual void write_extra(const std::string& dir, const ModelSpec& spec, WeightDtype dtype) const {}
};

// Every format, in --format's order.
const std::vector<const ExportFormat*>& export_formats();
// The format of that name; ConfigError listing the names otherwise.
const ExportFormat& export_format(const std::string& name);

}  // namespace dqe
