#include "data/synth.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "detkit/build_info.h"
#include "core/error.h"
#include "core/log.h"
#include "core/parallel.h"
#include "core/progress.h"
#include "core/text.h"
#include "data/image_write.h"

namespace detkit {

namespace {

// splitmix64: small, fast, and identical on every platform (std:: distributions are not).
class Rng {
 public:
  Rng(uint64_t seed, uint64_t stream) : state_(mix(seed * 0x9E3779B97F4A7C15ull + mix(stream + 0x632BE59BD9B4E019ull))) {}
  uint64_t next() {
    state_ += 0x9E3779B97F4A7C15ull;
    return mix(state_);
  }
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  int64_t integer(int64_t lo, int64_t hi) {  // inclusive
    return lo + static_cast<int64_t>(next() % static_cast<uint64_t>(hi - lo + 1));
  }
  bool chance(double p) { return uniform() < p; }

 private:
  static uint64_t mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  uint64_t state_;
};

enum class Shape { circle, square, triangle, cross, ring, diamond };

struct ObjectSpec {
  Shape shape;
  double cx, cy, half_w, half_h, angle;
  Rgb color;
};

bool inside(const ObjectSpec& o, double px, double py) {
  const double dx = px - o.cx, dy = py - o.cy;
  const double c = std::cos(o.angle), s = std::sin(o.angle);
  const double u = (c * dx + s * dy) / o.half_w, v = (-s * dx + c * dy) / o.half_h;
  switch (o.shape) {
    case Shape::circle: return u * u + v * v <= 1.0;
    case Shape::square: return std::fabs(u) <= 1.0 && std::fabs(v) <= 1.0;
    case Shape::triangle: return v >= -1.0 && v <= 1.0 && std::fabs(u) <= (v + 1.0) / 2.0;
    case Shape::cross:
      return (std::fabs(u) <= 1.0 && std::fabs(v) <= 0.34) || (std::fabs(u) <= 0.34 && std::fabs(v) <= 1.0);
    case Shape::ring: {
      const double r = u * u + v * v;
      return r <= 1.0 && r >= 0.3;
    }
    case Shape::diamond: return std::fabs(u) + std::fabs(v) <= 1.0;
  }
  return false;
}

Rgb hsv(double h, double s, double v) {
  const double c = v * s, x = c * (1 - std::fabs(std::fmod(h * 6, 2.0) - 1)), m = v - c;
  double r = 0, g = 0, b = 0;
  switch (static_cast<int>(h * 6) % 6) {
    case 0: r = c; g = x; break;
    case 1: r = x; g = c; break;
    case 2: g = c; b = x; break;
    case 3: g = x; b = c; break;
    case 4: r = x; b = c; break;
    default: r = c; b = x; break;
  }
  auto to8 = [](double t) { return static_cast<uint8_t>(std::clamp(std::lround(t * 255.0), 0L, 255L)); };
  return {to8(r + m), to8(g + m), to8(b + m)};
}

std::pair<int, int> parse_size(const std::string& text) {
  const auto parts = split(to_lower(text), 'x');
  const auto w = parts.size() == 2 ? parse_int(parts[0]) : std::nullopt;
  const auto h = parts.size() == 2 ? parse_int(parts[1]) : std::nullopt;
  if (!w || !h || *w < 16 || *h < 16 || *w > 8192 || *h > 8192)
    throw UsageError({cat("image size '", text, "' is not WIDTHxHEIGHT between 16 and 8192"), "", "use e.g. 640x480"});
  return {static_cast<int>(*w), static_cast<int>(*h)};
}

void validate(const SynthOptions& o) {
  auto require = [](bool ok, const std::string& what, const std::string& fix) {
    if (!ok) throw UsageError({what, "", fix});
  };
  require(o.train_images >= 1 && o.train_images <= 1000000, "the train split needs 1 to 1000000 images", "use --train N");
  require(o.val_images >= 0 && o.val_images <= 1000000, "the val split takes 0 to 1000000 images", "use --val N");
  require(o.classes >= 1 && o.classes <= static_cast<int64_t>(synthetic_class_names().size()),
          cat("--classes must be between 1 and ", synthetic_class_names().size()), "use --classes 5");
  require(o.max_objects >= 0 && o.max_objects <= 500, "--max-objects must be between 0 and 500", "use --max-objects 12");
  require(o.empty_fraction >= 0 && o.empty_fraction <= 1, "--empty-fraction must be between 0 and 1", "use 0.05");
  require(o.png_fraction >= 0 && o.png_fraction <= 1, "--png-fraction must be between 0 and 1", "use 0.25");
  require(o.jpeg_quality >= 1 && o.jpeg_quality <= 100, "--jpeg-quality must be between 1 and 100", "use 90");
  require(o.min_object_px >= 2, "--min-object-px must be at least 2", "use 4");
  require(o.noise >= 0 && o.noise <= 128, "--noise must be between 0 and 128", "use 12");
  require(!o.sizes.empty(), "--sizes needs at least one WIDTHxHEIGHT", "use --sizes 640x480");
  for (const auto& s : o.sizes) parse_size(s);
  require(!o.plant_defects || (o.train_images >= 12 && o.val_images >= 1),
          "planting defects needs at least 12 train and 1 val images", "use --train 12 --val 1 or more");
}

}  // namespace

const std::vector<std::string>& synthetic_class_names() {
  static const std::vector<std::string> names{"circle", "square", "triangle", "cross", "ring", "diamond"};
  return names;
}

SynthImage render_synthetic_image(const SynthOptions& options, int64_t index) {
  Rng rng(static_cast<uint64_t>(options.seed), static_cast<uint64_t>(index));
  const auto [width, height] = parse_size(options.sizes[static_cast<std::size_t>(rng.integer(0, static_cast<int64_t>(options.sizes.size()) - 1))]);
  SynthImage out;
  out.pixels = RgbImage(width, height);

  // Background: a muted two-colour gradient with clutter (lines and blobs that belong to no class).
  const Rgb top = hsv(rng.uniform(), rng.uniform(0.05, 0.3), rng.uniform(0.25, 0.75));
  const Rgb bottom = hsv(rng.uniform(), rng.uniform(0.05, 0.3), rng.uniform(0.25, 0.75));
  for (int y = 0; y < height; ++y) {
    const double t = static_cast<double>(y) / std::max(1, height - 1);
    const Rgb row{static_cast<uint8_t>(top.r + t * (bottom.r - top.r)), static_cast<uint8_t>(top.g + t * (bottom.g - top.g)),
                  static_cast<uint8_t>(top.b + t * (bottom.b - top.b))};
    for (int x = 0; x < width; ++x) out.pixels.set(x, y, row);
  }
  // `simple` leaves the clutter out (and its random draws); the default path is unchanged.
  const int clutter = static_cast<int>(rng.integer(5, 25));
  for (int i = 0; i < (options.simple ? 0 : clutter); ++i) {
    const Rgb color = hsv(rng.uniform(), rng.uniform(0.0, 0.25), rng.uniform(0.2, 0.8));
    const double x0 = rng.uniform(0, width), y0 = rng.uniform(0, height);
    const double x1 = rng.uniform(0, width), y1 = rng.uniform(0, height);
    const int steps = static_cast<int>(std::hypot(x1 - x0, y1 - y0)) + 1;
    const int thickness = static_cast<int>(rng.integer(0, 1));
    for (int s = 0; s <= steps; ++s) {
      const int px = static_cast<int>(x0 + (x1 - x0) * s / steps), py = static_cast<int>(y0 + (y1 - y0) * s / steps);
      for (int dy = -thickness; dy <= thickness; ++dy)
        for (int dx = -thickness; dx <= thickness; ++dx)
          if (px + dx >= 0 && px + dx < width && py + dy >= 0 && py + dy < height) out.pixels.set(px + dx, py + dy, color);
    }
  }

  // Objects: log-uniform sizes, random positions (some cross the border), drawn in order (later occlude).
  std::vector<ObjectSpec> objects;
  const bool empty = rng.chance(options.empty_fraction) || options.max_objects == 0;
  const int64_t count = empty ? 0 : rng.integer(1, options.max_objects);
  const double smallest = static_cast<double>(options.min_object_px);
  const double largest = std::max(smallest, 0.9 * std::min(width, height));
  for (int64_t i = 0; i < count; ++i) {
    ObjectSpec o;
    o.shape = static_cast<Shape>(rng.integer(0, options.classes - 1));
    const double size = std::exp(rng.uniform(std::log(smallest), std::log(largest)));
    const double aspect = std::exp(rng.uniform(std::log(0.6), std::log(1.6)));
    o.half_w = size / 2 * std::sqrt(aspect);
    o.half_h = size / 2 / std::sqrt(aspect);
    o.cx = rng.uniform(-0.1 * width, 1.1 * width);
    o.cy = rng.uniform(-0.1 * height, 1.1 * height);
    o.angle = (o.shape == Shape::circle || o.shape == Shape::ring) ? 0.0 : rng.uniform(-0.6, 0.6);
    if (options.simple) {
      // Round shapes stay round, squares square and upright, every object wholly in the picture.
      o.half_w = o.half_h = std::min(size / 2, 0.45 * std::min(width, height));
      o.angle = 0;
      const double margin = o.half_w + 1;  // upright: the shape lies within its half extents
      o.cx = std::clamp(o.cx, margin, width - margin);
      o.cy = std::clamp(o.cy, margin, height - margin);
    }
    o.color = hsv(rng.uniform(), rng.uniform(0.65, 1.0), rng.uniform(0.55, 1.0));
    objects.push_back(o);
  }

  // Who owns each pixel; drop objects that end up mostly hidden or cut off, until every object left is
  // clearly visible. Boxes then bound exactly the visible pixels.
  std::vector<int32_t> owner;
  std::vector<int64_t> visible, full;
  std::vector<bool> crosses_border;
  for (;;) {
    owner.assign(static_cast<std::size_t>(width) * height, -1);
    full.assign(objects.size(), 0);
    crosses_border.assign(objects.size(), false);
    for (std::size_t k = 0; k < objects.size(); ++k) {
      const ObjectSpec& o = objects[k];
      const double reach = std::hypot(o.half_w, o.half_h) + 1;
      const int x0 = static_cast<int>(std::floor(o.cx - reach)), x1 = static_cast<int>(std::ceil(o.cx + reach));
      const int y0 = static_cast<int>(std::floor(o.cy - reach)), y1 = static_cast<int>(std::ceil(o.cy + reach));
      for (int y = y0; y <= y1; ++y)
        for (int x = x0; x <= x1; ++x) {
          if (!inside(o, x + 0.5, y + 0.5)) continue;
          ++full[k];
          if (x < 0 || y < 0 || x >= width || y >= height) {
            crosses_border[k] = true;
            continue;
          }
          owner[static_cast<std::size_t>(y) * width + x] = static_cast<int32_t>(k);
        }
    }
    visible.assign(objects.size(), 0);
    std::vector<int> left(objects.size(), width), right(objects.size(), -1), top(objects.size(), height), bottom(objects.size(), -1);
    for (int y = 0; y < height; ++y)
      for (int x = 0; x < width; ++x) {
        const int32_t k = owner[static_cast<std::size_t>(y) * width + x];
        if (k < 0) continue;
        ++visible[static_cast<std::size_t>(k)];
        left[k] = std::min(left[k], x), right[k] = std::max(right[k], x);
        top[k] = std::min(top[k], y), bottom[k] = std::max(bottom[k], y);
      }
    // Kept: clearly visible (4+ pixels, 40%+ of the object) and at least 2 px on each side, so no box is a
    // sliver that check would rightly call degenerate.
    std::vector<ObjectSpec> kept;
    for (std::size_t k = 0; k < objects.size(); ++k)
      if (visible[k] >= 4 && static_cast<double>(visible[k]) >= 0.4 * static_cast<double>(full[k]) &&
          right[k] - left[k] >= 1 && bottom[k] - top[k] >= 1)
        kept.push_back(objects[k]);
    if (kept.size() == objects.size()) break;
    objects = std::move(kept);
  }

  std::vector<int> x_min(objects.size(), width), y_min(objects.size(), height), x_max(objects.size(), -1), y_max(objects.size(), -1);
  for (int y = 0; y < height; ++y)
    for (int x = 0; x < width; ++x) {
      const int32_t k = owner[static_cast<std::size_t>(y) * width + x];
      if (k < 0) continue;
      out.pixels.set(x, y, objects[static_cast<std::size_t>(k)].color);
      x_min[k] = std::min(x_min[k], x);
      y_min[k] = std::min(y_min[k], y);
      x_max[k] = std::max(x_max[k], x);
      y_max[k] = std::max(y_max[k], y);
    }
  for (std::size_t k = 0; k < objects.size(); ++k) {
    Annotation a;
    a.category_id = static_cast<int64_t>(objects[k].shape) + 1;
    a.box = make_xyxy(x_min[k], y_min[k], x_max[k] + 1, y_max[k] + 1);
    a.truncated = crosses_border[k] || visible[k] < full[k];
    out.annotations.push_back(a);
  }

  // Sensor-like noise over everything.
  if (options.noise > 0) {
    for (auto& p : out.pixels.pixels) {
      const double v = p + rng.uniform(-options.noise, options.noise);
      p = static_cast<uint8_t>(std::clamp(std::lround(v), 0L, 255L));
    }
  }
  out.owner = std::move(owner);
  return out;
}

namespace {

struct PlannedImage {
  std::string split;
  int64_t index = 0;  // global 0-based
  bool png = false;
};

std::string image_file_name(int64_t index, bool png) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%06lld.%s", static_cast<long long>(index + 1), png ? "png" : "jpg");
  return buf;
}

// Writes the image files for `plan` in parallel; each worker renders, encodes and writes its own images,
// so the bytes depend only on the options and the index, never on scheduling.
std::vector<std::vector<Annotation>> write_images(const SynthOptions& options, const std::vector<PlannedImage>& plan,
                                                  const fs::path& root, std::vector<std::pair<int, int>>& sizes) {
  std::vector<std::vector<Annotation>> annotations(plan.size());
  sizes.assign(plan.size(), {0, 0});
  parallel_for(plan.size(), "synth", "img", "writing the synthetic dataset", [&](std::size_t i) {
    SynthImage image = render_synthetic_image(options, plan[i].index);
    const std::string bytes = plan[i].png ? encode_png(image.pixels)
                                          : encode_jpeg(image.pixels, static_cast<int>(options.jpeg_quality));
    write_file_atomic(root / image_relative_path(options.format, plan[i].split, image_file_name(plan[i].index, plan[i].png)),
                      bytes);
    sizes[i] = {image.pixels.width, image.pixels.height};
    annotations[i] = std::move(image.annotations);
  });
  return annotations;
}

}  // namespace

