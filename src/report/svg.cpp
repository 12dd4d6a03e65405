#include "report/svg.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <sstream>

namespace detkit::report {
namespace {

// Plot-area margins (px) around the axes.
constexpr double kLeft = 60, kRight = 16, kTop = 30, kBottom = 46, kLegendWidth = 150;
constexpr std::size_t kDotsUpTo = 25;  // series with at most this many points also get a dot per point

std::string px(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  return buf;
}

struct Range {
  double lo = 0, hi = 1;
};

// "Nice" tick step (1, 2 or 5 times a power of ten) giving about `target` intervals over `span`.
double nice_step(double span, int target) {
  if (!(span > 0) || !std::isfinite(span)) return 1;
  const double raw = span / target;
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  const double norm = raw / magnitude;
  const double nice = norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10;
  return nice * magnitude;
}

// The axis range: fixed ends where given, otherwise the data's extent widened to whole tick steps.
Range axis_range(double data_lo, double data_hi, std::optional<double> fixed_lo, std::optional<double> fixed_hi,
                 bool integer) {
  if (!std::isfinite(data_lo) || !std::isfinite(data_hi)) data_lo = 0, data_hi = 1;
  double lo = fixed_lo.value_or(data_lo), hi = fixed_hi.value_or(data_hi);
  if (!(hi > lo)) {
    const double pad = integer ? 1.0 : (lo != 0 ? std::fabs(lo) * 0.1 : 1.0);
    if (!fixed_lo) lo -= pad;
    if (!fixed_hi || !(fixed_hi.value_or(hi) > lo)) hi = lo + (fixed_lo ? pad : 2 * pad);
  }
  double step = nice_step(hi - lo, 5);
  if (integer) step = std::max(step, 1.0);
  if (!fixed_lo) lo = std::floor(lo / step + 1e-9) * step;
  if (!fixed_hi) hi = std::ceil(hi / step - 1e-9) * step;
  if (!(hi > lo)) hi = lo + step;
  return {lo, hi};
}

std::vector<double> ticks(const Range& r, bool integer) {
  double step = nice_step(r.hi - r.lo, 5);
  if (integer) step = std::max(step, 1.0);
  std::vector<double> out;
  for (double v = std::ceil(r.lo / step - 1e-9) * step; v <= r.hi + step * 1e-6 && out.size() < 50; v += step)
    out.push_back(std::fabs(v) < step * 1e-9 ? 0.0 : v);
  return out;
}

std::string tick_label(double v, const Range& r, bool integer) {
  const double step = std::max(nice_step(r.hi - r.lo, 5), integer ? 1.0 : 0.0);
  char buf[32];
  if (step < 1e-4 || std::fabs(v) >= 1e6) {
    std::snprintf(buf, sizeof buf, "%.2g", v);
  } else {
    const int decimals = std::clamp(static_cast<int>(-std::floor(std::log10(step) + 1e-9)), 0, 6);
    std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  }
  return buf;
}

// At most about `max_chars` bytes: the start and the end of `text` around an ellipsis (names of classes often
// differ only at the end), cut at UTF-8 character boundaries.
std::string shorten(const std::string& text, std::size_t max_chars) {
  if (text.size() <= max_chars) return text;
  auto continuation = [&](std::size_t i) { return (static_cast<unsigned char>(text[i]) & 0xC0) == 0x80; };
  std::size_t head = (max_chars - 1) * 3 / 5, tail = text.size() - (max_chars - 1 - head);
  while (head > 0 && continuation(head)) --head;
  while (tail < text.size() && continuation(tail)) ++tail;
  return text.substr(0, head) + "\u2026" + text.substr(tail);
}

std::string svg_open(int width, int height, const std::string& title) {
  std::ostringstream o;
  o << "<svg class=\"chart\" width=\"" << width << "\" height=\"" << height << "\" viewBox=\"0 0 " << width << ' '
    << height << "\" role=\"img\" aria-label=\"" << escape(title) << "\"><title>" << escape(title) << "</title>"
    << "<rect class=\"bg\" x=\"0\" y=\"0\" width=\"" << width << "\" height=\"" << height << "\" fill=\"#fff\"/>";
  if (!title.empty())
    o << "<text class=\"title\" x=\"" << width / 2 << "\" y=\"18\" text-anchor=\"middle\">" << escape(title) << "</text>";
  return o.str();
}

void axis_titles(std::ostringstream& o, int width, int height, double top, double plot_h, const std::string& x_label,
                 const std::string& y_label, double left, double plot_w) {
  (void)width;
  if (!x_label.empty())
    o << "<text class=\"axis-title\" x=\"" << px(left + plot_w / 2) << "\" y=\"" << height - 6
      << "\" text-anchor=\"middle\">" << escape(x_label) << "</text>";
  if (!y_label.empty()) {
    const double cy = top + plot_h / 2;
    o << "<text class=\"axis-title\" x=\"14\" y=\"" << px(cy) << "\" text-anchor=\"middle\" transform=\"rotate(-90 14 "
      << px(cy) << ")\">" << escape(y_label) << "</text>";
  }
}

void marker_line(std::ostringstream& o, double x, double top, double plot_h, const std::string& label) {
  o << "<line class=\"marker\" x1=\"" << px(x) << "\" y1=\"" << px(top) << "\" x2=\"" << px(x) << "\" y2=\""
    << px(top + plot_h) << "\" stroke=\"#c0392b\" stroke-width=\"1.2\" stroke-dasharray=\"5 3\"/>";
  if (!label.empty())
    o << "<text class=\"marker-label\" x=\"" << px(x + 3) << "\" y=\"" << px(top + 11)
      << "\" fill=\"#c0392b\" stroke=\"#fff\" stroke-width=\"3\" paint-order=\"stroke\">"
      << escape(label) << "</text>";
}

}  // namespace

std::string escape(const std::string& text) {
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

const char* palette(std::size_t i) {
  static const char* const colors[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                       "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
  return colors[i % 10];
}

std::string format_number(double value, int digits) {
  if (!std::isfinite(value)) return "\u2013";
  char buf[48];
  if (value == std::floor(value) && std::fabs(value) < 1e15)
    std::snprintf(buf, sizeof buf, "%.0f", value);
  else
    std::snprintf(buf, sizeof buf, "%.*g", digits, value);
  return buf;
}

std::string line_chart(const LineChart& chart_in, const std::vector<Series>& series_in) {
  // A log axis is a linear axis over log10(x) whose ticks sit on whole decades.
  const bool log_x = chart_in.log_x;
  LineChart chart = chart_in;
  std::vector<Series> series = series_in;
  if (log_x) {
    auto to_log = [](double x) { return x > 0 && std::isfinite(x) ? std::log10(x) : std::numeric_limits<double>::quiet_NaN(); };
    for (Series& s : series)
      for (double& x : s.x) x = to_log(x);
    for (Marker& m : chart.markers) m.at = to_log(m.at);
    if (chart.x_min) chart.x_min = to_log(*chart.x_min);
    if (chart.x_max) chart.x_max = to_log(*chart.x_max);
  }
  const bool legend = series.size() > 1;
  const double left = kLeft, top = kTop;
  const double plot_w = chart.width - left - kRight - (legend ? kLegendWidth : 0);
  const double plot_h = chart.height - top - kBottom;

  double x_lo = std::numeric_limits<double>::infinity(), x_hi = -x_lo, y_lo = x_lo, y_hi = -x_lo;
  for (const Series& s : series)
    for (std::size_t i = 0; i < std::min(s.x.size(), s.y.size()); ++i)
      if (std::isfinite(s.x[i]) && std::isfinite(s.y[i])) {
        x_lo = std::min(x_lo, s.x[i]), x_hi = std::max(x_hi, s.x[i]);
        y_lo = std::min(y_lo, s.y[i]), y_hi = std::max(y_hi, s.y[i]);
      }
  const bool integer_x = log_x || [&] {
    for (const Series& s : series)
      for (double v : s.x)
        if (std::isfinite(v) && v != std::floor(v)) return false;
    return true;
  }();
  const Range xr = axis_range(x_lo, x_hi, chart.x_min, chart.x_max, integer_x);
  const Range yr = axis_range(y_lo, y_hi, chart.y_min, chart.y_max, false);
  auto sx = [&](double x) { return left + (x - xr.lo) / (xr.hi - xr.lo) * plot_w; };
  auto sy = [&](double y) { return top + plot_h - (y - yr.lo) / (yr.hi - yr.lo) * plot_h; };

  std::ostringstream o;
  o << svg_open(chart.width, chart.height, chart.title);
  // Grid and tick labels.
  for (double t : ticks(yr, false)) {
    o << "<line class=\"grid\" x1=\"" << px(left) << "\" y1=\"" << px(sy(t)) << "\" x2=\"" << px(left + plot_w)
      << "\" y2=\"" << px(sy(t)) << "\" stroke=\"#e3e3e3\"/>";
    o << "<text class=\"tick\" x=\"" << px(left - 5) << "\" y=\"" << px(sy(t) + 4) << "\" text-anchor=\"end\">"
      << tick_label(t, yr, false) << "</text>";
  }
  for (double t : ticks(xr, integer_x)) {
    o << "<line class=\"tick-mark\" x1=\"" << px(sx(t)) << "\" y1=\"" << px(top + plot_h) << "\" x2=\"" << px(sx(t))
      << "\" y2=\"" << px(top + plot_h + 4) << "\" stroke=\"#555\"/>";
    o << "<text class=\"tick\" x=\"" << px(sx(t)) << "\" y=\"" << px(top + plot_h + 16) << "\" text-anchor=\"middle\">"
      << (log_x ? (t == 0 ? std::string("1") : "1e" + std::to_string(static_cast<int>(std::lround(t))))
                : tick_label(t, xr, integer_x))
      << "</text>";
  }
  o << "<path class=\"axis\" d=\"M" << px(left) << ' ' << px(top) << "V" << px(top + plot_h) << "H" << px(left + plot_w)
    << "\" fill=\"none\" stroke=\"#555\"/>";
  axis_titles(o, chart.width, chart.height, top, plot_h, chart.x_label, chart.y_label, left, plot_w);
  for (const Marker& m : chart.markers)
    if (std::isfinite(m.at) && m.at >= xr.lo && m.at <= xr.hi) marker_line(o, sx(m.at), top, plot_h, m.label);

  for (std::size_t k = 0; k < series.size(); ++k) {
    const Series& s = series[k];
    const std::string color = s.color.empty() ? palette(k) : s.color;
    std::string points;
    std::size_t count = 0;
    for (std::size_t i = 0; i < std::min(s.x.size(), s.y.size()); ++i) {
      if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i])) continue;
      if (count++) points += ' ';
      points += px(sx(s.x[i])) + "," + px(sy(s.y[i]));
    }
    o << "<polyline class=\"series\" data-series=\"" << escape(s.name) << "\" fill=\"none\" stroke=\"" << color
      << "\" stroke-width=\"" << px(s.width) << "\" stroke-linejoin=\"round\""
      << (s.dashed ? " stroke-dasharray=\"6 3\"" : "") << " points=\"" << points << "\"/>";
    if (count <= kDotsUpTo)
      for (std::size_t i = 0; i < std::min(s.x.size(), s.y.size()); ++i)
        if (std::isfinite(s.x[i]) && std::isfinite(s.y[i]))
          o << "<circle cx=\"" << px(sx(s.x[i])) << "\" cy=\"" << px(sy(s.y[i])) << "\" r=\"2.5\" fill=\"" << color
            << "\"/>";
  }

