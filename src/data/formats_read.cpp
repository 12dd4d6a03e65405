#include "data/formats_read.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <map>
#include <nlohmann/json.hpp>
#include <pugixml.hpp>
#include <set>

#include "core/error.h"
#include "core/text.h"
#include "data/image_io.h"

namespace detkit {

namespace {

const std::set<std::string>& image_extensions() {
  static const std::set<std::string> ext{".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif"};
  return ext;
}

bool is_image_file(const fs::path& p) { return image_extensions().count(to_lower(p.extension().string())) > 0; }

Finding record_finding(std::string kind, Severity severity, const std::string& file, int64_t line, std::string record,
                       std::string message, std::string remedy) {
  Finding f;
  f.kind = std::move(kind);
  f.severity = severity;
  f.file = file;
  f.line = line;
  f.record = std::move(record);
  f.message = std::move(message);
  f.remedy = std::move(remedy);
  return f;
}

// strtod that also reports non-finite spellings ("nan", "inf") separately from garbage.
enum class NumberKind { ok, non_finite, invalid };
NumberKind read_number(const std::string& text, double& out) {
  const std::string t = trim(text);
  if (t.empty()) return NumberKind::invalid;
  char* end = nullptr;
  out = std::strtod(t.c_str(), &end);
  if (end != t.c_str() + t.size()) return NumberKind::invalid;
  return std::isfinite(out) ? NumberKind::ok : NumberKind::non_finite;
}

int64_t line_of_offset(const std::string& text, std::ptrdiff_t offset) {
  if (offset < 0) return 0;
  const auto end = text.begin() + std::min<std::ptrdiff_t>(offset, static_cast<std::ptrdiff_t>(text.size()));
  return 1 + std::count(text.begin(), end, '\n');
}

// ---------------------------------------------------------------------------------------------- COCO

std::optional<int64_t> json_int(const nlohmann::json& j) {
  if (j.is_number_integer()) return j.get<int64_t>();
  if (j.is_number_float()) {
    const double v = j.get<double>();
    if (std::isfinite(v) && v == std::floor(v) && std::fabs(v) < 9e15) return static_cast<int64_t>(v);
  }
  return std::nullopt;
}

}  // namespace

CocoDocument parse_coco_dataset_text(const std::string& text, const std::string& source, std::vector<Finding>& findings) {
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    // parse_error (syntax) and out_of_range (a number too large for a double, e.g. 1e309) alike.
    const std::size_t byte = e.id >= 100 && e.id < 200 ? static_cast<const nlohmann::json::parse_error&>(e).byte : 0;
    const bool nan = text.find("NaN") != std::string::npos || text.find("Infinity") != std::string::npos;
    throw DataError({"the file is not valid JSON", e.what(),
                     nan ? "NaN and Infinity are not JSON (Python's json.dump writes them for non-finite floats): "
                           "replace them or drop those annotations, then re-export"
                         : "re-export the annotations, or fix the syntax at that position",
                     byte > 0 ? cat(source, ":", line_of_offset(text, static_cast<std::ptrdiff_t>(byte) - 1)) : source});
  }
  if (!doc.is_object() || !doc.contains("images") || !doc["images"].is_array())
    throw DataError({"not a COCO detection file: no \"images\" list at the top level", "",
                     "pass the instances_*.json file (a results list of detections is not a dataset)", source});
  CocoDocument out;
  const auto& cats = doc.contains("categories") && doc["categories"].is_array() ? doc["categories"] : nlohmann::json::array();
  if (cats.empty())
    findings.push_back(record_finding("no_categories", Severity::error, source, 0, "", "the file declares no categories",
                                      "add a \"categories\" list of {id, name}"));
  std::set<int64_t> category_ids;
  for (std::size_t i = 0; i < cats.size(); ++i) {
    const auto& c = cats[i];
    const auto id = c.is_object() && c.contains("id") ? json_int(c["id"]) : std::nullopt;
    if (!id || !c.contains("name") || !c["name"].is_string()) {
      findings.push_back(record_finding("malformed_record", Severity::error, source, 0, cat("categories[", i, "]"),
                                        "a category needs an integer \"id\" and a string \"name\"", "fix or remove it"));
      continue;
    }
    if (!category_ids.insert(*id).second) {
      findings.push_back(record_finding("duplicate_category_id", Severity::error, source, 0, cat("categories[", i, "]"),
                                        cat("category id ", *id, " is declared twice"), "give each category its own id"));
      continue;
    }
    out.categories.push_back({*id, c["name"].get<std::string>()});
  }
  std::map<int64_t, std::size_t> image_index;
  const auto& images = doc["images"];
  for (std::size_t i = 0; i < images.size(); ++i) {
    const auto& im = images[i];
    const auto id = im.is_object() && im.contains("id") ? json_int(im["id"]) : std::nullopt;
    if (!id || !im.contains("file_name") || !im["file_name"].is_string()) {
      findings.push_back(record_finding("malformed_record", Severity::error, source, 0, cat("images[", i, "]"),
                                        "an image needs an integer \"id\" and a string \"file_name\"", "fix or remove it"));
      continue;
    }
    if (image_index.count(*id)) {
      findings.push_back(record_finding("duplicate_image_id", Severity::error, source, 0, cat("images[", i, "]"),
                                        cat("image id ", *id, " is used twice"), "give each image its own id"));
      continue;
    }
    ImageRecord record;
    record.id = *id;
    record.file_name = im["file_name"].get<std::string>();
    record.width = im.contains("width") ? json_int(im["width"]).value_or(0) : 0;
    record.height = im.contains("height") ? json_int(im["height"]).value_or(0) : 0;
    record.annotation_file = source;
    image_index[*id] = out.images.size();
    out.images.push_back(std::move(record));
  }
  const auto& anns = doc.contains("annotations") && doc["annotations"].is_array() ? doc["annotations"] : nlohmann::json::array();
  std::set<int64_t> annotation_ids;
  for (std::size_t i = 0; i < anns.size(); ++i) {
    const auto& a = anns[i];
    const auto id = a.is_object() && a.contains("id") ? json_int(a["id"]) : std::nullopt;
    const std::string record = id ? cat("annotation id ", *id) : cat("annotations[", i, "]");
    const auto image_id = a.is_object() && a.contains("image_id") ? json_int(a["image_id"]) : std::nullopt;
    const auto category_id = a.is_object() && a.contains("category_id") ? json_int(a["category_id"]) : std::nullopt;
    const bool bbox_ok = a.is_object() && a.contains("bbox") && a["bbox"].is_array() && a["bbox"].size() == 4 &&
                         std::all_of(a["bbox"].begin(), a["bbox"].end(), [](const nlohmann::json& v) { return v.is_number(); });
    if (!id || !image_id || !category_id || !bbox_ok) {
      findings.push_back(record_finding("malformed_record", Severity::error, source, 0, record,
                                        "an annotation needs integer \"id\", \"image_id\", \"category_id\" and a \"bbox\" of 4 numbers",
                                        "fix or remove the annotation"));
      continue;
    }
    if (!annotation_ids.insert(*id).second)
      findings.push_back(record_finding("duplicate_annotation_id", Severity::warning, source, 0, record,
                                        cat("annotation id ", *id, " is used twice"),
                                        "renumber annotations (COCO evaluation matches by id and would mix them up)"));
    const int64_t on_image = image_id.value_or(0);
    const auto it = image_index.find(on_image);
    if (it == image_index.end()) {
      findings.push_back(record_finding("annotation_on_unknown_image", Severity::error, source, 0, record,
                                        cat("image_id ", on_image, " is not in \"images\""),
                                        "add the image or remove the annotation"));
      continue;
    }
    Annotation ann;
    ann.id = *id;
    ann.category_id = *category_id;
    const auto& b = a["bbox"];
    ann.box = make_xywh(b[0].get<double>(), b[1].get<double>(), b[2].get<double>(), b[3].get<double>()).convert(BoxFormat::xyxy);
    ann.iscrowd = a.contains("iscrowd") && json_int(a["iscrowd"]).value_or(0) != 0;
    out.images[it->second].annotations.push_back(ann);
  }
  return out;
}

