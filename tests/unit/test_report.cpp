// The HTML report (src/report) on hand-written run and evaluation directories.
#include <gtest/gtest.h>

#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <regex>
#include <string>

#include "core/error.h"
#include "core/text.h"
#include "report/html.h"
#include "report/report.h"
#include "report/run_files.h"
#include "report/svg.h"
#include "test_util.h"

namespace detkit::report {
namespace {

using detkit::testing::TempDir;
using json = nlohmann::ordered_json;

const char* const kNastyClass = "<b>&\"x";
const char* const kNastyEscaped = "&lt;b&gt;&amp;&quot;x";

void put(const fs::path& file, const std::string& content) {
  fs::create_directories(file.parent_path());
  std::ofstream(file, std::ios::binary) << content;
}

std::string results_csv() {
  return "epoch,box_loss,cls_loss,dfl_loss,lr,map50,map50_95,seconds,images_per_second,data_wait_share,"
         "peak_memory_bytes,skipped_steps,oom_events,rollbacks,micro_batch\n"
         "1,2.5,3.1,1.9,0.001,-1,-1,10.5,120,0.2,1048576,0,0,0,16\n"
         "2,2.1,2.4,1.7,0.005,-1,-1,10.1,125,0.15,2097152,1,0,0,16\n"
         "3,1.8,1.9,1.5,0.01,0.31,0.12,10.2,124,0.1,2097152,1,1,0,8\n"
         "4,1.6,1.5,1.4,0.008,-1,-1,10.3,122,0.12,2097152,2,1,1,8\n"
         "5,1.5,1.3,1.3,0.004,0.45,0.21,10.0,126,0.11,2097152,2,1,1,8\n";
}

json eval_metrics() {
  json stats;
  const char* names[] = {"AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"};
  for (int i = 0; i < 12; ++i) stats[names[i]] = 0.1 + 0.01 * i;
  json j;
  j["model"] = "runs/fake/weights/best.pt";
  j["split"] = "val";
  j["imgsz"] = 320;
  j["images"] = 12;
  j["detections"] = 40;
  j["stats"] = stats;
  j["best_confidence"] = 0.3;
  j["per_class"] = json::array(
      {{{"category_id", 1}, {"name", kNastyClass}, {"ground_truth", 10}, {"detections", 20}, {"AP", 0.2}, {"AP50", 0.4},
        {"precision", 0.5}, {"recall", 0.6}, {"f1", 0.55}},
       {{"category_id", 2}, {"name", "cat"}, {"ground_truth", 0}, {"detections", 3}, {"AP", -1}, {"AP50", -1},
        {"precision", 0}, {"recall", -1}, {"f1", -1}}});
  return j;
}

json curves() {
  json recall = json::array(), p0 = json::array(), p1 = json::array();
  for (int i = 0; i <= 100; ++i) {
    recall.push_back(i / 100.0);
    p0.push_back(i <= 60 ? 0.8 : 0.0);
    p1.push_back(-1);
  }
  json conf = json::array(), f0 = json::array(), f1 = json::array();
  for (int i = 0; i <= 10; ++i) {
    conf.push_back(i / 10.0);
    f0.push_back(i < 8 ? 0.5 - 0.02 * i : 0.0);
    f1.push_back(-1);
  }
  json j;
  j["format"] = "detkit-detection-metrics/1";
  j["summary"] = {{"mAP", 0.4}, {"best_confidence", 0.3}};
  j["classes"] = json::array({{{"index", 0}, {"category_id", 1}, {"name", kNastyClass}, {"AP", 0.4}},
                              {{"index", 1}, {"category_id", 2}, {"name", "cat"}, {"AP", -1}}});
  j["pr_curve"] = {{"recall", recall}, {"precision", json::array({p0, p1})}};
  j["confidence_curves"] = {{"confidence", conf},
                            {"precision", json::array({f0, f1})},
                            {"recall", json::array({f0, f1})},
                            {"f1", json::array({f0, f1})}};
  j["confusion_matrix"] = {{"rows", "predicted"},
                           {"columns", "true"},
                           {"confidence_threshold", 0.25},
                           {"iou_threshold", 0.45},
                           {"labels", json::array({kNastyClass, "cat", "background"})},
                           {"matrix", json::array({json::array({3, 1, 0}), json::array({0, 0, 2}), json::array({5, 0, 0})})}};
  return j;
}

// A run directory with every input the report reads.
void make_run(const fs::path& dir) {
  put(dir / "results.csv", results_csv());
  put(dir / "events.json",
      json::array({{{"kind", "non_finite_loss"}, {"epoch", 2}, {"batch", 3}, {"optimizer_steps", 7},
                    {"message", "loss is NaN at batch 3 <skipped>"}},
                   {{"kind", "out_of_memory"}, {"epoch", 3}, {"batch", 1}, {"optimizer_steps", 9},
                    {"message", "out of memory: micro-batch 16 -> 8"}}})
          .dump(2));
  json run;
  run["run_dir"] = dir.string();
  run["model"] = "yolo-n";
  run["epochs_completed"] = 5;
  run["optimizer_steps"] = 20;
  run["samples_seen"] = 640;
  run["best_epoch"] = 5;
  run["best"] = {{"epoch", 5}, {"stats", eval_metrics()["stats"]}, {"per_class_AP", {{kNastyClass, 0.2}, {"cat", -1}}}};
  run["final_map50"] = 0.45;
  run["final_map50_95"] = 0.21;
  run["skipped_steps"] = 2;
  run["rollbacks"] = 1;
  run["oom_events"] = 1;
  run["micro_batch"] = 8;
  run["stopped_early"] = false;
  run["interrupted"] = false;
  run["seconds"] = 51.1;
  put(dir / "metrics.json", run.dump(2));
  put(dir / "val" / "metrics.json", eval_metrics().dump(2));
  put(dir / "val" / "curves.json", curves().dump(2));
  put(dir / "val" / "samples.jpg", std::string("\xFF\xD8\xFF\xE0 fake jpeg \xFF\xD9", 16));
  json check;
  check["format"] = "yolo";
  check["root"] = "data/shapes";
  check["summary"] = {{"error", 0}, {"warning", 1}, {"info", 2}};
  check["findings"] = json::array();
  check["stats"] = {{"images", 30},
                    {"annotations", 90},
                    {"images_per_split", {{"train", 24}, {"val", 6}}},
                    {"empty_images", 1},
                    {"max_boxes_in_image", 6},
                    {"boxes_per_class", {{kNastyClass, 60}, {"cat", 30}}},
                    {"imbalance_ratio", 2.0},
                    {"imgsz", 320},
                    {"box_size_histogram",
                     {{"<8", 4}, {"8-16", 10}, {"16-32", 30}, {"32-64", 30}, {"64-128", 10}, {"128-256", 6}, {">=256", 0}}},
                    {"tiny_boxes", 2},
                    {"aspect_outliers", 0},
                    {"image_sizes", {{"320x240", 30}}}};
  put(dir / "data-check.json", check.dump(2));
  put(dir / "environment.txt", "OS: Debian 12\nGPU: none <cpu only>\n");
  put(dir / "config.yaml", "model: yolo-n\nepochs: 5\n# a comment with <script>alert(1)</script> & more\n");
}

std::size_t count(const std::string& haystack, const std::string& needle) {
  std::size_t n = 0;
  for (std::size_t at = haystack.find(needle); at != std::string::npos; at = haystack.find(needle, at + needle.size())) ++n;
  return n;
}

// The number of points of the polyline whose data-series is `name`; -1 when there is none.
long polyline_points(const std::string& html, const std::string& name) {
  const std::regex re("<polyline class=\"series\" data-series=\"" + name + "\"[^>]* points=\"([^\"]*)\"");
  std::smatch m;
  if (!std::regex_search(html, m, re)) return -1;
  const std::string points = m[1];
  if (points.empty()) return 0;
  return static_cast<long>(count(points, " ") + 1);
}

TEST(Report, ShowsEverySectionOfACompleteRun) {
  TempDir tmp;
  make_run(tmp.path());
  const std::string html = render_report(tmp.path());
  for (const char* id : {"summary", "training", "validation", "pr-curves", "f1-confidence", "confusion", "per-class",
                         "dataset", "samples", "events", "environment", "config"})
    EXPECT_NE(html.find(cat("id=\"", id, "\"")), std::string::npos) << id;
  EXPECT_EQ(html.find("data-missing"), std::string::npos);
  EXPECT_NE(html.find("<title>Training run "), std::string::npos);
  EXPECT_NE(html.find("Best mAP50-95"), std::string::npos);
  EXPECT_NE(html.find("0.100"), std::string::npos);  // best AP from metrics.json
  EXPECT_NE(html.find("stride 8"), std::string::npos);
  EXPECT_NE(html.find("stride 32"), std::string::npos);
  EXPECT_NE(html.find("src=\"data:image/jpeg;base64,/9j/"), std::string::npos);  // FF D8 FF
  EXPECT_NE(html.find("non_finite_loss"), std::string::npos);
  EXPECT_NE(html.find("OS: Debian 12"), std::string::npos);
  EXPECT_GE(count(html, "<svg class=\"chart\""), 9u);  // 5 training, PR, F1, 2 dataset
}

TEST(Report, TrainingCurvesHaveOnePointPerEpoch) {
  TempDir tmp;
  make_run(tmp.path());
  const std::string html = render_report(tmp.path());
  for (const char* series : {"box_loss", "cls_loss", "dfl_loss", "lr", "images/s", "data_wait_share"})
    EXPECT_EQ(polyline_points(html, series), 5) << series;
  EXPECT_EQ(polyline_points(html, "mAP50-95"), 2);  // only the evaluated epochs (3 and 5)
  EXPECT_EQ(polyline_points(html, "mAP50"), 2);
}

TEST(Report, EscapesEveryText) {
  TempDir tmp;
  make_run(tmp.path());
  const std::string html = render_report(tmp.path());
  EXPECT_EQ(html.find(kNastyClass), std::string::npos);
  EXPECT_GE(count(html, kNastyEscaped), 5u);  // legends, tables, bar labels, confusion matrix
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_NE(html.find("&lt;script&gt;alert(1)&lt;/script&gt; &amp; more"), std::string::npos);
  EXPECT_NE(html.find("none &lt;cpu only&gt;"), std::string::npos);
  EXPECT_NE(html.find("batch 3 &lt;skipped&gt;"), std::string::npos);
}

// Every src= and href= of the page is a data: URI or an in-page anchor: nothing is loaded from elsewhere.
void expect_only_inline_references(const std::string& html) {
  std::smatch m;
  std::string rest = html;
  while (std::regex_search(rest, m, std::regex("(src|href)=\"([^\"]*)\""))) {
    const std::string value = m[2];
    EXPECT_TRUE(value.rfind("data:", 0) == 0 || value.rfind("#", 0) == 0) << value;
    rest = m.suffix();
  }
}

TEST(Report, IsSelfContained) {
  TempDir tmp;
  make_run(tmp.path());
  const std::string html = render_report(tmp.path());
  EXPECT_EQ(html.find("http:"), std::string::npos);
  EXPECT_EQ(html.find("https:"), std::string::npos);
  EXPECT_EQ(html.find("<link"), std::string::npos);
  EXPECT_EQ(html.find("@import"), std::string::npos);
  EXPECT_EQ(html.find("url("), std::string::npos);
  expect_only_inline_references(html);
  EXPECT_NE(html.find("Content-Security-Policy"), std::string::npos);
  EXPECT_EQ(render_report(tmp.path()), html);  // deterministic
}

TEST(Report, MissingFilesLeaveANoteInsteadOfTheirSection) {
  TempDir tmp;
  make_run(tmp.path());
  for (const char* name : {"results.csv", "events.json", "val/curves.json", "val/samples.jpg", "data-check.json",
                           "environment.txt", "config.yaml", "val/metrics.json"})
    fs::remove(tmp.path() / name);
  const std::string html = render_report(tmp.path());
  for (const char* file : {"results.csv", "events.json", "val/curves.json", "val/samples.jpg", "data-check.json",
                           "environment.txt", "config.yaml"})
    EXPECT_NE(html.find(cat("data-missing=\"", file, "\"")), std::string::npos) << file;
  for (const char* id : {"training", "validation", "samples", "dataset", "events", "environment", "config"})
    EXPECT_EQ(html.find(cat("<section id=\"", id, "\"")), std::string::npos) << id;
  EXPECT_NE(html.find("id=\"summary\""), std::string::npos);
  EXPECT_NE(html.find("id=\"per-class\""), std::string::npos);  // from metrics.json's best.per_class_AP
  EXPECT_NE(html.find("no guardrail or out-of-memory event"), std::string::npos);
}

TEST(Report, OnlyResultsCsvIsEnough) {
  TempDir tmp;
  put(tmp / "results.csv", results_csv());
  const std::string html = render_report(tmp.path());
  EXPECT_EQ(polyline_points(html, "box_loss"), 5);
  EXPECT_NE(html.find("0.210"), std::string::npos);  // best mAP50-95 from the rows
  EXPECT_NE(html.find("data-missing=\"val/curves.json\""), std::string::npos);
}

TEST(Report, DataCheckTextIsShownWhenTheJsonIsAbsent) {
  TempDir tmp;
  put(tmp / "results.csv", results_csv());
  put(tmp / "data-check.txt", "dataset: 30 images <ok>\n");
  const std::string html = render_report(tmp.path());
  EXPECT_NE(html.find("id=\"dataset\""), std::string::npos);
  EXPECT_NE(html.find("30 images &lt;ok&gt;"), std::string::npos);
}

TEST(Report, EvaluationDirectory) {
  TempDir tmp;
  put(tmp / "metrics.json", eval_metrics().dump(2));
  put(tmp / "curves.json", curves().dump(2));
  const RunFiles files = read_run_files(tmp.path());
  EXPECT_EQ(files.kind, RunFiles::Kind::evaluation);
  const std::string html = render_html(files);
  EXPECT_NE(html.find("<title>Evaluation "), std::string::npos);
  for (const char* id : {"summary", "validation", "per-class"}) EXPECT_NE(html.find(cat("id=\"", id, "\"")), std::string::npos);
  EXPECT_EQ(html.find("data-missing=\"results.csv\""), std::string::npos);  // not a training run: no training notes
  EXPECT_NE(html.find("data-missing=\"samples.jpg\""), std::string::npos);
  EXPECT_GE(polyline_points(html, "mean F1"), 2);
}

TEST(Report, WritesReportHtmlAtomically) {
  TempDir tmp;
  make_run(tmp.path());
  const fs::path written = write_report(tmp.path());
  EXPECT_EQ(written, tmp.path() / "report.html");
  std::ifstream in(written, std::ios::binary);
  const std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(content, render_report(tmp.path()));
  const fs::path other = write_report(tmp.path(), tmp.path() / "out" / "page.html");
  EXPECT_TRUE(fs::is_regular_file(other));
  for (const auto& entry : fs::directory_iterator(tmp.path()))
    EXPECT_EQ(entry.path().filename().string().find(".tmp"), std::string::npos) << entry.path();
}

TEST(Report, DamagedFilesAreDataErrorsNamingThem) {
  {
    TempDir tmp;
    make_run(tmp.path());
    put(tmp / "results.csv", results_csv() + "6,1.4,abc,1.2,0.002,-1,-1,10,120,0.1,1,2,1,1,8\n");
    EXPECT_THROW_WITH(render_report(tmp.path()), DataError, "results.csv:7", "write it again");
  }
  {
    TempDir tmp;
    make_run(tmp.path());
    put(tmp / "results.csv", "epoch,box_loss\n1,2\n");
    EXPECT_THROW_WITH(render_report(tmp.path()), DataError, "no 'cls_loss' column", "write it again");
  }
  {
    TempDir tmp;
    make_run(tmp.path());
    put(tmp / "results.csv", results_csv() + "6,1.4\n");
    EXPECT_THROW_WITH(render_report(tmp.path()), DataError, "results.csv:7", "");
  }
  struct Case {
    const char* file;
    std::string content;
    const char* needle;
  };
  const Case cases[] = {
      {"events.json", "[{\"kind\": ", "events.json is damaged"},
      {"events.json", "{\"kind\": \"rollback\"}", "not a JSON array"},
      {"metrics.json", "{\"hello\": 1}", "neither a training run's metrics.json"},
      {"metrics.json", "{\"epochs_completed\": \"five\"}", "'epochs_completed' is not a number"},
      {"val/metrics.json", "{\"stats\": {}}", "val/metrics.json"},
      {"val/curves.json", "{\"classes\": []}", "'pr_curve' is missing"},
      {"val/curves.json", "not json", "curves.json is damaged"},
      {"val/samples.jpg", "\x89PNG\r\n\x1a\n", "not a JPEG"},
      {"data-check.json", "{\"stats\": {\"boxes_per_class\": [1, 2]}}", "data-check.json"},
      {"config.yaml", "model: [yolo-n\n", "config.yaml is damaged"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.file);
    TempDir tmp;
    make_run(tmp.path());
    put(tmp / c.file, c.content);
    EXPECT_THROW_WITH(render_report(tmp.path()), DataError, c.needle, "write it again");
  }
  {
    TempDir tmp;
    make_run(tmp.path());
    json bad = curves();
    bad["pr_curve"]["precision"] = json::array({bad["pr_curve"]["precision"][0]});  // one row for two classes
    put(tmp / "val" / "curves.json", bad.dump());
    EXPECT_THROW_WITH(render_report(tmp.path()), DataError, "has 1 rows, expected 2", "write it again");
  }
}

TEST(Report, EmptyOrMissingDirectoryIsADataError) {
  TempDir tmp;
  EXPECT_THROW_WITH(render_report(tmp.path()), DataError, "nothing to report", "training run directory");
  EXPECT_THROW_WITH(render_report(tmp.path()), DataError, "audit.json", "detkit audit");
  EXPECT_THROW_WITH(render_report(tmp / "absent"), DataError, "directory not found", "training run directory");
}

// A fake JPEG (the report checks only the FF D8 FF marker) that names `id`.
std::string fake_jpeg(const std::string& id) { return std::string("\xFF\xD8\xFF\xE0", 4) + "crop " + id + "\xFF\xD9"; }

json suspect(int n, const std::string& kind, int rank, double score) {
  const std::string id = cat("S", std::string(n < 10 ? "000" : n < 100 ? "00" : "0"), n);
  const bool missing = kind == "missing", spurious = kind == "spurious";
  json s;
  s["id"] = id;
  s["kind"] = kind;
  s["rank"] = rank;
  s["score"] = score;
  s["split"] = "train";
  s["image_id"] = n;
  s["file"] = cat("img_", n, ".jpg");
  s["image_path"] = cat("/data/train/images/img_", n, ".jpg");
  s["annotation_id"] = missing ? json(nullptr) : json(100 + n);
  s["annotation_file"] = missing ? "" : cat("labels/img_", n, ".txt");
  s["line"] = missing ? 0 : 3;
  s["box"] = missing ? json(nullptr) : json::array({10, 20, 50, 60});
  s["class"] = missing ? json(nullptr) : json("RBC");
  s["model_box"] = spurious ? json(nullptr) : json::array({12, 22, 52, 61});
  s["model_class"] = spurious ? json(nullptr) : json(kind == "wrong_class" ? "WBC" : "RBC");
  s["model_score"] = spurious ? json(nullptr) : json(0.9);
  s["label_score"] = 0.02;
  s["iou"] = missing || spurious ? json(nullptr) : json(0.85);
  s["evidence"] = cat("the model sees a WBC here (0.90) <b>", id, "</b>");
  s["fix"] = "relabel the box as WBC";
  s["crop"] = nullptr;
  return s;
}

// audit.json (audit/label_audit.h, version 1) with `suspects`; the counts are those of the suspects.
json audit_json(const json& suspects) {
  json j;
  j["version"] = 1;
  j["model"] = "runs/bccd/weights/best.pt";
  j["mode"] = "out-of-fold";
  j["folds"] = 5;
  j["splits"] = json::array({"train", "val"});
  j["images"] = 364;
  j["annotations"] = 4888;
  j["predictions"] = 5120;
  j["options"] = {{"min_score", 0.25}, {"match_iou", 0.5}, {"placement_iou", 0.6}, {"support_iou", 0.3},
                  {"missing_iou", 0.3}, {"min_overlap", 0.1}};
  json counts = {{"missing", 0}, {"spurious", 0}, {"wrong_class", 0}, {"badly_placed", 0}};
  for (const json& s : suspects) counts[s["kind"].get<std::string>()] = counts[s["kind"].get<std::string>()].get<int>() + 1;
  j["counts"] = counts;
  j["suspects"] = suspects;
  return j;
}

// `detkit audit`'s output in `dir`: one suspect of each kind, the first three with a crop on disk.
void make_audit(const fs::path& dir) {
  json suspects = json::array({suspect(1, "wrong_class", 1, 0.93), suspect(2, "missing", 1, 0.88),
                               suspect(3, "badly_placed", 1, 0.61), suspect(4, "spurious", 1, 0.4)});
  for (int i = 0; i < 3; ++i) {
    const std::string id = suspects[i]["id"].get<std::string>();
    suspects[i]["crop"] = cat("crops/", id, ".jpg");
    put(dir / "crops" / cat(id, ".jpg"), fake_jpeg(id));
  }
  put(dir / "audit.json", audit_json(suspects).dump(2));
}

TEST(ReportAudit, AuditOnlyDirectoryShowsTheLabelAudit) {
  TempDir tmp;
  make_audit(tmp.path());
  const RunFiles files = read_run_files(tmp.path());
  ASSERT_TRUE(files.audit);
  EXPECT_EQ(files.audit_file, "audit.json");
  const Audit& a = *files.audit;
  EXPECT_EQ(a.mode, "out-of-fold");
  EXPECT_EQ(a.folds, 5);
  EXPECT_EQ(a.splits, (std::vector<std::string>{"train", "val"}));
  EXPECT_EQ(a.images, 364);
  EXPECT_EQ(a.annotations, 4888);
  EXPECT_EQ(a.predictions, 5120);
  ASSERT_EQ(a.suspects.size(), 4u);
  EXPECT_EQ(a.suspects[0].id, "S0001");
  EXPECT_EQ(a.suspects[0].class_name, "RBC");
  EXPECT_EQ(a.suspects[0].model_class, "WBC");
  ASSERT_TRUE(a.suspects[0].iou);
  EXPECT_DOUBLE_EQ(*a.suspects[0].iou, 0.85);
  EXPECT_EQ(a.suspects[0].crop_jpeg, fake_jpeg("S0001"));
  EXPECT_FALSE(a.suspects[1].box);  // missing: null box and class
  EXPECT_EQ(a.suspects[1].class_name, "");
  EXPECT_EQ(a.suspects[1].line, 0);
  EXPECT_FALSE(a.suspects[3].model_box);  // spurious: null prediction
  EXPECT_FALSE(a.suspects[3].model_score);
  EXPECT_FALSE(a.suspects[3].crop_jpeg);

  const std::string html = render_html(files);
  EXPECT_NE(html.find("<title>Label audit "), std::string::npos);
  EXPECT_NE(html.find("<section id=\"audit\">\n<h2>Label audit</h2>"), std::string::npos);
  EXPECT_EQ(html.find("id=\"summary\""), std::string::npos);  // an audit's page has no training sections
  EXPECT_EQ(html.find("data-missing"), std::string::npos);    // nor notes about their files
  EXPECT_NE(html.find("mode out-of-fold (5 folds)"), std::string::npos);
  EXPECT_NE(html.find("364 images \u00b7 4888 annotations"), std::string::npos);
  EXPECT_NE(html.find("suspects: 1 wrong_class, 1 missing, 1 badly_placed, 1 spurious"), std::string::npos);
  // One table per kind, in the order wrong_class, missing, badly_placed, spurious.
  std::size_t previous = 0;
  for (const char* kind : {"wrong_class", "missing", "badly_placed", "spurious"}) {
    const std::size_t at = html.find(cat("<div id=\"audit-", kind, "\">"));
    ASSERT_NE(at, std::string::npos) << kind;
    EXPECT_GT(at, previous) << kind;
    previous = at;
  }
  EXPECT_EQ(count(html, "<tr data-suspect="), 4u);
  EXPECT_NE(html.find("train/img_1.jpg<span class=\"at\">labels/img_1.txt:3</span>"), std::string::npos);
  EXPECT_NE(html.find("RBC \u2192 WBC (0.90)"), std::string::npos);
  EXPECT_NE(html.find("\u2013 \u2192 RBC (0.90)"), std::string::npos);  // missing: no label class
  // The three crops on disk, embedded, with their captions.
  EXPECT_EQ(count(html, "src=\"data:image/jpeg;base64,/9j/"), 3u);
  EXPECT_NE(html.find(base64(fake_jpeg("S0001"))), std::string::npos);
  EXPECT_NE(html.find("<figcaption>S0001 wrong_class 0.93 img_1.jpg</figcaption>"), std::string::npos);
  // Every text escaped.
  EXPECT_EQ(html.find("<b>"), std::string::npos);
  EXPECT_NE(html.find("(0.90) &lt;b&gt;S0001&lt;/b&gt;"), std::string::npos);
  // Self-contained and deterministic, with the policy unchanged.
  EXPECT_NE(html.find("content=\"default-src 'none'; img-src data:; style-src 'unsafe-inline'\""), std::string::npos);
  expect_only_inline_references(html);
  EXPECT_EQ(render_report(tmp.path()), html);
}

TEST(ReportAudit, ShowsTheTop20SuspectsAnd12CropsPerKind) {
  TempDir tmp;
  json suspects = json::array();
  for (int n = 1; n <= 25; ++n) {
    json s = suspect(n, "wrong_class", n, 1.0 - n / 100.0);
    s["crop"] = cat("crops/", s["id"].get<std::string>(), ".jpg");
    if (n != 2) put(tmp / "crops" / cat(s["id"].get<std::string>(), ".jpg"), fake_jpeg(s["id"].get<std::string>()));  // S0002's is absent
    suspects.push_back(s);
  }
  put(tmp / "audit.json", audit_json(suspects).dump());
  const RunFiles files = read_run_files(tmp.path());
  EXPECT_FALSE(files.audit->suspects[1].crop_jpeg);  // a crop that is absent is left out, not an error
  const std::string html = render_html(files);
  EXPECT_NE(html.find("<h3>wrong_class: 25 suspects</h3>"), std::string::npos);
  EXPECT_EQ(count(html, "<tr data-suspect="), 20u);
  EXPECT_NE(html.find("data-suspect=\"S0020\""), std::string::npos);
  EXPECT_EQ(html.find("data-suspect=\"S0021\""), std::string::npos);
  EXPECT_NE(html.find("The top 20 of 25"), std::string::npos);
  EXPECT_EQ(count(html, "<figure class=\"crop\">"), 12u);
  EXPECT_EQ(html.find("<figcaption>S0002 "), std::string::npos);
  EXPECT_NE(html.find("<figcaption>S0013 "), std::string::npos);  // the 12th with a crop
  EXPECT_EQ(html.find("<figcaption>S0014 "), std::string::npos);
  EXPECT_NE(html.find("1 crop(s) named in audit.json are absent"), std::string::npos);
  for (const char* kind : {"missing", "badly_placed", "spurious"})  // kinds without suspects: no table
    EXPECT_EQ(html.find(cat("id=\"audit-", kind, "\"")), std::string::npos) << kind;
}

TEST(ReportAudit, NoSuspectIsOneLine) {
  TempDir tmp;
  put(tmp / "audit.json", audit_json(json::array()).dump());
  const std::string html = render_report(tmp.path());
  EXPECT_NE(html.find("id=\"audit\""), std::string::npos);
  EXPECT_NE(html.find("No suspect:"), std::string::npos);
  EXPECT_NE(html.find("suspects: 0 wrong_class, 0 missing, 0 badly_placed, 0 spurious"), std::string::npos);
  EXPECT_EQ(html.find("<table"), std::string::npos);
}

TEST(ReportAudit, AuditInsideARunDirectoryIsFound) {
  TempDir tmp;
  make_run(tmp.path());
  {
    const std::string html = render_report(tmp.path());  // no audit: no section and no note
    EXPECT_EQ(html.find("id=\"audit\""), std::string::npos);
    EXPECT_EQ(html.find("audit.json"), std::string::npos);
  }
  make_audit(tmp / "audit");
  const RunFiles files = read_run_files(tmp.path());
  ASSERT_TRUE(files.audit);
  EXPECT_EQ(files.audit_file, "audit/audit.json");
  EXPECT_EQ(files.audit->suspects[0].crop_jpeg, fake_jpeg("S0001"));  // relative to audit/
  const std::string html = render_html(files);
  EXPECT_NE(html.find("<title>Training run "), std::string::npos);
  for (const char* id : {"summary", "training", "samples", "audit", "events"})
    EXPECT_NE(html.find(cat("id=\"", id, "\"")), std::string::npos) << id;
  EXPECT_LT(html.find("id=\"samples\""), html.find("id=\"audit\""));
  EXPECT_LT(html.find("id=\"audit\""), html.find("id=\"events\""));
  EXPECT_NE(html.find("<a href=\"#audit\">Label audit</a>"), std::string::npos);
  EXPECT_EQ(count(html, "<figure class=\"crop\">"), 3u);
  EXPECT_EQ(html.find("data-missing"), std::string::npos);
  // audit.json in the directory itself wins over audit/audit.json.
  put(tmp / "audit.json", audit_json(json::array()).dump());
  EXPECT_EQ(read_run_files(tmp.path()).audit_file, "audit.json");
}

TEST(ReportAudit, DamagedAuditIsADataErrorNamingIt) {
  struct Case {
    std::function<void(json&)> change;
    const char* needle;
  };
  const Case cases[] = {
      {[](json& j) { j["version"] = 2; }, "'version' is 2"},
      {[](json& j) { j.erase("version"); }, "'version' is missing"},
      {[](json& j) { j["suspects"] = json::object(); }, "'suspects' is not an array"},
      {[](json& j) { j.erase("suspects"); }, "'suspects' is missing"},
      {[](json& j) { j["suspects"][0]["score"] = "high"; }, "'suspects[0].score' is not a number"},
      {[](json& j) { j["suspects"][1]["kind"] = "mislabelled"; }, "'suspects[1].kind' is 'mislabelled'"},
      {[](json& j) { j["suspects"][0]["box"] = json::array({1, 2, 3}); }, "'suspects[0].box' is not a box"},
      {[](json& j) { j["suspects"][0]["iou"] = "0.5"; }, "'suspects[0].iou' is not a number or null"},
      {[](json& j) { j["suspects"][0]["evidence"] = 3; }, "'suspects[0].evidence' is not a string"},
      {[](json& j) { j["suspects"][0]["crop"] = "../../secret.jpg"; }, "not a path inside the audit's directory"},
      {[](json& j) { j["splits"] = "train"; }, "'splits' is not an array"},
      {[](json& j) { j["counts"] = json::array(); }, "'counts' is not a JSON object"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.needle);
    TempDir tmp;
    make_audit(tmp.path());
    std::ifstream in(tmp / "audit.json");
    json j = json::parse(in);
    c.change(j);
    put(tmp / "audit.json", j.dump());
    EXPECT_THROW_WITH(render_report(tmp.path()), DataError, c.needle, "write it again");
    EXPECT_THROW_WITH(render_report(tmp.path()), DataError, "audit.json is damaged", "");
  }
  {
    TempDir tmp;
    make_audit(tmp.path());
    put(tmp / "audit.json", "{\"version\": 1, \"suspects\": [");
    EXPECT_THROW_WITH(render_report(tmp.path()), DataError, "audit.json is damaged", "write it again");
    EXPECT_THROW_WITH(render_report(tmp.path()), DataError, "not valid JSON", "");
  }
  {
    TempDir tmp;
    make_run(tmp.path());
    put(tmp / "audit" / "audit.json", "[]");
    EXPECT_THROW_WITH(render_report(tmp.path()), DataError, (tmp / "audit" / "audit.json").string(), "write it again");
  }
}

TEST(ReportAudit, CropThatIsNotAJpegIsADataError) {
  TempDir tmp;
  make_audit(tmp / "audit");
  put(tmp / "results.csv", results_csv());
  put(tmp / "audit" / "crops" / "S0002.jpg", "\x89PNG\r\n\x1a\n");
  EXPECT_THROW_WITH(render_report(tmp.path()), DataError, "S0002.jpg is damaged", "write it again");
  EXPECT_THROW_WITH(render_report(tmp.path()), DataError, "not a JPEG", "");
  EXPECT_THROW_WITH(render_report(tmp.path()), DataError, (tmp / "audit" / "crops" / "S0002.jpg").string(), "");
}

TEST(ReportSvg, LineChartLeavesOutNonFinitePointsAndEscapesNames) {
  Series s, other;
  s.name = "a<b";
  s.x = {1, 2, 3, 4};
  s.y = {0.5, std::nan(""), 0.7, 0.9};
  other.name = "other";
  other.x = other.y = {1, 2};
  LineChart c;
  c.title = "T & t";
  const std::string svg = line_chart(c, {s, other});
  EXPECT_EQ(polyline_points(svg, "a&lt;b"), 3);
  EXPECT_NE(svg.find("<title>T &amp; t</title>"), std::string::npos);
  EXPECT_NE(svg.find(">other</text>"), std::string::npos);  // legend with two series
  EXPECT_EQ(line_chart(c, {}).find("<polyline"), std::string::npos);
  // A long legend name keeps its start and end (class names often differ only at the end); hovering shows all.
  other.name = "class_with_a_long_name_12";
  const std::string long_legend = line_chart(c, {s, other});
  EXPECT_NE(long_legend.find(">class_with_\u2026_name_12<title>class_with_a_long_name_12</title>"), std::string::npos)
      << long_legend;
}

TEST(ReportSvg, BarChartDrawsOneBarPerValueAndMarkers) {
  BarChart c;
  c.markers = {{1, "stride 8"}, {2, "stride 16"}};
  const std::string svg = bar_chart(c, {{"<8", 3}, {"8-16", 5}, {"16-32", 0}});
  EXPECT_EQ(count(svg, "<rect class=\"bar\""), 3u);
  EXPECT_EQ(count(svg, "class=\"marker\""), 2u);
  EXPECT_NE(svg.find("&lt;8"), std::string::npos);
}

TEST(ReportSvg, HeatmapShadesByRowShare) {
  HeatMap m;
  m.row_labels = {"a", "b"};
  m.column_labels = {"a", "b"};
  m.values = {{3, 1}, {0, 0}};
  const std::string html = heatmap_table(m);
  EXPECT_NE(html.find("rgba(31,119,180,0.750)"), std::string::npos);
  EXPECT_NE(html.find("rgba(31,119,180,0.250)"), std::string::npos);
  EXPECT_EQ(count(html, "rgba(31,119,180,0.000)"), 2u);  // an empty row is not shaded
}

TEST(ReportSvg, Base64) {
  EXPECT_EQ(base64(""), "");
  EXPECT_EQ(base64("f"), "Zg==");
  EXPECT_EQ(base64("fo"), "Zm8=");
  EXPECT_EQ(base64("foo"), "Zm9v");
  EXPECT_EQ(base64("foobar"), "Zm9vYmFy");
  EXPECT_EQ(base64(std::string("\xFF\xD8\xFF", 3)), "/9j/");
}

}  // namespace
}  // namespace detkit::report
