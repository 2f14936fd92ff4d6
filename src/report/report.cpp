#include "dqe/report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <numeric>
#include <random>
#include <set>
#include <stdexcept>

#include "base/format.h"
#include "base/log.h"
#include "data/dataset.h"
#include "dqe/errors.h"
#include "dqe/evaluator.h"
#include "dqe/jsonl_reader.h"
#include "dqe/metrics.h"
#include "dqe/runtime.h"
#include "infer/predictor.h"
#include "io/output.h"
#include "model/heads/task_head.h"
#include "model/model_dir.h"
#include "model/model_spec.h"
#include "train/flag_checks.h"
#include "train/train_state.h"

namespace dqe {

namespace fs = std::filesystem;

// ---------------------------------------------------------------------------------------
// Small pure helpers

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

// ---------------------------------------------------------------------------------------
// ---------------------------------------------------------------------------------------
// SVG charts

namespace {

constexpr double kCharWidth = 6.2;  // average width of an 11 px sans-serif character

std::string fmt1(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  return buf;
}

std::string svg_open(int width, int height) {
  return "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + std::to_string(width) + "\" height=\"" +
         std::to_string(height) + "\" viewBox=\"0 0 " + std::to_string(width) + " " + std::to_string(height) +
         "\" font-family=\"-apple-system, 'Segoe UI', Helvetica, Arial, sans-serif\" font-size=\"11\">\n"
         "<rect width=\"100%\" height=\"100%\" fill=\"#fff\"/>\n";
}

std::string svg_text(double x, double y, const std::string& text, const std::string& extra = "") {
  return "<text x=\"" + fmt1(x) + "\" y=\"" + fmt1(y) + "\"" + (extra.empty() ? "" : " " + extra) + ">" +
         html_escape(text) + "</text>\n";
}

double text_width(const std::string& s, double char_width = kCharWidth) {
  return char_width * static_cast<double>(s.size());
}

// Plot area and the mapping from data to pixels, with the axes drawn around it.
struct Frame {
  double x0 = 0, x1 = 1, y0 = 0, y1 = 1;  // data domain
  std::vector<double> x_ticks, y_ticks;
  double x_step = 1, y_step = 1;
  double left = 0, right = 0, top = 0, bottom = 0;  // pixel bounds of the plot area

