#include "report/run_files.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "core/error.h"
#include "core/fs.h"
#include "core/text.h"

namespace detkit::report {
namespace {

using ojson = nlohmann::ordered_json;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// A structural problem inside a file; read_json_file turns it into a DataError naming the file.
struct Malformed : std::runtime_error {
  using std::runtime_error::runtime_error;
};

DataError damaged(const fs::path& file, const std::string& why) {
  return DataError({cat(file.filename().string(), " is damaged"), why,
                    "write it again with the command that made it (or remove it: the report then leaves its section "
                    "out)",
                    file.string()});
}

bool exists_file(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec);
}

const ojson& member(const ojson& obj, const std::string& key, const std::string& where) {
  if (!obj.is_object()) throw Malformed(cat("'", where, "' is not a JSON object"));
  const auto it = obj.find(key);
  if (it == obj.end()) throw Malformed(cat("the key '", where.empty() ? key : where + "." + key, "' is missing"));
  return *it;
}

std::string path_of(const std::string& where, const std::string& key) { return where.empty() ? key : where + "." + key; }

// A number (null reads as NaN, the way nlohmann writes NaN).
double number(const ojson& v, const std::string& what) {
  if (v.is_null()) return kNaN;
  if (!v.is_number()) throw Malformed(cat("'", what, "' is not a number"));
  return v.get<double>();
}
double number(const ojson& obj, const std::string& key, const std::string& where, std::optional<double> fallback) {
  if (fallback && (!obj.is_object() || !obj.contains(key))) return *fallback;
  return number(member(obj, key, where), path_of(where, key));
}
int64_t integer(const ojson& obj, const std::string& key, const std::string& where, std::optional<int64_t> fallback) {
  if (fallback && (!obj.is_object() || !obj.contains(key))) return *fallback;
  const ojson& v = member(obj, key, where);
  if (v.is_null() && fallback) return *fallback;
  if (!v.is_number()) throw Malformed(cat("'", path_of(where, key), "' is not a number"));
  return v.get<int64_t>();
}
std::string text(const ojson& obj, const std::string& key, const std::string& where, std::optional<std::string> fallback) {
  if (fallback && (!obj.is_object() || !obj.contains(key))) return *fallback;
  const ojson& v = member(obj, key, where);
  if (!v.is_string()) throw Malformed(cat("'", path_of(where, key), "' is not a string"));
  return v.get<std::string>();
}
bool flag(const ojson& obj, const std::string& key) {
  const auto it = obj.find(key);
  return it != obj.end() && it->is_boolean() && it->get<bool>();
}
std::vector<double> numbers(const ojson& v, const std::string& what) {
  if (!v.is_array()) throw Malformed(cat("'", what, "' is not an array"));
  std::vector<double> out;
  out.reserve(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) out.push_back(number(v[i], cat(what, "[", i, "]")));
  return out;
}
// The optional array of strings `key` of `obj` (empty when absent).
std::vector<std::string> strings(const ojson& obj, const std::string& key) {
  std::vector<std::string> out;
  if (!obj.contains(key)) return out;
  const ojson& v = obj[key];
  if (!v.is_array()) throw Malformed(cat("'", key, "' is not an array"));
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (!v[i].is_string()) throw Malformed(cat("'", key, "[", i, "]' is not a string"));
    out.push_back(v[i].get<std::string>());
  }
  return out;
}
std::vector<std::vector<double>> rows_of(const ojson& v, const std::string& what, std::size_t rows, std::size_t columns) {
  if (!v.is_array()) throw Malformed(cat("'", what, "' is not an array"));
  if (v.size() != rows) throw Malformed(cat("'", what, "' has ", v.size(), " rows, expected ", rows));
  std::vector<std::vector<double>> out;
  for (std::size_t r = 0; r < v.size(); ++r) {
    out.push_back(numbers(v[r], cat(what, "[", r, "]")));
    if (out.back().size() != columns)
      throw Malformed(cat("'", what, "[", r, "]' has ", out.back().size(), " values, expected ", columns));
  }
  return out;
}
NamedValues named_numbers(const ojson& v, const std::string& what) {
  if (!v.is_object()) throw Malformed(cat("'", what, "' is not a JSON object"));
  NamedValues out;
  for (auto it = v.begin(); it != v.end(); ++it) out.emplace_back(it.key(), number(it.value(), path_of(what, it.key())));
  return out;
}
std::vector<std::pair<std::string, int64_t>> named_counts(const ojson& v, const std::string& what) {
  std::vector<std::pair<std::string, int64_t>> out;
  for (const auto& [name, value] : named_numbers(v, what))
    out.emplace_back(name, std::isfinite(value) ? static_cast<int64_t>(value) : 0);
  return out;
}

