// The export formats' registry and what each refuses; what they write is checked end to end in
// tests/integration/export_test.cpp (Hugging Face's own logits on the hf output).
#include "deploy/export_format.h"

#include <gtest/gtest.h>

#include "dqe/errors.h"
#include "dqe/exporter.h"

namespace dqe {
namespace {

TEST(ExportFormats, NamedByFormatWithTheirRefusals) {
  std::vector<std::string> names;
  for (const ExportFormat* f : export_formats()) names.push_back(f->name());
  EXPECT_EQ(names, (std::vector<std::string>{"dqe", "hf"}));
  try {
    export_format("onnx");
    FAIL() << "an unknown format was accepted";
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()), "--format must be dqe or hf, got onnx");
  }
  const ExportFormat& dqe = export_format("dqe");
  const ExportFormat& hf = export_format("hf");
  for (WeightDtype d : {WeightDtype::kFp32, WeightDtype::kBf16, WeightDtype::kInt8})
    EXPECT_EQ(dqe.refuses_dtype(d), "") << weight_dtype_name(d);
  EXPECT_EQ(hf.refuses_dtype(WeightDtype::kFp32), "");
  EXPECT_EQ(hf.refuses_dtype(WeightDtype::kBf16), "");
  EXPECT_NE(hf.refuses_dtype(WeightDtype::kInt8).find("Hugging Face does not read"), std::string::npos);
  // Hugging Face reads plain models with the label scaling in the head; dqe keeps adapters.
  EXPECT_TRUE(hf.merges_adapters());
  EXPECT_TRUE(hf.changes_tensors());
  EXPECT_FALSE(dqe.merges_adapters());
  EXPECT_FALSE(dqe.changes_tensors());
}

// The choices of a config's knob of that name.
struct ChoicesOf {
  std::string name;
  std::vector<std::string> choices;
  template <typename T>
  void operator()(const Knob& knob, const T&) {
    if (knob.name == name) choices = knob.choices;
  }
};

// export --format offers exactly the registered formats.
TEST(ExportFormats, TheFormatKnobOffersEachOne) {
  ChoicesOf find{"format", {}};
  const ExportConfig config;
  ExportConfig::visit_knobs(config, find);
  std::vector<std::string> names;
  for (const ExportFormat* f : export_formats()) names.push_back(f->name());
  EXPECT_EQ(find.choices, names);
}

}  // namespace
}  // namespace dqe
