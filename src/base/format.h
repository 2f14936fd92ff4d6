// Numbers and durations as dqe prints them, written once so that the metrics table, the
// report, the gate and the progress lines agree. No LibTorch.
#pragma once

#include <string>

namespace dqe {

// printf "%.*g": `digits` significant digits ("0.4123", "3.125e-05", "1235"); NaN and
// infinities as printf writes them ("nan", "inf"). For log lines.
std::string format_significant(double value, int digits = 4);

// For people: "n/a" for NaN and infinities, integers without a decimal point ("320", and
// "0" for -0), else format_significant(value, digits) with at least one digit.
std::string format_number(double value, int digits = 4);

// printf "%.*f" ("0.4312" with 4 decimals), "n/a" for NaN and infinities. For metric
// values, which read best aligned to a fixed number of decimals.
std::string format_fixed(double value, int decimals = 4);

// Rounded to whole seconds: "1h02m", "3m05s", "12s"; "n/a" when negative or not finite.
std::string format_duration(double seconds);

}  // namespace dqe