// Parses `file` and runs `extract` on it; any JSON or structural problem becomes a DataError naming the file.
template <class T, class F>
T read_json_file(const fs::path& file, F extract) {
  const std::string content = read_file(file);
  try {
    return extract(ojson::parse(content));
  } catch (const ojson::parse_error& e) {
    throw damaged(file, cat("it is not valid JSON (", e.what(), ")"));
  } catch (const ojson::exception& e) {
    throw damaged(file, e.what());
  } catch (const Malformed& e) {
    throw damaged(file, e.what());
  }
}

// results.csv: columns found by name; required ones must be there.
std::vector<EpochRow> read_results_csv(const fs::path& file) {
  const std::string content = read_file(file);
  std::vector<std::string> lines = split(content, '\n');
  for (auto& line : lines)
    if (!line.empty() && line.back() == '\r') line.pop_back();
  while (!lines.empty() && trim(lines.back()).empty()) lines.pop_back();
  auto fail = [&](std::size_t line, const std::string& why) -> DataError {
    return DataError({"results.csv is damaged", why,
                      "write it again with the command that made it (or remove it: the report then leaves the "
                      "training curves out)",
                      cat(file.string(), ":", line)});
  };
  if (lines.empty()) throw fail(1, "the file is empty: it has no header line");
  std::vector<std::string> header = split(lines[0], ',');
  for (auto& h : header) h = trim(h);
  auto column = [&](const char* name) -> std::ptrdiff_t {
    for (std::size_t i = 0; i < header.size(); ++i)
      if (header[i] == name) return static_cast<std::ptrdiff_t>(i);
    return -1;
  };
  for (const char* required : {"epoch", "box_loss", "cls_loss", "dfl_loss", "lr", "map50", "map50_95"})
    if (column(required) < 0)
      throw fail(1, cat("the header has no '", required, "' column (it is: ", lines[0], ")"));

  std::vector<EpochRow> rows;
  for (std::size_t n = 1; n < lines.size(); ++n) {
    if (trim(lines[n]).empty()) continue;
    const std::vector<std::string> fields = split(lines[n], ',');
    if (fields.size() != header.size())
      throw fail(n + 1, cat("the row has ", fields.size(), " fields but the header has ", header.size()));
    auto value = [&](const char* name, double missing) -> double {
      const std::ptrdiff_t i = column(name);
      if (i < 0) return missing;
      const std::string f = to_lower(trim(fields[static_cast<std::size_t>(i)]));
      if (const auto v = parse_double(f)) return *v;
      if (f == "nan" || f == "-nan" || f == "inf" || f == "-inf" || f == "+inf") return kNaN;
      throw fail(n + 1, cat("'", fields[static_cast<std::size_t>(i)], "' in column '", name, "' is not a number"));
    };
    EpochRow r;
    const double epoch = value("epoch", 0);
    if (!std::isfinite(epoch)) throw fail(n + 1, "the epoch is not a number");
    r.epoch = static_cast<int64_t>(epoch);
    r.box_loss = value("box_loss", kNaN);
    r.cls_loss = value("cls_loss", kNaN);
    r.dfl_loss = value("dfl_loss", kNaN);
    r.lr = value("lr", kNaN);
    r.map50 = value("map50", -1);
    r.map50_95 = value("map50_95", -1);
    r.seconds = value("seconds", kNaN);
    r.images_per_second = value("images_per_second", kNaN);
    r.data_wait_share = value("data_wait_share", kNaN);
    r.peak_memory_bytes = value("peak_memory_bytes", kNaN);
    auto count = [&](const char* name) {
      const double v = value(name, -1);
      return std::isfinite(v) ? static_cast<int64_t>(v) : -1;
    };
    r.skipped_steps = count("skipped_steps");
    r.oom_events = count("oom_events");
    r.rollbacks = count("rollbacks");
    r.micro_batch = count("micro_batch");
    rows.push_back(r);
  }
  return rows;
}

