// Writing detections as COCO results JSON and YOLO txt. See detections_io.h for the contract.
//
// Numbers are formatted with std::to_chars, which ignores the C locale: a results file written under a
// locale with a decimal comma must still be JSON / YOLO.

#include "eval/detections_io.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <nlohmann/json.hpp>
#include <unordered_map>
#include <unordered_set>

#include "core/error.h"
#include "core/fs.h"
#include "core/text.h"

namespace detkit {

namespace {

using ojson = nlohmann::ordered_json;

// The box rounded to 1/1000 pixel; "+ 0.0" turns -0 into 0 so no "-0.0" appears in the file.
double round_coordinate(double v) { return std::round(v * 1000.0) / 1000.0 + 0.0; }

// The score rounded to 6 significant digits (the shortest text that round-trips, as to_chars gives it).
double round_score(double v) {
  char buf[64];
  const auto printed = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::general, 6);
  double out = v;
  std::from_chars(buf, printed.ptr, out);
  return out + 0.0;
}

void require_finite(const CocoDetection& d, std::size_t index) {
  const bool box_ok = std::isfinite(d.x) && std::isfinite(d.y) && std::isfinite(d.w) && std::isfinite(d.h);
  if (!box_ok)
    throw DataError({"detection box is not 4 finite numbers", cat("it is [", d.x, ", ", d.y, ", ", d.w, ", ", d.h, "]"),
                     "drop non-finite boxes before writing (a diverged model produces NaN boxes)",
                     cat("detection #", index, " (image ", d.image_id, ")")});
  if (!std::isfinite(d.score))
    throw DataError({"detection score is not a finite number", cat("it is ", d.score),
                     "drop non-finite scores before writing (a diverged model produces NaN scores)",
                     cat("detection #", index, " (image ", d.image_id, ")")});
}

void append_fixed6(std::string& out, double v) {
  char buf[64];
  const auto printed = std::to_chars(buf, buf + sizeof buf, v + 0.0, std::chars_format::fixed, 6);
  out.append(buf, printed.ptr);
}

}  // namespace

std::string coco_results_to_json(const std::vector<CocoDetection>& detections) {
  std::string out = "[";
  for (std::size_t i = 0; i < detections.size(); ++i) {
    const CocoDetection& d = detections[i];
    require_finite(d, i);
    ojson record;
    record["image_id"] = d.image_id;
    record["category_id"] = d.category_id;
    record["bbox"] = {round_coordinate(d.x), round_coordinate(d.y), round_coordinate(d.w), round_coordinate(d.h)};
    record["score"] = round_score(d.score);
    out += i ? ",\n " : "\n ";
    out += record.dump();
  }
  out += detections.empty() ? "]\n" : "\n]\n";
  return out;
}

void write_coco_results(const std::filesystem::path& path, const std::vector<CocoDetection>& detections) {
  write_file_atomic(path, coco_results_to_json(detections));
}

void write_yolo_detections(const std::filesystem::path& dir, const std::vector<CocoDetection>& detections,
                           const std::vector<YoloImageInfo>& images, const std::map<int64_t, int64_t>& class_index) {
  // Validate everything before the first file is written.
  std::unordered_map<int64_t, std::size_t> image_pos;
  std::unordered_map<std::string, std::size_t> names;
  std::vector<std::string> txt_names(images.size());
  for (std::size_t i = 0; i < images.size(); ++i) {
    const YoloImageInfo& im = images[i];
    const std::string where = cat("image #", i, " (id ", im.image_id, ", '", im.file_name, "')");
    if (!(std::isfinite(im.width) && std::isfinite(im.height) && im.width > 0 && im.height > 0))
      throw DataError({cat("image size ", im.width, "x", im.height, " cannot normalise boxes"),
                       "YOLO coordinates are divided by the image width and height",
                       "give every image its real size in pixels (read it from the image header)", where});
    if (!image_pos.emplace(im.image_id, i).second)
      throw DataError({cat("image id ", im.image_id, " is listed twice"), "",
                       "list each image once", where});
    txt_names[i] = std::filesystem::path(im.file_name).stem().string() + ".txt";
    if (txt_names[i] == ".txt")
      throw DataError({"image has no file name to name its txt file after", "", "give every image its file name",
                       where});
    const auto [it, fresh] = names.emplace(txt_names[i], i);
    if (!fresh)
      throw DataError({cat("two images would both write ", txt_names[i]),
                       cat("image #", it->second, " has the same file stem (YOLO names labels by stem only)"),
                       "rename one of the images, or write the detections of each directory separately", where});
  }

  std::vector<std::vector<std::size_t>> per_image(images.size());
  for (std::size_t j = 0; j < detections.size(); ++j) {
    const CocoDetection& d = detections[j];
    require_finite(d, j);
    const auto ip = image_pos.find(d.image_id);
    if (ip == image_pos.end())
      throw DataError({cat("image_id ", d.image_id, " is not one of the images given"),
                       "YOLO output needs each detection's image size and file name",
                       "pass every image the detections refer to", cat("detection #", j)});
    if (class_index.count(d.category_id) == 0)
      throw DataError({cat("category_id ", d.category_id, " has no YOLO class index"), "",
                       "add the category to the category-id -> class-index mapping (normally the position of the "
                       "category in the dataset's class list)",
                       cat("detection #", j)});
    per_image[ip->second].push_back(j);
  }

  ensure_directory(dir);
  for (std::size_t i = 0; i < images.size(); ++i) {
    const YoloImageInfo& im = images[i];
    std::vector<std::size_t>& dets = per_image[i];
    std::stable_sort(dets.begin(), dets.end(),
                     [&](std::size_t a, std::size_t b) { return detections[a].score > detections[b].score; });
    std::string text;
    for (std::size_t j : dets) {
      const CocoDetection& d = detections[j];
      text += std::to_string(class_index.at(d.category_id));
      for (double v : {(d.x + d.w / 2) / im.width, (d.y + d.h / 2) / im.height, d.w / im.width, d.h / im.height,
                       d.score}) {
        text += ' ';
        append_fixed6(text, v);
      }
      text += '\n';
    }
    write_file_atomic(dir / txt_names[i], text);
  }
}

}  // namespace detkit