std::vector<Annotation> parse_yolo_label_text(const std::string& text, const std::string& source,
                                              int64_t width, int64_t height, std::vector<Finding>& findings) {
  std::vector<Annotation> out;
  const auto lines = split(text, '\n');
  for (std::size_t i = 0; i < lines.size(); ++i) {
    const std::string line = trim(lines[i]);
    const int64_t line_no = static_cast<int64_t>(i) + 1;
    if (line.empty()) continue;
    std::vector<std::string> fields;
    for (const auto& f : split(line, ' '))
      if (!trim(f).empty()) fields.push_back(trim(f));
    if (fields.size() < 5 || (fields.size() > 5 && (fields.size() % 2 == 0 || fields.size() < 7))) {
      findings.push_back(record_finding("malformed_label_line", Severity::error, source, line_no, "",
                                        cat("expected 'class cx cy w h' (5 fields) or a polygon 'class x1 y1 x2 y2 x3 y3 ...', got ",
                                            fields.size(), " fields"),
                                        "rewrite the line as 'class cx cy w h' with values normalised to 0..1"));
      continue;
    }
    const auto cls = parse_int(fields[0]);
    if (!cls || *cls < 0 || *cls > 1000000) {
      findings.push_back(record_finding("malformed_label_line", Severity::error, source, line_no, "",
                                        cat("class '", fields[0], "' is not a class index (an integer from 0)"),
                                        "use the class index from data.yaml's names"));
      continue;
    }
    std::vector<double> values;
    bool bad = false, non_finite = false;
    for (std::size_t k = 1; k < fields.size(); ++k) {
      double v = 0;
      const NumberKind kind = read_number(fields[k], v);
      if (kind == NumberKind::invalid) bad = true;
      if (kind == NumberKind::non_finite) non_finite = true;
      values.push_back(v);
    }
    if (bad) {
      findings.push_back(record_finding("malformed_label_line", Severity::error, source, line_no, "",
                                        "a coordinate is not a number", "rewrite the line as 'class cx cy w h'"));
      continue;
    }
    if (non_finite) {
      findings.push_back(record_finding("non_finite_box", Severity::error, source, line_no, "",
                                        "a coordinate is NaN or infinite", "fix or remove the line (the exporter wrote an empty box)"));
      continue;
    }
    double cx, cy, w, h;
    if (values.size() == 4) {
      cx = values[0], cy = values[1], w = values[2], h = values[3];
    } else {  // polygon: its bounding box
      double x1 = 1e300, y1 = 1e300, x2 = -1e300, y2 = -1e300;
      for (std::size_t k = 0; k + 1 < values.size(); k += 2) {
        x1 = std::min(x1, values[k]); x2 = std::max(x2, values[k]);
        y1 = std::min(y1, values[k + 1]); y2 = std::max(y2, values[k + 1]);
      }
      cx = (x1 + x2) / 2, cy = (y1 + y2) / 2, w = x2 - x1, h = y2 - y1;
    }
    if (std::max({cx, cy, w, h}) > 1.5) {
      findings.push_back(record_finding("yolo_not_normalised", Severity::error, source, line_no, "",
                                        cat("values up to ", std::max({cx, cy, w, h}), " look like pixels; YOLO labels are fractions of the image size"),
                                        "divide x and w by the image width, y and h by its height"));
      continue;
    }
    Annotation ann;
    ann.category_id = *cls + 1;
    ann.source_line = line_no;
    const double sx = width > 0 ? static_cast<double>(width) : 1.0, sy = height > 0 ? static_cast<double>(height) : 1.0;
    ann.box = make_cxcywh(cx * sx, cy * sy, w * sx, h * sy).convert(BoxFormat::xyxy);
    out.push_back(ann);
  }
  return out;
}

