#include "data/fix.h"

#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "core/text.h"
#include "data/image_io.h"
#include "data/image_write.h"

namespace detkit {

namespace {

std::string image_key(const std::string& split, int64_t image_id) { return split + "#" + std::to_string(image_id); }
std::string box_key(const std::string& split, int64_t image_id, int64_t annotation_id) {
  return image_key(split, image_id) + "#" + std::to_string(annotation_id);
}

const std::set<std::string>& image_removing_kinds() {
  static const std::set<std::string> kinds{"missing_image",   "empty_image_file",   "unreadable_image",
                                           "corrupt_image",   "truncated_image",    "unsupported_image_format",
                                           "decompression_bomb", "duplicate_image", "train_val_leakage",
                                           "duplicate_image_entry"};
  return kinds;
}

const std::set<std::string>& box_removing_kinds() {
  static const std::set<std::string> kinds{"degenerate_box", "inverted_box", "non_finite_box", "unknown_class", "duplicate_box"};
  return kinds;
}

}  // namespace

FixResult fix_dataset(const DatasetSource& source, const CheckReport& report, const fs::path& out_dir) {
  FixResult result;
  std::map<std::string, const Finding*> remove_image, rewrite_image, fix_size;
  std::map<std::string, const Finding*> remove_box, clip_box;
  // check_dataset copies the reader's findings first: those records are already left out.
  const std::size_t read_findings = std::min(source.findings.size(), report.findings.size());
  for (std::size_t i = 0; i < report.findings.size(); ++i) {
    const Finding& f = report.findings[i];
    if (i < read_findings) {
      result.entries.push_back({"left out while reading", f});
      continue;
    }
    const std::string key = image_key(f.split, f.image_id);
    if (image_removing_kinds().count(f.kind)) remove_image[key] = &f;
    else if (f.kind == "exif_rotated" || f.kind == "exif_size_mismatch") rewrite_image[key] = &f;
    else if (f.kind == "size_mismatch") fix_size[key] = &f;
    else if (box_removing_kinds().count(f.kind) || (f.kind == "out_of_bounds_box" && f.severity == Severity::error))
      remove_box[box_key(f.split, f.image_id, f.annotation_id)] = &f;
    else if (f.kind == "out_of_bounds_box") clip_box[box_key(f.split, f.image_id, f.annotation_id)] = &f;
  }

  Dataset cleaned;
  cleaned.categories = source.dataset.categories;
  std::map<fs::path, bool> keep_stored_orientation;  // by source file: true = write as stored
  for (const auto& split : source.dataset.splits) {
    Split out;
    out.name = split.name;
    out.image_dir = split.image_dir;
    for (const auto& image : split.images) {
      const std::string key = image_key(split.name, image.id);
      if (const auto it = remove_image.find(key); it != remove_image.end()) {
        result.entries.push_back({"image removed", *it->second});
        ++result.images_removed;
        continue;
      }
      ImageRecord kept = image;
      const fs::path path = fs::path(split.image_dir) / image.file_name;
      if (const auto it = fix_size.find(key); it != fix_size.end()) {
        const ImageInfo info = probe_image(path);
        bool fits = true;
        for (const auto& a : image.annotations)
          fits = fits && a.box.a >= -0.5 && a.box.b >= -0.5 && a.box.c <= info.width + 0.5 && a.box.d <= info.height + 0.5;
        if (!fits) {
          result.entries.push_back({"image removed", *it->second});
          ++result.images_removed;
          continue;
        }
        kept.width = info.width;
        kept.height = info.height;
        result.entries.push_back({cat("declared size corrected to ", info.width, "x", info.height), *it->second});
        ++result.sizes_corrected;
      }
      if (const auto it = rewrite_image.find(key); it != rewrite_image.end()) {
        const bool stored = it->second->kind == "exif_size_mismatch";
        keep_stored_orientation[path] = stored;
        result.entries.push_back({stored ? "written as stored, orientation tag removed" : "turned upright, orientation tag removed",
                                  *it->second});
        ++result.images_rewritten;
      }
      kept.annotations.clear();
      for (const auto& a : image.annotations) {
        const std::string bkey = box_key(split.name, image.id, a.id);
        if (const auto it = remove_box.find(bkey); it != remove_box.end()) {
          result.entries.push_back({"box removed", *it->second});
          ++result.boxes_removed;
          continue;
        }
        Annotation fixed = a;
        if (const auto it = clip_box.find(bkey); it != clip_box.end()) {
          const double w = static_cast<double>(kept.width > 0 ? kept.width : image.width);
          const double h = static_cast<double>(kept.height > 0 ? kept.height : image.height);
          fixed.box = clip(a.box, w, h);
          result.entries.push_back({"box clipped", *it->second});
          ++result.boxes_clipped;
        }
        kept.annotations.push_back(fixed);
      }
      out.images.push_back(std::move(kept));
    }
    cleaned.splits.push_back(std::move(out));
  }

  nlohmann::ordered_json quarantine = nlohmann::ordered_json::array();
  for (const auto& e : result.entries) {
    nlohmann::ordered_json x;
    x["action"] = e.action;
    x["kind"] = e.finding.kind;
    x["file"] = e.finding.file;
    if (e.finding.line > 0) x["line"] = e.finding.line;
    if (!e.finding.record.empty()) x["record"] = e.finding.record;
    if (!e.finding.image.empty()) x["image"] = e.finding.image;
    x["reason"] = e.finding.message;
    quarantine.push_back(std::move(x));
  }
  const auto rewrite = [&](const ImageRecord& image, const fs::path& from) -> std::optional<std::string> {
    const auto it = keep_stored_orientation.find(from);
    if (it == keep_stored_orientation.end()) return std::nullopt;
    DecodeOptions options;
    options.apply_orientation = !it->second;
    const DecodedImage decoded = decode_image(from, options);
    return decoded.info.format == ImageFormat::png ? encode_png(decoded.image) : encode_jpeg(decoded.image, 95);
  };
  result.written = write_dataset(cleaned, source.format, out_dir, rewrite, {{"quarantine.json", quarantine.dump(2) + "\n"}});
  return result;
}

}  // namespace detkit
