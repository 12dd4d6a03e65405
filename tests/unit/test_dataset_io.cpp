// Reading, converting and checking datasets: round trips between the three layouts, record-level
// problems reported with their file and line, and `check` against the defects synth plants.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "core/fs.h"
#include "core/text.h"
#include "data/check.h"
#include "data/convert.h"
#include "data/fix.h"
#include "data/formats_read.h"
#include "data/image_io.h"
#include "data/image_write.h"
#include "data/synth.h"
#include "test_util.h"

using namespace detkit;
using detkit::testing::TempDir;

namespace {

ReadOptions with_sizes() {
  ReadOptions o;
  o.image_size = image_size_from_header();
  return o;
}

SynthOptions small(bool defects = false) {
  SynthOptions o;
  o.train_images = 16;
  o.val_images = 5;
  o.seed = 4;
  o.sizes = {"200x150", "120x160", "128x128"};
  o.plant_defects = defects;
  return o;
}

// Boxes per image file name, with class names, sorted: a layout-independent view of a dataset.
std::map<std::string, std::vector<std::tuple<std::string, double, double, double, double>>> boxes_by_image(const Dataset& d) {
  std::map<std::string, std::vector<std::tuple<std::string, double, double, double, double>>> out;
  for (const auto& s : d.splits)
    for (const auto& im : s.images) {
      auto& v = out[s.name + "/" + fs::path(im.file_name).filename().string()];
      for (const auto& a : im.annotations) {
        const Category* c = d.find_category(a.category_id);
        const Box b = a.box.convert(BoxFormat::xyxy);
        v.emplace_back(c ? c->name : "?", b.a, b.b, b.c, b.d);
      }
      std::sort(v.begin(), v.end());
    }
  return out;
}

void expect_same_boxes(const Dataset& a, const Dataset& b, double tolerance) {
  const auto x = boxes_by_image(a), y = boxes_by_image(b);
  ASSERT_EQ(x.size(), y.size());
  for (const auto& [name, boxes] : x) {
    ASSERT_TRUE(y.count(name)) << name;
    const auto& other = y.at(name);
    ASSERT_EQ(boxes.size(), other.size()) << name;
    for (std::size_t i = 0; i < boxes.size(); ++i) {
      EXPECT_EQ(std::get<0>(boxes[i]), std::get<0>(other[i])) << name;
      EXPECT_NEAR(std::get<1>(boxes[i]), std::get<1>(other[i]), tolerance) << name;
      EXPECT_NEAR(std::get<2>(boxes[i]), std::get<2>(other[i]), tolerance) << name;
      EXPECT_NEAR(std::get<3>(boxes[i]), std::get<3>(other[i]), tolerance) << name;
      EXPECT_NEAR(std::get<4>(boxes[i]), std::get<4>(other[i]), tolerance) << name;
    }
  }
}

void write(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream(p) << text;
}

}  // namespace

TEST(Formats, DetectsEachLayout) {
  TempDir dir;
  for (auto format : {AnnotationFormat::coco, AnnotationFormat::yolo, AnnotationFormat::voc}) {
    SynthOptions o = small();
    o.format = format;
    generate_synthetic_dataset(o, dir / to_string(format));
    EXPECT_EQ(detect_annotation_format(dir / to_string(format)), format);
  }
  EXPECT_EQ(detect_annotation_format(dir / "coco" / "annotations" / "instances_val.json"), AnnotationFormat::coco);
  EXPECT_EQ(detect_annotation_format(dir / "yolo" / "data.yaml"), AnnotationFormat::yolo);
  EXPECT_FALSE(detect_annotation_format(dir.path()).has_value());
  EXPECT_THROW_WITH(read_dataset(dir.path()), DataError, "cannot tell the dataset's layout", "--format");
  EXPECT_THROW_WITH(read_dataset(dir / "nothing"), DataError, "dataset not found", "check the path");
}

