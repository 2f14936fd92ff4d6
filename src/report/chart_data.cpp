// The report's pure helpers (dqe/report.h): escaping, smoothing, axis ticks, histograms,
// subsampling, label groups, colours and flattened JSON. No model, no files.
#include "dqe/report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <map>
#include <numeric>
#include <random>
#include <set>

#include "base/format.h"

namespace dqe {

std::string html_escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

std::vector<double> moving_average(const std::vector<double>& values, size_t window) {
  window = std::max<size_t>(1, window);
  std::vector<double> out(values.size());
  double sum = 0;
  for (size_t i = 0; i < values.size(); ++i) {
    sum += values[i];
    if (i >= window) sum -= values[i - window];
    out[i] = sum / static_cast<double>(std::min(i + 1, window));
  }
  return out;
}

std::vector<double> nice_ticks(double lo, double hi, int target) {
  if (!std::isfinite(lo) || !std::isfinite(hi)) return {0, 1};
  if (lo > hi) std::swap(lo, hi);
  if (hi - lo <= 1e-12 * std::max(1.0, std::fabs(lo))) {
    const double pad = lo == 0 ? 1 : std::fabs(lo) * 0.1;
    lo -= pad;
    hi += pad;
  }
  const double raw = (hi - lo) / std::max(1, target);
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  const double norm = raw / magnitude;
  const double step = (norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 5 ? 5 : 10) * magnitude;
  // Integer multiples of step keep the values free of accumulated rounding.
  const double first = std::floor(lo / step + 1e-9);
  const double last = std::ceil(hi / step - 1e-9);
  std::vector<double> ticks;
  for (double k = first; k <= last + 0.5; k += 1) {
    double v = k * step;
    if (std::fabs(v) < step * 1e-9) v = 0;
    ticks.push_back(v);
  }
  return ticks;
}

std::string format_tick(double value, double step) {
  if (std::fabs(value) < std::fabs(step) * 1e-6) return "0";
  char buf[64];
  const double s = std::fabs(step);
  const int decimals = s >= 1 ? 0 : static_cast<int>(std::ceil(-std::log10(s) - 1e-9));
  if (decimals > 4 || std::fabs(value) >= 1e6) std::snprintf(buf, sizeof buf, "%.3g", value);
  else std::snprintf(buf, sizeof buf, "%.*f", decimals, value);
  return buf;
}

Histogram histogram(const std::vector<double>& values, double lo, double hi, size_t bins) {
  if (bins == 0) throw std::invalid_argument("histogram: bins must be > 0");
  if (!(hi > lo)) throw std::invalid_argument("histogram: hi must be > lo");
  Histogram h;
  h.lo = lo;
  h.hi = hi;
  h.counts.assign(bins, 0);
  const double width = (hi - lo) / static_cast<double>(bins);
  for (double v : values) {
    if (std::isnan(v)) continue;
    double pos = std::floor((v - lo) / width);
    pos = std::clamp(pos, 0.0, static_cast<double>(bins - 1));
    ++h.counts[static_cast<size_t>(pos)];
  }
  return h;
}

std::vector<std::vector<int64_t>> confusion_matrix(const std::vector<int64_t>& truth,
                                                   const std::vector<int64_t>& predicted, size_t k) {
  if (truth.size() != predicted.size()) throw std::invalid_argument("confusion_matrix: sizes differ");
  std::vector<std::vector<int64_t>> m(k, std::vector<int64_t>(k, 0));
  for (size_t i = 0; i < truth.size(); ++i) {
    if (truth[i] < 0 || predicted[i] < 0 || static_cast<size_t>(truth[i]) >= k ||
        static_cast<size_t>(predicted[i]) >= k)
      throw std::invalid_argument("confusion_matrix: class id out of range");
    ++m[static_cast<size_t>(truth[i])][static_cast<size_t>(predicted[i])];
  }
  return m;
}

std::vector<size_t> subsample_indices(size_t n, size_t max_count, uint64_t seed) {
  std::vector<size_t> idx(n);
  std::iota(idx.begin(), idx.end(), size_t{0});
  if (n <= max_count) return idx;
  std::mt19937_64 rng(seed);
  // Partial Fisher-Yates: the first max_count slots become a uniform sample.
  for (size_t i = 0; i < max_count; ++i) {
    std::uniform_int_distribution<size_t> pick(i, n - 1);
    std::swap(idx[i], idx[pick(rng)]);
  }
  idx.resize(max_count);
  std::sort(idx.begin(), idx.end());
  return idx;
}

std::vector<LabelGroup> group_by_label(const std::vector<double>& labels, const std::vector<std::string>& class_names,
                                       size_t max_groups) {
  std::vector<LabelGroup> groups;
  if (!class_names.empty()) {
    groups.resize(class_names.size());
    for (size_t c = 0; c < class_names.size(); ++c) groups[c].name = class_names[c];
    for (size_t i = 0; i < labels.size(); ++i) {
      const double id = labels[i];
      if (id >= 0 && id < static_cast<double>(groups.size())) groups[static_cast<size_t>(id)].rows.push_back(i);
    }
  } else {
    std::set<double> distinct(labels.begin(), labels.end());
    if (distinct.size() <= std::max<size_t>(1, max_groups)) {
      std::map<double, size_t> slot;
      for (double v : distinct) {
        slot[v] = groups.size();
        groups.push_back({format_number(v), {}});
      }
      for (size_t i = 0; i < labels.size(); ++i) groups[slot[labels[i]]].rows.push_back(i);
    } else {
      const double lo = *distinct.begin(), hi = *distinct.rbegin();
      const double width = (hi - lo) / static_cast<double>(max_groups);
      for (size_t g = 0; g < max_groups; ++g) {
        const double a = lo + width * static_cast<double>(g), b = lo + width * static_cast<double>(g + 1);
        groups.push_back({"[" + format_number(a, 3) + ", " + format_number(b, 3) + (g + 1 == max_groups ? "]" : ")"), {}});
      }
      for (size_t i = 0; i < labels.size(); ++i) {
        double pos = std::floor((labels[i] - lo) / width);
        pos = std::clamp(pos, 0.0, static_cast<double>(max_groups - 1));
        groups[static_cast<size_t>(pos)].rows.push_back(i);
      }
    }
  }
  groups.erase(std::remove_if(groups.begin(), groups.end(), [](const LabelGroup& g) { return g.rows.empty(); }),
               groups.end());
  return groups;
}

const std::string& palette_color(size_t i) {
  // Tableau 10: distinct hues that survive most colour-vision deficiencies.
  static const std::vector<std::string> colors = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                                  "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
  return colors[i % colors.size()];
}

std::vector<std::pair<std::string, std::string>> flatten_json(const nlohmann::ordered_json& j) {
  std::vector<std::pair<std::string, std::string>> out;
  auto scalar = [](const nlohmann::ordered_json& v) -> std::string {
    if (v.is_string()) return v.get<std::string>();
    if (v.is_null()) return "null";
    return v.dump();
  };
  std::function<void(const std::string&, const nlohmann::ordered_json&)> walk = [&](const std::string& prefix,
                                                                           const nlohmann::ordered_json& v) {
    if (v.is_object() && !v.empty()) {
      for (auto it = v.begin(); it != v.end(); ++it) walk(prefix.empty() ? it.key() : prefix + "." + it.key(), it.value());
    } else if (v.is_array()) {
      const bool scalars = std::none_of(v.begin(), v.end(), [](const nlohmann::ordered_json& e) { return e.is_structured(); });
      if (!scalars) {
        out.emplace_back(prefix, v.dump());
        return;
      }
      std::string joined;
      for (const auto& e : v) joined += (joined.empty() ? "" : ", ") + scalar(e);
      out.emplace_back(prefix, joined);
    } else if (v.is_object()) {
      out.emplace_back(prefix, "{}");
    } else {
      out.emplace_back(prefix, scalar(v));
    }
  };
  walk("", j);
  return out;
}

}  // namespace dqe