std::vector<TrainingEvent> parse_events(const ojson& j) {
  if (!j.is_array()) throw Malformed("the file is not a JSON array of events");
  std::vector<TrainingEvent> out;
  for (std::size_t i = 0; i < j.size(); ++i) {
    const std::string where = cat("[", i, "]");
    TrainingEvent e;
    e.kind = text(j[i], "kind", where, std::nullopt);
    e.epoch = integer(j[i], "epoch", where, 0);
    e.batch = integer(j[i], "batch", where, 0);
    e.optimizer_steps = integer(j[i], "optimizer_steps", where, 0);
    e.message = text(j[i], "message", where, "");
    out.push_back(std::move(e));
  }
  return out;
}

bool is_run_layout(const ojson& j) { return j.is_object() && (j.contains("epochs_completed") || j.contains("best_epoch")); }
bool is_eval_layout(const ojson& j) { return j.is_object() && j.contains("stats") && j.contains("per_class"); }

RunMetrics parse_run_metrics(const ojson& j) {
  RunMetrics m;
  m.model = text(j, "model", "", "");
  m.epochs_completed = integer(j, "epochs_completed", "", std::nullopt);
  m.optimizer_steps = integer(j, "optimizer_steps", "", 0);
  m.samples_seen = integer(j, "samples_seen", "", 0);
  m.best_epoch = integer(j, "best_epoch", "", 0);
  const auto best = j.find("best");
  if (best != j.end() && !best->is_null()) {
    m.has_best = true;
    m.best_stats = named_numbers(member(*best, "stats", "best"), "best.stats");
    if (best->contains("per_class_AP"))
      m.best_per_class_ap = named_numbers((*best)["per_class_AP"], "best.per_class_AP");
    if (best->contains("epoch")) m.best_epoch = integer(*best, "epoch", "best", std::nullopt);
  }
  m.final_map50 = number(j, "final_map50", "", -1.0);
  m.final_map50_95 = number(j, "final_map50_95", "", -1.0);
  m.seconds = number(j, "seconds", "", kNaN);
  m.skipped_steps = integer(j, "skipped_steps", "", 0);
  m.rollbacks = integer(j, "rollbacks", "", 0);
  m.oom_events = integer(j, "oom_events", "", 0);
  m.micro_batch = integer(j, "micro_batch", "", 0);
  m.stopped_early = flag(j, "stopped_early");
  m.interrupted = flag(j, "interrupted");
  return m;
}

EvalMetrics parse_eval_metrics(const ojson& j) {
  if (!is_eval_layout(j))
    throw Malformed("it is not an evaluation's metrics.json: the keys 'stats' and 'per_class' are missing");
  EvalMetrics m;
  m.model = text(j, "model", "", "");
  m.split = text(j, "split", "", "");
  m.imgsz = integer(j, "imgsz", "", 0);
  m.images = integer(j, "images", "", 0);
  m.detections = integer(j, "detections", "", 0);
  m.stats = named_numbers(j["stats"], "stats");
  m.best_confidence = number(j, "best_confidence", "", kNaN);
  const ojson& per_class = j["per_class"];
  if (!per_class.is_array()) throw Malformed("'per_class' is not an array");
  for (std::size_t i = 0; i < per_class.size(); ++i) {
    const std::string where = cat("per_class[", i, "]");
    const ojson& c = per_class[i];
    ClassResult r;
    r.category_id = integer(c, "category_id", where, static_cast<int64_t>(i));
    r.name = text(c, "name", where, std::nullopt);
    r.ground_truth = integer(c, "ground_truth", where, 0);
    r.detections = integer(c, "detections", where, 0);
    r.ap = number(c, "AP", where, -1.0);
    r.ap50 = number(c, "AP50", where, -1.0);
    r.precision = number(c, "precision", where, kNaN);
    r.recall = number(c, "recall", where, kNaN);
    r.f1 = number(c, "f1", where, kNaN);
    m.per_class.push_back(std::move(r));
  }
  return m;
}