TEST(Formats, ReadsWhatSynthWroteInEveryLayout) {
  TempDir dir;
  SynthOptions o = small();
  const SynthResult truth = generate_synthetic_dataset(o, dir / "coco");
  for (auto format : {AnnotationFormat::coco, AnnotationFormat::yolo, AnnotationFormat::voc}) {
    SynthOptions again = small();
    again.format = format;
    if (format != AnnotationFormat::coco) generate_synthetic_dataset(again, dir / to_string(format));
    const DatasetSource read = read_dataset(dir / to_string(format), with_sizes());
    EXPECT_TRUE(read.findings.empty()) << read.findings.front().message;
    EXPECT_EQ(read.dataset.image_count(), 21u);
    ASSERT_EQ(read.dataset.categories.size(), 5u);
    EXPECT_EQ(read.dataset.categories[2].name, "triangle");
    // YOLO stores 6 decimals of a fraction: up to 1e-6 * 200 px of rounding.
    expect_same_boxes(truth.dataset, read.dataset, format == AnnotationFormat::yolo ? 1e-3 : 0.0);
  }
}

TEST(Convert, RoundTripThroughEveryLayoutLosesNoBox) {
  TempDir dir;
  const SynthResult truth = generate_synthetic_dataset(small(), dir / "coco");
  DatasetSource current = read_dataset(dir / "coco", with_sizes());
  const char* chain[] = {"voc", "yolo", "coco", "yolo", "voc", "coco"};
  int step = 0;
  for (const char* to : chain) {
    const fs::path out = dir / cat("step", ++step, "-", to);
    const ConvertResult r = convert_dataset(current, parse_annotation_format(to), out);
    EXPECT_EQ(r.images, 21u) << to;
    EXPECT_TRUE(r.notes.empty()) << r.notes.front();
    current = read_dataset(out, with_sizes());
    EXPECT_TRUE(current.findings.empty()) << to << ": " << current.findings.front().location() << ": "
                                          << current.findings.front().message;
    expect_same_boxes(truth.dataset, current.dataset, 2e-3);
    // The source is never modified, and images arrive byte for byte.
    for (const auto& s : current.dataset.splits)
      for (const auto& im : s.images) EXPECT_TRUE(fs::exists(fs::path(s.image_dir) / im.file_name)) << im.file_name;
  }
  EXPECT_THROW_WITH(convert_dataset(current, AnnotationFormat::coco, dir / "coco"), UsageError, "not empty", "new directory");
}

TEST(Convert, AttributesTheTargetCannotHoldAreNoted) {
  TempDir dir;
  write(dir / "voc" / "Annotations" / "a.xml",
        "<annotation><filename>a.png</filename><size><width>20</width><height>10</height></size>"
        "<object><name>cat</name><difficult>1</difficult><bndbox><xmin>2</xmin><ymin>2</ymin><xmax>8</xmax><ymax>9</ymax></bndbox></object>"
        "</annotation>");
  RgbImage pixels(20, 10);
  write_file_atomic(dir / "voc" / "JPEGImages" / "a.png", encode_png(pixels));
  const ConvertResult r = convert_dataset(read_dataset(dir / "voc"), AnnotationFormat::coco, dir / "coco");
  ASSERT_EQ(r.notes.size(), 1u);
  EXPECT_EQ(r.notes[0], "1 'difficult' flags dropped: coco has no such field");
}

