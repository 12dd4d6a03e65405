// Small chart helpers for the HTML report: inline SVG line and bar charts and a shaded HTML table for
// matrices. Torch-free, no JavaScript: the output is static markup that any browser draws offline.
//
// What it is:
//   - line_chart: several series as <polyline>s (one per series, with a data-series attribute naming it,
//     its points in the given order), axes with "nice" tick values and labels, axis titles, optional
//     vertical marker lines, and a legend on the right when there is more than one series. Series with up
//     to 25 points also get a dot per point. Points whose x or y is not finite are left out.
//   - bar_chart: one bar per category with its value above it (when there is room), category labels
//     (rotated when they would overlap), a y axis from 0, and optional vertical marker lines between bars.
//   - heatmap_table: an HTML <table> of a matrix whose cells are shaded by their value divided by the sum
//     of their row (row-normalised), with the counts written in the cells.
//
// Guarantees: every text that reaches the markup (titles, labels, legend names) is escaped with escape();
// the output is deterministic (same input, same bytes). Sizes are in CSS pixels.
//
// Throws: nothing for any input (empty or degenerate data draws empty axes), except std::bad_alloc.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

namespace detkit::report {

// Escapes &, <, >, " and ' so that `text` is safe as HTML/SVG character data and inside quoted attributes.
std::string escape(const std::string& text);

// Colour i (cycling) of a fixed 10-colour qualitative palette, as "#rrggbb".
const char* palette(std::size_t i);

// A number for display: `digits` significant digits, no exponent for ordinary magnitudes, "–" when not
// finite.
std::string format_number(double value, int digits = 4);

struct Series {
  std::string name;          // legend text
  std::vector<double> x, y;  // same length (the shorter one decides)
  std::string color;         // empty: palette(index of the series)
  double width = 1.6;        // stroke width
  bool dashed = false;
};

// A vertical dashed line at x == at (line chart) or at a bar boundary (bar chart), with a label at its top.
struct Marker {
  double at = 0;
  std::string label;
};

struct LineChart {
  std::string title, x_label, y_label;
  int width = 560, height = 300;
  std::optional<double> x_min, x_max, y_min, y_max;  // fixed axis ends; otherwise taken from the data
  std::vector<Marker> markers;
  std::size_t max_legend = 14;  // legend entries shown; the rest are summarised as "+N more"
  bool log_x = false;  // x on a log10 axis with a tick per decade ("1e-3"); x <= 0 is left out; x_min, x_max
                       // and markers are given in data units, not logs
};

std::string line_chart(const LineChart& chart, const std::vector<Series>& series);

struct Bar {
  std::string label;
  double value = 0;
};

struct BarChart {
  std::string title, x_label, y_label;
  int width = 560, height = 300;
  std::string color;  // empty: palette(0)
  // Marker::at in bar units: 0 is the left edge of the first bar, k the boundary between bars k-1 and k.
  std::vector<Marker> markers;
};

std::string bar_chart(const BarChart& chart, const std::vector<Bar>& bars);

struct HeatMap {
  std::string corner;  // text of the top-left cell, e.g. "predicted \u2193 / true \u2192"
  std::vector<std::string> row_labels, column_labels;
  std::vector<std::vector<double>> values;  // rows x columns; integral values print without decimals
};

std::string heatmap_table(const HeatMap& map);

}  // namespace detkit::report