Curves parse_curves(const ojson& j) {
  if (!j.is_object()) throw Malformed("the file is not a JSON object");
  if (j.contains("format") && (!j["format"].is_string() || !starts_with(j["format"].get<std::string>(), "detkit-detection-metrics/")))
    throw Malformed("its 'format' is not 'detkit-detection-metrics/1'");
  Curves c;
  const ojson& classes = member(j, "classes", "");
  if (!classes.is_array()) throw Malformed("'classes' is not an array");
  for (std::size_t i = 0; i < classes.size(); ++i) {
    const std::string where = cat("classes[", i, "]");
    c.class_names.push_back(text(classes[i], "name", where, std::nullopt));
    c.class_ap50.push_back(number(classes[i], "AP", where, -1.0));
  }
  const std::size_t k = c.class_names.size();
  const ojson& pr = member(j, "pr_curve", "");
  c.recall = numbers(member(pr, "recall", "pr_curve"), "pr_curve.recall");
  c.precision = rows_of(member(pr, "precision", "pr_curve"), "pr_curve.precision", k, c.recall.size());
  const ojson& conf = member(j, "confidence_curves", "");
  c.confidence = numbers(member(conf, "confidence", "confidence_curves"), "confidence_curves.confidence");
  c.f1 = rows_of(member(conf, "f1", "confidence_curves"), "confidence_curves.f1", k, c.confidence.size());
  if (j.contains("summary")) c.best_confidence = number(j["summary"], "best_confidence", "summary", kNaN);
  const ojson& cm = member(j, "confusion_matrix", "");
  const ojson& labels = member(cm, "labels", "confusion_matrix");
  if (!labels.is_array()) throw Malformed("'confusion_matrix.labels' is not an array");
  for (std::size_t i = 0; i < labels.size(); ++i) {
    if (!labels[i].is_string()) throw Malformed(cat("'confusion_matrix.labels[", i, "]' is not a string"));
    c.confusion_labels.push_back(labels[i].get<std::string>());
  }
  c.confusion = rows_of(member(cm, "matrix", "confusion_matrix"), "confusion_matrix.matrix", c.confusion_labels.size(),
                        c.confusion_labels.size());
  c.confusion_confidence = number(cm, "confidence_threshold", "confusion_matrix", kNaN);
  c.confusion_iou = number(cm, "iou_threshold", "confusion_matrix", kNaN);
  return c;
}

LrFind parse_lr_find(const ojson& j) {
  if (!j.is_object()) throw Malformed("the file is not a JSON object");
  if (text(j, "format", "", "") != "detkit-lr-find-1") throw Malformed("its 'format' is not 'detkit-lr-find-1'");
  LrFind f;
  f.model = text(j, "model", "", "");
  f.optimizer = text(j, "optimizer", "", "");
  f.device = text(j, "device", "", "");
  f.imgsz = integer(j, "imgsz", "", 0);
  f.batch = integer(j, "batch", "", 0);
  f.accumulate = integer(j, "accumulate", "", 1);
  f.steps_planned = integer(j, "steps_planned", "", 0);
  f.steps_run = integer(j, "steps_run", "", 0);
  f.images = integer(j, "images", "", 0);
  f.start = number(j, "start", "", kNaN);
  f.end = number(j, "end", "", kNaN);
  f.seconds = number(j, "seconds", "", kNaN);
  f.suggested_lr = number(j, "suggested_lr", "", std::nullopt);
  f.min_loss_lr = number(j, "min_loss_lr", "", kNaN);
  f.steepest_lr = number(j, "steepest_lr", "", kNaN);
  f.diverged_lr = number(j, "diverged_lr", "", kNaN);
  f.diverged = flag(j, "diverged");
  f.interrupted = flag(j, "interrupted");
  f.notes = strings(j, "notes");
  const ojson& points = member(j, "points", "");
  f.lr = numbers(member(points, "lr", "points"), "points.lr");
  f.loss = numbers(member(points, "loss", "points"), "points.loss");
  f.smoothed = numbers(member(points, "smoothed", "points"), "points.smoothed");
  if (f.loss.size() != f.lr.size() || f.smoothed.size() != f.lr.size())
    throw Malformed(cat("'points' has ", f.lr.size(), " rates but ", f.loss.size(), " losses and ", f.smoothed.size(),
                        " smoothed losses"));
  return f;
}

