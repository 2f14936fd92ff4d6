#include "base/checks.h"

#include <algorithm>
#include <sstream>

#include "base/format.h"
#include "dqe/errors.h"
#include "dqe/runtime.h"

namespace dqe {

void check_flag(bool ok, const std::string& flag, const std::string& rule, double value) {
  if (!ok) throw ConfigError(flag + " must be " + rule + ", got " + format_significant(value, 6));
}

void check_flag(bool ok, const std::string& flag, const std::string& rule, int64_t value) {
  if (!ok) throw ConfigError(flag + " must be " + rule + ", got " + std::to_string(value));
}

void check_knob(const Knob& knob, const std::string& value) {
  const std::string flag = "--" + knob.name;
  if (knob.required && value.empty()) throw ConfigError(flag + " is required");
  if (knob.choices.empty() || std::find(knob.choices.begin(), knob.choices.end(), value) != knob.choices.end()) return;
  std::string names;
  for (size_t i = 0; i < knob.choices.size(); ++i)
    names += (i == 0 ? "" : i + 1 == knob.choices.size() ? " or " : ", ") + knob.choices[i];
  throw ConfigError(flag + " must be " + names + ", got \"" + value + "\"");
}

void check_knob(const Knob& knob, double value) {
  if (knob.ok) check_flag(knob.ok(value), "--" + knob.name, knob.rule, value);
}

void check_knob(const Knob& knob, int64_t value) {
  if (knob.ok) check_flag(knob.ok(static_cast<double>(value)), "--" + knob.name, knob.rule, value);
}

void check_knob(const Knob& knob, const std::optional<double>& value) {
  if (value) check_knob(knob, *value);
}

void check_knob(const Knob& knob, const std::vector<std::string>& value) {
  if (knob.required && value.empty()) throw ConfigError("--" + knob.name + " is required");
  for (const std::string& v : value)
    if (!knob.choices.empty()) check_knob(knob, v);
}

std::string knob_number_text(double value) {
  std::ostringstream out;
  out << value;
  return out.str();
}

void check_compute_flags(int threads, const std::string& precision, const std::string& device) {
  check_flag(threads >= 0 && threads <= kMaxThreads, "--threads", "between 0 (the CPUs this process may use) and " + std::to_string(kMaxThreads),
             static_cast<int64_t>(threads));
  resolve_precision(precision, resolve_device(device));
}

}  // namespace dqe