TEST(Formats, MalformedRecordsAreFindingsNamingFileAndLine) {
  std::vector<Finding> findings;
  const auto boxes = parse_yolo_label_text("0 0.5 0.5 0.2 0.2\n1 0.5 0.5\n2 0.5 nan 0.1 0.1\n0 320 240 50 40\nx 0.1 0.1 0.1 0.1\n",
                                           "labels/a.txt", 640, 480, findings);
  ASSERT_EQ(boxes.size(), 1u);
  EXPECT_DOUBLE_EQ(boxes[0].box.a, 256);
  EXPECT_DOUBLE_EQ(boxes[0].box.d, 288);
  ASSERT_EQ(findings.size(), 4u);
  EXPECT_EQ(findings[0].kind, "malformed_label_line");
  EXPECT_EQ(findings[0].location(), "labels/a.txt:2");
  EXPECT_EQ(findings[1].kind, "non_finite_box");
  EXPECT_EQ(findings[1].line, 3);
  EXPECT_EQ(findings[2].kind, "yolo_not_normalised");
  EXPECT_NE(findings[2].remedy.find("divide x and w by the image width"), std::string::npos);
  EXPECT_EQ(findings[3].line, 5);

  findings.clear();
  const VocRecord voc = parse_voc_xml_text(
      "<annotation>\n<filename>a.jpg</filename>\n<object>\n<name>dog</name>\n</object>\n"
      "<object>\n<name>cat</name>\n<bndbox><xmin>1</xmin><ymin>1</ymin><xmax>10</xmax><ymax>5</ymax></bndbox>\n</object>\n</annotation>",
      "Annotations/a.xml", findings);
  ASSERT_EQ(voc.annotations.size(), 1u);
  EXPECT_DOUBLE_EQ(voc.annotations[0].box.a, 0);  // VOC corners are 1-based
  EXPECT_DOUBLE_EQ(voc.annotations[0].box.c, 10);
  EXPECT_EQ(voc.annotations[0].source_line, 6);
  ASSERT_EQ(findings.size(), 1u);
  EXPECT_EQ(findings[0].location(), "Annotations/a.xml:3 (object 1)");
  EXPECT_EQ(findings[0].message, "the object has no <bndbox>");
  EXPECT_THROW_WITH(parse_voc_xml_text("<annotation>\n<object>\n</annotation>", "b.xml", findings), DataError,
                    "b.xml:3: the file is not well-formed XML", "re-export");

  findings.clear();
  const CocoDocument coco = parse_coco_dataset_text(
      R"({"images":[{"id":1,"file_name":"a.jpg","width":10,"height":10}],
          "categories":[{"id":1,"name":"a"}],
          "annotations":[{"id":5,"image_id":1,"category_id":1,"bbox":[1,2,3]},
                         {"id":6,"image_id":2,"category_id":1,"bbox":[1,2,3,4]},
                         {"id":7,"image_id":1,"category_id":1,"bbox":[1,2,3,4]}]})",
      "gt.json", findings);
  ASSERT_EQ(coco.images.size(), 1u);
  EXPECT_EQ(coco.images[0].annotations.size(), 1u);
  ASSERT_EQ(findings.size(), 2u);
  EXPECT_EQ(findings[0].location(), "gt.json (annotation id 5)");
  EXPECT_EQ(findings[1].kind, "annotation_on_unknown_image");
  EXPECT_THROW_WITH(parse_coco_dataset_text("{\"images\": [\n{\"id\": NaN}]}", "gt.json", findings), DataError,
                    "gt.json:2: the file is not valid JSON", "NaN and Infinity are not JSON");
  EXPECT_THROW_WITH(parse_coco_dataset_text("[]", "dt.json", findings), DataError, "no \"images\" list", "instances_*.json");
}

TEST(Formats, YoloDataYamlProblems) {
  TempDir dir;
  write(dir / "y" / "data.yaml", "train: images/train\nnames: {0: a, 2: c}\nnc: 3\n");
  write(dir / "y" / "images" / "train" / ".keep", "");
  const DatasetSource s = read_dataset(dir / "y");
  ASSERT_EQ(s.findings.size(), 2u);
  EXPECT_EQ(s.findings[0].kind, "class_index_gap");
  EXPECT_EQ(s.findings[1].kind, "class_count_mismatch");
  write(dir / "z" / "data.yaml", "train: images/train\n");
  EXPECT_THROW_WITH(read_dataset(dir / "z"), DataError, "data.yaml has no 'names' list", "names:");
  write(dir / "w" / "data.yaml", "train: [unclosed\n");
  EXPECT_THROW_WITH(read_dataset(dir / "w"), DataError, "data.yaml is not valid YAML", "fix the syntax");
}

// `check` finds every planted defect and nothing else, in every layout.
class CheckPlanted : public ::testing::TestWithParam<AnnotationFormat> {};