// Values that audit.json writes as null when they do not apply.
std::string nullable_text(const ojson& obj, const std::string& key, const std::string& where) {
  const auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return "";
  if (!it->is_string()) throw Malformed(cat("'", path_of(where, key), "' is not a string or null"));
  return it->get<std::string>();
}
std::optional<double> nullable_number(const ojson& obj, const std::string& key, const std::string& where) {
  const auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return std::nullopt;
  if (!it->is_number()) throw Malformed(cat("'", path_of(where, key), "' is not a number or null"));
  return it->get<double>();
}
std::optional<std::array<double, 4>> nullable_box(const ojson& obj, const std::string& key, const std::string& where) {
  const auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return std::nullopt;
  const std::string what = path_of(where, key);
  if (!it->is_array() || it->size() != 4) throw Malformed(cat("'", what, "' is not a box [x1, y1, x2, y2] or null"));
  std::array<double, 4> box{};
  for (std::size_t i = 0; i < 4; ++i) {
    if (!(*it)[i].is_number()) throw Malformed(cat("'", what, "[", i, "]' is not a number"));
    box[i] = (*it)[i].get<double>();
  }
  return box;
}

constexpr const char* kSuspectKinds[] = {"missing", "spurious", "wrong_class", "badly_placed"};

Audit parse_audit(const ojson& j) {
  if (!j.is_object()) throw Malformed("the file is not a JSON object");
  const int64_t version = integer(j, "version", "", std::nullopt);
  if (version != 1) throw Malformed(cat("its 'version' is ", version, ", and this detkit reads version 1"));
  Audit a;
  a.model = text(j, "model", "", "");
  a.mode = text(j, "mode", "", "");
  a.folds = integer(j, "folds", "", 0);
  a.images = integer(j, "images", "", 0);
  a.annotations = integer(j, "annotations", "", 0);
  a.predictions = integer(j, "predictions", "", 0);
  a.splits = strings(j, "splits");
  const ojson& suspects = member(j, "suspects", "");
  if (!suspects.is_array()) throw Malformed("'suspects' is not an array");
  for (std::size_t i = 0; i < suspects.size(); ++i) {
    const std::string where = cat("suspects[", i, "]");
    const ojson& v = suspects[i];
    AuditSuspect s;
    s.id = text(v, "id", where, std::nullopt);
    s.kind = text(v, "kind", where, std::nullopt);
    if (std::find(std::begin(kSuspectKinds), std::end(kSuspectKinds), s.kind) == std::end(kSuspectKinds))
      throw Malformed(cat("'", where, ".kind' is '", s.kind, "', not one of missing, spurious, wrong_class, badly_placed"));
    s.rank = integer(v, "rank", where, 0);
    s.score = number(v, "score", where, std::nullopt);
    s.split = nullable_text(v, "split", where);
    s.file = nullable_text(v, "file", where);
    s.annotation_file = nullable_text(v, "annotation_file", where);
    s.line = integer(v, "line", where, 0);
    s.box = nullable_box(v, "box", where);
    s.class_name = nullable_text(v, "class", where);
    s.model_box = nullable_box(v, "model_box", where);
    s.model_class = nullable_text(v, "model_class", where);
    s.model_score = nullable_number(v, "model_score", where);
    s.label_score = number(v, "label_score", where, 0.0);
    s.iou = nullable_number(v, "iou", where);
    s.evidence = nullable_text(v, "evidence", where);
    s.fix = nullable_text(v, "fix", where);
    s.crop = nullable_text(v, "crop", where);
    if (!s.crop.empty()) {
      const fs::path crop(s.crop);
      bool outside = crop.has_root_path();
      for (const auto& part : crop) outside = outside || part == "..";
      if (outside) throw Malformed(cat("'", where, ".crop' (", s.crop, ") is not a path inside the audit's directory"));
    }
    a.suspects.push_back(std::move(s));
  }
  if (j.contains("counts")) {
    a.counts = named_counts(j["counts"], "counts");
  } else {
    for (const char* kind : kSuspectKinds) {
      int64_t n = 0;
      for (const AuditSuspect& s : a.suspects) n += s.kind == kind ? 1 : 0;
      a.counts.emplace_back(kind, n);
    }
  }
  return a;
}

