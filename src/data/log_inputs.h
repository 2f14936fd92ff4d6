// Side inputs from a search log beside the text: named numbers ("features": click-through
// rate, price, rating, BM25 ...), named strings ("attributes": category, brand ...) and an
// image vector from any image encoder. Each is fitted on the training records and saved with
// the model (features_stats.json, attributes_vocab.json, image_input.json); each turns a
// record into a vector whose last number says whether the line had that input at all, so
// that the model (model.h, Fusion) can leave out what a line lacks.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/featurizer.h"
#include "dqe/jsonl_reader.h"
#include "io/side_fields.h"

namespace dqe {

// The transform of one named number, fitted on its training values:
// (clip(log1p?(x), lo, hi) - mean) / std.
struct FeatureTransform {
  std::string name;
  // Heavy-tailed non-negative values (all >= 0, skewness > kLogSkewness) are taken as log1p.
  bool log1p = false;
  // The 1% and 99% quantiles of the (log1p'd) training values (nearest rank).
  double lo = 0, hi = 0;
  // Mean and standard deviation of the clipped values (std 1 when they are constant).
  double mean = 0, std = 1;

  static constexpr double kLogSkewness = 1.0;
  static FeatureTransform fit(std::string name, std::vector<double> values);
  double apply(double x) const;
};

// The named numbers: for N features, N transformed values (0 where absent), N indicators
// (1 present, 0 absent: an absent feature is masked, never a real 0) and the line's
// presence (any feature present). Names unseen in training are ignored and counted.
class FeaturesInput : public SideInput {
 public:
  static constexpr const char* kName = "features";
  static constexpr const char* kFile = "features_stats.json";
  explicit FeaturesInput(std::vector<FeatureTransform> transforms);
  // Null when no training record has a feature.
  static std::shared_ptr<const FeaturesInput> fit(const std::vector<Record>& train);
  static std::shared_ptr<const FeaturesInput> load(const std::string& dir);

  std::string name() const override { return kName; }
  int64_t dim() const override { return 2 * static_cast<int64_t>(transforms_.size()) + 1; }
  std::vector<float> features(const Record& record) const override;
  void save(const std::string& dir) const override;
  bool has_presence() const override { return true; }
  nlohmann::ordered_json to_json() const;
  const std::vector<FeatureTransform>& transforms() const { return transforms_; }
  // Feature names seen while encoding that training did not have, with how many lines had each:
  // the first kUnseenNamesKept distinct names, so that a log of ever-new names grows neither
  // memory nor the summary line; unseen_other() counts the lines' mentions of the rest.
  static constexpr size_t kUnseenNamesKept = 20;
  std::map<std::string, int64_t> unseen() const;
  int64_t unseen_other() const;

 private:
  std::vector<FeatureTransform> transforms_;
  std::map<std::string, size_t> index_;
  mutable std::mutex unseen_mutex_;
  mutable std::map<std::string, int64_t> unseen_;
  mutable int64_t unseen_other_ = 0;
};

// The named strings: per attribute a one-hot over [out-of-vocabulary, vocabulary...] (all
// zero when the line lacks the attribute), then the line's presence. A Linear over it is an
// embedding per value, summed over the attributes. The vocabulary of an attribute is its
// training values seen at least kMinCount times, most frequent first, at most kMaxValues;
// rarer values train the out-of-vocabulary row that unseen values use.
class AttributesInput : public SideInput {
 public:
  static constexpr const char* kName = "attributes";
  static constexpr const char* kFile = "attributes_vocab.json";
  static constexpr int64_t kMinCount = 2;
  static constexpr size_t kMaxValues = 1000;
  using Vocabularies = std::vector<std::pair<std::string, std::vector<std::string>>>;
  explicit AttributesInput(Vocabularies vocabularies);
  // Null when no training record has an attribute.
  static std::shared_ptr<const AttributesInput> fit(const std::vector<Record>& train);
  static std::shared_ptr<const AttributesInput> load(const std::string& dir);

  std::string name() const override { return kName; }
  int64_t dim() const override { return dim_; }
  std::vector<float> features(const Record& record) const override;
  void save(const std::string& dir) const override;
  bool has_presence() const override { return true; }
  nlohmann::ordered_json to_json() const;
  const Vocabularies& vocabularies() const { return vocabularies_; }

 private:
  Vocabularies vocabularies_;
  // Per attribute: its offset in the vector and its value -> slot (1-based; 0 is the OOV slot).
  std::map<std::string, std::pair<int64_t, std::map<std::string, int64_t>>> slots_;
  int64_t dim_ = 1;
};

// The image vector as given (zeros when the line has none), then the line's presence.
class ImageInput : public SideInput {
 public:
  static constexpr const char* kName = "image";
  static constexpr const char* kFile = "image_input.json";
  explicit ImageInput(int64_t image_dim) : image_dim_(image_dim) {}
  // Null when no training record has an image vector.
  static std::shared_ptr<const ImageInput> fit(const std::vector<Record>& train);
  static std::shared_ptr<const ImageInput> load(const std::string& dir);

  std::string name() const override { return kName; }
  int64_t dim() const override { return image_dim_ + 1; }
  std::vector<float> features(const Record& record) const override;
  void save(const std::string& dir) const override;
  bool has_presence() const override { return true; }
  int64_t image_dim() const { return image_dim_; }

 private:
  int64_t image_dim_;
};

// The log side inputs fitted on the training records, in the order features, attributes,
// image (those no training record has are left out).
std::vector<std::shared_ptr<const SideInput>> fit_log_inputs(const std::vector<Record>& train);
// Those saved in a model directory, in the same order.
std::vector<std::shared_ptr<const SideInput>> load_log_inputs(const std::string& dir);
// Whether a model directory holds any of them.
bool has_log_inputs(const std::string& dir);
// Whether any record has a side field.
bool has_side_fields(const std::vector<Record>& records);
// fields with the side fields that inputs lack cleared ("": not read) and image_dim set.
FieldMap fields_for(FieldMap fields, const std::vector<std::shared_ptr<const SideInput>>& inputs);
// "log inputs: features (ctr log1p, price), attributes (brand: 12 values), image (dim 16)", or "".
std::string describe_log_inputs(const std::vector<std::shared_ptr<const SideInput>>& inputs);
// "feature names unseen in training, ignored: a (3 lines), b (1 line)", or "" when none; past
// FeaturesInput::kUnseenNamesKept names, "... and other names 7 times".
std::string unseen_feature_summary(const std::vector<std::shared_ptr<const SideInput>>& inputs);

}  // namespace dqe