SynthResult generate_synthetic_dataset(const SynthOptions& options, const fs::path& out_dir) {
  validate(options);
  StagedDirectory staged(out_dir);
  const fs::path& staging = staged.path();
  {
    SynthResult result;
    Dataset& dataset = result.dataset;
    for (int64_t c = 0; c < options.classes; ++c) dataset.categories.push_back({c + 1, synthetic_class_names()[static_cast<std::size_t>(c)]});

    Rng plan_rng(static_cast<uint64_t>(options.seed), ~0ull);
    std::vector<PlannedImage> plan;
    for (int64_t i = 0; i < options.train_images + options.val_images; ++i)
      plan.push_back({i < options.train_images ? "train" : "val", i, plan_rng.chance(options.png_fraction)});

    // Defects that need a JPEG (truncation, EXIF) use fixed train positions, forced to JPEG.
    Rng defect_rng(static_cast<uint64_t>(options.seed), ~1ull);
    std::vector<int64_t> victims, pool;
    if (options.plant_defects) {
      for (int64_t i = 0; i < options.train_images; ++i) pool.push_back(i);
      for (std::size_t i = pool.size(); i > 1; --i) std::swap(pool[i - 1], pool[static_cast<std::size_t>(defect_rng.integer(0, static_cast<int64_t>(i) - 1))]);
      victims.assign(pool.begin(), pool.begin() + 10);
      for (int k : {3, 4}) plan[static_cast<std::size_t>(victims[static_cast<std::size_t>(k)])].png = false;
    }

    std::vector<std::pair<int, int>> sizes;
    std::vector<std::vector<Annotation>> annotations = write_images(options, plan, staging, sizes);

    int64_t next_annotation_id = 1;
    dataset.splits.resize(2);
    dataset.splits[0].name = "train";
    dataset.splits[1].name = "val";
    for (std::size_t i = 0; i < plan.size(); ++i) {
      ImageRecord record;
      record.id = plan[i].index + 1;
      record.file_name = image_file_name(plan[i].index, plan[i].png);
      record.width = sizes[i].first;
      record.height = sizes[i].second;
      record.annotations = std::move(annotations[i]);
      for (auto& a : record.annotations) a.id = next_annotation_id++;
      dataset.splits[plan[i].split == "train" ? 0 : 1].images.push_back(std::move(record));
    }
    if (options.val_images == 0) dataset.splits.pop_back();

    if (options.plant_defects) {
      auto& train = dataset.splits[0].images;
      auto& val = dataset.splits[1].images;
      auto rel = [&](const std::string& split, const ImageRecord& im) {
        return image_relative_path(options.format, split, im.file_name).string();
      };
      auto image_with_box = [&](std::size_t victim) -> ImageRecord& {
        ImageRecord& im = train[static_cast<std::size_t>(victims[victim])];
        if (im.annotations.empty()) {
          Annotation a;
          a.id = next_annotation_id++;
          a.category_id = 1;
          a.box = make_xyxy(10, 10, 20, 20);
          im.annotations.push_back(a);
        }
        return im;
      };
      auto add = [&](std::string kind, const std::string& split, const ImageRecord& im, int64_t ann, std::string detail) {
        result.defects.push_back({std::move(kind), split, rel(split, im), im.id, ann, std::move(detail)});
      };
      {  // a box that runs past the right edge
        ImageRecord& im = image_with_box(0);
        Annotation& a = im.annotations.front();
        a.box = make_xyxy(a.box.a, a.box.b, static_cast<double>(im.width + 15), a.box.d);
        add("out_of_bounds_box", "train", im, a.id, cat("x2 = ", im.width + 15, " > image width ", im.width));
      }
      {  // a box with zero width
        ImageRecord& im = image_with_box(1);
        Annotation& a = im.annotations.front();
        a.box = make_xyxy(a.box.a, a.box.b, a.box.a, a.box.d);
        add("degenerate_box", "train", im, a.id, "width 0");
      }
      {  // a class that is not declared
        ImageRecord& im = image_with_box(2);
        Annotation& a = im.annotations.front();
        a.category_id = options.classes + 3;
        add("unknown_class", "train", im, a.id, cat("category id ", a.category_id, " is not among the ", options.classes, " declared"));
      }
      {  // bytes garbled after the JPEG header
        const ImageRecord& im = train[static_cast<std::size_t>(victims[3])];
        std::string bytes = read_file(staging / rel("train", im));
        for (std::size_t i = 20; i < bytes.size(); ++i) bytes[i] = static_cast<char>(defect_rng.next() & 0xFF);
        write_file_atomic(staging / rel("train", im), bytes);
        add("corrupt_image", "train", im, -1, "JPEG data replaced by random bytes after the first 20");
      }
      {  // file cut short
        const ImageRecord& im = train[static_cast<std::size_t>(victims[4])];
        std::string bytes = read_file(staging / rel("train", im));
        bytes.resize(bytes.size() * 6 / 10);
        write_file_atomic(staging / rel("train", im), bytes);
        add("truncated_image", "train", im, -1, "file cut to 60% of its length");
      }
      {  // the same image twice inside train, under another name
        const ImageRecord& source = train[static_cast<std::size_t>(victims[5])];
        ImageRecord& copy = train[static_cast<std::size_t>(victims[6])];
        const std::string copy_name = image_file_name(copy.id - 1, fs::path(source.file_name).extension() == ".png");
        fs::remove(staging / rel("train", copy));
        copy.file_name = copy_name;
        fs::copy_file(staging / rel("train", source), staging / rel("train", copy));
        copy.width = source.width;
        copy.height = source.height;
        copy.annotations = source.annotations;
        for (auto& a : copy.annotations) a.id = next_annotation_id++;
        add("duplicate_image", "train", copy, -1, cat("same bytes as ", rel("train", source)));
      }
      {  // a train image also in val (leakage)
        const ImageRecord& source = train[static_cast<std::size_t>(victims[5])];
        ImageRecord& copy = val.front();
        fs::remove(staging / rel("val", copy));
        copy.file_name = image_file_name(copy.id - 1, fs::path(source.file_name).extension() == ".png");
        fs::copy_file(staging / rel("train", source), staging / rel("val", copy));
        copy.width = source.width;
        copy.height = source.height;
        copy.annotations = source.annotations;
        for (auto& a : copy.annotations) a.id = next_annotation_id++;
        add("train_val_leakage", "val", copy, -1, cat("same bytes as train image ", rel("train", source)));
      }
      {  // stored sideways with EXIF orientation 6, as a phone writes it; annotations describe the upright view.
        // A non-square image is preferred, so the stored and the declared sizes disagree visibly.
        std::size_t pick = static_cast<std::size_t>(victims[7]);
        for (std::size_t k = 10; k < pool.size(); ++k) {
          const ImageRecord& candidate = train[static_cast<std::size_t>(pool[k])];
          if (candidate.width != candidate.height) {
            pick = static_cast<std::size_t>(pool[k]);
            break;
          }
        }
        ImageRecord& im = train[pick];
        const SynthImage upright = render_synthetic_image(options, im.id - 1);
        fs::remove(staging / rel("train", im));
        im.file_name = image_file_name(im.id - 1, false);
        write_file_atomic(staging / rel("train", im),
                          encode_jpeg(rotate_counter_clockwise(upright.pixels), static_cast<int>(options.jpeg_quality), 6));
        add("exif_rotated", "train", im, -1,
            cat("pixels stored as ", im.height, "x", im.width, " with EXIF orientation 6; annotations match the upright ",
                im.width, "x", im.height, " view"));
      }
      {  // declared size differs from the file
        ImageRecord& im = train[static_cast<std::size_t>(victims[8])];
        if (options.format == AnnotationFormat::yolo) {
          result.skipped.push_back("size_mismatch: YOLO labels do not record the image size");
        } else {
          const int64_t real_w = im.width, real_h = im.height;
          im.width += 37;
          im.height -= 21;
          add("size_mismatch", "train", im, -1,
              cat("annotations declare ", im.width, "x", im.height, ", the file is ", real_w, "x", real_h));
        }
      }
    }

    write_annotations(dataset, options.format, staging);

    nlohmann::ordered_json manifest;
    manifest["generator"] = cat("detkit ", DETKIT_VERSION, " synth");
    manifest["options"] = {{"seed", options.seed},
                           {"format", to_string(options.format)},
                           {"train_images", options.train_images},
                           {"val_images", options.val_images},
                           {"classes", options.classes},
                           {"max_objects", options.max_objects},
                           {"empty_fraction", options.empty_fraction},
                           {"min_object_px", options.min_object_px},
                           {"png_fraction", options.png_fraction},
                           {"jpeg_quality", options.jpeg_quality},
                           {"noise", options.noise},
                           {"sizes", options.sizes},
                           {"plant_defects", options.plant_defects}};
    manifest["counts"] = {{"images", dataset.image_count()}, {"annotations", dataset.annotation_count()}};
    auto defects = nlohmann::ordered_json::array();
    for (const auto& d : result.defects)
      defects.push_back({{"kind", d.kind}, {"split", d.split}, {"file", d.file}, {"image_id", d.image_id},
                         {"annotation_id", d.annotation_id}, {"detail", d.detail}});
    manifest["defects"] = std::move(defects);
    manifest["not_planted"] = result.skipped;
    write_file_atomic(staging / "synth.json", manifest.dump(2) + "\n");

    staged.commit();
    return result;
  }
}

}  // namespace detkit