bool is_jpeg(const std::string& bytes) {
  return bytes.size() >= 4 && static_cast<unsigned char>(bytes[0]) == 0xFF && static_cast<unsigned char>(bytes[1]) == 0xD8 &&
         static_cast<unsigned char>(bytes[2]) == 0xFF;
}

DataCheck parse_data_check(const ojson& j) {
  DataCheck d;
  if (!j.is_object()) throw Malformed("the file is not a JSON object");
  d.format = text(j, "format", "", "");
  d.root = text(j, "root", "", "");
  if (j.contains("summary")) {
    d.errors = integer(j["summary"], "error", "summary", 0);
    d.warnings = integer(j["summary"], "warning", "summary", 0);
    d.infos = integer(j["summary"], "info", "summary", 0);
  }
  const ojson& s = member(j, "stats", "");
  d.images = integer(s, "images", "stats", 0);
  d.annotations = integer(s, "annotations", "stats", 0);
  d.empty_images = integer(s, "empty_images", "stats", 0);
  d.imgsz = integer(s, "imgsz", "stats", 0);
  d.tiny_boxes = integer(s, "tiny_boxes", "stats", 0);
  d.imbalance_ratio = number(s, "imbalance_ratio", "stats", 0.0);
  if (s.contains("images_per_split")) d.images_per_split = named_counts(s["images_per_split"], "stats.images_per_split");
  d.boxes_per_class = named_counts(member(s, "boxes_per_class", "stats"), "stats.boxes_per_class");
  d.box_size_histogram = named_counts(member(s, "box_size_histogram", "stats"), "stats.box_size_histogram");
  return d;
}

}  // namespace

