#include "infer/detect.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <cmath>
#include <limits>
#include <map>
#include <random>
#include <set>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "dqe/errors.h"
#include "io/safetensors.h"
#include "text/normalize.h"
#include "text/unicode.h"

namespace dqe {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
enum : size_t {
  kRepetition,
  kDensity,
  kInvisible,
  kMixedScript,
  kConfusables,
  kDistance,
  kUnknown,
  kLength,
  kInstability
};

// Words whose repetition says nothing (units and connectives of product titles, numbers).
bool is_content_word(const std::string& w) {
  static const std::set<std::string> kStop = {"a",  "an", "and", "for", "in",   "of", "on",  "or",
                                             "the", "to", "with", "x",  "ft",  "lb", "by",  "at"};
  if (kStop.count(w)) return false;
  bool alpha = false;
  for (unsigned char c : w) alpha |= std::isalpha(c) || c >= 0x80;
  return alpha;
}

std::vector<std::string> words_of(const std::string& text) {
  std::vector<std::string> out;
  detail::basic_tokenize(text, /*lower_case=*/true, [&](std::string_view w) {
    bool alnum = false;
    for (unsigned char c : w) alnum |= std::isalnum(c) || c >= 0x80;
    if (alnum) out.emplace_back(w);
  });
  return out;
}

}  // namespace

const std::array<const char*, kNumSignals>& signal_names() {
  static const std::array<const char*, kNumSignals> kNames = {
      "keyword_repetition", "keyword_density", "invisible_chars", "mixed_script", "confusables",
      "ood_distance",       "unknown_tokens",  "unusual_length",  "instability"};
  return kNames;
}

void text_signals(const Record& r, SignalValues& out) {
  std::set<std::string> query;
  for (auto& w : words_of(r.query))
    if (is_content_word(w)) query.insert(w);
  const std::vector<std::string> words = words_of(r.text);
  std::unordered_map<std::string, int64_t> counts;
  int64_t hits = 0;
  for (const auto& w : words)
    if (query.count(w)) {
      ++counts[w];
      ++hits;
    }
  int64_t excess = 0;
  for (const auto& [w, n] : counts) excess += n - 1;
  // Words back to back ("drill drill drill"), of any kind: stuffing of a single query word,
  // which a real title next to never has.
  for (size_t i = 1; i < words.size(); ++i) excess += words[i] == words[i - 1] ? 1 : 0;
  out[kRepetition] = static_cast<double>(excess);
  out[kDensity] = words.empty() ? 0.0 : static_cast<double>(hits) / static_cast<double>(words.size());
  const TextFindings q = analyse_text(r.query), t = analyse_text(r.text);
  out[kInvisible] = static_cast<double>(q.invisible + t.invisible);
  out[kMixedScript] = static_cast<double>(q.mixed_words + t.mixed_words);
  out[kConfusables] = static_cast<double>(q.lookalikes + t.lookalikes);
}

std::string undo_manipulation(const std::string& query, const std::string& text) {
  std::set<std::string> query_words;
  for (auto& w : words_of(normalize_text(query)))
    if (is_content_word(w)) query_words.insert(w);
  const std::string clean = normalize_text(text);
  // Drop whitespace-separated tokens whose words are all query words seen before.
  std::set<std::string> seen;
  std::string out;
  size_t i = 0;
  while (i < clean.size()) {
    while (i < clean.size() && clean[i] == ' ') ++i;
    size_t j = i;
    while (j < clean.size() && clean[j] != ' ') ++j;
    if (j == i) break;
    const std::string token = clean.substr(i, j - i);
    const std::vector<std::string> ws = words_of(token);
    bool repeat = !ws.empty();
    for (const auto& w : ws) repeat &= query_words.count(w) > 0 && seen.count(w) > 0;
    for (const auto& w : ws)
      if (query_words.count(w)) seen.insert(w);
    if (!repeat) out += (out.empty() ? "" : " ") + token;
    i = j;
  }
  return out;
}

