#include "train/run_log.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <functional>
#include <limits>

#include "dqe/errors.h"
#include "io/output.h"
#include "model/model_spec.h"

namespace dqe {
namespace fs = std::filesystem;

const std::vector<std::string>& train_log_keys() {
  static const std::vector<std::string> keys = {"step",   "epoch",        "loss",     "lr",       "grad_norm",
                                                "samples_per_s", "tokens", "tokens_per_s", "elapsed_s"};
  return keys;
}

namespace {

nlohmann::ordered_json number_or_null(double v) {
  return std::isfinite(v) ? nlohmann::ordered_json(v) : nlohmann::ordered_json(nullptr);
}

double number_or_nan(const nlohmann::ordered_json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<double>() : std::numeric_limits<double>::quiet_NaN();
}

// Reads the non-blank lines of a log; parse() returns "" or a problem. A problem on the
// last line is a write cut short and ignored.
void read_log_lines(const std::string& path, const std::function<std::string(const nlohmann::ordered_json&)>& parse) {
  std::ifstream in(path);
  if (!in) throw IoError(path + ": cannot open (is this a dqe training run directory?)");
  std::vector<std::pair<size_t, std::string>> lines;
  std::string line;
  for (size_t n = 1; std::getline(in, line); ++n)
    if (line.find_first_not_of(" \t\r") != std::string::npos) lines.emplace_back(n, line);
  for (size_t i = 0; i < lines.size(); ++i) {
    if (json_text_depth(lines[i].second) > kMaxJsonDepth) {
      if (i + 1 == lines.size()) break;
      throw DataError(path + ":" + std::to_string(lines[i].first) + ": JSON nested too deeply");
    }
    nlohmann::ordered_json j = nlohmann::ordered_json::parse(lines[i].second, nullptr, false);
    std::string problem;
    if (j.is_discarded()) problem = "not valid JSON";
    else if (!j.is_object()) problem = "not a JSON object";
    else problem = parse(j);
    if (problem.empty()) continue;
    if (i + 1 == lines.size()) break;
    throw DataError(path + ":" + std::to_string(lines[i].first) + ": " + problem);
  }
}

}  // namespace

nlohmann::ordered_json to_json(const TrainLogRecord& r) {
  nlohmann::ordered_json j;
  j["step"] = r.step;
  j["epoch"] = r.epoch;
  j["loss"] = number_or_null(r.loss);
  j["lr"] = r.lr;
  j["grad_norm"] = number_or_null(r.grad_norm);
  j["samples_per_s"] = r.samples_per_s;
  j["tokens"] = r.tokens;
  j["tokens_per_s"] = r.tokens_per_s;
  j["elapsed_s"] = r.elapsed_s;
  for (auto it = r.extra.begin(); it != r.extra.end(); ++it) j[it.key()] = *it;
  return j;
}

nlohmann::ordered_json to_json(const EvalLogRecord& r) {
  nlohmann::ordered_json j;
  j["step"] = r.step;
  j["epoch"] = r.epoch;
  j["metric"] = r.metric;
  j["value"] = number_or_null(r.value);
  j["best"] = r.best ? number_or_null(*r.best) : nlohmann::ordered_json(nullptr);
  j["improved"] = r.improved;
  j["metrics"] = r.metrics;
  return j;
}

std::vector<TrainLogRecord> read_train_log(const std::string& path) {
  std::vector<TrainLogRecord> out;
  read_log_lines(path, [&](const nlohmann::ordered_json& j) -> std::string {
    auto step = j.find("step");
    if (step == j.end() || !step->is_number_integer()) return "missing integer field \"step\"";
    TrainLogRecord r;
    r.step = step->get<int64_t>();
    const double epoch = number_or_nan(j, "epoch");
    r.epoch = std::isfinite(epoch) ? static_cast<int64_t>(epoch) : 0;
    r.loss = number_or_nan(j, "loss");
    r.lr = number_or_nan(j, "lr");
    r.grad_norm = number_or_nan(j, "grad_norm");
    r.samples_per_s = number_or_nan(j, "samples_per_s");
    const double tokens = number_or_nan(j, "tokens");
    r.tokens = std::isfinite(tokens) ? static_cast<int64_t>(tokens) : 0;
    r.tokens_per_s = number_or_nan(j, "tokens_per_s");
    r.elapsed_s = number_or_nan(j, "elapsed_s");
    const auto& keys = train_log_keys();
    for (auto it = j.begin(); it != j.end(); ++it)
      if (std::find(keys.begin(), keys.end(), it.key()) == keys.end()) r.extra[it.key()] = *it;
    out.push_back(std::move(r));
    return "";
  });
  return out;
}

std::vector<EvalLogRecord> read_eval_log(const std::string& path) {
  std::vector<EvalLogRecord> out;
  read_log_lines(path, [&](const nlohmann::ordered_json& j) -> std::string {
    auto step = j.find("step");
    if (step == j.end() || !step->is_number_integer()) return "missing integer field \"step\"";
    EvalLogRecord r;
    r.step = step->get<int64_t>();
    r.epoch = number_or_nan(j, "epoch");
    if (auto m = j.find("metric"); m != j.end() && m->is_string()) r.metric = m->get<std::string>();
    r.value = number_or_nan(j, "value");
    if (auto b = j.find("best"); b != j.end() && b->is_number()) r.best = b->get<double>();
    if (auto imp = j.find("improved"); imp != j.end() && imp->is_boolean()) r.improved = imp->get<bool>();
    if (auto m = j.find("metrics"); m != j.end() && m->is_object()) r.metrics = *m;
    out.push_back(std::move(r));
    return "";
  });
  return out;
}

void truncate_log(const std::string& path, int64_t step) {
  if (!fs::exists(path)) return;
  std::ifstream in(path);
  std::string kept, line;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_discarded() && j.is_object() && j.value("step", int64_t{0}) <= step) kept += line + "\n";
  }
  write_file_atomic(path, kept);
}

RunLog::RunLog(const std::string& run_dir, int64_t resume_step) {
  const std::string train = (fs::path(run_dir) / "train_log.jsonl").string();
  const std::string eval = (fs::path(run_dir) / "eval_log.jsonl").string();
  truncate_log(train, resume_step);
  truncate_log(eval, resume_step);
  train_.open(train, std::ios::app);
  eval_.open(eval, std::ios::app);
  if (!train_ || !eval_) throw IoError(run_dir + ": cannot write the run's logs");
}

void RunLog::write(const TrainLogRecord& record) { train_ << to_json(record).dump() << "\n"; }

void RunLog::write(const EvalLogRecord& record) {
  eval_ << to_json(record).dump() << "\n";
  flush();
}

void RunLog::flush() {
  eval_.flush();
  train_.flush();
  if (!train_ || !eval_) throw IoError("cannot write the run's logs (disk full?)");
}

}  // namespace dqe
