#include "data/formats_write.h"

#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "core/text.h"

namespace detkit {

const char* to_string(AnnotationFormat format) {
  switch (format) {
    case AnnotationFormat::coco: return "coco";
    case AnnotationFormat::yolo: return "yolo";
    case AnnotationFormat::voc: return "voc";
  }
  return "?";
}

AnnotationFormat parse_annotation_format(const std::string& name) {
  const std::string n = to_lower(trim(name));
  if (n == "coco") return AnnotationFormat::coco;
  if (n == "yolo") return AnnotationFormat::yolo;
  if (n == "voc") return AnnotationFormat::voc;
  const auto near = nearest(n, {"coco", "yolo", "voc"});
  throw UsageError({cat("unknown annotation format '", name, "'"), "",
                    near ? cat("did you mean '", *near, "'?") : "use coco, yolo or voc"});
}

fs::path image_relative_path(AnnotationFormat format, const std::string& split, const std::string& file_name) {
  if (format == AnnotationFormat::voc) return fs::path("JPEGImages") / file_name;
  return fs::path("images") / split / file_name;
}

namespace {

std::string stem_of(const std::string& file_name) { return fs::path(file_name).stem().string(); }

// Integers print without decimals; other values with enough digits to round-trip a pixel coordinate.
std::string number(double v) {
  char buf[32];
  if (std::isfinite(v) && v == std::round(v) && std::fabs(v) < 1e15) std::snprintf(buf, sizeof buf, "%.0f", v);
  else std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

std::string xml_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default: out += c;
    }
  }
  return out;
}

void write_coco(const Dataset& dataset, const fs::path& root) {
  for (const auto& split : dataset.splits) {
    nlohmann::ordered_json doc;
    doc["info"] = {{"description", "written by detkit"}, {"version", "1.0"}};
    doc["licenses"] = nlohmann::ordered_json::array();
    auto images = nlohmann::ordered_json::array();
    auto annotations = nlohmann::ordered_json::array();
    for (const auto& im : split.images) {
      images.push_back({{"id", im.id}, {"file_name", im.file_name}, {"width", im.width}, {"height", im.height}});
      for (const auto& a : im.annotations) {
        const Box b = a.box.convert(BoxFormat::xywh);
        annotations.push_back({{"id", a.id},
                               {"image_id", im.id},
                               {"category_id", a.category_id},
                               {"bbox", {b.a, b.b, b.c, b.d}},
                               {"area", std::max(0.0, b.c) * std::max(0.0, b.d)},
                               {"iscrowd", a.iscrowd ? 1 : 0}});
      }
    }
    auto categories = nlohmann::ordered_json::array();
    for (const auto& c : dataset.categories)
      categories.push_back({{"id", c.id}, {"name", c.name}, {"supercategory", "object"}});
    doc["images"] = std::move(images);
    doc["annotations"] = std::move(annotations);
    doc["categories"] = std::move(categories);
    write_file_atomic(root / "annotations" / ("instances_" + split.name + ".json"), doc.dump(1) + "\n");
  }
}

int64_t yolo_class_index(const Dataset& dataset, int64_t category_id) {
  const int64_t index = dataset.category_index(category_id);
  if (index >= 0) return index;
  int64_t max_id = 0;
  for (const auto& c : dataset.categories) max_id = std::max(max_id, c.id);
  return static_cast<int64_t>(dataset.categories.size()) + std::max<int64_t>(0, category_id - max_id - 1);
}

void write_yolo(const Dataset& dataset, const fs::path& root) {
  std::ostringstream yaml;
  yaml << "# YOLO dataset written by detkit\npath: .\n";
  for (const auto& split : dataset.splits) yaml << split.name << ": images/" << split.name << "\n";
  yaml << "nc: " << dataset.categories.size() << "\nnames:\n";
  for (std::size_t i = 0; i < dataset.categories.size(); ++i)
    yaml << "  " << i << ": " << dataset.categories[i].name << "\n";
  write_file_atomic(root / "data.yaml", yaml.str());
  for (const auto& split : dataset.splits) {
    ensure_directory(root / "labels" / split.name);
    for (const auto& im : split.images) {
      std::ostringstream lines;
      const double w = static_cast<double>(im.width), h = static_cast<double>(im.height);
      for (const auto& a : im.annotations) {
        const Box b = a.box.convert(BoxFormat::cxcywh);
        char line[160];
        std::snprintf(line, sizeof line, "%lld %.6f %.6f %.6f %.6f\n",
                      static_cast<long long>(yolo_class_index(dataset, a.category_id)), b.a / w, b.b / h, b.c / w,
                      b.d / h);
        lines << line;
      }
      write_file_atomic(root / "labels" / split.name / (stem_of(im.file_name) + ".txt"), lines.str());
    }
  }
}

void write_voc(const Dataset& dataset, const fs::path& root) {
  // VOC has no class list of its own; classes.txt (labelImg's convention) keeps the names and their order.
  std::string classes;
  for (const auto& c : dataset.categories) classes += c.name + "\n";
  write_file_atomic(root / "classes.txt", classes);
  for (const auto& split : dataset.splits) {
    std::ostringstream ids;
    for (const auto& im : split.images) {
      ids << stem_of(im.file_name) << "\n";
      std::ostringstream xml;
      xml << "<annotation>\n  <folder>JPEGImages</folder>\n  <filename>" << xml_escape(im.file_name)
          << "</filename>\n  <source><database>detkit</database></source>\n  <size>\n    <width>" << im.width
          << "</width>\n    <height>" << im.height << "</height>\n    <depth>3</depth>\n  </size>\n"
          << "  <segmented>0</segmented>\n";
      for (const auto& a : im.annotations) {
        const Category* category = dataset.find_category(a.category_id);
        const std::string name = category ? category->name : cat("unknown-", a.category_id);
        const Box b = a.box.convert(BoxFormat::xyxy);
        xml << "  <object>\n    <name>" << xml_escape(name) << "</name>\n    <pose>Unspecified</pose>\n"
            << "    <truncated>" << (a.truncated ? 1 : 0) << "</truncated>\n    <difficult>" << (a.difficult ? 1 : 0)
            << "</difficult>\n    <bndbox>\n      <xmin>" << number(b.a + 1) << "</xmin>\n      <ymin>"
            << number(b.b + 1) << "</ymin>\n      <xmax>" << number(b.c) << "</xmax>\n      <ymax>" << number(b.d)
            << "</ymax>\n    </bndbox>\n  </object>\n";
      }
      xml << "</annotation>\n";
      write_file_atomic(root / "Annotations" / (stem_of(im.file_name) + ".xml"), xml.str());
    }
    write_file_atomic(root / "ImageSets" / "Main" / (split.name + ".txt"), ids.str());
  }
}

}  // namespace

void write_annotations(const Dataset& dataset, AnnotationFormat format, const fs::path& root) {
  switch (format) {
    case AnnotationFormat::coco: return write_coco(dataset, root);
    case AnnotationFormat::yolo: return write_yolo(dataset, root);
    case AnnotationFormat::voc: return write_voc(dataset, root);
  }
}

}  // namespace detkit