Calibration calibrate(const std::vector<SignalValues>& lines, double fpr) {
  Calibration c;
  c.fpr = fpr;
  const size_t n = lines.size();
  std::array<std::vector<double>, kNumSignals> sorted;
  for (size_t s = 0; s < kNumSignals; ++s) {
    for (const auto& v : lines)
      if (std::isfinite(v[s])) sorted[s].push_back(v[s]);
    std::sort(sorted[s].begin(), sorted[s].end());
  }
  // At tail level q each signal lets at most floor(q * m) of its m values be above its threshold.
  auto thresholds_at = [&](double q) {
    SignalValues t;
    for (size_t s = 0; s < kNumSignals; ++s) {
      const auto& v = sorted[s];
      if (v.empty()) {
        t[s] = std::numeric_limits<double>::infinity();
        continue;
      }
      const size_t allowed = std::min(v.size(), static_cast<size_t>(std::floor(q * static_cast<double>(v.size()))));
      t[s] = allowed >= v.size() ? -std::numeric_limits<double>::infinity() : v[v.size() - 1 - allowed];
    }
    return t;
  };
  auto flagged = [&](const SignalValues& t) {
    size_t k = 0;
    for (const auto& v : lines) k += !suspect_reasons(v, t).empty();
    return k;
  };
  const double budget = fpr * static_cast<double>(n);
  double lo = 0, hi = fpr;
  c.thresholds = thresholds_at(0);
  if (n > 0 && static_cast<double>(flagged(thresholds_at(hi))) <= budget) lo = hi;
  else
    for (int it = 0; it < 40; ++it) {
      const double mid = (lo + hi) / 2;
      if (static_cast<double>(flagged(thresholds_at(mid))) <= budget) lo = mid;
      else hi = mid;
    }
  c.thresholds = thresholds_at(lo);
  c.achieved = n > 0 ? static_cast<double>(flagged(c.thresholds)) / static_cast<double>(n) : 0;
  return c;
}

std::vector<std::string> suspect_reasons(const SignalValues& values, const SignalValues& thresholds) {
  std::vector<std::string> out;
  for (size_t s = 0; s < kNumSignals; ++s)
    // The margin absorbs the rounding of a recomputation (other batches, other padding), so that
    // a calibration line at its threshold stays below it when scored again.
    if (std::isfinite(values[s]) && values[s] > thresholds[s] + 1e-6 * std::max(1.0, std::fabs(thresholds[s])))
      out.emplace_back(signal_names()[s]);
  return out;
}

void save_detection_stats(const std::string& dir, const DetectionStats& stats) {
  const int64_t n = static_cast<int64_t>(stats.dev.size());
  std::vector<double> flat;
  flat.reserve(static_cast<size_t>(n) * kNumSignals);
  for (const auto& v : stats.dev) flat.insert(flat.end(), v.begin(), v.end());
  torch::Tensor dev = torch::tensor(flat, torch::kFloat64).view({n, static_cast<int64_t>(kNumSignals)}).to(torch::kFloat32);
  nlohmann::ordered_json meta;
  meta["version"] = 1;
  meta["signals"] = signal_names();
  meta["median_log_tokens"] = stats.median_log_tokens;
  meta["fpr"] = stats.calibration.fpr;
  meta["achieved_dev_fpr"] = stats.calibration.achieved;
  nlohmann::ordered_json thresholds;
  for (size_t s = 0; s < kNumSignals; ++s)
    thresholds[signal_names()[s]] =
        std::isfinite(stats.calibration.thresholds[s]) ? nlohmann::json(stats.calibration.thresholds[s]) : nlohmann::json();
  meta["thresholds"] = thresholds;
  save_safetensors(dir + "/" + kDetectStatsFile,
                   {{"dev_signals", dev},
                    {"settings", torch::tensor({stats.median_log_tokens, stats.calibration.fpr}, torch::kFloat64).to(torch::kFloat32)},
                    {"mean", stats.mean.to(torch::kFloat32)}, {"precision", stats.precision.to(torch::kFloat32)}},
                   {{"format", "pt"}, {"dqe_detect", meta.dump()}});
}

std::optional<DetectionStats> load_detection_stats(const std::string& dir) {
  const std::string path = dir + "/" + kDetectStatsFile;
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return std::nullopt;
  auto tensors = load_safetensors(path);
  DetectionStats s;
  for (const char* name : {"dev_signals", "mean", "precision", "settings"})
    if (!tensors.count(name)) throw ModelError(path + ": no tensor \"" + std::string(name) + "\"");
  s.mean = tensors["mean"];
  s.precision = tensors["precision"];
  const torch::Tensor dev = tensors["dev_signals"].to(torch::kFloat64).contiguous();
  if (s.mean.dim() != 1 || s.precision.dim() != 2 || s.precision.size(0) != s.mean.size(0) ||
      s.precision.size(1) != s.mean.size(0) || dev.dim() != 2 || dev.size(1) != static_cast<int64_t>(kNumSignals))
    throw ModelError(path + ": tensors of unexpected shapes");
  const double* d = dev.data_ptr<double>();
  s.dev.resize(static_cast<size_t>(dev.size(0)));
  for (size_t i = 0; i < s.dev.size(); ++i)
    for (size_t k = 0; k < kNumSignals; ++k) s.dev[i][k] = d[i * kNumSignals + k];
  const torch::Tensor settings = tensors["settings"].to(torch::kFloat64).contiguous();
  if (settings.numel() != 2) throw ModelError(path + ": tensor \"settings\" should hold 2 numbers");
  s.median_log_tokens = settings[0].item<double>();
  s.calibration.fpr = settings[1].item<double>();
  if (!(s.calibration.fpr > 0 && s.calibration.fpr < 1)) throw ModelError(path + ": a false-positive rate outside (0, 1)");
  s.calibration = calibrate(s.dev, s.calibration.fpr);
  return s;
}

