#include "base/format.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>

namespace dqe {

std::string format_significant(double value, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*g", digits, value);
  return buf;
}

std::string format_number(double value, int digits) {
  if (!std::isfinite(value)) return "n/a";
  if (value == std::round(value) && std::fabs(value) < 1e15) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.0f", value == 0 ? 0.0 : value);  // no "-0"
    return buf;
  }
  return format_significant(value, std::max(1, digits));
}

std::string format_fixed(double value, int decimals) {
  if (!std::isfinite(value)) return "n/a";
  char buf[352];  // room for the largest double in %f with a few decimals
  std::snprintf(buf, sizeof buf, "%.*f", std::clamp(decimals, 0, 17), value);
  return buf;
}

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "n/a";
  // Clamped so that the conversion to an integer is defined; an ETA that long is noise anyway.
  const int64_t s = static_cast<int64_t>(std::min(seconds, 1e12) + 0.5);
  char buf[48];
  if (s >= 3600) std::snprintf(buf, sizeof buf, "%lldh%02lldm", static_cast<long long>(s / 3600),
                               static_cast<long long>(s % 3600 / 60));
  else if (s >= 60) std::snprintf(buf, sizeof buf, "%lldm%02llds", static_cast<long long>(s / 60),
                                  static_cast<long long>(s % 60));
  else std::snprintf(buf, sizeof buf, "%llds", static_cast<long long>(s));
  return buf;
}

}  // namespace dqe
