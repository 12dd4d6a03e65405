#include "data/check.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string_view>

#include "core/error.h"
#include "core/parallel.h"
#include "core/progress.h"
#include "core/text.h"
#include "data/image_io.h"

namespace detkit {

std::size_t CheckReport::count(Severity severity) const {
  return static_cast<std::size_t>(std::count_if(findings.begin(), findings.end(), [&](const Finding& f) { return f.severity == severity; }));
}

bool CheckReport::fails(Severity threshold) const {
  return std::any_of(findings.begin(), findings.end(), [&](const Finding& f) { return f.severity >= threshold; });
}

namespace {

// What check learns from one image file.
struct ImageFacts {
  bool exists = false;
  bool readable = false;        // the header parsed
  std::string problem_kind;     // missing_image, empty_image_file, unsupported_image_format, corrupt_image, ...
  std::string problem;          // the reason, for the message
  int64_t width = 0, height = 0;                  // displayed (after EXIF orientation)
  int64_t stored_width = 0, stored_height = 0;    // as stored in the file
  int orientation = 1;
  std::string format;           // "jpeg", "png", or what the magic bytes say
  bool wrong_extension = false;
  uint64_t hash = 0;
  uint64_t bytes = 0;
};

std::string problem_kind(ImageProblem problem) {
  switch (problem) {
    case ImageProblem::unreadable: return "unreadable_image";
    case ImageProblem::empty: return "empty_image_file";
    case ImageProblem::unknown_format:
    case ImageProblem::unsupported: return "unsupported_image_format";
    case ImageProblem::corrupt: return "corrupt_image";
    case ImageProblem::truncated: return "truncated_image";
    case ImageProblem::too_large: return "decompression_bomb";
  }
  return "corrupt_image";
}

// A fingerprint for finding identical files without reading them whole: the size, the first 64 KiB and the
// last 4 KiB. Equal fingerprints are confirmed byte for byte before anything is reported.
uint64_t fingerprint(const fs::path& path, uint64_t size) {
  std::ifstream in(path, std::ios::binary);
  constexpr std::size_t kHead = 64 * 1024, kTail = 4 * 1024;
  std::string head(static_cast<std::size_t>(std::min<uint64_t>(size, kHead)), '\0');
  in.read(head.data(), static_cast<std::streamsize>(head.size()));
  std::string tail;
  if (size > kHead) {
    tail.resize(static_cast<std::size_t>(std::min<uint64_t>(size - kHead, kTail)));
    in.seekg(static_cast<std::streamoff>(size - tail.size()));
    in.read(tail.data(), static_cast<std::streamsize>(tail.size()));
  }
  const std::hash<std::string_view> h;
  return h(head) ^ (h(tail) * 0x9E3779B97F4A7C15ull) ^ (size * 0xBF58476D1CE4E5B9ull);
}

ImageFacts inspect(const fs::path& path, const CheckOptions& options) {
  ImageFacts facts;
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) {
    facts.problem_kind = "missing_image";
    return facts;
  }
  facts.exists = true;
  try {
    const ImageInfo info = probe_image(path);
    facts.bytes = info.file_size;
    facts.hash = fingerprint(path, info.file_size);
    check_pixel_limit(info, static_cast<uint64_t>(options.max_pixels), path.string());
    facts.format = image_format_name(info.format);
    facts.wrong_extension = info.extension_mismatch;
    facts.stored_width = info.stored_width;
    facts.stored_height = info.stored_height;
    facts.orientation = info.orientation;
    facts.width = info.width;
    facts.height = info.height;
    // No end marker near the end: cut short, or data appended after the image. Only a decode tells
    // which; at 1/8 scale it costs little.
    if (options.decode || !info.end_marker_seen) {
      DecodeOptions decode;
      decode.max_pixels = static_cast<uint64_t>(options.max_pixels);
      if (!options.decode) {
        decode.target_width = std::max(1, info.width / 8);
        decode.target_height = std::max(1, info.height / 8);
      }
      decode_image(path, decode);
    }
  } catch (const ImageError& e) {
    facts.problem_kind = problem_kind(e.problem());
    facts.problem = e.message() + (e.why().empty() ? "" : " (" + e.why() + ")");
    if (e.problem() != ImageProblem::unreadable && e.problem() != ImageProblem::empty && facts.bytes == 0) {
      facts.bytes = fs::file_size(path, ec);
      if (!ec) facts.hash = fingerprint(path, facts.bytes);
    }
    return facts;
  }
  facts.readable = true;
  return facts;
}

struct Reporter {
  std::vector<Finding>& out;
  Finding& add(std::string kind, Severity severity, std::string file, std::string message, std::string remedy) {
    Finding f;
    f.kind = std::move(kind);
    f.severity = severity;
    f.file = std::move(file);
    f.message = std::move(message);
    f.remedy = std::move(remedy);
    out.push_back(std::move(f));
    return out.back();
  }
};

std::string normalised_name(const std::string& name) {
  std::string out;
  for (char c : to_lower(trim(name)))
    if (c != ' ' && c != '_' && c != '-') out += c;
  return out;
}

struct ImageRef {
  const Split* split;
  const ImageRecord* image;
  fs::path path;
};

std::string fmt1(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.1f", v);
  return b;
}

}  // namespace