std::vector<Record> normalized_records(const std::vector<Record>& records) {
  std::vector<Record> out = records;
  for (auto& r : out) {
    r.query = normalize_text(r.query);
    r.text = normalize_text(r.text);
  }
  return out;
}

DetectionRun run_detection(const Predictor& predictor, const DetectionStats& stats, const std::vector<Record>& records,
                           int threads, bool normalize) {
  DetectionRun out;
  const std::vector<Record> scored = normalize ? normalized_records(records) : records;
  const ModelOutputs outputs = predictor.run(scored, threads, /*with_pooled=*/true);
  out.predictions = predictions_from_logits(outputs.logits, predictor.task());
  const torch::Tensor diff = outputs.pooled - stats.mean.to(outputs.pooled.dtype());
  const torch::Tensor distance = (diff.mm(stats.precision.to(diff.dtype())) * diff).sum(1).clamp_min(0).sqrt().contiguous();
  const float* dist = distance.data_ptr<float>();
  out.signals.resize(records.size());
  // Lines whose undone text differs are scored again.
  std::vector<Record> undone;
  std::vector<size_t> undone_rows;
  for (size_t i = 0; i < records.size(); ++i) {
    SignalValues& v = out.signals[i];
    text_signals(records[i], v);
    v[kDistance] = dist[i];
    const LineDiagnostics& d = outputs.diagnostics[i];
    v[kUnknown] = d.unknown_rate();
    v[kLength] = std::fabs(std::log(static_cast<double>(std::max<int64_t>(1, d.tokens))) - stats.median_log_tokens);
    v[kInstability] = 0;
    Record u = records[i];
    u.query = normalize_text(u.query);
    u.text = undo_manipulation(records[i].query, records[i].text);
    if (u.text != scored[i].text || u.query != scored[i].query) {
      undone.push_back(std::move(u));
      undone_rows.push_back(i);
    }
  }
  if (!undone.empty()) {
    const Predictions p = predictions_from_logits(predictor.run(undone, threads).logits, predictor.task());
    for (size_t k = 0; k < undone_rows.size(); ++k) {
      const size_t i = undone_rows[k];
      out.signals[i][kInstability] = out.predictions.scores[i] - p.scores[k];
    }
  }
  return out;
}

DetectionStats fit_detection(const Predictor& predictor, const std::vector<Record>& train,
                             const std::vector<Record>& dev, int threads, double fpr, int64_t sample_size, uint64_t seed) {
  if (train.size() < 2) throw DataError("detection statistics need at least 2 training records");
  std::vector<size_t> rows(train.size());
  for (size_t i = 0; i < rows.size(); ++i) rows[i] = i;
  std::mt19937_64 rng(seed);
  std::shuffle(rows.begin(), rows.end(), rng);
  rows.resize(std::min(rows.size(), static_cast<size_t>(sample_size)));
  std::vector<Record> sample;
  sample.reserve(rows.size());
  for (size_t r : rows) sample.push_back(train[r]);
  const ModelOutputs outputs = predictor.run(sample, threads, /*with_pooled=*/true);
  DetectionStats s;
  const torch::Tensor x = outputs.pooled.to(torch::kFloat64);
  s.mean = x.mean(0);
  const torch::Tensor centred = x - s.mean;
  torch::Tensor cov = centred.t().mm(centred) / static_cast<double>(x.size(0) - 1);
  // Shrinkage towards the mean variance keeps the inverse stable when the sample is small.
  const int64_t h = cov.size(0);
  const double shrink = 0.05;
  const torch::Tensor target = torch::eye(h, cov.options()) * (cov.trace() / static_cast<double>(h));
  cov = (1 - shrink) * cov + shrink * target + 1e-9 * torch::eye(h, cov.options());
  s.precision = torch::linalg::inv(cov).to(torch::kFloat32);
  s.mean = s.mean.to(torch::kFloat32);
  std::vector<double> logs;
  for (const auto& d : outputs.diagnostics) logs.push_back(std::log(static_cast<double>(std::max<int64_t>(1, d.tokens))));
  std::nth_element(logs.begin(), logs.begin() + static_cast<std::ptrdiff_t>(logs.size() / 2), logs.end());
  s.median_log_tokens = logs[logs.size() / 2];
  s.dev = run_detection(predictor, s, dev, threads, /*normalize=*/false).signals;
  s.calibration = calibrate(s.dev, fpr);
  return s;
}

}  // namespace dqe
