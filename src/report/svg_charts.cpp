// The report's charts as standalone SVG (dqe/report.h): line charts, histograms, scatter
// plots and confusion tables.
#include "dqe/report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <set>

#include "base/format.h"

namespace dqe {

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

}  // namespace dqe