VocRecord parse_voc_xml_text(const std::string& text, const std::string& source, std::vector<Finding>& findings) {
  pugi::xml_document doc;
  const pugi::xml_parse_result parsed = doc.load_buffer(text.data(), text.size());
  if (!parsed)
    throw DataError({cat("the file is not well-formed XML: ", parsed.description()), "",
                     "re-export the annotation from your labelling tool", cat(source, ":", line_of_offset(text, parsed.offset))});
  const pugi::xml_node root = doc.child("annotation");
  if (!root)
    throw DataError({"not a Pascal VOC annotation: no <annotation> element", "", "pass a VOC dataset directory", source});
  VocRecord out;
  out.filename = trim(root.child_value("filename"));
  const pugi::xml_node size = root.child("size");
  // A size that is not a plausible pixel count reads as unknown (0), like a missing one.
  const auto pixels = [](const char* text) -> int64_t {
    double v = 0;
    if (read_number(text, v) != NumberKind::ok || v < 0 || v > 1e9) return 0;
    return static_cast<int64_t>(std::llround(v));
  };
  out.width = pixels(size.child_value("width"));
  out.height = pixels(size.child_value("height"));
  int index = 0;
  for (pugi::xml_node object : root.children("object")) {
    ++index;
    const int64_t line = line_of_offset(text, object.offset_debug());
    const std::string record = cat("object ", index);
    const std::string name = trim(object.child_value("name"));
    const pugi::xml_node box = object.child("bndbox");
    if (name.empty() || !box) {
      findings.push_back(record_finding("malformed_record", Severity::error, source, line, record,
                                        name.empty() ? "the object has no <name>" : "the object has no <bndbox>",
                                        "fix or remove the object in your labelling tool"));
      continue;
    }
    double v[4];
    const char* keys[4] = {"xmin", "ymin", "xmax", "ymax"};
    bool bad = false, non_finite = false;
    for (int k = 0; k < 4; ++k) {
      const NumberKind kind = read_number(box.child_value(keys[k]), v[k]);
      bad = bad || kind == NumberKind::invalid;
      non_finite = non_finite || kind == NumberKind::non_finite;
    }
    if (bad || non_finite) {
      findings.push_back(record_finding(non_finite ? "non_finite_box" : "malformed_record", Severity::error, source, line, record,
                                        non_finite ? "a corner is NaN or infinite" : "<bndbox> needs numeric xmin, ymin, xmax, ymax",
                                        "fix or remove the object in your labelling tool"));
      continue;
    }
    Annotation ann;
    ann.box = make_xyxy(v[0] - 1, v[1] - 1, v[2], v[3]);
    ann.difficult = parse_int(object.child_value("difficult")).value_or(0) != 0;
    ann.truncated = parse_int(object.child_value("truncated")).value_or(0) != 0;
    ann.source_line = line;
    out.annotations.push_back(ann);
    out.names.push_back(name);
  }
  return out;
}