  if (legend) {
    const double lx = left + plot_w + 14;
    const std::size_t fits = static_cast<std::size_t>(std::max(1.0, (plot_h - 4) / 16));
    std::size_t shown = std::min({series.size(), chart.max_legend, fits});
    if (shown < series.size() && shown > 1) --shown;  // room for the "+N more" line
    for (std::size_t k = 0; k < shown; ++k) {
      const Series& s = series[k];
      const double y = top + 8 + 16.0 * static_cast<double>(k);
      o << "<line x1=\"" << px(lx) << "\" y1=\"" << px(y) << "\" x2=\"" << px(lx + 18) << "\" y2=\"" << px(y)
        << "\" stroke=\"" << (s.color.empty() ? palette(k) : s.color.c_str()) << "\" stroke-width=\"" << px(s.width + 0.6)
        << "\"" << (s.dashed ? " stroke-dasharray=\"6 3\"" : "") << "/>";
      o << "<text class=\"legend\" x=\"" << px(lx + 23) << "\" y=\"" << px(y + 4) << "\">" << escape(shorten(s.name, 20));
      if (s.name.size() > 20) o << "<title>" << escape(s.name) << "</title>";
      o << "</text>";
    }
    if (shown < series.size())
      o << "<text class=\"legend\" x=\"" << px(lx) << "\" y=\"" << px(top + 12 + 16.0 * static_cast<double>(shown))
        << "\">+" << series.size() - shown << " more</text>";
  }
  o << "</svg>";
  return o.str();
}