RunFiles read_run_files(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    throw DataError({fs::exists(dir, ec) ? "not a directory" : "directory not found", "",
                     "pass a training run directory (e.g. runs/train) or the output directory of 'detkit eval --model'",
                     dir.string()});
  RunFiles f;
  f.dir = dir;
  bool found_any = false;

  if (exists_file(dir / "results.csv")) {
    f.results = read_results_csv(dir / "results.csv");
    found_any = true;
  }
  if (exists_file(dir / "events.json")) {
    f.events = read_json_file<std::vector<TrainingEvent>>(dir / "events.json", parse_events);
    found_any = true;
  }
  if (exists_file(dir / "metrics.json")) {
    found_any = true;
    const fs::path file = dir / "metrics.json";
    read_json_file<int>(file, [&](const ojson& j) {
      if (is_run_layout(j)) {
        f.run = parse_run_metrics(j);
      } else if (is_eval_layout(j)) {
        f.eval = parse_eval_metrics(j);
        f.eval_metrics_file = "metrics.json";
        f.kind = RunFiles::Kind::evaluation;
      } else {
        throw Malformed(
            "it is neither a training run's metrics.json (with 'epochs_completed') nor an evaluation's (with 'stats' "
            "and 'per_class')");
      }
      return 0;
    });
  }
  if (!f.eval && exists_file(dir / "val" / "metrics.json")) {
    f.eval = read_json_file<EvalMetrics>(dir / "val" / "metrics.json", parse_eval_metrics);
    f.eval_metrics_file = "val/metrics.json";
    found_any = true;
  }
  // curves.json and samples.jpg: val/NAME in a run directory, NAME in an evaluation directory.
  auto locate = [&](const std::string& name) {
    if (exists_file(dir / "val" / name)) return "val/" + name;
    if (exists_file(dir / name)) return name;
    return f.kind == RunFiles::Kind::evaluation ? name : "val/" + name;
  };
  f.curves_file = locate("curves.json");
  if (exists_file(dir / f.curves_file)) {
    f.curves = read_json_file<Curves>(dir / f.curves_file, parse_curves);
    found_any = true;
    if (!f.run && !f.results && f.curves_file == "curves.json") f.kind = RunFiles::Kind::evaluation;
  }
  f.samples_file = locate("samples.jpg");
  if (exists_file(dir / f.samples_file)) {
    const fs::path file = dir / f.samples_file;
    std::string bytes = read_file(file);
    if (!is_jpeg(bytes)) throw damaged(file, "it is not a JPEG image (it does not start with the JPEG marker FF D8 FF)");
    f.samples_jpeg = std::move(bytes);
    found_any = true;
  }
  if (exists_file(dir / "data-check.json")) {
    f.data_check = read_json_file<DataCheck>(dir / "data-check.json", parse_data_check);
    found_any = true;
  } else if (exists_file(dir / "data-check.txt")) {
    f.data_check_text = read_file(dir / "data-check.txt");
    found_any = true;
  }
  if (exists_file(dir / "environment.txt")) {
    f.environment = read_file(dir / "environment.txt");
    found_any = true;
  }
  if (exists_file(dir / "config.yaml")) {
    const fs::path file = dir / "config.yaml";
    f.config = read_file(file);
    found_any = true;
    try {
      const YAML::Node root = YAML::Load(*f.config);
      if (root.IsMap() && root["model"] && root["model"].IsScalar()) f.config_model = root["model"].as<std::string>();
    } catch (const YAML::Exception& e) {
      throw damaged(file, cat("it is not valid YAML (", e.what(), ")"));
    }
  }
  for (const char* name : {"lr_find.json", "lr-find/lr_find.json"}) {
    if (!exists_file(dir / name)) continue;
    f.lr_find = read_json_file<LrFind>(dir / name, parse_lr_find);
    f.lr_find_file = name;
    found_any = true;
    break;
  }
  // The label audit: `detkit audit`'s output directory, or a run directory holding one in audit/. The crops
  // it names are read now, relative to the audit.json's directory; an absent one is left out.
  for (const char* name : {"audit.json", "audit/audit.json"}) {
    if (!exists_file(dir / name)) continue;
    const fs::path file = dir / name;
    f.audit = read_json_file<Audit>(file, parse_audit);
    f.audit_file = name;
    found_any = true;
    for (AuditSuspect& s : f.audit->suspects) {
      if (s.crop.empty()) continue;
      const fs::path crop = file.parent_path() / s.crop;
      if (!exists_file(crop)) continue;
      std::string bytes = read_file(crop);
      if (!is_jpeg(bytes))
        throw damaged(crop, cat("it is not a JPEG image (it does not start with the JPEG marker FF D8 FF); ", name,
                                " names it as the crop of suspect ", s.id));
      s.crop_jpeg = std::move(bytes);
    }
    break;
  }
  if (!found_any)
    throw DataError({"nothing to report: the directory holds none of results.csv, metrics.json, val/metrics.json, "
                     "curves.json, events.json, data-check.json, environment.txt, config.yaml, lr_find.json or "
                     "audit.json",
                     "", "pass a training run directory (e.g. runs/train), the output directory of 'detkit eval --model' "
                     "or of 'detkit audit'",
                     dir.string()});
  return f;
}

}  // namespace detkit::report