CheckReport check_dataset(const DatasetSource& source, const CheckOptions& options) {
  CheckReport report;
  report.format = to_string(source.format);
  report.root = source.root.string();
  report.options = options;
  report.findings = source.findings;
  Reporter rep{report.findings};
  const Dataset& ds = source.dataset;

  // 1. Images: read, hash and probe every file, in parallel.
  std::vector<ImageRef> refs;
  for (const auto& split : ds.splits)
    for (const auto& im : split.images) refs.push_back({&split, &im, fs::path(split.image_dir) / im.file_name});
  std::vector<ImageFacts> facts(refs.size());
  parallel_for(refs.size(), "check", "img", "the dataset check",
               [&](std::size_t i) { facts[i] = inspect(refs[i].path, options); });

  // Class tables: declared ids, names for undeclared ids.
  std::set<int64_t> declared;
  for (const auto& c : ds.categories) declared.insert(c.id);
  auto undeclared_name = [&](int64_t id) {
    for (const auto& c : ds.undeclared)
      if (c.id == id) return c.name;
    return cat("category id ", id);
  };
  std::map<int64_t, std::size_t> class_counts;
  std::map<uint64_t, std::vector<std::size_t>> by_hash;

  for (std::size_t i = 0; i < refs.size(); ++i) {
    const ImageRef& ref = refs[i];
    const ImageRecord& im = *ref.image;
    const ImageFacts& f = facts[i];
    const std::string image_path = ref.path.string();
    auto at_image = [&](Finding& finding) -> Finding& {
      finding.split = ref.split->name;
      finding.image = image_path;
      finding.image_id = im.id;
      return finding;
    };
    ++report.stats.images;
    ++report.stats.images_per_split[ref.split->name];
    if (f.exists && f.bytes > 0) by_hash[f.hash].push_back(i);

    if (f.problem_kind == "missing_image") {
      at_image(rep.add("missing_image", Severity::error, image_path, "the image file does not exist",
                       "restore the file, fix the file name in the annotations, or remove the image's entry"));
    } else if (f.problem_kind == "empty_image_file") {
      at_image(rep.add("empty_image_file", Severity::error, image_path, "the image file is empty (0 bytes)",
                       "copy the image again from its source, or remove it"));
    } else if (f.problem_kind == "unsupported_image_format") {
      at_image(rep.add("unsupported_image_format", Severity::error, image_path, f.problem,
                       "convert the image to JPEG or PNG"));
    } else if (f.problem_kind == "corrupt_image" || f.problem_kind == "unreadable_image") {
      at_image(rep.add("corrupt_image", Severity::error, image_path, "the image cannot be decoded: " + f.problem,
                       "re-export or copy the image again from its source, or remove it"));
    } else if (f.problem_kind == "truncated_image") {
      at_image(rep.add("truncated_image", Severity::error, image_path, "the file is cut short: " + f.problem,
                       "copy the image again from its source (an interrupted copy or download), or remove it"));
    } else if (f.problem_kind == "decompression_bomb") {
      at_image(rep.add("decompression_bomb", Severity::error, image_path, f.problem,
                       "downscale the image, or raise the limit with --max-pixels if it is genuine"));
    }
    if (f.readable && f.wrong_extension)
      at_image(rep.add("wrong_extension", Severity::warning, image_path,
                       cat("the file is a ", f.format, " image but is named ", ref.path.extension().string()),
                       "rename it so tools that trust extensions read it right"));

    // Size and orientation: the annotations' declared size against the picture as displayed.
    int64_t width = f.readable ? f.width : im.width, height = f.readable ? f.height : im.height;
    if (f.readable) {
      report.stats.image_sizes[cat(f.width, "x", f.height)]++;
      const bool declared_size = im.width > 0 && im.height > 0;
      const bool quarter_turn = f.orientation >= 5;
      if (declared_size && (im.width != f.width || im.height != f.height)) {
        if (quarter_turn && im.width == f.stored_width && im.height == f.stored_height) {
          at_image(rep.add("exif_size_mismatch", Severity::error, image_path,
                           cat("the annotations were made on the stored ", f.stored_width, "x", f.stored_height,
                               " picture, but EXIF orientation ", f.orientation, " turns it to ", f.width, "x", f.height),
                           "the boxes belong to the unrotated picture: write upright copies with 'detkit check --fix' "
                           "after relabelling, or strip the EXIF orientation tag so readers keep it as stored"));
          width = f.stored_width, height = f.stored_height;
        } else {
          Finding& finding = at_image(rep.add("size_mismatch", Severity::error, im.annotation_file.empty() ? image_path : im.annotation_file,
                           cat("the annotations declare ", im.width, "x", im.height, " for ", im.file_name, " but the image is ",
                               f.width, "x", f.height),
                           "the annotations may belong to another (resized) version of the image: re-export them for this file, "
                           "or fix the declared size if the boxes fit"));
          if (source.format == AnnotationFormat::coco) finding.record = cat("image id ", im.id);
        }
      } else if (f.orientation != 1) {
        at_image(rep.add("exif_rotated", Severity::warning, image_path,
                         cat("the picture is stored ", f.stored_width, "x", f.stored_height, " with EXIF orientation ",
                             f.orientation, "; the annotations match the upright view"),
                         "detkit applies the orientation; tools that ignore EXIF (many trainers, OpenCV with "
                         "IMREAD_IGNORE_ORIENTATION) would misplace every box: write upright copies with --fix"));
      }
    }

    // Boxes.
    if (im.annotations.empty()) ++report.stats.empty_images;
    report.stats.max_boxes_in_image = std::max(report.stats.max_boxes_in_image, im.annotations.size());
    if (static_cast<int64_t>(im.annotations.size()) > options.max_boxes_per_image)
      at_image(rep.add("too_many_boxes", Severity::warning, im.annotation_file.empty() ? image_path : im.annotation_file,
                       cat(im.annotations.size(), " boxes in one image (more than ", options.max_boxes_per_image, ")"),
                       "check for duplicated or runaway annotations; if genuine, raise the detector's max detections"));
    const double scale = width > 0 && height > 0 ? static_cast<double>(options.imgsz) / std::max(width, height) : 0;
    for (std::size_t k = 0; k < im.annotations.size(); ++k) {
      const Annotation& a = im.annotations[k];
      ++report.stats.annotations;
      auto at_box = [&](Finding& finding) -> Finding& {
        at_image(finding);
        finding.annotation_id = a.id;
        finding.line = a.source_line;
        if (source.format == AnnotationFormat::coco) finding.record = cat("annotation id ", a.id);
        else if (source.format == AnnotationFormat::voc) finding.record = cat("object ", k + 1);
        return finding;
      };
      const std::string file = im.annotation_file.empty() ? image_path : im.annotation_file;
      const Box& b = a.box;
      if (!declared.count(a.category_id)) {
        at_box(rep.add("unknown_class", Severity::error, file,
                       cat(undeclared_name(a.category_id), " is not among the ", ds.categories.size(), " declared classes"),
                       source.format == AnnotationFormat::yolo ? "fix the class index, or add the class to data.yaml's names"
                       : source.format == AnnotationFormat::voc ? "fix the object's <name>, or add it to classes.txt"
                                                                : "fix the category_id, or add the category to \"categories\""));
      } else {
        ++class_counts[a.category_id];
      }
      if (!b.is_finite()) {
        at_box(rep.add("non_finite_box", Severity::error, file, "a coordinate is NaN or infinite", "fix or remove the box"));
        continue;
      }
      const double w = b.c - b.a, h = b.d - b.b;
      if (w < 0 || h < 0) {
        at_box(rep.add("inverted_box", Severity::error, file,
                       cat("corners are swapped: x1 ", b.a, ", y1 ", b.b, ", x2 ", b.c, ", y2 ", b.d),
                       "swap the corners (or, for COCO, make width and height positive)"));
        continue;
      }
      if (w == 0 || h == 0) {
        at_box(rep.add("degenerate_box", Severity::error, file, cat("the box has zero ", w == 0 ? "width" : "height"),
                       "remove the box (a click without a drag in the labelling tool)"));
        continue;
      }
      // YOLO boxes of an image whose size is unknown stay normalised (0..1): no pixel rule applies to them.
      const bool in_pixels = source.format != AnnotationFormat::yolo || im.width > 0;
      if (in_pixels && (w < 2 || h < 2)) {  // e.g. VOC xmin == xmax: one pixel, inclusive; no object is that thin
        at_box(rep.add("degenerate_box", Severity::warning, file,
                       cat("the box is only ", w < 2 ? w : h, " px ", w < 2 ? "wide" : "high", ": [", b.a, ", ", b.b, ", ",
                           b.c, ", ", b.d, "]"),
                       "remove the box (a click without a drag in the labelling tool), or redraw it around the object"));
        continue;
      }
      if (width > 0 && height > 0) {
        constexpr double kTolerance = 0.5;  // half a pixel: rounding in exporters
        const bool outside = b.a < -kTolerance || b.b < -kTolerance || b.c > width + kTolerance || b.d > height + kTolerance;
        if (outside) {
          const Box inside = clip(b, static_cast<double>(width), static_cast<double>(height));
          const bool nothing_left = inside.area() <= 0;
          at_box(rep.add("out_of_bounds_box", nothing_left ? Severity::error : Severity::warning, file,
                         cat("the box [", b.a, ", ", b.b, ", ", b.c, ", ", b.d, "] leaves the ", width, "x", height,
                             " image", nothing_left ? " entirely" : ""),
                         nothing_left ? "remove the box" : "clip it to the image ('detkit check --fix' does)"));
        }
        if (scale > 0) {
          const double side = std::sqrt(w * h) * scale;
          const double edges[] = {8, 16, 32, 64, 128, 256};
          std::size_t bin = 0;
          while (bin < 6 && side >= edges[bin]) ++bin;
          ++report.stats.box_size_histogram[bin];
          if (w * scale < options.small_box_px && h * scale < options.small_box_px) ++report.stats.tiny_boxes;
        }
      }
      if (std::max(w, h) / std::min(w, h) > options.aspect_outlier) ++report.stats.aspect_outliers;
    }
    // Duplicate boxes: same class, nearly the same place (crowd regions excepted).
    for (std::size_t p = 0; p < im.annotations.size(); ++p)
      for (std::size_t q = p + 1; q < im.annotations.size(); ++q) {
        const Annotation &x = im.annotations[p], &y = im.annotations[q];
        if (x.category_id != y.category_id || x.iscrowd || y.iscrowd || !x.box.is_finite() || !y.box.is_finite()) continue;
        const double overlap = iou(x.box, y.box);
        if (overlap >= options.duplicate_iou) {
          Finding& finding = at_image(rep.add("duplicate_box", Severity::warning,
                                              im.annotation_file.empty() ? image_path : im.annotation_file,
                                              cat("two boxes of the same class overlap with IoU ", fmt1(overlap * 100), "%"),
                                              "remove one of them (double-clicked in the labelling tool)"));
          finding.annotation_id = y.id;
          finding.line = y.source_line;
          if (source.format == AnnotationFormat::coco) finding.record = cat("annotation ids ", x.id, " and ", y.id);
          else if (source.format == AnnotationFormat::voc) finding.record = cat("objects ", p + 1, " and ", q + 1);
        }
      }
  }

  // Duplicate images (same bytes): inside a split, and across train/val (leakage).
  for (const auto& [hash, members] : by_hash) {
    if (members.size() < 2) continue;
    std::vector<std::size_t> group;
    const std::string first_bytes = read_file(refs[members.front()].path);
    for (std::size_t m : members)
      if (m == members.front() || read_file(refs[m].path) == first_bytes) group.push_back(m);
    for (std::size_t g = 1; g < group.size(); ++g) {
      const ImageRef& original = refs[group.front()];
      const ImageRef& copy = refs[group[g]];
      if (copy.path.lexically_normal() == original.path.lexically_normal()) {
        Finding& f = rep.add("duplicate_image_entry", Severity::error, copy.path.string(),
                             "the same image file is listed twice", "remove the second entry");
        f.split = copy.split->name;
        f.image = copy.path.string();
        f.image_id = copy.image->id;
        continue;
      }
      const bool leak = copy.split->name != original.split->name;
      Finding& f = rep.add(leak ? "train_val_leakage" : "duplicate_image", leak ? Severity::error : Severity::warning,
                           copy.path.string(),
                           cat("same bytes as ", original.path.string(), leak ? " in split '" + original.split->name + "'" : ""),
                           leak ? "remove the copy from one split: an image seen in training inflates validation scores"
                                : "remove one copy: duplicates weigh those objects twice");
      f.split = copy.split->name;
      f.image = copy.path.string();
      f.image_id = copy.image->id;
    }
  }

  // Classes: unused, name variants, imbalance.
  std::size_t most = 0, least = SIZE_MAX;
  for (const auto& c : ds.categories) {
    const std::size_t n = class_counts[c.id];
    report.stats.boxes_per_class.push_back({c.name, n});
    most = std::max(most, n);
    least = std::min(least, n);
    if (n == 0 && report.stats.annotations > 0)
      rep.add("unused_class", Severity::warning, source.annotation_files.empty() ? report.root : source.annotation_files.front(),
              cat("class '", c.name, "' (id ", c.id, ") is declared but no box uses it"),
              "remove it from the class list, or label its objects (a class with no examples cannot be learned)");
  }
  report.stats.imbalance_ratio = least > 0 && least != SIZE_MAX ? static_cast<double>(most) / static_cast<double>(least) : 0;
  std::vector<Category> all = ds.categories;
  all.insert(all.end(), ds.undeclared.begin(), ds.undeclared.end());
  for (std::size_t i = 0; i < all.size(); ++i)
    for (std::size_t j = i + 1; j < all.size(); ++j)
      if (all[i].name != all[j].name && normalised_name(all[i].name) == normalised_name(all[j].name) &&
          !normalised_name(all[i].name).empty())
        rep.add("class_name_variant", Severity::warning, source.annotation_files.empty() ? report.root : source.annotation_files.front(),
                cat("'", all[i].name, "' and '", all[j].name, "' differ only in case, spaces or underscores"),
                "merge them into one class name; as written they are trained as two different classes");
  return report;
}