namespace {

// ---------------------------------------------------------------------------------------------- COCO files

std::string split_name_from_json(const fs::path& file) {
  std::string stem = file.stem().string();
  for (const char* prefix : {"instances_", "annotations_", "labels_"})
    if (starts_with(stem, prefix)) stem = stem.substr(std::string(prefix).size());
  return stem;
}

fs::path find_coco_image_dir(const fs::path& json, const std::string& split, const std::vector<ImageRecord>& images,
                             const std::string& override_dir) {
  if (!override_dir.empty()) return override_dir;
  const fs::path dir = json.parent_path().empty() ? fs::path(".") : json.parent_path();
  const fs::path root = dir.filename() == "annotations" ? dir.parent_path() : dir;
  std::vector<fs::path> candidates{root / "images" / split, root / split, root / (split + "2017"), root / "images", dir / "images", dir};
  std::error_code ec;
  for (const auto& c : candidates)
    if (!images.empty() && fs::exists(c / images.front().file_name, ec)) return c;
  for (const auto& c : candidates)
    if (fs::is_directory(c, ec)) return c;
  return candidates.front();
}

void read_coco(const fs::path& path, const ReadOptions& options, DatasetSource& out) {
  std::vector<fs::path> files;
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    const fs::path dir = fs::is_directory(path / "annotations", ec) ? path / "annotations" : path;
    for (const auto& entry : fs::directory_iterator(dir, ec))
      if (entry.path().extension() == ".json") files.push_back(entry.path());
    std::sort(files.begin(), files.end());
    out.root = path;
  } else {
    files.push_back(path);
    const fs::path dir = path.parent_path();
    out.root = dir.filename() == "annotations" ? dir.parent_path() : dir;
  }
  if (files.empty())
    throw DataError({"no COCO annotation files (*.json) found", "", "pass the instances_*.json file itself", path.string()});
  bool first = true;
  for (const auto& file : files) {
    CocoDocument doc = parse_coco_dataset_text(read_file(file), file.string(), out.findings);
    out.annotation_files.push_back(file.string());
    if (first) {
      out.dataset.categories = doc.categories;
      first = false;
    } else if (doc.categories.size() != out.dataset.categories.size() ||
               !std::equal(doc.categories.begin(), doc.categories.end(), out.dataset.categories.begin(),
                           [](const Category& a, const Category& b) { return a.id == b.id && a.name == b.name; })) {
      out.findings.push_back(record_finding("categories_differ_between_splits", Severity::error, file.string(), 0, "",
                                            "this file's categories differ from " + out.annotation_files.front() + "'s",
                                            "use one category list (same ids and names) in every split"));
    }
    Split split;
    split.name = split_name_from_json(file);
    split.image_dir = find_coco_image_dir(file, split.name, doc.images, options.images_dir).string();
    split.images = std::move(doc.images);
    out.dataset.splits.push_back(std::move(split));
  }
}

