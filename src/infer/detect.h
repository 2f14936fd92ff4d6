// Suspect-result detection: signals that a query-result pair was manipulated to raise its
// score, each a number where larger is more suspicious, with thresholds calibrated on the
// dev set at training time so that clean pairs are flagged at a chosen false-positive rate.
//   keyword_repetition  query words repeated in the result (beyond their first occurrence),
//                       plus words repeated back to back
//   keyword_density     share of the result's words that are query words
//   invisible_chars     zero-width, bidirectional, soft hyphen and other invisible characters
//   mixed_script        words mixing scripts (a Cyrillic letter in a Latin word)
//   confusables         letters of another script imitating Latin ones (Unicode confusables)
//   ood_distance        Mahalanobis distance of the pooled vector from the training pairs'
//   unknown_tokens      share of the pair's tokens the tokenizer did not know
//   unusual_length      |log(tokens / the training pairs' median)|
//   instability         how far the score falls when the manipulation is undone (look-alikes
//                       folded, invisible characters removed, repeated query words dropped)
// The statistics (training mean and covariance of pooled vectors, the dev signals, the
// thresholds) are saved with the model as detect_stats.safetensors.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "dqe/jsonl_reader.h"
#include "infer/predictor.h"

namespace dqe {

constexpr size_t kNumSignals = 9;
using SignalValues = std::array<double, kNumSignals>;
// The signals' names, in SignalValues' order; they are the suspect reasons.
const std::array<const char*, kNumSignals>& signal_names();

// The signals that read the text alone (the first five); the others are left as they are.
void text_signals(const Record& record, SignalValues& out);

// The result text with the manipulations undone: normalize_text, then every repetition of a
// query word after its first occurrence dropped.
std::string undo_manipulation(const std::string& query, const std::string& text);

// Thresholds that flag at most a fraction fpr of the calibration lines: each signal flags a
// line when its value is above its threshold (by more than 10^-6 relative:
// the rounding of a recomputation), and a common tail level is searched so
// that the lines flagged by any signal stay within fpr. A signal whose values are all NaN
// never flags (threshold +inf).
struct Calibration {
  SignalValues thresholds{};
  double fpr = 0;       // asked
  double achieved = 0;  // fraction of the calibration lines flagged
};
Calibration calibrate(const std::vector<SignalValues>& lines, double fpr);

// The names of the signals above their thresholds.
std::vector<std::string> suspect_reasons(const SignalValues& values, const SignalValues& thresholds);

// What a model saves for detection.
struct DetectionStats {
  torch::Tensor mean;       // [hidden], of training pooled vectors
  torch::Tensor precision;  // [hidden, hidden], the inverse of their (shrunk) covariance
  double median_log_tokens = 0;
  std::vector<SignalValues> dev;  // the dev set's signals, to recalibrate at another rate
  Calibration calibration;        // at training time's rate
};

constexpr const char* kDetectStatsFile = "detect_stats.safetensors";

// Saves into a checkpoint directory (atomically).
void save_detection_stats(const std::string& dir, const DetectionStats& stats);
// From a checkpoint directory; nullopt when it has none. Throws ModelError naming the file
// when it is malformed.
std::optional<DetectionStats> load_detection_stats(const std::string& dir);

// Records scored through the predictor, with their signals.
struct DetectionRun {
  Predictions predictions;  // of the records scored (normalized ones with normalize)
  std::vector<SignalValues> signals;
};
// normalize: the query and text scored are normalize_text's; the text signals read the records
// as given, and instability compares the score with that of the undone text.
DetectionRun run_detection(const Predictor& predictor, const DetectionStats& stats, const std::vector<Record>& records,
                           int threads, bool normalize);

// A copy of the records with query and text normalize_text'd. Repeated query words are left
// in: dropping them leaves one copy, which raised the score of a model trained with --augment
// more than the repeats did (README, the adversarial benchmark).
std::vector<Record> normalized_records(const std::vector<Record>& records);

// Fits the statistics for a trained model: mean and covariance of pooled vectors over at most
// sample_size training records (a seeded sample), the median length, then the dev signals and
// thresholds at fpr. Throws DataError when there are fewer training records than 2.
DetectionStats fit_detection(const Predictor& predictor, const std::vector<Record>& train,
                             const std::vector<Record>& dev, int threads, double fpr, int64_t sample_size, uint64_t seed);

}  // namespace dqe