std::string bar_chart(const BarChart& chart, const std::vector<Bar>& bars) {
  const double left = kLeft, top = kTop;
  const double plot_w = chart.width - left - kRight;
  const std::size_t n = std::max<std::size_t>(bars.size(), 1);
  const double slot = plot_w / static_cast<double>(n);
  std::size_t longest = 0;
  for (const Bar& b : bars) longest = std::max(longest, b.label.size());
  const bool rotate = static_cast<double>(std::min<std::size_t>(longest, 16)) * 6.5 > slot - 4;
  const double bottom = rotate ? kBottom + 58 : kBottom;
  const double plot_h = chart.height - top - bottom;
  const std::size_t label_every = rotate ? std::max<std::size_t>(1, static_cast<std::size_t>(std::ceil(13.0 / slot))) : 1;

  double max_value = 0;
  for (const Bar& b : bars)
    if (std::isfinite(b.value)) max_value = std::max(max_value, b.value);
  // Headroom above the highest bar for its value label.
  const Range yr = axis_range(0, max_value > 0 ? max_value * 1.12 : 1, 0.0, std::nullopt, false);
  auto sy = [&](double y) { return top + plot_h - (y - yr.lo) / (yr.hi - yr.lo) * plot_h; };
  const std::string color = chart.color.empty() ? palette(0) : chart.color;

  std::ostringstream o;
  o << svg_open(chart.width, chart.height, chart.title);
  for (double t : ticks(yr, false)) {
    o << "<line class=\"grid\" x1=\"" << px(left) << "\" y1=\"" << px(sy(t)) << "\" x2=\"" << px(left + plot_w)
      << "\" y2=\"" << px(sy(t)) << "\" stroke=\"#e3e3e3\"/>";
    o << "<text class=\"tick\" x=\"" << px(left - 5) << "\" y=\"" << px(sy(t) + 4) << "\" text-anchor=\"end\">"
      << tick_label(t, yr, false) << "</text>";
  }
  for (std::size_t i = 0; i < bars.size(); ++i) {
    const Bar& b = bars[i];
    const double value = std::isfinite(b.value) ? std::max(0.0, b.value) : 0.0;
    const double x0 = left + slot * static_cast<double>(i), cx = x0 + slot / 2;
    const double bw = std::max(1.0, slot * 0.72);
    o << "<rect class=\"bar\" x=\"" << px(cx - bw / 2) << "\" y=\"" << px(sy(value)) << "\" width=\"" << px(bw)
      << "\" height=\"" << px(top + plot_h - sy(value)) << "\" fill=\"" << color << "\"><title>" << escape(b.label)
      << ": " << format_number(b.value) << "</title></rect>";
    if (slot >= 26)
      o << "<text class=\"value\" x=\"" << px(cx) << "\" y=\"" << px(sy(value) - 4) << "\" text-anchor=\"middle\">"
        << format_number(b.value) << "</text>";
    if (i % label_every != 0) continue;
    if (rotate) {
      const double ly = top + plot_h + 12;
      o << "<text class=\"tick\" x=\"" << px(cx) << "\" y=\"" << px(ly) << "\" text-anchor=\"end\" transform=\"rotate(-40 "
        << px(cx) << ' ' << px(ly) << ")\">" << escape(shorten(b.label, 16)) << "</text>";
    } else {
      o << "<text class=\"tick\" x=\"" << px(cx) << "\" y=\"" << px(top + plot_h + 16) << "\" text-anchor=\"middle\">"
        << escape(b.label) << "</text>";
    }
  }
  o << "<path class=\"axis\" d=\"M" << px(left) << ' ' << px(top) << "V" << px(top + plot_h) << "H" << px(left + plot_w)
    << "\" fill=\"none\" stroke=\"#555\"/>";
  axis_titles(o, chart.width, chart.height, top, plot_h, chart.x_label, chart.y_label, left, plot_w);
  for (const Marker& m : chart.markers)
    if (std::isfinite(m.at) && m.at >= 0 && m.at <= static_cast<double>(n))
      marker_line(o, left + slot * m.at, top, plot_h, m.label);
  o << "</svg>";
  return o.str();
}

