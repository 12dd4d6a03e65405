#include "data/convert.h"

#include <map>
#include <set>

#include "core/error.h"
#include "core/progress.h"
#include "core/text.h"

namespace detkit {

ConvertResult convert_dataset(const DatasetSource& source, AnnotationFormat to, const fs::path& out_dir) {
  return write_dataset(source.dataset, to, out_dir);
}

ConvertResult write_dataset(const Dataset& dataset, AnnotationFormat to, const fs::path& out_dir, const ImageRewriteFn& rewrite,
                            const std::map<std::string, std::string>& extra_files) {
  StagedDirectory staged(out_dir);
  ConvertResult result;
  Dataset out;
  out.categories = dataset.categories;
  std::size_t difficult = 0, truncated = 0, crowd = 0, missing = 0, unsized = 0;
  std::set<std::string> taken;  // VOC keeps every split's images in one folder: names must be unique
  Progress progress("write", dataset.image_count(), "img");
  for (const auto& split : dataset.splits) {
    Split target;
    target.name = split.name;
    for (const auto& image : split.images) {
      throw_if_interrupted("the conversion");
      progress.advance();
      const fs::path from = fs::path(split.image_dir) / image.file_name;
      std::error_code ec;
      if (!fs::is_regular_file(from, ec)) {
        ++missing;
        continue;
      }
      if (to == AnnotationFormat::yolo && (image.width <= 0 || image.height <= 0)) {
        ++unsized;
        continue;
      }
      ImageRecord record = image;
      std::string name = fs::path(image.file_name).filename().string();
      const std::string key = to == AnnotationFormat::voc ? name : split.name + "/" + name;
      if (!taken.insert(key).second) {
        name = split.name + "_" + name;
        taken.insert(to == AnnotationFormat::voc ? name : split.name + "/" + name);
      }
      record.file_name = name;
      record.annotation_file.clear();
      for (const auto& a : record.annotations) {
        difficult += to != AnnotationFormat::voc && a.difficult;
        truncated += to != AnnotationFormat::voc && a.truncated;
        crowd += to != AnnotationFormat::coco && a.iscrowd;
      }
      const fs::path dest = staged.path() / image_relative_path(to, split.name, name);
      ensure_directory(dest.parent_path());
      if (const auto bytes = rewrite ? rewrite(image, from) : std::nullopt) {
        write_file_atomic(dest, *bytes);
      } else {
        fs::copy_file(from, dest, ec);
        if (ec) throw RunError({"cannot copy image", ec.message(), "check free disk space and permissions", dest.string()});
      }
      result.annotations += record.annotations.size();
      ++result.images;
      target.images.push_back(std::move(record));
    }
    out.splits.push_back(std::move(target));
  }
  write_annotations(out, to, staged.path());
  for (const auto& [name, bytes] : extra_files) write_file_atomic(staged.path() / name, bytes);
  progress.finish();
  if (missing) result.notes.push_back(cat(missing, " images left out: their file is missing (run 'detkit check')"));
  if (unsized) result.notes.push_back(cat(unsized, " images left out: their size is unknown and YOLO labels need it"));
  if (difficult) result.notes.push_back(cat(difficult, " 'difficult' flags dropped: ", to_string(to), " has no such field"));
  if (truncated) result.notes.push_back(cat(truncated, " 'truncated' flags dropped: ", to_string(to), " has no such field"));
  if (crowd) result.notes.push_back(cat(crowd, " crowd regions written as ordinary boxes: ", to_string(to), " has no iscrowd"));
  staged.commit();
  return result;
}

}  // namespace detkit