// ---------------------------------------------------------------------------------------------- YOLO

fs::path label_path_for(const fs::path& image) {
  // Ultralytics' rule: the last "images" directory component becomes "labels", the extension ".txt".
  std::vector<std::string> parts;
  for (const auto& p : image) parts.push_back(p.string());
  for (std::size_t i = parts.size(); i-- > 0;) {
    if (i + 1 < parts.size() && parts[i] == "images") {
      parts[i] = "labels";
      break;
    }
  }
  fs::path out;
  for (const auto& p : parts) out /= p;
  out.replace_extension(".txt");
  return out;
}

std::vector<std::string> yaml_strings(const YAML::Node& node) {
  std::vector<std::string> out;
  if (node.IsScalar()) out.push_back(node.Scalar());
  else if (node.IsSequence())
    for (const auto& n : node)
      if (n.IsScalar()) out.push_back(n.Scalar());
  return out;
}

void read_yolo(const fs::path& path, const ReadOptions& options, DatasetSource& out) {
  std::error_code ec;
  const fs::path yaml_path = fs::is_directory(path, ec) ? path / "data.yaml" : path;
  const std::string text = read_file(yaml_path);
  YAML::Node doc;
  try {
    doc = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw DataError({cat("data.yaml is not valid YAML: ", e.msg), "", "fix the syntax on that line",
                     cat(yaml_path.string(), ":", e.mark.line + 1)});
  }
  if (!doc.IsMap())
    throw DataError({"data.yaml must be a map with train, val and names", "", "see the YOLO data.yaml layout", yaml_path.string()});
  out.annotation_files.push_back(yaml_path.string());
  const fs::path yaml_dir = yaml_path.parent_path().empty() ? fs::path(".") : yaml_path.parent_path();
  fs::path root = yaml_dir;
  if (doc["path"] && doc["path"].IsScalar()) {
    const fs::path p = doc["path"].Scalar();
    root = (p.is_absolute() ? p : yaml_dir / p).lexically_normal();
  }
  out.root = root;
  // names: a list, or a map from index to name.
  const YAML::Node names = doc["names"];
  std::map<int64_t, std::string> by_index;
  if (names && names.IsSequence()) {
    int64_t i = 0;
    for (const auto& n : names) {
      by_index[i] = n.IsScalar() ? n.Scalar() : cat("class", i);
      ++i;
    }
  } else if (names && names.IsMap()) {
    for (const auto& kv : names) {
      const auto index = parse_int(kv.first.Scalar());
      if (!index || *index < 0)
        throw DataError({cat("names: key '", kv.first.Scalar(), "' is not a class index"), "",
                         "write names as a list, or as 0: name lines", cat(yaml_path.string(), ":", kv.first.Mark().line + 1)});
      by_index[*index] = kv.second.IsScalar() ? kv.second.Scalar() : "";
    }
  } else {
    throw DataError({"data.yaml has no 'names' list", "", "add names: [class0, class1, ...]", yaml_path.string()});
  }
  int64_t expected = 0;
  for (const auto& [index, name] : by_index) {
    if (index != expected)
      out.findings.push_back(record_finding("class_index_gap", Severity::error, yaml_path.string(), 0, "names",
                                            cat("class index ", expected, " has no name"), "number the names 0, 1, 2, ... without gaps"));
    expected = index + 1;
    out.dataset.categories.push_back({index + 1, name});
  }
  if (doc["nc"] && parse_int(doc["nc"].Scalar()).value_or(-1) != static_cast<int64_t>(by_index.size()))
    out.findings.push_back(record_finding("class_count_mismatch", Severity::error, yaml_path.string(), doc["nc"].Mark().line + 1, "nc",
                                          cat("nc is ", doc["nc"].Scalar(), " but names has ", by_index.size(), " entries"),
                                          "make nc equal to the number of names (or remove nc)"));

  for (const char* split_key : {"train", "val", "test"}) {
    const YAML::Node node = doc[split_key];
    if (!node || node.IsNull()) continue;
    Split target;
    target.name = split_key;
    target.image_dir = root.string();
    std::vector<fs::path> image_files;
    for (const auto& entry : yaml_strings(node)) {
      const fs::path p = fs::path(entry).is_absolute() ? fs::path(entry) : root / entry;
      if (fs::is_directory(p, ec)) {
        for (auto it = fs::recursive_directory_iterator(p, ec); it != fs::recursive_directory_iterator(); it.increment(ec))
          if (it->is_regular_file(ec) && is_image_file(it->path())) image_files.push_back(it->path());
      } else if (p.extension() == ".txt" && fs::is_regular_file(p, ec)) {
        for (const auto& line : split(read_file(p), '\n')) {
          const std::string l = trim(line);
          if (l.empty()) continue;
          const fs::path ip = fs::path(l).is_absolute() ? fs::path(l) : (starts_with(l, "./") ? root / l.substr(2) : root / l);
          image_files.push_back(ip);
        }
      } else {
        out.findings.push_back(record_finding("missing_split", Severity::error, yaml_path.string(), node.Mark().line + 1, split_key,
                                              cat("'", p.string(), "' is neither an image directory nor a .txt list"),
                                              "point the split at a folder of images or a text file of image paths"));
      }
    }
    std::sort(image_files.begin(), image_files.end());
    int64_t next_id = static_cast<int64_t>(out.dataset.image_count()) + 1;
    std::set<std::string> used_labels;
    for (const auto& image : image_files) {
      ImageRecord record;
      record.id = next_id++;
      record.file_name = fs::relative(image, root, ec).string();
      if (ec || record.file_name.empty()) record.file_name = image.string();
      const fs::path label = label_path_for(image);
      used_labels.insert(label.lexically_normal().string());
      if (options.image_size)
        if (const auto size = options.image_size(image)) {
          record.width = size->first;
          record.height = size->second;
        }
      if (fs::exists(label, ec)) {
        record.annotation_file = label.string();
        record.annotations = parse_yolo_label_text(read_file(label), label.string(), record.width, record.height, out.findings);
      }
      target.images.push_back(std::move(record));
    }
    // Label files nobody's image points at: usually a renamed or deleted image.
    std::set<fs::path> label_dirs;
    for (const auto& image : image_files) label_dirs.insert(label_path_for(image).parent_path());
    for (const auto& dir : label_dirs)
      for (const auto& entry : fs::directory_iterator(dir, ec))
        if (entry.path().extension() == ".txt" && !used_labels.count(entry.path().lexically_normal().string())) {
          Finding f = record_finding("label_without_image", Severity::warning, entry.path().string(), 0, "",
                                     "no image has this label file's name", "restore the image or delete the label file");
          f.split = target.name;
          out.findings.push_back(f);
        }
    out.dataset.splits.push_back(std::move(target));
  }
  // YOLO has no annotation ids: number the boxes in reading order.
  int64_t next_annotation = 1;
  for (auto& split : out.dataset.splits)
    for (auto& im : split.images)
      for (auto& a : im.annotations) a.id = next_annotation++;
  // Class indices past the names list are undeclared classes; name them by their index.
  for (const auto& split : out.dataset.splits)
    for (const auto& im : split.images)
      for (const auto& a : im.annotations)
        if (!out.dataset.find_category(a.category_id) &&
            std::none_of(out.dataset.undeclared.begin(), out.dataset.undeclared.end(), [&](const Category& c) { return c.id == a.category_id; }))
          out.dataset.undeclared.push_back({a.category_id, cat("class index ", a.category_id - 1)});
}

