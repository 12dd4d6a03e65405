#include "report/html.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>
#include <sstream>

#include "core/text.h"
#include "detkit/build_info.h"
#include "report/svg.h"

namespace detkit::report {
namespace {

constexpr int kChartWidth = 540, kChartHeight = 300;  // two charts side by side
constexpr const char* kMeanColor = "#222222";

const char* const kStyle = R"css(
*{box-sizing:border-box}
body{margin:0;background:#f4f5f7;color:#222;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",Helvetica,Arial,sans-serif}
main{max-width:1180px;margin:0 auto;padding:12px 16px 40px}
h1{font-size:22px;margin:10px 0 2px}
h2{font-size:17px;margin:2px 0 10px}
h3{font-size:14px;margin:12px 0 6px}
.sub{color:#555;margin:0 0 8px;word-break:break-all}
nav{margin:6px 0 4px;font-size:13px}
nav a{margin-right:12px;color:#1f5f99;text-decoration:none}
section{background:#fff;border:1px solid #dfe2e6;border-radius:6px;padding:12px 16px;margin:12px 0}
.cards{display:flex;flex-wrap:wrap;gap:10px}
.card{border:1px solid #dfe2e6;border-radius:6px;padding:8px 12px;min-width:160px;background:#fafbfc}
.card .label{font-size:12px;color:#666}
.card .value{font-size:20px;font-weight:600}
.card .detail{font-size:12px;color:#555}
.charts{display:flex;flex-wrap:wrap;gap:12px}
svg.chart{display:block;border:1px solid #e6e8eb;background:#fff}
svg text{font-size:11px;fill:#333}
svg text.title{font-size:13px;font-weight:600}
svg text.axis-title{font-size:12px;fill:#444}
svg text.marker-label{fill:#c0392b;font-size:11px}
table{border-collapse:collapse;font-size:13px}
td,th{border:1px solid #dde0e4;padding:3px 8px;text-align:right}
th{background:#f3f4f6;font-weight:600}
.name{text-align:left}
table.heatmap td{min-width:44px;text-align:center}
table.heatmap th.corner{font-weight:normal;color:#555;font-size:12px}
.apbar{display:inline-block;height:9px;background:#1f77b4;vertical-align:middle;margin-left:6px}
pre{background:#f6f8fa;border:1px solid #e1e4e8;padding:8px 10px;overflow:auto;max-height:520px;font:12px/1.4 ui-monospace,"DejaVu Sans Mono",Menlo,Consolas,monospace}
p.note{color:#666;font-style:italic;margin:8px 2px}
.caption{color:#555;font-size:12px;margin:6px 0 0}
img.samples{display:block;max-width:100%;height:auto;border:1px solid #ddd}
figure{margin:0}
.kind{font-family:ui-monospace,"DejaVu Sans Mono",monospace;font-size:12px}
td.text{text-align:left;max-width:320px}
.at{display:block;color:#666;font-size:12px}
.crops{display:flex;flex-wrap:wrap;gap:10px;margin:8px 0}
figure.crop{border:1px solid #dfe2e6;border-radius:4px;padding:4px;background:#fafbfc}
figure.crop img{display:block;max-width:360px;max-height:200px;height:auto}
figure.crop figcaption{font-size:12px;color:#444;margin-top:3px;max-width:360px;word-break:break-all}
)css";

std::string fixed(double v, int decimals = 3) {
  if (!std::isfinite(v) || v < 0) return "\u2013";
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

double named(const NamedValues& values, const std::string& key, double fallback = -1) {
  for (const auto& [k, v] : values)
    if (k == key) return v;
  return fallback;
}

bool has_ground_truth(const std::vector<double>& curve) {
  for (double v : curve)
    if (std::isfinite(v) && v >= 0) return true;
  return false;
}

// Drops the inner points of runs of equal y (lossless for the step-shaped PR and confidence curves).
void simplify(std::vector<double>& x, std::vector<double>& y) {
  const std::size_t n = std::min(x.size(), y.size());
  if (n < 3) return;
  std::vector<double> ox{x[0]}, oy{y[0]};
  for (std::size_t i = 1; i + 1 < n; ++i)
    if (!(y[i] == y[i - 1] && y[i] == y[i + 1])) ox.push_back(x[i]), oy.push_back(y[i]);
  ox.push_back(x[n - 1]);
  oy.push_back(y[n - 1]);
  x.swap(ox);
  y.swap(oy);
}

std::string display_name(const fs::path& dir) {
  fs::path p = dir.lexically_normal();
  if (p.filename().empty()) p = p.parent_path();
  std::string name = p.filename().string();
  if (name.empty() || name == ".") {
    std::error_code ec;
    name = fs::absolute(dir, ec).lexically_normal().filename().string();
  }
  return name.empty() ? dir.string() : name;
}

class Page {
 public:
  explicit Page(const RunFiles& f)
      : f_(f), evaluation_(f.kind == RunFiles::Kind::evaluation),
        standalone_((f.lr_find || f.audit) && !f.results && !f.run && !f.eval && !f.curves) {}

  std::string render() {
    if (standalone_) {  // the output directory of `detkit lr-find` or of `detkit audit`
      lr_find();
      audit();
      text_section("config", "Resolved configuration", f_.config, "config.yaml", "");
      return page(cat(f_.lr_find ? "Learning-rate range test " : "Label audit ", display_name(f_.dir)));
    }
    summary();
    training();
    lr_find();
    validation();
    per_class();
    dataset();
    samples();
    audit();
    events();
    text_section("environment", "Environment", f_.environment, "environment.txt",
                 "the doctor's short report of the machine the run used");
    text_section("config", "Resolved configuration", f_.config, "config.yaml", "");
    return page(cat(evaluation_ ? "Evaluation " : "Training run ", display_name(f_.dir)));
  }

 private:
  std::string page(const std::string& title) {
    std::ostringstream o;
    o << "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
      << "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; "
         "style-src 'unsafe-inline'\">\n"
      << "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
      << "<meta name=\"generator\" content=\"detkit " << DETKIT_VERSION << "\">\n"
      << "<title>" << escape(title) << " \u2013 detkit report</title>\n<style>" << kStyle << "</style>\n</head>\n<body>\n<main>\n"
      << "<header><h1>" << escape(title) << "</h1><p class=\"sub\">" << escape(f_.dir.string())
      << " \u00b7 detkit " << DETKIT_VERSION << " report</p>\n<nav>";
    for (const auto& [id, name] : nav_) o << "<a href=\"#" << id << "\">" << escape(name) << "</a>";
    o << "</nav></header>\n" << body_.str() << "</main>\n</body>\n</html>\n";
    return o.str();
  }

  const RunFiles& f_;
  bool evaluation_;
  bool standalone_;  // only a learning-rate range test or a label audit: no training or evaluation files
  std::ostringstream body_;
  std::vector<std::pair<std::string, std::string>> nav_;

  void open(const std::string& id, const std::string& title) {
    nav_.emplace_back(id, title);
    body_ << "<section id=\"" << id << "\">\n<h2>" << escape(title) << "</h2>\n";
  }
  void close() { body_ << "</section>\n"; }
  void note(const std::string& file, const std::string& text) {
    body_ << "<p class=\"note\" data-missing=\"" << escape(file) << "\">" << escape(text) << "</p>\n";
  }

  static void card(std::ostringstream& o, const std::string& label, const std::string& value, const std::string& detail) {
    o << "<div class=\"card\"><div class=\"label\">" << escape(label) << "</div><div class=\"value\">" << escape(value)
      << "</div>";
    if (!detail.empty()) o << "<div class=\"detail\">" << escape(detail) << "</div>";
    o << "</div>";
  }

  void summary() {
    std::ostringstream cards;
    const auto& rows = f_.results;
    std::string model = f_.run ? f_.run->model : "";
    if (model.empty()) model = f_.config_model;
    if (model.empty() && f_.eval) model = f_.eval->model;
    if (!model.empty()) card(cards, "Model", model, "");

    if (!evaluation_) {
      int64_t epochs = f_.run ? f_.run->epochs_completed : rows ? static_cast<int64_t>(rows->size()) : -1;
      if (epochs >= 0) {
        std::string detail;
        if (f_.run) {
          detail = cat(f_.run->optimizer_steps, " optimizer steps, ", f_.run->samples_seen, " samples");
          if (f_.run->stopped_early) detail += "; stopped early";
          if (f_.run->interrupted) detail += "; interrupted";
        }
        card(cards, "Epochs", std::to_string(epochs), detail);
      }
      // Best mAP: the run's summary, else the best evaluated row of results.csv.
      double best = -1, best50 = -1;
      int64_t best_epoch = 0;
      if (f_.run && f_.run->has_best) {
        best = named(f_.run->best_stats, "AP");
        best50 = named(f_.run->best_stats, "AP50");
        best_epoch = f_.run->best_epoch;
      } else if (rows) {
        for (const EpochRow& r : *rows)
          if (std::isfinite(r.map50_95) && r.map50_95 >= 0 && r.map50_95 > best)
            best = r.map50_95, best50 = r.map50, best_epoch = r.epoch;
      }
      if (best >= 0)
        card(cards, "Best mAP50-95", fixed(best), cat("mAP50 ", fixed(best50), " at epoch ", best_epoch));
      else if (f_.run || rows)
        card(cards, "Best mAP50-95", "\u2013", "not evaluated");
      if (f_.run && f_.run->final_map50_95 >= 0)
        card(cards, "Final mAP50-95", fixed(f_.run->final_map50_95), cat("mAP50 ", fixed(f_.run->final_map50)));

      double seconds = f_.run ? f_.run->seconds : NAN;
      double ips_sum = 0, peak = -1;
      std::size_t ips_n = 0;
      if (rows) {
        double sum = 0;
        for (const EpochRow& r : *rows) {
          if (std::isfinite(r.seconds)) sum += r.seconds;
          if (std::isfinite(r.images_per_second)) ips_sum += r.images_per_second, ++ips_n;
          if (std::isfinite(r.peak_memory_bytes)) peak = std::max(peak, r.peak_memory_bytes);
        }
        if (!std::isfinite(seconds)) seconds = sum;
      }
      if (std::isfinite(seconds))
        card(cards, "Time", format_duration(seconds),
             ips_n ? cat("mean ", format_number(ips_sum / static_cast<double>(ips_n), 4), " images/s") : "");
      if (peak >= 0) card(cards, "Peak memory", format_bytes(static_cast<uint64_t>(peak)), "GPU allocated, or RSS on the CPU");

      int64_t skipped = -1, rollbacks = -1, ooms = -1, micro = -1;
      if (f_.run) {
        skipped = f_.run->skipped_steps, rollbacks = f_.run->rollbacks, ooms = f_.run->oom_events,
        micro = f_.run->micro_batch;
      } else if (rows && !rows->empty()) {
        skipped = rows->back().skipped_steps, rollbacks = rows->back().rollbacks, ooms = rows->back().oom_events,
        micro = rows->back().micro_batch;
      }
      if (skipped >= 0 || rollbacks >= 0)
        card(cards, "Guardrails", cat(std::max<int64_t>(skipped, 0), " skipped"),
             cat(std::max<int64_t>(rollbacks, 0), " rollback(s)"));
      if (ooms >= 0) card(cards, "Out of memory", cat(ooms, " event(s)"), micro > 0 ? cat("micro-batch ", micro) : "");
    }
    if (f_.eval) {
      const EvalMetrics& e = *f_.eval;
      const std::string where = cat(e.images, " images", e.split.empty() ? "" : " of split '" + e.split + "'",
                                    e.imgsz > 0 ? cat(" at ", e.imgsz, " px") : "");
      card(cards, evaluation_ ? "mAP50-95" : "Validation mAP50-95", fixed(named(e.stats, "AP")),
           cat("mAP50 ", fixed(named(e.stats, "AP50")), "; ", where));
      if (evaluation_) card(cards, "Detections", std::to_string(e.detections), where);
      if (std::isfinite(e.best_confidence))
        card(cards, "Best confidence", fixed(e.best_confidence, 3), "the threshold with the best mean F1");
    }
    open("summary", "Summary");
    body_ << "<div class=\"cards\">" << cards.str() << "</div>\n";
    close();
  }

  std::string epoch_chart(const std::string& title, const std::string& y_label, std::vector<Series> series,
                          std::optional<double> y_min = std::nullopt, std::optional<double> y_max = std::nullopt) {
    LineChart c;
    if (f_.results && !f_.results->empty()) {  // every epoch chart spans the same epochs
      c.x_min = static_cast<double>(f_.results->front().epoch);
      c.x_max = static_cast<double>(f_.results->back().epoch);
    }
    c.title = title;
    c.x_label = "epoch";
    c.y_label = y_label;
    c.width = kChartWidth;
    c.height = kChartHeight;
    c.y_min = y_min;
    c.y_max = y_max;
    return line_chart(c, series);
  }

  void training() {
    if (evaluation_) return;
    if (!f_.results) {
      note("results.csv", "No results.csv: the training curves are left out.");
      return;
    }
    open("training", "Training");
    const auto& rows = *f_.results;
    if (rows.empty()) {
      body_ << "<p class=\"note\">results.csv has no epoch yet.</p>\n";
      close();
      return;
    }
    auto column = [&](const char* name, double EpochRow::*field, bool evaluated_only = false) {
      Series s;
      s.name = name;
      for (const EpochRow& r : rows) {
        const double v = r.*field;
        if (evaluated_only && !(v >= 0)) continue;
        s.x.push_back(static_cast<double>(r.epoch));
        s.y.push_back(v);
      }
      return s;
    };
    body_ << "<div class=\"charts\">\n";
    body_ << epoch_chart("Losses (mean per image)", "loss",
                         {column("box_loss", &EpochRow::box_loss), column("cls_loss", &EpochRow::cls_loss),
                          column("dfl_loss", &EpochRow::dfl_loss)})
          << "\n";
    body_ << epoch_chart("Learning rate", "lr", {column("lr", &EpochRow::lr)}) << "\n";
    Series map50 = column("mAP50", &EpochRow::map50, true), map = column("mAP50-95", &EpochRow::map50_95, true);
    if (!map.x.empty() || !map50.x.empty())
      body_ << epoch_chart("Validation mAP", "mAP", {map50, map}, 0.0) << "\n";
    body_ << epoch_chart("Throughput", "images / s", {column("images/s", &EpochRow::images_per_second)}, 0.0) << "\n";
    body_ << epoch_chart("Data-wait share", "share of step time waiting for data",
                         {column("data_wait_share", &EpochRow::data_wait_share)}, 0.0, 1.0)
          << "\n</div>\n";
    if (map.x.empty() && map50.x.empty())
      body_ << "<p class=\"caption\">No epoch was evaluated (map50 and map50_95 are -1 in every row).</p>\n";
    else
      body_ << "<p class=\"caption\">mAP points are the evaluated epochs only.</p>\n";
    close();
  }

  // The classes with ground truth, in curve order, as series over `x` with values `ys`.
  std::vector<Series> class_series(const std::vector<double>& x, const std::vector<std::vector<double>>& ys,
                                   const std::string& mean_name, bool with_ap) {
    const Curves& c = *f_.curves;
    std::vector<Series> out;
    Series mean;
    mean.name = mean_name;
    mean.color = kMeanColor;
    mean.width = 2.8;
    mean.x = x;
    mean.y.assign(x.size(), 0.0);
    std::size_t counted = 0;
    for (std::size_t k = 0; k < ys.size(); ++k) {
      if (!has_ground_truth(ys[k])) continue;
      for (std::size_t i = 0; i < x.size() && i < ys[k].size(); ++i) mean.y[i] += ys[k][i];
      ++counted;
    }
    if (counted == 0) return out;
    for (double& v : mean.y) v /= static_cast<double>(counted);
    simplify(mean.x, mean.y);
    out.push_back(std::move(mean));
    for (std::size_t k = 0; k < ys.size(); ++k) {
      if (!has_ground_truth(ys[k])) continue;
      Series s;
      s.name = k < c.class_names.size() ? c.class_names[k] : std::to_string(k);
      if (with_ap && k < c.class_ap50.size()) s.name += cat(" (", fixed(c.class_ap50[k]), ")");
      s.color = palette(out.size() - 1);
      s.x = x;
      s.y = ys[k];
      simplify(s.x, s.y);
      out.push_back(std::move(s));
    }
    return out;
  }

  // The learning-rate range test: the loss against the rate on a log axis, the suggestion and the minimum
  // marked, the settings it measured, and its notes.
  void lr_find() {
    if (!f_.lr_find) return;
    const LrFind& r = *f_.lr_find;
    open("lr-find", "Learning-rate range test");
    std::ostringstream cards;
    card(cards, "Suggested lr0", format_number(r.suggested_lr, 3),
         cat("lowest smoothed loss at ", format_number(r.min_loss_lr, 3), " / 10"));
    if (r.steepest_lr > 0) card(cards, "Steepest fall", format_number(r.steepest_lr, 3), "a second opinion");
    card(cards, "Steps", cat(r.steps_run, " of ", r.steps_planned),
         r.diverged ? cat("diverged at ", format_number(r.diverged_lr, 3)) : r.interrupted ? "interrupted" : "did not diverge");
    card(cards, "Recipe", cat(r.model, " ", r.optimizer), cat("batch ", r.batch, r.accumulate > 1 ? cat(" (loss x ", r.accumulate, ")") : "",
                                                            ", ", r.imgsz, " px, ", r.device));
    body_ << "<div class=\"cards\">" << cards.str() << "</div>\n";
    // The diverging tail is cut: the y axis ends a little above the first smoothed loss.
    double first = NAN, bottom = std::numeric_limits<double>::infinity();
    for (std::size_t i = 0; i < r.smoothed.size(); ++i) {
      if (std::isfinite(r.smoothed[i]) && !std::isfinite(first)) first = r.smoothed[i];
      if (std::isfinite(r.loss[i])) bottom = std::min(bottom, r.loss[i]);
      if (std::isfinite(r.smoothed[i])) bottom = std::min(bottom, r.smoothed[i]);
    }
    LineChart c;
    c.title = "Loss against learning rate";
    c.x_label = "learning rate (log scale)";
    c.y_label = "training loss per image";
    c.width = 760;
    c.height = 340;
    c.log_x = true;
    if (std::isfinite(bottom) && std::isfinite(first) && first > bottom) c.y_min = bottom, c.y_max = first * 1.15;
    c.markers.push_back({r.suggested_lr, cat("suggested ", format_number(r.suggested_lr, 3))});
    if (r.min_loss_lr > 0) c.markers.push_back({r.min_loss_lr, ""});
    Series raw{"loss", r.lr, r.loss, "#b0b0b0", 1.0};
    Series smooth{"smoothed", r.lr, r.smoothed, palette(0), 2.2};
    for (double& y : raw.y) if (c.y_max && y > *c.y_max) y = *c.y_max;
    for (double& y : smooth.y) if (c.y_max && y > *c.y_max) y = *c.y_max;
    body_ << "<div class=\"charts\">\n" << line_chart(c, {raw, smooth}) << "\n</div>\n";
    body_ << "<p class=\"caption\">From " << escape(f_.lr_find_file) << ": " << r.steps_run << " steps, "
          << r.images << " images, " << format_duration(r.seconds) << "; the rate rose geometrically from "
          << format_number(r.start, 3) << " to " << format_number(r.end, 3)
          << ". The unlabelled dashed line marks the lowest smoothed loss; train with lr0 = the suggestion (lr0: auto "
             "does this).</p>\n";
    for (const auto& n : r.notes) body_ << "<p class=\"note\">" << escape(n) << "</p>\n";
    close();
  }

  void validation() {
    if (!f_.curves) {
      note(f_.curves_file, cat("No ", f_.curves_file,
                               ": the precision-recall curves, F1 against confidence and the confusion matrix are left "
                               "out."));
      return;
    }
    const Curves& c = *f_.curves;
    open("validation", "Validation curves");
    body_ << "<div class=\"charts\">\n";
    double map50 = 0;
    std::size_t with_gt = 0;
    for (std::size_t k = 0; k < c.class_ap50.size(); ++k)
      if (c.class_ap50[k] >= 0) map50 += c.class_ap50[k], ++with_gt;
    std::vector<Series> pr = class_series(c.recall, c.precision,
                                          cat("mean (mAP50 ", with_gt ? fixed(map50 / with_gt) : "\u2013", ")"), true);
    LineChart prc;
    prc.title = "Precision-recall at IoU 0.5";
    prc.x_label = "recall";
    prc.y_label = "precision";
    prc.width = kChartWidth;
    prc.height = kChartHeight;
    prc.x_min = 0, prc.x_max = 1, prc.y_min = 0, prc.y_max = 1.0;
    body_ << "<figure id=\"pr-curves\">" << line_chart(prc, pr) << "</figure>\n";

    std::vector<Series> f1 = class_series(c.confidence, c.f1, "mean F1", false);
    LineChart fc = prc;
    fc.title = "F1 against confidence";
    fc.x_label = "confidence threshold";
    fc.y_label = "F1";
    if (std::isfinite(c.best_confidence)) fc.markers.push_back({c.best_confidence, cat("best ", fixed(c.best_confidence, 2))});
    body_ << "<figure id=\"f1-confidence\">" << line_chart(fc, f1) << "</figure>\n</div>\n";
    if (pr.empty()) body_ << "<p class=\"caption\">No class has ground truth: the curves are empty.</p>\n";
    else
      body_ << "<p class=\"caption\">Thick dark line: the mean over the classes with ground truth. Legend values: AP50 "
               "per class.</p>\n";

    body_ << "<div id=\"confusion\"><h3>Confusion matrix</h3>\n";
    HeatMap m;
    m.corner = "predicted \u2193 / true \u2192";
    m.row_labels = c.confusion_labels;
    m.column_labels = c.confusion_labels;
    m.values = c.confusion;
    body_ << heatmap_table(m) << "\n<p class=\"caption\">Rows: the predicted class; columns: the true class; "
          << "shading: the share of the row. The background row counts missed objects, the background column false "
          << "detections. Detections with confidence \u2265 " << escape(fixed(c.confusion_confidence, 2))
          << ", matched at IoU \u2265 " << escape(fixed(c.confusion_iou, 2)) << ".</p>\n</div>\n";
    close();
  }

  static std::string ap_cell(double ap) {
    if (!(ap >= 0)) return "<td>\u2013</td>";
    char bar[64];
    std::snprintf(bar, sizeof bar, "<span class=\"apbar\" style=\"width:%.0fpx\"></span>", std::min(ap, 1.0) * 80);
    return cat("<td>", fixed(ap), bar, "</td>");
  }

  void per_class() {
    if (f_.eval) {
      const EvalMetrics& e = *f_.eval;
      open("per-class", "Per-class AP");
      body_ << "<table><thead><tr><th class=\"name\">class</th><th>ground truth</th><th>detections</th>"
               "<th>AP50-95</th><th>AP50</th><th>precision</th><th>recall</th><th>F1</th></tr></thead><tbody>\n";
      for (const ClassResult& r : e.per_class)
        body_ << "<tr><td class=\"name\">" << escape(r.name) << "</td><td>" << r.ground_truth << "</td><td>"
              << r.detections << "</td>" << ap_cell(r.ap) << ap_cell(r.ap50) << "<td>" << fixed(r.precision)
              << "</td><td>" << fixed(r.recall) << "</td><td>" << fixed(r.f1) << "</td></tr>\n";
      body_ << "</tbody></table>\n<p class=\"caption\">From " << escape(f_.eval_metrics_file)
            << ". Precision, recall and F1 at the confidence with the best mean F1 (" << fixed(e.best_confidence, 3)
            << ").</p>\n";
      close();
    } else if (f_.run && !f_.run->best_per_class_ap.empty()) {
      open("per-class", "Per-class AP");
      body_ << "<table><thead><tr><th class=\"name\">class</th><th>AP50-95</th></tr></thead><tbody>\n";
      for (const auto& [name, ap] : f_.run->best_per_class_ap)
        body_ << "<tr><td class=\"name\">" << escape(name) << "</td>" << ap_cell(ap) << "</tr>\n";
      body_ << "</tbody></table>\n<p class=\"caption\">At the best epoch (" << f_.run->best_epoch
            << "), from metrics.json.</p>\n";
      close();
    } else if (evaluation_) {
      note("metrics.json", "No per-class results in metrics.json.");
    } else {
      note("val/metrics.json", "No val/metrics.json and no per-class AP in metrics.json: the per-class table is left out.");
    }
  }

  void dataset() {
    if (evaluation_ && !f_.data_check && !f_.data_check_text) return;
    if (!f_.data_check && !f_.data_check_text) {
      note("data-check.json", "No data-check.json: the dataset statistics are left out.");
      return;
    }
    open("dataset", "Dataset");
    if (!f_.data_check) {
      body_ << "<p class=\"note\" data-missing=\"data-check.json\">No data-check.json (the charts need it); the text "
               "report data-check.txt follows.</p>\n<pre>"
            << escape(*f_.data_check_text) << "</pre>\n";
      close();
      return;
    }
    const DataCheck& d = *f_.data_check;
    std::string splits;
    for (const auto& [name, n] : d.images_per_split) splits += cat(splits.empty() ? "" : ", ", name, " ", n);
    body_ << "<p>" << escape(d.format.empty() ? "" : d.format + " dataset") << (d.root.empty() ? "" : " at ")
          << escape(d.root) << "<br>" << d.images << " images" << (splits.empty() ? "" : " (" + escape(splits) + ")")
          << " \u00b7 " << d.annotations << " boxes \u00b7 " << d.empty_images << " without boxes \u00b7 "
          << d.tiny_boxes << " tiny boxes";
    if (d.imbalance_ratio > 0) body_ << " \u00b7 class imbalance (most/least) " << format_number(d.imbalance_ratio, 3);
    body_ << "<br>findings: " << d.errors << " error(s), " << d.warnings << " warning(s), " << d.infos
          << " info</p>\n<div class=\"charts\">\n";
    std::vector<Bar> classes;
    for (const auto& [name, n] : d.boxes_per_class) classes.push_back({name, static_cast<double>(n)});
    BarChart cc;
    cc.title = "Boxes per class";
    cc.y_label = "boxes";
    cc.width = kChartWidth;
    cc.height = kChartHeight;
    body_ << bar_chart(cc, classes) << "\n";
    std::vector<Bar> sizes;
    BarChart sc = cc;
    sc.title = cat("Box size at imgsz ", d.imgsz, " (\u221aarea, px)");
    sc.y_label = "boxes";
    sc.x_label = "box side (px)";
    sc.color = palette(2);
    for (std::size_t i = 0; i < d.box_size_histogram.size(); ++i) {
      const std::string& label = d.box_size_histogram[i].first;
      sizes.push_back({label, static_cast<double>(d.box_size_histogram[i].second)});
      for (int stride : {8, 16, 32})
        if (starts_with(label, std::to_string(stride) + "-") || label == ">=" + std::to_string(stride))
          sc.markers.push_back({static_cast<double>(i), cat("stride ", stride)});
    }
    body_ << bar_chart(sc, sizes) << "\n</div>\n"
          << "<p class=\"caption\">Dashed lines: the model's strides 8, 16 and 32. A box whose side is smaller than "
             "a level's stride covers less than one cell of that level's grid and is hard to learn there; boxes left "
             "of \u201cstride 8\u201d are hard for every level (raise imgsz, or crop / tile the images).</p>\n";
    close();
  }

  void samples() {
    if (!f_.samples_jpeg) {
      note(f_.samples_file, cat("No ", f_.samples_file, ": the validation samples are left out."));
      return;
    }
    open("samples", "Validation samples");
    body_ << "<img class=\"samples\" alt=\"validation images with predictions and ground truth\" src=\"data:image/jpeg;base64,"
          << base64(*f_.samples_jpeg) << "\">\n<p class=\"caption\">From " << escape(f_.samples_file)
          << ": predictions and ground truth drawn on validation images.</p>\n";
    close();
  }

  // The label audit: a summary line, then per kind the top suspects as a table and their side-by-side crops.
  // Optional and rare, so an absent audit.json leaves no note.
  void audit() {
    if (!f_.audit) return;
    constexpr std::size_t kRows = 20, kCrops = 12;
    const Audit& a = *f_.audit;
    open("audit", "Label audit");
    auto count_of = [&](const std::string& kind) -> int64_t {
      for (const auto& [name, n] : a.counts)
        if (name == kind) return n;
      return 0;
    };
    const char* const kinds[] = {"wrong_class", "missing", "badly_placed", "spurious"};
    std::string counts;
    for (const char* kind : kinds) counts += cat(counts.empty() ? "" : ", ", count_of(kind), " ", kind);
    for (const auto& [name, n] : a.counts)  // kinds this page does not know, as written
      if (std::find(std::begin(kinds), std::end(kinds), name) == std::end(kinds)) counts += cat(", ", n, " ", name);
    std::string mode = a.mode;
    if (a.folds > 0) mode += cat(mode.empty() ? "" : " ", "(", a.folds, " folds)");
    std::string splits;
    for (const std::string& split : a.splits) splits += cat(splits.empty() ? "" : ", ", split);
    body_ << "<p>";
    if (!a.model.empty()) body_ << "Model " << escape(a.model) << " \u00b7 ";
    if (!mode.empty()) body_ << "mode " << escape(mode) << " \u00b7 ";
    if (!splits.empty()) body_ << "splits " << escape(splits) << " \u00b7 ";
    body_ << a.images << " images \u00b7 " << a.annotations << " annotations \u00b7 " << a.predictions
          << " predictions<br>suspects: " << escape(counts) << "</p>\n";
    if (a.suspects.empty()) {
      body_ << "<p class=\"caption\">No suspect: no disagreement between the model and the labels scored high enough to be reported.</p>\n";
      close();
      return;
    }
    std::size_t missing_crops = 0;
    for (const char* kind : kinds) {
      std::vector<const AuditSuspect*> top;  // file order: by score, highest first
      std::size_t total = 0;
      for (const AuditSuspect& s : a.suspects) {
        if (s.kind != kind) continue;
        ++total;
        if (top.size() < kRows) top.push_back(&s);
      }
      if (top.empty()) continue;
      const int64_t counted = std::max<int64_t>(count_of(kind), static_cast<int64_t>(total));
      body_ << "<div id=\"audit-" << kind << "\"><h3>" << kind << ": " << counted << " suspect"
            << (counted == 1 ? "" : "s") << "</h3>\n"
            << "<table><thead><tr><th class=\"name\">id</th><th>score</th><th class=\"name\">file:line</th>"
               "<th class=\"name\">class \u2192 model class</th><th>IoU</th><th class=\"name\">evidence</th>"
               "<th class=\"name\">fix</th></tr></thead><tbody>\n";
      for (const AuditSuspect* s : top) {
        std::string at;
        if (!s->annotation_file.empty()) at = s->line > 0 ? cat(s->annotation_file, ":", s->line) : s->annotation_file;
        else if (s->line > 0) at = cat("line ", s->line);
        const std::string image = s->split.empty() ? s->file : cat(s->split, "/", s->file);
        std::string model = s->model_class.empty() ? "\u2013" : s->model_class;
        if (s->model_score) model += cat(" (", fixed(*s->model_score, 2), ")");
        body_ << "<tr data-suspect=\"" << escape(s->id) << "\"><td class=\"name kind\">" << escape(s->id) << "</td><td>"
              << fixed(s->score, 2) << "</td><td class=\"name\">" << escape(image);
        if (!at.empty()) body_ << "<span class=\"at\">" << escape(at) << "</span>";
        body_ << "</td><td class=\"name\">" << escape(s->class_name.empty() ? "\u2013" : s->class_name) << " \u2192 "
              << escape(model) << "</td><td>" << (s->iou ? fixed(*s->iou, 2) : "\u2013") << "</td><td class=\"text\">"
              << escape(s->evidence) << "</td><td class=\"text\">" << escape(s->fix) << "</td></tr>\n";
      }
      body_ << "</tbody></table>\n";
      if (total > top.size())
        body_ << "<p class=\"caption\">The top " << top.size() << " of " << total << "; " << escape(f_.audit_file)
              << " lists them all.</p>\n";
      std::size_t crops = 0;
      for (const AuditSuspect* s : top) {
        if (!s->crop.empty() && !s->crop_jpeg) ++missing_crops;
        if (!s->crop_jpeg || crops == kCrops) continue;
        if (crops++ == 0) body_ << "<div class=\"crops\">\n";
        const std::string caption = cat(s->id, " ", s->kind, " ", fixed(s->score, 2), " ", s->file);
        body_ << "<figure class=\"crop\"><img alt=\"" << escape(cat(s->id, ": the label (left) and the model (right)"))
              << "\" src=\"data:image/jpeg;base64," << base64(*s->crop_jpeg) << "\"><figcaption>" << escape(caption)
              << "</figcaption></figure>\n";
      }
      if (crops > 0) body_ << "</div>\n";
      body_ << "</div>\n";
    }
    body_ << "<p class=\"caption\">From " << escape(f_.audit_file)
          << ". Scores are the model's evidence, 0 to 1; each kind lists its top " << kRows
          << " suspects and shows up to " << kCrops << " crops: the label on the left, the model on the right.";
    if (missing_crops > 0) body_ << " " << missing_crops << " crop(s) named in " << escape(f_.audit_file) << " are absent.";
    body_ << "</p>\n";
    close();
  }

  void events() {
    if (evaluation_ && !f_.events) return;
    if (!f_.events) {
      note("events.json", "No events.json: the run had no guardrail or out-of-memory event.");
      return;
    }
    open("events", "Guardrail and out-of-memory events");
    const auto& ev = *f_.events;
    if (ev.empty()) {
      body_ << "<p>No event.</p>\n";
      close();
      return;
    }
    std::map<std::string, int> counts;
    for (const TrainingEvent& e : ev) ++counts[e.kind];
    std::string line;
    for (const auto& [kind, n] : counts) line += cat(line.empty() ? "" : ", ", n, " ", kind);
    body_ << "<p>" << escape(line) << "</p>\n<table><thead><tr><th>#</th><th class=\"name\">kind</th><th>epoch</th>"
          << "<th>batch</th><th>optimizer steps</th><th class=\"name\">what happened</th></tr></thead><tbody>\n";
    for (std::size_t i = 0; i < ev.size(); ++i)
      body_ << "<tr><td>" << i + 1 << "</td><td class=\"name kind\">" << escape(ev[i].kind) << "</td><td>" << ev[i].epoch
            << "</td><td>" << (ev[i].batch > 0 ? std::to_string(ev[i].batch) : "\u2013") << "</td><td>"
            << ev[i].optimizer_steps << "</td><td class=\"name\">" << escape(ev[i].message) << "</td></tr>\n";
    body_ << "</tbody></table>\n";
    close();
  }

  void text_section(const std::string& id, const std::string& title, const std::optional<std::string>& content,
                    const std::string& file, const std::string& what) {
    if (!content) {
      if (!evaluation_ && !standalone_) note(file, cat("No ", file, ": the ", title == "Environment" ? "environment report" : "configuration",
                                       " is left out."));
      return;
    }
    open(id, title);
    if (!what.empty()) body_ << "<p class=\"caption\">From " << escape(file) << ": " << escape(what) << ".</p>\n";
    body_ << "<pre>" << escape(*content) << "</pre>\n";
    close();
  }
};

}  // namespace

std::string base64(const std::string& bytes) {
  static const char* const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const uint32_t v = (static_cast<uint8_t>(bytes[i]) << 16) | (static_cast<uint8_t>(bytes[i + 1]) << 8) |
                       static_cast<uint8_t>(bytes[i + 2]);
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    out += alphabet[(v >> 6) & 63];
    out += alphabet[v & 63];
  }
  if (i < bytes.size()) {
    uint32_t v = static_cast<uint8_t>(bytes[i]) << 16;
    if (i + 1 < bytes.size()) v |= static_cast<uint8_t>(bytes[i + 1]) << 8;
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    out += i + 1 < bytes.size() ? alphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

std::string render_html(const RunFiles& files) { return Page(files).render(); }

}  // namespace detkit::report