  double px(double x) const { return left + (x - x0) / (x1 - x0) * (right - left); }
  double py(double y) const { return bottom - (y - y0) / (y1 - y0) * (bottom - top); }
};

// Ticks inside [lo, hi] when exact is set (the domain stays the data's range), else the
// domain grows to the outer ticks.
void axis_domain(double lo, double hi, int target, bool exact, double& d0, double& d1, std::vector<double>& ticks,
                 double& step) {
  ticks = nice_ticks(lo, hi, target);
  step = ticks.size() >= 2 ? ticks[1] - ticks[0] : 1;
  if (exact && hi > lo) {
    d0 = lo;
    d1 = hi;
    const double eps = step * 1e-6;
    ticks.erase(std::remove_if(ticks.begin(), ticks.end(), [&](double t) { return t < lo - eps || t > hi + eps; }),
                ticks.end());
  } else {
    d0 = ticks.front();
    d1 = ticks.back();
  }
}

Frame make_frame(double xmin, double xmax, double ymin, double ymax, int width, int height, double top,
                 bool exact_x, bool has_x_label, bool has_y_label) {
  Frame f;
  axis_domain(xmin, xmax, std::max(3, width / 90), exact_x, f.x0, f.x1, f.x_ticks, f.x_step);
  axis_domain(ymin, ymax, std::max(2, height / 55), false, f.y0, f.y1, f.y_ticks, f.y_step);
  double widest = 0;
  for (double t : f.y_ticks) widest = std::max(widest, text_width(format_tick(t, f.y_step)));
  f.left = widest + 12 + (has_y_label ? 18 : 0);
  f.right = width - 14 - (f.x_ticks.empty() ? 0 : text_width(format_tick(f.x_ticks.back(), f.x_step)) / 2);
  f.top = top;
  f.bottom = height - 22 - (has_x_label ? 16 : 0);
  return f;
}

std::string draw_axes(const Frame& f, const std::string& x_label, const std::string& y_label, int height) {
  std::string s;
  for (double t : f.y_ticks) {
    const double y = f.py(t);
    s += "<line x1=\"" + fmt1(f.left) + "\" x2=\"" + fmt1(f.right) + "\" y1=\"" + fmt1(y) + "\" y2=\"" + fmt1(y) +
         "\" stroke=\"#e6e6e6\"/>\n";
    s += svg_text(f.left - 6, y + 4, format_tick(t, f.y_step), "text-anchor=\"end\" fill=\"#555\"");
  }
  for (double t : f.x_ticks) {
    const double x = f.px(t);
    s += "<line x1=\"" + fmt1(x) + "\" x2=\"" + fmt1(x) + "\" y1=\"" + fmt1(f.bottom) + "\" y2=\"" +
         fmt1(f.bottom + 4) + "\" stroke=\"#888\"/>\n";
    s += svg_text(x, f.bottom + 16, format_tick(t, f.x_step), "text-anchor=\"middle\" fill=\"#555\"");
  }
  s += "<path d=\"M" + fmt1(f.left) + " " + fmt1(f.top) + " V" + fmt1(f.bottom) + " H" + fmt1(f.right) +
       "\" fill=\"none\" stroke=\"#888\"/>\n";
  if (!x_label.empty())
    s += svg_text((f.left + f.right) / 2, height - 6, x_label, "text-anchor=\"middle\" fill=\"#333\"");
  if (!y_label.empty()) {
    const double cx = 12, cy = (f.top + f.bottom) / 2;
    s += svg_text(cx, cy, y_label,
                  "text-anchor=\"middle\" fill=\"#333\" transform=\"rotate(-90 " + fmt1(cx) + " " + fmt1(cy) + ")\"");
  }
  return s;
}

std::string draw_title(const std::string& title) {
  return title.empty() ? "" : svg_text(10, 18, title, "font-size=\"13\" font-weight=\"600\" fill=\"#222\"");
}

std::string no_data_svg(const std::string& title, int width, int height, const std::string& message) {
  return svg_open(width, height) + draw_title(title) +
         svg_text(width / 2.0, height / 2.0, message, "text-anchor=\"middle\" fill=\"#888\"") + "</svg>\n";
}

}  // namespace

std::string svg_line_chart(const LineChart& chart) {
  double xmin = INFINITY, xmax = -INFINITY, ymin = INFINITY, ymax = -INFINITY;
  auto take = [&](double x, double y) {
    if (!std::isfinite(x) || !std::isfinite(y)) return;
    xmin = std::min(xmin, x);
    xmax = std::max(xmax, x);
    ymin = std::min(ymin, y);
    ymax = std::max(ymax, y);
  };
  for (const auto& s : chart.series)
    for (size_t i = 0; i < std::min(s.x.size(), s.y.size()); ++i) take(s.x[i], s.y[i]);
  for (const auto& m : chart.markers) take(m.x, m.y);
  if (!(xmin <= xmax)) return no_data_svg(chart.title, chart.width, chart.height, "no data");

  // Legend: in the title row when it fits, else on a row of its own below the title.
  std::vector<const ChartSeries*> named;
  for (const auto& s : chart.series)
    if (!s.name.empty()) named.push_back(&s);
  std::vector<const ChartMarker*> labelled;
  for (const auto& m : chart.markers)
    if (!m.label.empty() && std::isfinite(m.x) && std::isfinite(m.y)) labelled.push_back(&m);
  double legend_width = 0;
  for (const auto* s : named) legend_width += 24 + text_width(s->name) + 14;
  for (const auto* m : labelled) legend_width += 16 + text_width(m->label) + 14;
  const double title_width = text_width(chart.title, 7.4) + 20;
  const bool legend_own_row = legend_width > 0 && title_width + legend_width > chart.width - 10;
  const double top = 34 + (legend_own_row ? 18 : 0);

  // Steps and other counts from near 0 get a 0 tick.
  if (xmin >= 0 && xmin <= 0.05 * (xmax - xmin)) xmin = 0;
  Frame f = make_frame(xmin, xmax, ymin, ymax, chart.width, chart.height, top, true, !chart.x_label.empty(),
                       !chart.y_label.empty());
  std::string s = svg_open(chart.width, chart.height) + draw_title(chart.title);
  s += draw_axes(f, chart.x_label, chart.y_label, chart.height);

  for (const auto& series : chart.series) {
    const size_t n = std::min(series.x.size(), series.y.size());
    const std::string style = "fill=\"none\" stroke=\"" + series.color + "\" stroke-width=\"" +
                              fmt1(series.stroke_width) + "\" stroke-linejoin=\"round\"" +
                              (series.opacity < 1 ? " stroke-opacity=\"" + format_number(series.opacity, 3) + "\"" : "") +
                              (series.dashed ? " stroke-dasharray=\"5 4\"" : "");
    // Pixel points of one unbroken run. A long run keeps, per pixel column, only its lowest
    // and highest points (in their order): the same picture from a bounded number of points.
    std::vector<std::pair<double, double>> run;
    auto flush = [&]() {
      if (run.size() >= 2) {
        std::string points;
        size_t i = 0;
        while (i < run.size()) {
          size_t j = i, lo = i, hi = i;
          while (j < run.size() && std::floor(run[j].first) == std::floor(run[i].first)) {
            if (run[j].second < run[lo].second) lo = j;
            if (run[j].second > run[hi].second) hi = j;
            ++j;
          }
          auto add = [&](size_t k) { points += (points.empty() ? "" : " ") + fmt1(run[k].first) + "," + fmt1(run[k].second); };
          add(std::min(lo, hi));
          if (lo != hi) add(std::max(lo, hi));
          i = j;
        }
        s += "<polyline " + style + " points=\"" + points + "\"/>\n";
      }
      run.clear();
    };
    for (size_t i = 0; i < n; ++i) {
      if (!std::isfinite(series.x[i]) || !std::isfinite(series.y[i])) {
        flush();
        continue;
      }
      run.emplace_back(f.px(series.x[i]), f.py(series.y[i]));
    }
    flush();
    if (series.dots || n == 1) {
      for (size_t i = 0; i < n; ++i) {
        if (!std::isfinite(series.x[i]) || !std::isfinite(series.y[i])) continue;
        s += "<circle cx=\"" + fmt1(f.px(series.x[i])) + "\" cy=\"" + fmt1(f.py(series.y[i])) + "\" r=\"3\" fill=\"" +
             series.color + "\"/>\n";
      }
    }
  }

  // Markers are circles on the plot; their labels go to the legend, where they cover nothing.
  for (const auto& m : chart.markers) {
    if (!std::isfinite(m.x) || !std::isfinite(m.y)) continue;
    s += "<circle cx=\"" + fmt1(f.px(m.x)) + "\" cy=\"" + fmt1(f.py(m.y)) + "\" r=\"6\" fill=\"none\" stroke=\"" +
         m.color + "\" stroke-width=\"2\"/>\n";
  }

  if (legend_width > 0) {
    double x = legend_own_row ? 10 : chart.width - 10 - legend_width;
    const double y = legend_own_row ? 38 : 18;
    for (const auto* series : named) {
      s += "<line x1=\"" + fmt1(x) + "\" x2=\"" + fmt1(x + 18) + "\" y1=\"" + fmt1(y - 4) + "\" y2=\"" + fmt1(y - 4) +
           "\" stroke=\"" + series->color + "\" stroke-width=\"2.5\"" +
           (series->dashed ? " stroke-dasharray=\"5 3\"" : "") + "/>\n";
      s += svg_text(x + 24, y, series->name, "fill=\"#333\"");
      x += 24 + text_width(series->name) + 14;
    }
    for (const auto* m : labelled) {
      s += "<circle cx=\"" + fmt1(x + 5) + "\" cy=\"" + fmt1(y - 4) + "\" r=\"5\" fill=\"none\" stroke=\"" + m->color +
           "\" stroke-width=\"2\"/>\n";
      s += svg_text(x + 16, y, m->label, "fill=\"" + m->color + "\" font-weight=\"600\"");
      x += 16 + text_width(m->label) + 14;
    }
  }
  return s + "</svg>\n";
}

std::string svg_scatter(const std::string& title, const std::string& x_label, const std::string& y_label,
                        const std::vector<double>& x, const std::vector<double>& y, int width, int height) {
  double lo = INFINITY, hi = -INFINITY;
  const size_t n = std::min(x.size(), y.size());
  for (size_t i = 0; i < n; ++i) {
    if (!std::isfinite(x[i]) || !std::isfinite(y[i])) continue;
    lo = std::min({lo, x[i], y[i]});
    hi = std::max({hi, x[i], y[i]});
  }
  if (!(lo <= hi)) return no_data_svg(title, width, height, "no data");
  // The same range on both axes, so that the diagonal is at 45 degrees.
  const double pad = 0.02 * (hi - lo);
  Frame f = make_frame(lo - pad, hi + pad, lo - pad, hi + pad, width, height, 34, false, !x_label.empty(),
                       !y_label.empty());
  std::string s = svg_open(width, height) + draw_title(title) + draw_axes(f, x_label, y_label, height);
  s += "<line x1=\"" + fmt1(f.px(f.x0)) + "\" y1=\"" + fmt1(f.py(f.x0)) + "\" x2=\"" + fmt1(f.px(f.x1)) + "\" y2=\"" +
       fmt1(f.py(f.x1)) + "\" stroke=\"#d62728\" stroke-dasharray=\"5 4\" stroke-width=\"1.5\"/>\n";
  s += "<g fill=\"#1f77b4\" fill-opacity=\"0.35\">\n";
  for (size_t i = 0; i < n; ++i) {
    if (!std::isfinite(x[i]) || !std::isfinite(y[i])) continue;
    s += "<circle cx=\"" + fmt1(f.px(x[i])) + "\" cy=\"" + fmt1(f.py(y[i])) + "\" r=\"2.2\"/>\n";
  }
  s += "</g>\n";
  const double lx = width - 14 - text_width("predicted = true") - 24;
  s += "<line x1=\"" + fmt1(lx) + "\" x2=\"" + fmt1(lx + 18) + "\" y1=\"14\" y2=\"14\" stroke=\"#d62728\" "
       "stroke-dasharray=\"5 3\" stroke-width=\"2\"/>\n";
  s += svg_text(lx + 24, 18, "predicted = true", "fill=\"#333\"");
  return s + "</svg>\n";
}

std::string svg_histogram(const Histogram& h, const std::string& title, const std::string& x_label,
                          const std::string& color, int width, int height) {
  int64_t total = 0, peak = 0;
  for (int64_t c : h.counts) {
    total += c;
    peak = std::max(peak, c);
  }
  if (total == 0) return no_data_svg(title, width, height, "no examples");
  Frame f = make_frame(h.lo, h.hi, 0, static_cast<double>(peak), width, height, 30, true, !x_label.empty(), false);
  // Counts are integers: no fractional ticks.
  if (f.y_step < 1) {
    f.y_ticks = nice_ticks(0, std::max<double>(peak, 1), 1);
    f.y_step = f.y_ticks.size() >= 2 ? f.y_ticks[1] - f.y_ticks[0] : 1;
    f.y0 = f.y_ticks.front();
    f.y1 = f.y_ticks.back();
  }
  std::string s = svg_open(width, height) + draw_title(title + " (n=" + std::to_string(total) + ")");
  s += draw_axes(f, x_label, "", height);
  const double w = h.bin_width();
  for (size_t i = 0; i < h.counts.size(); ++i) {
    if (h.counts[i] == 0) continue;
    const double x0 = f.px(h.lo + w * static_cast<double>(i)), x1 = f.px(h.lo + w * static_cast<double>(i + 1));
    const double y = f.py(static_cast<double>(h.counts[i]));
    s += "<rect x=\"" + fmt1(x0 + 0.5) + "\" y=\"" + fmt1(y) + "\" width=\"" + fmt1(std::max(0.5, x1 - x0 - 1)) +
         "\" height=\"" + fmt1(f.bottom - y) + "\" fill=\"" + color + "\" fill-opacity=\"0.8\"/>\n";
  }
  return s + "</svg>\n";
}

std::string html_confusion_matrix(const std::vector<std::string>& class_names,
                                  const std::vector<std::vector<int64_t>>& matrix) {
  std::string s = "<table class=\"cm\">\n<tr><th class=\"corner\">true &#8595; / predicted &#8594;</th>";
  for (const auto& name : class_names) s += "<th>" + html_escape(name) + "</th>";
  s += "<th>total</th></tr>\n";
  for (size_t r = 0; r < matrix.size(); ++r) {
    int64_t row_total = 0;
    for (int64_t c : matrix[r]) row_total += c;
    s += "<tr><th>" + html_escape(r < class_names.size() ? class_names[r] : std::to_string(r)) + "</th>";
    for (size_t c = 0; c < matrix[r].size(); ++c) {
      const double share = row_total > 0 ? static_cast<double>(matrix[r][c]) / static_cast<double>(row_total) : 0;
      // Diagonal cells in blue, errors in red, shaded by their share of the true class.
      const std::string rgb = r == c ? "31,119,180" : "214,39,40";
      char pct[32];
      std::snprintf(pct, sizeof pct, "%.1f%%", share * 100);
      s += "<td style=\"background:rgba(" + rgb + "," + format_number(0.08 + 0.85 * share, 3) + ")" +
           (share > 0.55 ? ";color:#fff" : "") + "\">" + std::to_string(matrix[r][c]) + "<small>" + pct +
           "</small></td>";
    }
    s += "<td class=\"total\">" + std::to_string(row_total) + "</td></tr>\n";
  }
  return s + "</table>\n";
}

// ---------------------------------------------------------------------------------------
// The report

namespace {

const char* kStyle = R"css(
:root { color-scheme: light; }
body { font: 14px/1.45 -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: #222; background: #f4f5f7;
       margin: 0; padding: 24px; }
main { max-width: 1300px; margin: 0 auto; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 0 0 12px; border-bottom: 1px solid #e3e3e3; padding-bottom: 6px; }
h3 { font-size: 14px; margin: 14px 0 8px; color: #444; }
.sub { color: #666; margin: 0 0 16px; word-break: break-all; }
section { background: #fff; border: 1px solid #e1e3e6; border-radius: 8px; padding: 16px 20px; margin: 0 0 18px; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(230px, 1fr)); gap: 10px; }
.card { border: 1px solid #e6e8eb; border-radius: 6px; padding: 8px 12px; background: #fafbfc; min-width: 0; }
.card .k { color: #666; font-size: 12px; text-transform: uppercase; letter-spacing: .03em; }
.card .v { font-size: 15px; font-weight: 600; overflow-wrap: anywhere; }
.card .v small { font-weight: 400; color: #666; }
.charts { display: flex; flex-wrap: wrap; gap: 14px; }
.charts svg { border: 1px solid #eceef1; border-radius: 4px; max-width: 100%; height: auto; }
.note { color: #666; font-size: 13px; margin: 8px 0 0; }
.empty { color: #888; font-style: italic; }
table { border-collapse: collapse; font-size: 13px; }
th, td { border: 1px solid #e1e3e6; padding: 4px 10px; text-align: left; vertical-align: top; }
th { background: #f6f7f9; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.tables { display: flex; flex-wrap: wrap; gap: 24px; align-items: flex-start; }
.kv td:first-child { font-family: ui-monospace, Menlo, Consolas, monospace; color: #444; }
.kv td:last-child { font-family: ui-monospace, Menlo, Consolas, monospace; overflow-wrap: anywhere; max-width: 420px; }
table.cm td { text-align: center; min-width: 72px; font-size: 15px; font-weight: 600; }
table.cm td small { display: block; font-size: 11px; font-weight: 400; opacity: .85; }
table.cm td.total { background: #f6f7f9; font-weight: 400; }
table.cm th.corner { font-weight: 400; color: #666; font-size: 12px; }
footer { color: #888; font-size: 12px; text-align: center; }
)css";

std::string card(const std::string& key, const std::string& value_html) {
  return "<div class=\"card\"><div class=\"k\">" + html_escape(key) + "</div><div class=\"v\">" + value_html +
         "</div></div>\n";
}

std::string kv_table(const std::vector<std::pair<std::string, std::string>>& rows) {
  std::string s = "<table class=\"kv\">\n";
  for (const auto& [k, v] : rows) s += "<tr><td>" + html_escape(k) + "</td><td>" + html_escape(v) + "</td></tr>\n";
  return s + "</table>\n";
}

// The registry's label of a metric key, plain text; the key itself when it is not a metric.
std::string metric_label(const std::string& key) {
  const MetricInfo* m = find_metric(key);
  return m ? m->label : key;
}

std::string metric_value(const nlohmann::ordered_json& v) {
  if (v.is_number()) return format_number(v.get<double>());
  if (v.is_null()) return "n/a";
  return html_escape(v.is_string() ? v.get<std::string>() : v.dump());
}

// Rows for the scalar metrics of an object (metric names are ours, values are numbers).
std::string metric_rows(const nlohmann::ordered_json& metrics) {
  std::string s;
  for (auto it = metrics.begin(); it != metrics.end(); ++it) {
    if (it->is_structured()) continue;
    s += "<tr><td>" + html_escape(metric_label(it.key())) + "</td><td class=\"num\">" + metric_value(*it) +
         "</td></tr>\n";
  }
  return s;
}

std::string metrics_section(const nlohmann::ordered_json& metrics) {
  std::string s = "<div class=\"tables\">\n<div><h3>Task metrics</h3><table>\n<tr><th>metric</th><th>value</th></tr>\n" +
                  metric_rows(metrics) + "</table></div>\n";
  if (auto r = metrics.find("ranking"); r != metrics.end() && r->is_object())
    s += "<div><h3>Ranking metrics</h3><table>\n<tr><th>metric</th><th>value</th></tr>\n" + metric_rows(*r) +
         "</table></div>\n";
  if (auto pc = metrics.find("per_class"); pc != metrics.end() && pc->is_object()) {
    s += "<div><h3>Per class</h3><table>\n<tr><th>class</th><th>precision</th><th>recall</th><th>F1</th>"
         "<th>support</th></tr>\n";
    for (auto it = pc->begin(); it != pc->end(); ++it) {
      s += "<tr><td>" + html_escape(it.key()) + "</td>";
      for (const char* k : {"precision", "recall", "f1", "support"})
        s += "<td class=\"num\">" + metric_value(it->value(k, nlohmann::ordered_json())) + "</td>";
      s += "</tr>\n";
    }
    s += "</table></div>\n";
  }
  return s + "</div>\n";
}

int64_t count_parameters(SequenceModel& model) {
  int64_t n = 0;
  for (const auto& p : model->parameters()) n += p.numel();
  return n;
}

std::string with_thousands(int64_t n) {
  std::string digits = std::to_string(n), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0 && digits[i - 1] != '-') out += ',';
    out += digits[i];
  }
  return out;
}

struct ModelRun {
  LoadedModel loaded;
  TrainerState state;
  std::optional<TrainerState> last_state;
};

struct PredictionRun {
  std::string data;
  TaskSpec task;
  Predictions predictions;
  std::vector<double> labels;
  EvalResult result;
};

PredictionRun run_predictions(ModelRun& run, const ReportConfig& config, const std::string& data, const RunContext& ctx) {
  auto log = detail::logger("report");
  PredictionRun p;
  p.data = data;
  p.task = inference_task(run.loaded.spec, config.max_len, std::nullopt);
  ReaderOptions ro;
  ro.fields = p.task.fields;
  ro.require_label = true;
  std::vector<Record> records = read_jsonl(data, ro);
  log->info("{}: {} examples; model {} ({} task)", data, records.size(), run.loaded.dir, task_name(p.task.task));
  run.loaded.model->to(ctx.device);
  const Predictor predictor(run.loaded.model, std::make_shared<const Featurizer>(run.loaded.featurizer->with_task(p.task)),
                            ctx.precision, config.batch_size, ctx.stop);
  const LabelledSet set = labels_of(records, p.task, data);
  p.predictions = predictions_from_logits(predictor.run(records, ctx.threads).logits, p.task);
  require_finite(p.predictions, records, data);
  p.result = compute_metrics(p.task, p.predictions, set.labels, set.query_ids, run.loaded.spec.has_dqe_section);
  p.labels = set.labels;
  return p;
}

std::string header_section(const ReportConfig& config, const std::vector<TrainLogRecord>& train,
                           const std::vector<EvalLogRecord>& evals, ModelRun* run, const PredictionRun* pred) {
  std::string s = "<h1>dqe training report</h1>\n<p class=\"sub\">" + html_escape(config.run_dir) + "</p>\n";
  s += "<section id=\"summary\"><h2>Run</h2><div class=\"cards\">\n";
  if (run) {
    const ModelSpec& spec = run->loaded.spec;
    std::string task = spec.mlm_encoder ? std::string("masked-language-model pretraining") : task_name(spec.task.task);
    if (!spec.mlm_encoder && !task_head(spec.task.task).class_names(spec.task).empty() && !spec.task.labels.empty()) {
      std::string names;
      for (const auto& l : spec.task.labels) names += (names.empty() ? "" : ", ") + l;
      task += " <small>(" + html_escape(names) + ")</small>";
    }
    s += card("task", task);
    s += card("model", std::to_string(spec.bert.num_hidden_layers) + " layers &#215; " +
                           std::to_string(spec.bert.hidden_size) + " hidden &#215; " +
                           std::to_string(spec.bert.num_attention_heads) + " heads <small>(intermediate " +
                           std::to_string(spec.bert.intermediate_size) + ", vocab " +
                           std::to_string(spec.bert.vocab_size) + ", max length " +
                           std::to_string(spec.task.max_len) + ")</small>");
    s += card("parameters", with_thousands(count_parameters(run->loaded.model)));
  }
  const TrainerState* latest = run ? (run->last_state ? &*run->last_state : &run->state) : nullptr;
  std::string steps = train.empty() ? "none logged" : with_thousands(train.back().step);
  if (latest && latest->total_steps > 0) {
    steps += " <small>of " + with_thousands(latest->total_steps);
    if (latest->finished) steps += ", finished";
    steps += "</small>";
  }
  s += card("steps", steps);
  if (!train.empty()) {
    double sps = 0;
    size_t n = 0;
    for (const auto& e : train) {
      if (!std::isfinite(e.samples_per_s)) continue;
      sps += e.samples_per_s;
      ++n;
    }
    s += card("training time", format_duration(train.back().elapsed_s) + " <small>(" +
                                   format_number(n ? sps / static_cast<double>(n) : NAN, 3) + " samples/s)</small>");
  }
  if (run && run->state.best_metric) {
    s += card("best dev " + metric_label(run->state.metric_name),
              format_number(*run->state.best_metric) + " <small>at step " + with_thousands(run->state.best_step) +
                  "</small>");
  } else if (!evals.empty()) {
    s += card("last dev " + metric_label(evals.back().metric), format_number(evals.back().value) + " <small>at step " +
                                                     with_thousands(evals.back().step) + "</small>");
  }
  s += card("evaluations", std::to_string(evals.size()));
  if (run) s += card("checkpoint", html_escape(run->loaded.dir));
  if (pred)
    s += card("report data", html_escape(pred->data) + " <small>(" +
                                 with_thousands(static_cast<int64_t>(pred->labels.size())) + " examples)</small>");
  return s + "</div></section>\n";
}

std::string training_section(const std::vector<TrainLogRecord>& train) {
  std::string s = "<section id=\"training\"><h2>Training curves</h2>\n";
  if (train.empty()) return s + "<p class=\"empty\">No training steps logged yet.</p></section>\n";
  std::vector<double> steps, loss, lr, grad;
  for (const auto& e : train) {
    steps.push_back(static_cast<double>(e.step));
    loss.push_back(e.loss);
    lr.push_back(e.lr);
    grad.push_back(e.grad_norm);
  }
  // About 50 windows over the run, so the trend shows through the batch-to-batch noise.
  const size_t window = std::max<size_t>(5, train.size() / 50);
  LineChart loss_chart;
  loss_chart.title = "Training loss";
  loss_chart.x_label = "step";
  loss_chart.y_label = "loss";
  loss_chart.series.push_back({"raw", steps, loss, "#9ecae1", 1.0, 0.9, false, false});
  loss_chart.series.push_back(
      {"moving average (" + std::to_string(window) + " steps)", steps, moving_average(loss, window), "#1f77b4", 2.2});
  LineChart lr_chart;
  lr_chart.title = "Learning rate";
  lr_chart.x_label = "step";
  lr_chart.y_label = "lr";
  lr_chart.series.push_back({"", steps, lr, "#ff7f0e", 2.0});
  LineChart grad_chart;
  grad_chart.title = "Gradient norm (before clipping)";
  grad_chart.x_label = "step";
  grad_chart.y_label = "L2 norm";
  grad_chart.series.push_back({"raw", steps, grad, "#c7e9c0", 1.0, 0.9});
  grad_chart.series.push_back(
      {"moving average", steps, moving_average(grad, window), "#2ca02c", 2.2});
  s += "<div class=\"charts\">\n" + svg_line_chart(loss_chart) + svg_line_chart(lr_chart) + svg_line_chart(grad_chart);
  // Objectives' own numbers per step (pretraining: the accuracy on masked tokens).
  std::vector<double> accuracy;
  for (const auto& e : train) {
    auto it = e.extra.find("accuracy");
    accuracy.push_back(it != e.extra.end() && it->is_number() ? it->get<double>() : NAN);
  }
  if (std::any_of(accuracy.begin(), accuracy.end(), [](double v) { return std::isfinite(v); })) {
    LineChart acc_chart;
    acc_chart.title = "Training accuracy (masked tokens)";
    acc_chart.x_label = "step";
    acc_chart.y_label = "accuracy";
    acc_chart.series.push_back({"raw", steps, accuracy, "#dadaeb", 1.0, 0.9});
    acc_chart.series.push_back({"moving average", steps, moving_average(accuracy, window), "#756bb1", 2.2});
    s += svg_line_chart(acc_chart);
  }
  s += "</div>\n";
  return s + "</section>\n";
}

std::string dev_section(const std::vector<EvalLogRecord>& evals, const ModelRun* run) {
  std::string s = "<section id=\"dev\"><h2>Dev evaluations</h2>\n";
  if (evals.empty()) return s + "<p class=\"empty\">No evaluations yet.</p></section>\n";
  const std::string metric = evals.back().metric;
  std::vector<double> steps, values;
  for (const auto& e : evals) {
    steps.push_back(static_cast<double>(e.step));
    values.push_back(e.value);
  }
  LineChart primary;
  primary.title = "Dev " + metric_label(metric) + " (selection metric)";
  primary.x_label = "step";
  primary.y_label = metric_label(metric);
  primary.series.push_back({"dev " + metric_label(metric), steps, values, "#1f77b4", 2.0, 1.0, true});
  // The best point: the trainer's record when there is one, else the last improvement.
  std::optional<std::pair<int64_t, double>> best;
  if (run && run->state.best_metric) best = std::make_pair(run->state.best_step, *run->state.best_metric);
  for (const auto& e : evals)
    if (!run && e.improved) best = std::make_pair(e.step, e.value);
  if (best)
    primary.markers.push_back({static_cast<double>(best->first), best->second,
                               "best " + format_number(best->second) + " @ step " + std::to_string(best->first)});

  // The other scalar metrics of each evaluation, and nDCG@10 when ranking metrics exist.
  LineChart others;
  others.title = "Other dev metrics";
  others.x_label = "step";
  std::vector<std::string> keys;
  for (const auto& e : evals) {
    for (auto it = e.metrics.begin(); it != e.metrics.end(); ++it)
      if (it->is_number() && it.key() != "count" && it.key() != metric && it.key() != "threshold" &&
          std::find(keys.begin(), keys.end(), it.key()) == keys.end())
        keys.push_back(it.key());
  }
  for (const auto& key : keys) {
    std::vector<double> ys;
    for (const auto& e : evals) {
      auto it = e.metrics.find(key);
      ys.push_back(it != e.metrics.end() && it->is_number() ? it->get<double>() : NAN);
    }
    others.series.push_back(
        {metric_label(key), steps, ys, palette_color(others.series.size() + 1), 1.8, 1.0, evals.size() < 40});
  }
  std::vector<double> ndcg;
  for (const auto& e : evals) {
    auto r = e.metrics.find("ranking");
    ndcg.push_back(r != e.metrics.end() && r->is_object() && r->contains("ndcg_at_10") && (*r)["ndcg_at_10"].is_number()
                       ? (*r)["ndcg_at_10"].get<double>()
                       : NAN);
  }
  if (std::any_of(ndcg.begin(), ndcg.end(), [](double v) { return std::isfinite(v); }))
    others.series.push_back(
        {metric_label("ndcg_at_10"), steps, ndcg, palette_color(others.series.size() + 1), 1.8, 1.0, evals.size() < 40,
         true});

  s += "<div class=\"charts\">\n" + svg_line_chart(primary);
  if (!others.series.empty()) s += svg_line_chart(others);
  s += "</div>\n";
  if (evals.size() == 1) s += "<p class=\"note\">One evaluation so far.</p>\n";
  return s + "</section>\n";
}

std::string predictions_section(const PredictionRun& p) {
  std::string s = "<section id=\"metrics\"><h2>Final metrics</h2>\n<p class=\"sub\">on " +
                  html_escape(p.data) + " (" + with_thousands(static_cast<int64_t>(p.labels.size())) +
                  " examples)</p>\n" + metrics_section(p.result.metrics) + "</section>\n";

  const TaskHead& head = task_head(p.task.task);
  const std::vector<std::string> names = head.class_names(p.task);
  // A task without classes (regression) plots its scores against the labels; one with classes
  // has a confusion matrix.
  if (names.empty()) {
    s += "<section id=\"predictions\"><h2>Predicted vs true</h2>\n";
    std::set<double> distinct(p.labels.begin(), p.labels.end());
    const double range = distinct.empty() ? 0 : *distinct.rbegin() - *distinct.begin();
    // Discrete labels would stack into vertical lines; a little jitter shows their density.
    const double jitter = distinct.size() <= 20 ? 0.02 * (range > 0 ? range : 1) : 0;
    const size_t max_points = 3000;
    std::vector<size_t> rows = subsample_indices(p.labels.size(), max_points, 12345);
    std::mt19937_64 rng(777);
    std::uniform_real_distribution<double> u(-jitter, jitter);
    std::vector<double> x, y;
    for (size_t r : rows) {
      x.push_back(p.labels[r] + (jitter > 0 ? u(rng) : 0));
      y.push_back(p.predictions.scores[r]);
    }
    s += "<div class=\"charts\">\n" +
         svg_scatter("Predicted vs true label", jitter > 0 ? "true label (jittered)" : "true label", "predicted", x, y) +
         "</div>\n";
    std::string note = std::to_string(rows.size()) + " of " + std::to_string(p.labels.size()) + " examples";
    if (rows.size() < p.labels.size()) note += " (a random sample)";
    if (jitter > 0) note += "; true labels jittered by up to &#177;" + format_number(jitter, 2) + " to show overlapping points";
    s += "<p class=\"note\">" + note + ".</p>\n</section>\n";
  } else {
    s += "<section id=\"confusion\"><h2>Confusion matrix</h2>\n";
    std::vector<int64_t> truth(p.labels.begin(), p.labels.end());
    s += html_confusion_matrix(names, confusion_matrix(truth, p.predictions.classes, names.size()));
    s += "<p class=\"note\">Rows: true class; columns: predicted class; percentages of the row. " + head.class_rule() +
         "</p>\n</section>\n";
  }

  s += "<section id=\"histograms\"><h2>Score histograms per label</h2>\n<div class=\"charts\">\n";
  double lo = 0, hi = 1;
  size_t bins = 25;
  if (names.empty()) {
    // The scatter plot's range: predictions and labels, a little padded, to nice ticks.
    lo = INFINITY;
    hi = -INFINITY;
    for (const auto* values : {&p.predictions.scores, &p.labels}) {
      for (double v : *values) {
        if (!std::isfinite(v)) continue;
        lo = std::min(lo, v);
        hi = std::max(hi, v);
      }
    }
    if (!(lo < hi)) {
      lo = std::isfinite(lo) ? lo - 0.5 : 0;
      hi = lo + 1;
    }
    const double pad = 0.02 * (hi - lo);
    const auto ticks = nice_ticks(lo - pad, hi + pad, 5);
    const double step = ticks.size() >= 2 ? ticks[1] - ticks[0] : 1;
    lo = ticks.front();
    hi = ticks.back();
    // Ten bins per tick interval, so that bin edges fall on the ticks.
    bins = static_cast<size_t>(std::max<long long>(1, std::llround((hi - lo) / (step / 10))));
  }
  const std::vector<LabelGroup> groups = group_by_label(p.labels, names);
  for (size_t g = 0; g < groups.size(); ++g) {
    std::vector<double> scores;
    for (size_t r : groups[g].rows) scores.push_back(p.predictions.scores[r]);
    s += svg_histogram(histogram(scores, lo, hi, bins), "label " + groups[g].name, "score", palette_color(g));
  }
  s += "</div>\n<p class=\"note\">";
  return s + head.score_meaning() + "</p>\n</section>\n";
}

// The run's configuration as trainer_state.json lists it (the flags' order), rather than
// sorted as TrainerState holds it after parsing.
nlohmann::ordered_json config_in_file_order(const ModelRun& run) {
  std::ifstream in(run.loaded.dir + "/trainer_state.json");
  auto j = nlohmann::ordered_json::parse(in, nullptr, false);
  if (!j.is_discarded() && j.is_object() && j.contains("config") && j["config"].is_object()) return j["config"];
  return run.state.config;
}

}  // namespace

void ReportConfig::validate() const {
  if (run_dir.empty()) throw ConfigError("--run is required");
  if (out.empty()) throw ConfigError("--out must not be empty");
  check_flag(batch_size >= 1 && batch_size <= kMaxBatchSize, "--batch-size", "between 1 and " + std::to_string(kMaxBatchSize),
             batch_size);
  check_flag(max_len >= 0 && max_len <= kMaxSequenceLength, "--max-len", "0 (the model's) or between 3 and the model's limit",
             max_len);
  check_compute_flags(threads, precision, device);
}

void write_report(const ReportConfig& config, const StopToken& stop) {
  config.validate();
  const fs::path run_dir(config.run_dir);
  if (!fs::is_directory(run_dir)) throw IoError(config.run_dir + ": no such run directory");
  check_no_aliases({{"--out", config.out, true},
                    {"--data", config.data, false},
                    {"--run's train log", (run_dir / "train_log.jsonl").string(), false},
                    {"--run's eval log", (run_dir / "eval_log.jsonl").string(), false}});
  if (auto parent = fs::path(config.out).parent_path(); !parent.empty() && !fs::is_directory(parent))
    throw IoError(config.out + ": cannot write (no such directory)");
  auto log = detail::logger("report");

  const std::vector<TrainLogRecord> train = read_train_log((run_dir / "train_log.jsonl").string());
  const std::vector<EvalLogRecord> evals = read_eval_log((run_dir / "eval_log.jsonl").string());

  // Before the first evaluation a run has no best/ (and no last/ until one is saved):
  // the report then shows the curves alone.
  std::optional<ModelRun> run;
  std::optional<PredictionRun> pred;
  std::string no_model_note;
  if (fs::is_directory(run_dir / "best") || fs::is_directory(run_dir / "last")) {
    const RunContext ctx = make_run_context(config.device, config.precision, config.threads, stop);
    log->info(ctx.describe());
    run.emplace();
    LoadOptions lo;
    lo.allow_new_head = true;  // a pretraining run's encoder has no task head: nothing to predict
    run->loaded = load_model(config.run_dir, lo);
    run->state = load_trainer_state(run->loaded.dir, nullptr);
    if (fs::exists(run_dir / "last" / "trainer_state.json"))
      run->last_state = load_trainer_state((run_dir / "last").string(), nullptr);
    if (run->loaded.spec.mlm_encoder) {
      no_model_note = "A pretraining run: its encoder has no task head, so there are no predictions to show; the "
                      "held-back MLM metrics are under Dev evaluations.";
    } else {
      std::string data = config.data;
      if (data.empty()) {
        auto dev = run->state.config.find("dev");
        if (dev == run->state.config.end() || !dev->is_string() || dev->get<std::string>().empty())
          throw ConfigError(run->loaded.dir + "/trainer_state.json records no dev file; pass --data");
        data = dev->get<std::string>();
        if (!fs::exists(data))
          throw IoError(data + ": cannot open (the dev file recorded in " + run->loaded.dir +
                        "/trainer_state.json; pass --data)");
        check_no_aliases({{"--out", config.out, true}, {"the run's dev file", data, false}});
      }
      pred = run_predictions(*run, config, data, ctx);
    }
  } else {
    no_model_note = "No checkpoint yet (" + (run_dir / "best").string() + " does not exist): no predictions to show.";
  }

  std::string html = "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>dqe report: " +
                     html_escape(config.run_dir) + "</title>\n<style>" + kStyle + "</style>\n</head>\n<body>\n<main>\n";
  html += header_section(config, train, evals, run ? &*run : nullptr, pred ? &*pred : nullptr);
  html += training_section(train);
  html += dev_section(evals, run ? &*run : nullptr);
  if (pred) html += predictions_section(*pred);
  else html += "<section id=\"metrics\"><h2>Final metrics</h2><p class=\"empty\">" + html_escape(no_model_note) + "</p></section>\n";
  html += "<section id=\"config\"><h2>Configuration</h2>\n";
  if (run) {
    html += "<div class=\"tables\">\n<div><h3>Training (trainer_state.json)</h3>\n" + kv_table(flatten_json(config_in_file_order(*run))) +
            "</div>\n<div><h3>Model (config.json)</h3>\n" + kv_table(flatten_json(to_json(run->loaded.spec))) + "</div>\n</div>\n";
  } else {
    html += "<p class=\"empty\">No checkpoint yet: the configuration is saved with the first one.</p>\n";
  }
  html += "</section>\n<footer>Written by dqe report.</footer>\n</main>\n</body>\n</html>\n";
  write_file_atomic(config.out, html);
  log->info("wrote {}", config.out);
}

}  // namespace dqe