// ---------------------------------------------------------------------------------------------- VOC

void read_voc(const fs::path& root, const ReadOptions& options, DatasetSource& out) {
  out.root = root;
  std::error_code ec;
  const fs::path annotations = root / "Annotations";
  if (!fs::is_directory(annotations, ec))
    throw DataError({"not a Pascal VOC directory: no Annotations/ folder", "", "pass the folder that holds Annotations/ and JPEGImages/",
                     root.string()});
  // Splits from ImageSets/Main/*.txt (skipping per-class lists and a trainval that repeats train + val).
  std::map<std::string, std::vector<std::string>> split_ids;
  const fs::path sets = root / "ImageSets" / "Main";
  if (fs::is_directory(sets, ec)) {
    for (const auto& entry : fs::directory_iterator(sets, ec)) {
      if (entry.path().extension() != ".txt") continue;
      std::vector<std::string> ids;
      bool per_class = false;
      for (const auto& line : split(read_file(entry.path()), '\n')) {
        const std::string l = trim(line);
        if (l.empty()) continue;
        if (l.find_first_of(" \t") != std::string::npos) per_class = true;
        ids.push_back(l);
      }
      if (!per_class) split_ids[entry.path().stem().string()] = ids;
    }
    if (split_ids.count("train") && split_ids.count("val")) split_ids.erase("trainval");
  }
  if (split_ids.empty()) {
    std::vector<std::string> ids;
    for (const auto& entry : fs::directory_iterator(annotations, ec))
      if (entry.path().extension() == ".xml") ids.push_back(entry.path().stem().string());
    std::sort(ids.begin(), ids.end());
    split_ids["all"] = ids;
  }
  // Declared classes: the reader's list, else classes.txt / labels.txt, else the names found (sorted).
  std::vector<std::string> declared = options.classes;
  bool have_declared = !declared.empty();
  for (const char* name : {"classes.txt", "labels.txt"}) {
    if (have_declared) break;
    if (fs::is_regular_file(root / name, ec)) {
      for (const auto& line : split(read_file(root / name), '\n'))
        if (!trim(line).empty()) declared.push_back(trim(line));
      have_declared = true;
      out.annotation_files.push_back((root / name).string());
    }
  }
  struct Pending {
    std::string split;
    ImageRecord record;
    std::vector<std::string> names;
  };
  std::vector<Pending> pending;
  int64_t next_id = 1, next_annotation = 1;
  const std::vector<std::string> order{"train", "val", "test"};
  std::vector<std::string> split_order;
  for (const auto& s : order)
    if (split_ids.count(s)) split_order.push_back(s);
  for (const auto& [name, ids] : split_ids)
    if (std::find(order.begin(), order.end(), name) == order.end()) split_order.push_back(name);
  std::set<std::string> found_names;
  for (const auto& split_name : split_order) {
    for (const auto& id : split_ids[split_name]) {
      const fs::path xml = annotations / (id + ".xml");
      if (!fs::exists(xml, ec)) {
        Finding f = record_finding("missing_annotation_file", Severity::error, xml.string(), 0, "",
                                   cat("ImageSets/Main/", split_name, ".txt lists '", id, "' but its XML file is missing"),
                                   "restore the XML or remove the id from the split list");
        f.split = split_name;
        out.findings.push_back(f);
        continue;
      }
      VocRecord voc;
      try {
        voc = parse_voc_xml_text(read_file(xml), xml.string(), out.findings);
      } catch (const DataError& e) {
        Finding f = record_finding("malformed_annotation_file", Severity::error, e.where(), 0, "", e.message(), e.remedy());
        f.split = split_name;
        out.findings.push_back(f);
        continue;
      }
      Pending p;
      p.split = split_name;
      p.record.id = next_id++;
      // Trust <filename> when that file exists; many tools write a stale one, so fall back to the id.
      std::string file = voc.filename;
      if (file.empty() || !fs::exists(root / "JPEGImages" / file, ec)) {
        for (const char* ext : {".jpg", ".jpeg", ".png", ".JPG", ".PNG"})
          if (fs::exists(root / "JPEGImages" / (id + ext), ec)) {
            file = id + ext;
            break;
          }
        if (file.empty()) file = id + ".jpg";
      }
      p.record.file_name = file;
      p.record.width = voc.width;
      p.record.height = voc.height;
      p.record.annotation_file = xml.string();
      p.record.annotations = std::move(voc.annotations);
      for (auto& a : p.record.annotations) a.id = next_annotation++;
      p.names = std::move(voc.names);
      for (const auto& n : p.names) found_names.insert(n);
      pending.push_back(std::move(p));
    }
  }
  if (!have_declared) declared.assign(found_names.begin(), found_names.end());
  std::map<std::string, int64_t> ids;
  for (std::size_t i = 0; i < declared.size(); ++i) {
    ids[declared[i]] = static_cast<int64_t>(i) + 1;
    out.dataset.categories.push_back({static_cast<int64_t>(i) + 1, declared[i]});
  }
  for (const auto& name : found_names)
    if (!ids.count(name)) {
      const int64_t id = static_cast<int64_t>(ids.size()) + 1;
      ids[name] = id;
      out.dataset.undeclared.push_back({id, name});
    }
  for (const auto& split_name : split_order) {
    Split split;
    split.name = split_name;
    split.image_dir = (root / "JPEGImages").string();
    out.dataset.splits.push_back(split);
  }
  for (auto& p : pending) {
    for (std::size_t k = 0; k < p.record.annotations.size(); ++k) p.record.annotations[k].category_id = ids[p.names[k]];
    for (auto& split : out.dataset.splits)
      if (split.name == p.split) split.images.push_back(std::move(p.record));
  }
  out.annotation_files.push_back(annotations.string());
}

}  // namespace

