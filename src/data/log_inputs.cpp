#include "data/log_inputs.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <numeric>

#include "dqe/errors.h"
#include "io/json_file.h"
#include "io/output.h"

namespace dqe {
namespace fs = std::filesystem;

namespace {

std::string in_quotes(const std::string& s) { return "\"" + s + "\""; }

// Nearest-rank quantile of sorted values: the value at index round(q * (n - 1)).
double quantile(const std::vector<double>& sorted, double q) {
  const auto at = static_cast<size_t>(std::llround(q * static_cast<double>(sorted.size() - 1)));
  return sorted[at];
}

nlohmann::json read_input_file(const std::string& dir, const char* file, const char* what) {
  const std::string path = (fs::path(dir) / file).string();
  if (!fs::exists(path)) throw ModelError(dir + ": the model reads " + what + " but " + file + " is missing");
  return read_json_file(path);
}

}  // namespace

FeatureTransform FeatureTransform::fit(std::string name, std::vector<double> values) {
  FeatureTransform t;
  t.name = std::move(name);
  const auto n = static_cast<double>(values.size());
  const double mean0 = std::accumulate(values.begin(), values.end(), 0.0) / n;
  double m2 = 0, m3 = 0;
  for (double v : values) {
    m2 += (v - mean0) * (v - mean0);
    m3 += (v - mean0) * (v - mean0) * (v - mean0);
  }
  m2 /= n;
  m3 /= n;
  const bool non_negative = std::all_of(values.begin(), values.end(), [](double v) { return v >= 0; });
  t.log1p = non_negative && m2 > 0 && m3 / std::pow(m2, 1.5) > kLogSkewness;
  if (t.log1p)
    for (double& v : values) v = std::log1p(v);
  std::sort(values.begin(), values.end());
  t.lo = quantile(values, 0.01);
  t.hi = quantile(values, 0.99);
  double sum = 0, sq = 0;
  for (double v : values) {
    const double c = std::clamp(v, t.lo, t.hi);
    sum += c;
    sq += c * c;
  }
  t.mean = sum / n;
  const double var = std::max(0.0, sq / n - t.mean * t.mean);
  t.std = var > 1e-12 ? std::sqrt(var) : 1.0;
  return t;
}

double FeatureTransform::apply(double x) const {
  // log1p of a negative value below -1 (unseen in training, which had none) is clipped first.
  if (log1p) x = std::log1p(std::max(x, 0.0));
  return (std::clamp(x, lo, hi) - mean) / std;
}

FeaturesInput::FeaturesInput(std::vector<FeatureTransform> transforms) : transforms_(std::move(transforms)) {
  for (size_t i = 0; i < transforms_.size(); ++i) index_[transforms_[i].name] = i;
}

std::shared_ptr<const FeaturesInput> FeaturesInput::fit(const std::vector<Record>& train) {
  std::map<std::string, std::vector<double>> values;  // sorted by name: a stable order
  for (const auto& r : train)
    for (const auto& [name, v] : r.features) values[name].push_back(v);
  if (values.empty()) return nullptr;
  std::vector<FeatureTransform> transforms;
  for (auto& [name, v] : values) transforms.push_back(FeatureTransform::fit(name, std::move(v)));
  return std::make_shared<const FeaturesInput>(std::move(transforms));
}

nlohmann::ordered_json FeaturesInput::to_json() const {
  nlohmann::ordered_json features = nlohmann::ordered_json::array();
  for (const auto& t : transforms_)
    features.push_back({{"name", t.name}, {"log1p", t.log1p}, {"lo", t.lo}, {"hi", t.hi}, {"mean", t.mean}, {"std", t.std}});
  return {{"features", features}};
}

void FeaturesInput::save(const std::string& dir) const {
  write_file_atomic((fs::path(dir) / kFile).string(), to_json().dump(2) + "\n");
}

std::shared_ptr<const FeaturesInput> FeaturesInput::load(const std::string& dir) {
  const nlohmann::json j = read_input_file(dir, kFile, "features");
  const std::string origin = (fs::path(dir) / kFile).string();
  std::vector<FeatureTransform> transforms;
  try {
    for (const auto& f : j.at("features")) {
      FeatureTransform t;
      t.name = f.at("name").get<std::string>();
      t.log1p = f.at("log1p").get<bool>();
      t.lo = f.at("lo").get<double>();
      t.hi = f.at("hi").get<double>();
      t.mean = f.at("mean").get<double>();
      t.std = f.at("std").get<double>();
      if (!(t.std > 0) || !(t.lo <= t.hi)) throw ModelError(origin + ": feature " + in_quotes(t.name) + " has std <= 0 or lo > hi");
      transforms.push_back(std::move(t));
    }
  } catch (const nlohmann::json::exception&) {
    throw ModelError(origin + ": not feature statistics (needs features: [{name, log1p, lo, hi, mean, std}])");
  }
  if (transforms.empty()) throw ModelError(origin + ": no features");
  return std::make_shared<const FeaturesInput>(std::move(transforms));
}

std::vector<float> FeaturesInput::features(const Record& record) const {
  const size_t n = transforms_.size();
  std::vector<float> out(2 * n + 1, 0.0f);
  bool any = false;
  for (const auto& [name, x] : record.features) {
    const auto it = index_.find(name);
    if (it == index_.end()) {
      std::lock_guard<std::mutex> lock(unseen_mutex_);
      if (auto seen = unseen_.find(name); seen != unseen_.end())
        ++seen->second;
      else if (unseen_.size() < kUnseenNamesKept)
        unseen_.emplace(name, 1);
      else
        ++unseen_other_;
      continue;
    }
    out[it->second] = static_cast<float>(transforms_[it->second].apply(x));
    out[n + it->second] = 1.0f;
    any = true;
  }
  out[2 * n] = any ? 1.0f : 0.0f;
  return out;
}

std::map<std::string, int64_t> FeaturesInput::unseen() const {
  std::lock_guard<std::mutex> lock(unseen_mutex_);
  return unseen_;
}

int64_t FeaturesInput::unseen_other() const {
  std::lock_guard<std::mutex> lock(unseen_mutex_);
  return unseen_other_;
}

AttributesInput::AttributesInput(Vocabularies vocabularies) : vocabularies_(std::move(vocabularies)) {
  int64_t offset = 0;
  for (const auto& [name, values] : vocabularies_) {
    auto& [at, slots] = slots_[name];
    at = offset;
    for (size_t i = 0; i < values.size(); ++i) slots[values[i]] = static_cast<int64_t>(i) + 1;
    offset += 1 + static_cast<int64_t>(values.size());
  }
  dim_ = offset + 1;
}

std::shared_ptr<const AttributesInput> AttributesInput::fit(const std::vector<Record>& train) {
  std::map<std::string, std::map<std::string, int64_t>> counts;
  for (const auto& r : train)
    for (const auto& [name, value] : r.attributes) ++counts[name][value];
  if (counts.empty()) return nullptr;
  Vocabularies vocabularies;
  for (const auto& [name, by_value] : counts) {
    std::vector<std::pair<std::string, int64_t>> kept;
    for (const auto& [value, count] : by_value)
      if (count >= kMinCount) kept.emplace_back(value, count);
    // Most frequent first, ties by value: the same vocabulary from the same data.
    std::stable_sort(kept.begin(), kept.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
    if (kept.size() > kMaxValues) kept.resize(kMaxValues);
    std::vector<std::string> values;
    for (auto& [value, count] : kept) values.push_back(value);
    vocabularies.emplace_back(name, std::move(values));
  }
  return std::make_shared<const AttributesInput>(std::move(vocabularies));
}

nlohmann::ordered_json AttributesInput::to_json() const {
  nlohmann::ordered_json attributes = nlohmann::ordered_json::array();
  for (const auto& [name, values] : vocabularies_) attributes.push_back({{"name", name}, {"values", values}});
  return {{"attributes", attributes}};
}

void AttributesInput::save(const std::string& dir) const {
  write_file_atomic((fs::path(dir) / kFile).string(), to_json().dump(2) + "\n");
}

std::shared_ptr<const AttributesInput> AttributesInput::load(const std::string& dir) {
  const nlohmann::json j = read_input_file(dir, kFile, "attributes");
  Vocabularies vocabularies;
  try {
    for (const auto& a : j.at("attributes"))
      vocabularies.emplace_back(a.at("name").get<std::string>(), a.at("values").get<std::vector<std::string>>());
  } catch (const nlohmann::json::exception&) {
    throw ModelError((fs::path(dir) / kFile).string() + ": not attribute vocabularies (needs attributes: [{name, values}])");
  }
  if (vocabularies.empty()) throw ModelError((fs::path(dir) / kFile).string() + ": no attributes");
  return std::make_shared<const AttributesInput>(std::move(vocabularies));
}

std::vector<float> AttributesInput::features(const Record& record) const {
  std::vector<float> out(static_cast<size_t>(dim_), 0.0f);
  bool any = false;
  for (const auto& [name, value] : record.attributes) {
    const auto it = slots_.find(name);
    if (it == slots_.end()) continue;  // an attribute training did not have
    const auto& [offset, slots] = it->second;
    const auto slot = slots.find(value);
    out[static_cast<size_t>(offset + (slot == slots.end() ? 0 : slot->second))] = 1.0f;
    any = true;
  }
  out[static_cast<size_t>(dim_ - 1)] = any ? 1.0f : 0.0f;
  return out;
}

std::shared_ptr<const ImageInput> ImageInput::fit(const std::vector<Record>& train) {
  for (const auto& r : train)
    if (!r.image.empty()) return std::make_shared<const ImageInput>(static_cast<int64_t>(r.image.size()));
  return nullptr;
}

void ImageInput::save(const std::string& dir) const {
  write_file_atomic((fs::path(dir) / kFile).string(), nlohmann::ordered_json{{"image_dim", image_dim_}}.dump(2) + "\n");
}

std::shared_ptr<const ImageInput> ImageInput::load(const std::string& dir) {
  const nlohmann::json j = read_input_file(dir, kFile, "image vectors");
  const auto it = j.find("image_dim");
  if (it == j.end() || !it->is_number_integer() || it->get<int64_t>() < 1)
    throw ModelError((fs::path(dir) / kFile).string() + ": needs image_dim >= 1");
  return std::make_shared<const ImageInput>(it->get<int64_t>());
}

std::vector<float> ImageInput::features(const Record& record) const {
  std::vector<float> out(static_cast<size_t>(image_dim_ + 1), 0.0f);
  if (record.image.empty()) return out;
  // The reader checks the length against the model's dimension; a record built elsewhere is checked here.
  if (static_cast<int64_t>(record.image.size()) != image_dim_)
    throw DataError("line " + std::to_string(record.line) + ": image vector of " + std::to_string(record.image.size()) +
                    " numbers, the model's dimension is " + std::to_string(image_dim_));
  std::copy(record.image.begin(), record.image.end(), out.begin());
  out[static_cast<size_t>(image_dim_)] = 1.0f;
  return out;
}

std::vector<std::shared_ptr<const SideInput>> fit_log_inputs(const std::vector<Record>& train) {
  std::vector<std::shared_ptr<const SideInput>> out;
  if (auto f = FeaturesInput::fit(train)) out.push_back(f);
  if (auto a = AttributesInput::fit(train)) out.push_back(a);
  if (auto i = ImageInput::fit(train)) out.push_back(i);
  return out;
}

std::vector<std::shared_ptr<const SideInput>> load_log_inputs(const std::string& dir) {
  std::vector<std::shared_ptr<const SideInput>> out;
  if (fs::exists(fs::path(dir) / FeaturesInput::kFile)) out.push_back(FeaturesInput::load(dir));
  if (fs::exists(fs::path(dir) / AttributesInput::kFile)) out.push_back(AttributesInput::load(dir));
  if (fs::exists(fs::path(dir) / ImageInput::kFile)) out.push_back(ImageInput::load(dir));
  return out;
}

bool has_log_inputs(const std::string& dir) {
  for (const char* f : {FeaturesInput::kFile, AttributesInput::kFile, ImageInput::kFile})
    if (fs::exists(fs::path(dir) / f)) return true;
  return false;
}

bool has_side_fields(const std::vector<Record>& records) {
  return std::any_of(records.begin(), records.end(), [](const Record& r) {
    return !r.features.empty() || !r.attributes.empty() || !r.image.empty();
  });
}

FieldMap fields_for(FieldMap fields, const std::vector<std::shared_ptr<const SideInput>>& inputs) {
  auto has = [&](const std::string& name) {
    return std::any_of(inputs.begin(), inputs.end(), [&](const auto& i) { return i->name() == name; });
  };
  if (!has(FeaturesInput::kName)) fields.features.clear();
  if (!has(AttributesInput::kName)) fields.attributes.clear();
  fields.image_dim = 0;
  if (!has(ImageInput::kName)) fields.image.clear();
  for (const auto& i : inputs)
    if (auto image = std::dynamic_pointer_cast<const ImageInput>(i)) fields.image_dim = image->image_dim();
  return fields;
}

std::string describe_log_inputs(const std::vector<std::shared_ptr<const SideInput>>& inputs) {
  std::vector<std::string> parts;
  for (const auto& i : inputs) {
    std::string text;
    if (auto f = std::dynamic_pointer_cast<const FeaturesInput>(i)) {
      for (const auto& t : f->transforms()) text += (text.empty() ? "" : ", ") + t.name + (t.log1p ? " log1p" : "");
      parts.push_back("features (" + text + ")");
    } else if (auto a = std::dynamic_pointer_cast<const AttributesInput>(i)) {
      for (const auto& [name, values] : a->vocabularies())
        text += (text.empty() ? "" : ", ") + name + ": " + std::to_string(values.size()) + " values";
      parts.push_back("attributes (" + text + ")");
    } else if (auto m = std::dynamic_pointer_cast<const ImageInput>(i)) {
      parts.push_back("image (dim " + std::to_string(m->image_dim()) + ")");
    }
  }
  std::string out;
  for (const auto& p : parts) out += (out.empty() ? "log inputs: " : ", ") + p;
  return out;
}

std::string unseen_feature_summary(const std::vector<std::shared_ptr<const SideInput>>& inputs) {
  std::string out;
  for (const auto& i : inputs)
    if (auto f = std::dynamic_pointer_cast<const FeaturesInput>(i)) {
      for (const auto& [name, lines] : f->unseen())
        out += (out.empty() ? "" : ", ") + name + " (" + std::to_string(lines) + (lines == 1 ? " line)" : " lines)");
      if (const int64_t other = f->unseen_other(); other > 0)
        out += " and other names " + std::to_string(other) + (other == 1 ? " time" : " times");
    }
  return out.empty() ? "" : "feature names unseen in training, ignored: " + out;
}

}  // namespace dqe