std::string heatmap_table(const HeatMap& map) {
  std::ostringstream o;
  o << "<table class=\"heatmap\"><thead><tr><th class=\"corner\">" << escape(map.corner) << "</th>";
  for (const std::string& c : map.column_labels) o << "<th scope=\"col\">" << escape(c) << "</th>";
  o << "</tr></thead><tbody>";
  for (std::size_t r = 0; r < map.values.size(); ++r) {
    const std::string row_label = r < map.row_labels.size() ? map.row_labels[r] : std::to_string(r);
    double sum = 0;
    for (double v : map.values[r])
      if (std::isfinite(v) && v > 0) sum += v;
    o << "<tr><th scope=\"row\">" << escape(row_label) << "</th>";
    for (std::size_t c = 0; c < map.values[r].size(); ++c) {
      const double v = map.values[r][c];
      const double share = sum > 0 && std::isfinite(v) && v > 0 ? v / sum : 0.0;
      char style[96];
      std::snprintf(style, sizeof style, "background:rgba(31,119,180,%.3f);color:%s", share,
                    share > 0.55 ? "#fff" : "#222");
      const std::string column_label = c < map.column_labels.size() ? map.column_labels[c] : std::to_string(c);
      o << "<td style=\"" << style << "\" title=\"" << escape(row_label) << " / " << escape(column_label) << ": "
        << format_number(v) << " (" << format_number(100 * share, 3) << "% of the row)\">" << format_number(v)
        << "</td>";
    }
    o << "</tr>";
  }
  o << "</tbody></table>";
  return o.str();
}

}  // namespace detkit::report