TEST_P(CheckPlanted, FindsEveryPlantedDefectAndNothingElse) {
  TempDir dir;
  for (int64_t seed : {1, 2, 3}) {
    SynthOptions o = small(true);
    o.format = GetParam();
    o.seed = seed;
    const fs::path root = dir / cat("d", seed);
    const SynthResult planted = generate_synthetic_dataset(o, root);
    const CheckReport report = check_dataset(read_dataset(root, with_sizes()));
    std::multiset<std::string> expected, found;
    for (const auto& d : planted.defects) expected.insert(d.kind + " " + fs::path(d.file).filename().string());
    for (const auto& f : report.findings) {
      // A duplicate pair may be reported from either side.
      std::string name = fs::path(f.image.empty() ? f.file : f.image).filename().string();
      if (f.kind == "duplicate_image") {
        for (const auto& d : planted.defects)
          if (d.kind == "duplicate_image" && f.message.find(fs::path(d.file).filename().string()) != std::string::npos)
            name = fs::path(d.file).filename().string();
      }
      found.insert(f.kind + " " + name);
    }
    EXPECT_EQ(found, expected) << "seed " << seed << "\n" << format_check_report(report);
    EXPECT_TRUE(report.fails(Severity::error));
  }
}

INSTANTIATE_TEST_SUITE_P(Layouts, CheckPlanted,
                         ::testing::Values(AnnotationFormat::coco, AnnotationFormat::yolo, AnnotationFormat::voc),
                         [](const auto& info) { return std::string(to_string(info.param)); });

// --fix leaves a copy on which check finds nothing, lists every change, and never touches the input.
class FixPlanted : public ::testing::TestWithParam<AnnotationFormat> {};

TEST_P(FixPlanted, CleanedCopyChecksCleanAndTheInputIsUntouched) {
  TempDir dir;
  SynthOptions o = small(true);
  o.format = GetParam();
  generate_synthetic_dataset(o, dir / "in");
  std::map<std::string, std::string> before;
  for (const auto& e : fs::recursive_directory_iterator(dir / "in"))
    if (e.is_regular_file()) before[e.path().string()] = read_file(e.path());
  const DatasetSource source = read_dataset(dir / "in", with_sizes());
  const CheckReport report = check_dataset(source);
  const FixResult fixed = fix_dataset(source, report, dir / "out");
  EXPECT_EQ(fixed.images_removed, 4u);  // corrupt, truncated, the in-split duplicate, the leaked val copy
  EXPECT_EQ(fixed.boxes_removed, 2u);   // degenerate, unknown class
  EXPECT_EQ(fixed.boxes_clipped, 1u);
  EXPECT_EQ(fixed.images_rewritten, 1u);  // EXIF
  const CheckReport again = check_dataset(read_dataset(dir / "out", with_sizes()));
  EXPECT_TRUE(again.findings.empty()) << format_check_report(again);
  const auto quarantine = nlohmann::json::parse(read_file(dir / "out" / "quarantine.json"));
  EXPECT_EQ(quarantine.size(), report.findings.size());
  for (const auto& e : quarantine) EXPECT_FALSE(e["reason"].get<std::string>().empty());
  std::map<std::string, std::string> after;
  for (const auto& e : fs::recursive_directory_iterator(dir / "in"))
    if (e.is_regular_file()) after[e.path().string()] = read_file(e.path());
  EXPECT_EQ(before, after) << "the input dataset was modified";
}

INSTANTIATE_TEST_SUITE_P(Layouts, FixPlanted,
                         ::testing::Values(AnnotationFormat::coco, AnnotationFormat::yolo, AnnotationFormat::voc),
                         [](const auto& info) { return std::string(to_string(info.param)); });

TEST(Check, CleanSyntheticDataHasNoFindings) {
  TempDir dir;
  SynthOptions o = small();
  o.train_images = 60;
  generate_synthetic_dataset(o, dir / "clean");
  CheckOptions options;
  options.imgsz = 128;  // smaller than the images, so the smallest objects become tiny
  const CheckReport report = check_dataset(read_dataset(dir / "clean", with_sizes()), options);
  EXPECT_TRUE(report.findings.empty()) << format_check_report(report);
  EXPECT_EQ(report.stats.images, 65u);
  EXPECT_GT(report.stats.tiny_boxes, 0u);
  EXPECT_EQ(report.stats.boxes_per_class.size(), 5u);
  const auto json = nlohmann::json::parse(check_report_json(report));
  EXPECT_EQ(json["summary"]["error"], 0);
  EXPECT_EQ(json["stats"]["images"], 65);
}