std::string format_check_report(const CheckReport& r, std::size_t examples) {
  std::ostringstream out;
  out << "detkit check: " << r.format << " dataset at " << r.root << ": " << r.stats.images << " images, "
      << r.stats.annotations << " boxes";
  if (!r.stats.images_per_split.empty()) {
    std::vector<std::string> parts;
    for (const auto& [split, n] : r.stats.images_per_split) parts.push_back(cat(split, " ", n));
    out << " (" << join(parts, ", ") << ")";
  }
  out << "\n\n";
  // Findings grouped by kind, most severe first.
  std::map<std::string, std::vector<const Finding*>> groups;
  for (const auto& f : r.findings) groups[f.kind].push_back(&f);
  std::vector<std::pair<std::string, std::vector<const Finding*>>> ordered(groups.begin(), groups.end());
  std::stable_sort(ordered.begin(), ordered.end(), [](const auto& a, const auto& b) {
    Severity sa = Severity::info, sb = Severity::info;
    for (auto* f : a.second) sa = std::max(sa, f->severity);
    for (auto* f : b.second) sb = std::max(sb, f->severity);
    return sa > sb;
  });
  if (ordered.empty()) out << "no defects found\n";
  else
    out << "findings: " << r.count(Severity::error) << " errors, " << r.count(Severity::warning) << " warnings, "
        << r.count(Severity::info) << " info\n";
  for (const auto& [kind, list] : ordered) {
    Severity worst = Severity::info;
    for (auto* f : list) worst = std::max(worst, f->severity);
    out << "\n  " << to_string(worst) << "  " << kind << " (" << list.size() << ")\n";
    for (std::size_t i = 0; i < list.size() && i < examples; ++i)
      out << "    " << list[i]->location() << ": " << list[i]->message << "\n";
    if (list.size() > examples) out << "    ... and " << list.size() - examples << " more (--json lists all)\n";
    out << "    fix: " << list.front()->remedy << "\n";
  }
  const DatasetStats& s = r.stats;
  out << "\nstatistics\n";
  out << "  images without boxes: " << s.empty_images << "; most boxes in one image: " << s.max_boxes_in_image << "\n";
  out << "  boxes per class:";
  for (const auto& [name, n] : s.boxes_per_class) out << " " << name << " " << n << ";";
  if (s.imbalance_ratio > 0) out << " imbalance (most/least) " << fmt1(s.imbalance_ratio);
  out << "\n  box size at imgsz " << r.options.imgsz << " (sqrt of area, px):";
  const char* labels[] = {"<8", "8-16", "16-32", "32-64", "64-128", "128-256", ">=256"};
  for (int i = 0; i < 7; ++i) out << " " << labels[i] << ": " << s.box_size_histogram[static_cast<std::size_t>(i)] << ";";
  out << "\n  boxes smaller than " << r.options.small_box_px << " px on both sides at imgsz " << r.options.imgsz << ": "
      << s.tiny_boxes;
  if (s.annotations > 0 && s.tiny_boxes * 20 > s.annotations)
    out << " (" << fmt1(100.0 * s.tiny_boxes / s.annotations) << "%: raise imgsz or use the stride-4 head)";
  out << "\n  boxes with aspect ratio above " << r.options.aspect_outlier << ": " << s.aspect_outliers << "\n";
  std::vector<std::pair<std::size_t, std::string>> sizes;
  for (const auto& [size, n] : s.image_sizes) sizes.push_back({n, size});
  std::sort(sizes.rbegin(), sizes.rend());
  out << "  image sizes (" << sizes.size() << " distinct):";
  for (std::size_t i = 0; i < sizes.size() && i < 6; ++i) out << " " << sizes[i].second << " x" << sizes[i].first << ";";
  out << "\n";
  return out.str();
}