ImageSizeFn image_size_from_header() {
  return [](const fs::path& path) -> std::optional<std::pair<int64_t, int64_t>> {
    try {
      const ImageInfo info = probe_image(path);
      return std::make_pair<int64_t, int64_t>(info.width, info.height);
    } catch (const DataError&) {
      return std::nullopt;
    }
  };
}

std::optional<AnnotationFormat> detect_annotation_format(const fs::path& path) {
  std::error_code ec;
  if (fs::is_regular_file(path, ec)) {
    const std::string ext = to_lower(path.extension().string());
    if (ext == ".json") return AnnotationFormat::coco;
    if (ext == ".yaml" || ext == ".yml") return AnnotationFormat::yolo;
    return std::nullopt;
  }
  if (!fs::is_directory(path, ec)) return std::nullopt;
  if (fs::is_directory(path / "Annotations", ec)) return AnnotationFormat::voc;
  if (fs::is_regular_file(path / "data.yaml", ec)) return AnnotationFormat::yolo;
  if (fs::is_directory(path / "annotations", ec)) return AnnotationFormat::coco;
  return std::nullopt;
}

DatasetSource read_dataset(const fs::path& path, const ReadOptions& options) {
  std::error_code ec;
  if (!fs::exists(path, ec))
    throw DataError({"dataset not found", "", "check the path (a COCO .json, a YOLO data.yaml, or a VOC folder)", path.string()});
  const auto format = options.format ? options.format : detect_annotation_format(path);
  if (!format)
    throw DataError({"cannot tell the dataset's layout", "expected a COCO .json file or a folder with annotations/*.json, a YOLO "
                     "data.yaml, or a VOC folder with Annotations/", "pass --format coco|yolo|voc, or point at the file itself",
                     path.string()});
  DatasetSource out;
  out.format = *format;
  switch (*format) {
    case AnnotationFormat::coco: read_coco(path, options, out); break;
    case AnnotationFormat::yolo: read_yolo(path, options, out); break;
    case AnnotationFormat::voc: read_voc(fs::is_directory(path, ec) ? path : path.parent_path(), options, out); break;
  }
  // COCO: categories used but not declared.
  if (*format == AnnotationFormat::coco)
    for (const auto& split : out.dataset.splits)
      for (const auto& im : split.images)
        for (const auto& a : im.annotations)
          if (!out.dataset.find_category(a.category_id) &&
              std::none_of(out.dataset.undeclared.begin(), out.dataset.undeclared.end(), [&](const Category& c) { return c.id == a.category_id; }))
            out.dataset.undeclared.push_back({a.category_id, cat("category id ", a.category_id)});
  return out;
}

}  // namespace detkit