TEST(Check, ClassRulesAndBoxRules) {
  TempDir dir;
  const fs::path voc = dir / "voc";
  RgbImage pixels(40, 30);
  write_file_atomic(voc / "JPEGImages" / "a.png", encode_png(pixels));
  write(voc / "classes.txt", "Cat\ndog\nbird\n");
  write(voc / "Annotations" / "a.xml",
        "<annotation><filename>a.png</filename><size><width>40</width><height>30</height></size>\n"
        "<object><name>Cat</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>10</xmax><ymax>10</ymax></bndbox></object>\n"
        "<object><name>Cat</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>10</xmax><ymax>10</ymax></bndbox></object>\n"
        "<object><name>cat</name><bndbox><xmin>5</xmin><ymin>5</ymin><xmax>12</xmax><ymax>12</ymax></bndbox></object>\n"
        "<object><name>dog</name><bndbox><xmin>20</xmin><ymin>5</ymin><xmax>10</xmax><ymax>12</ymax></bndbox></object>\n"
        "<object><name>dog</name><bndbox><xmin>50</xmin><ymin>5</ymin><xmax>60</xmax><ymax>12</ymax></bndbox></object>\n"
        "</annotation>\n");
  const CheckReport r = check_dataset(read_dataset(voc));
  std::map<std::string, const Finding*> by_kind;
  for (const auto& f : r.findings) by_kind[f.kind] = &f;
  ASSERT_TRUE(by_kind.count("duplicate_box"));
  EXPECT_EQ(by_kind["duplicate_box"]->record, "objects 1 and 2");
  ASSERT_TRUE(by_kind.count("unknown_class"));
  EXPECT_EQ(by_kind["unknown_class"]->message, "cat is not among the 3 declared classes");
  EXPECT_EQ(by_kind["unknown_class"]->line, 4);
  ASSERT_TRUE(by_kind.count("class_name_variant"));
  EXPECT_NE(by_kind["class_name_variant"]->message.find("'Cat' and 'cat' differ only in case"), std::string::npos);
  ASSERT_TRUE(by_kind.count("inverted_box"));
  EXPECT_EQ(by_kind["inverted_box"]->location(), (voc / "Annotations" / "a.xml").string() + ":5 (object 4)");
  ASSERT_TRUE(by_kind.count("out_of_bounds_box"));
  EXPECT_EQ(by_kind["out_of_bounds_box"]->severity, Severity::error);  // nothing of it is inside
  ASSERT_TRUE(by_kind.count("unused_class"));
  EXPECT_NE(by_kind["unused_class"]->message.find("'bird'"), std::string::npos);
  EXPECT_EQ(r.findings.size(), 6u) << format_check_report(r);
}

TEST(Check, RealVocDatasetLoadsAndChecks) {
  const fs::path bccd = fs::path(DETKIT_TEST_DATA_DIR) / "bccd-trainval";
  const DatasetSource s = read_dataset(bccd, with_sizes());
  ASSERT_EQ(s.dataset.splits.size(), 2u);  // trainval repeats train + val and is skipped
  EXPECT_EQ(s.dataset.splits[0].images.size(), 205u);
  EXPECT_EQ(s.dataset.splits[1].images.size(), 87u);
  std::vector<std::string> names;
  for (const auto& c : s.dataset.categories) names.push_back(c.name);
  EXPECT_EQ(names, (std::vector<std::string>{"Platelets", "RBC", "WBC"}));
  const CheckReport r = check_dataset(s);
  EXPECT_EQ(r.stats.images, 292u);
  EXPECT_EQ(r.stats.annotations, 3943u);  // <object> elements in train + val, counted with Python's xml.etree
  // Its real defects, found independently with Python's xml.etree: two RBC boxes with xmin == xmax and
  // ymin == ymax (one pixel) in BloodImage_00338 and BloodImage_00343. Nothing else is wrong with it.
  std::set<std::string> found;
  for (const auto& f : r.findings) {
    found.insert(f.kind + " " + fs::path(f.file).filename().string());
    EXPECT_EQ(f.severity, Severity::warning);
    EXPECT_FALSE(f.remedy.empty()) << f.kind;
  }
  EXPECT_EQ(found, (std::set<std::string>{"degenerate_box BloodImage_00338.xml", "degenerate_box BloodImage_00343.xml"}))
      << format_check_report(r);
}