std::string check_report_json(const CheckReport& r) {
  nlohmann::ordered_json j;
  j["format"] = r.format;
  j["root"] = r.root;
  j["summary"] = {{"error", r.count(Severity::error)}, {"warning", r.count(Severity::warning)}, {"info", r.count(Severity::info)}};
  auto findings = nlohmann::ordered_json::array();
  for (const auto& f : r.findings) {
    nlohmann::ordered_json x;
    x["kind"] = f.kind;
    x["severity"] = to_string(f.severity);
    x["file"] = f.file;
    if (f.line > 0) x["line"] = f.line;
    if (!f.record.empty()) x["record"] = f.record;
    if (!f.split.empty()) x["split"] = f.split;
    if (!f.image.empty()) x["image"] = f.image;
    if (f.image_id >= 0) x["image_id"] = f.image_id;
    if (f.annotation_id >= 0) x["annotation_id"] = f.annotation_id;
    x["message"] = f.message;
    x["remedy"] = f.remedy;
    findings.push_back(std::move(x));
  }
  j["findings"] = std::move(findings);
  const DatasetStats& s = r.stats;
  nlohmann::ordered_json classes = nlohmann::ordered_json::object();
  for (const auto& [name, n] : s.boxes_per_class) classes[name] = n;
  j["stats"] = {{"images", s.images},
                {"annotations", s.annotations},
                {"images_per_split", s.images_per_split},
                {"empty_images", s.empty_images},
                {"max_boxes_in_image", s.max_boxes_in_image},
                {"boxes_per_class", classes},
                {"imbalance_ratio", s.imbalance_ratio},
                {"imgsz", r.options.imgsz},
                {"box_size_histogram", {{"<8", s.box_size_histogram[0]}, {"8-16", s.box_size_histogram[1]},
                                        {"16-32", s.box_size_histogram[2]}, {"32-64", s.box_size_histogram[3]},
                                        {"64-128", s.box_size_histogram[4]}, {"128-256", s.box_size_histogram[5]},
                                        {">=256", s.box_size_histogram[6]}}},
                {"tiny_boxes", s.tiny_boxes},
                {"aspect_outliers", s.aspect_outliers},
                {"image_sizes", s.image_sizes}};
  return j.dump(2) + "\n";
}

}  // namespace detkit
