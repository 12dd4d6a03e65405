// Speed of detkit's COCO bbox evaluation (src/eval/coco_eval.h) on one ground-truth / results pair.
//   detkit_bench_coco_eval [--reps N] [--expected EXPECTED.json] GT.json DT.json
// Each repetition times, one after the other, on the calling thread:
//   load_gt   load_coco_ground_truth (read the file + parse + validate)
//   load_dt   load_coco_detections (read the file + parse)
//   eval      evaluate_coco: pycocotools' evaluate + accumulate + summarize. detkit fuses them (the
//             accumulate of a category runs right after its per-image matching), so the public API has no
//             boundary between evaluate and accumulate to time; `eval` is their sum plus summarize.
//   total     load_gt + load_dt + eval of the same repetition
// and prints one JSON object with the median (and min) of each, in seconds, plus the CPU seconds (user +
// system) of eval, the steadier figure when other jobs share the cores. detkit's evaluator is
// single-threaded (no thread pool in src/eval), so every figure is one thread. One untimed warm-up run
// first (page cache, allocator). Every repetition must give the same 12 statistics (checked); with
// --expected the statistics and per-category APs are compared with pycocotools' numbers in that file and the
// count of bit-identical values is printed, as well as its `pycocotools_seconds`.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/fs.h"
#include "eval/coco_eval.h"

using namespace detkit;

namespace {

double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_stime.tv_sec + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) * 1e-6;
}

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

double minimum(const std::vector<double>& v) { return *std::min_element(v.begin(), v.end()); }

int usage() {
  std::cerr << "usage: detkit_bench_coco_eval [--reps N] [--expected EXPECTED.json] GT.json DT.json\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  int reps = 5;
  std::string expected_path;
  std::vector<std::string> paths;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--reps" && i + 1 < argc) {
      reps = std::stoi(argv[++i]);
    } else if (a == "--expected" && i + 1 < argc) {
      expected_path = argv[++i];
    } else if (!a.empty() && a[0] == '-') {
      return usage();
    } else {
      paths.push_back(a);
    }
  }
  if (paths.size() != 2 || reps < 1) return usage();
  const std::string& gt_path = paths[0];
  const std::string& dt_path = paths[1];

  try {
    // Warm-up: page cache, allocator, lazily built tables.
    CocoEvalResult reference;
    {
      const CocoGroundTruth gt = load_coco_ground_truth(gt_path);
      const std::vector<CocoDetection> dts = load_coco_detections(dt_path);
      reference = evaluate_coco(gt, dts, gt_path, dt_path);
    }

    std::vector<double> load_gt, load_dt, eval, eval_cpu, total;
    for (int rep = 0; rep < reps; ++rep) {
      const double t0 = now();
      const CocoGroundTruth gt = load_coco_ground_truth(gt_path);
      const double t1 = now();
      const std::vector<CocoDetection> dts = load_coco_detections(dt_path);
      const double t2 = now();
      const double c2 = cpu_seconds();
      const CocoEvalResult r = evaluate_coco(gt, dts, gt_path, dt_path);
      const double c3 = cpu_seconds();
      const double t3 = now();
      for (int s = 0; s < 12; ++s)
        if (r.stats[s] != reference.stats[s]) {
          std::cerr << "error: repetition " << rep << " gave a different " << coco_stat_names()[s] << "\n";
          return 1;
        }
      load_gt.push_back(t1 - t0);
      load_dt.push_back(t2 - t1);
      eval.push_back(t3 - t2);
      eval_cpu.push_back(c3 - c2);
      total.push_back(t3 - t0);
    }

    nlohmann::ordered_json out;
    out["gt"] = gt_path;
    out["dt"] = dt_path;
    out["images"] = reference.num_images;
    out["categories"] = reference.category_ids.size();
    out["gt_boxes"] = reference.num_gt;
    out["detections"] = reference.num_detections;
    out["threads"] = 1;
    out["reps"] = reps;
    out["load_gt_s"] = median(load_gt);
    out["load_dt_s"] = median(load_dt);
    out["eval_s"] = median(eval);
    out["eval_cpu_s"] = median(eval_cpu);
    out["total_s"] = median(total);
    out["eval_min_s"] = minimum(eval);
    out["total_min_s"] = minimum(total);
    out["AP"] = reference.stats[0];
    out["AP50"] = reference.stats[1];
    out["AR100"] = reference.stats[8];
    out["warnings"] = reference.warnings.size();

    if (!expected_path.empty()) {
      const nlohmann::json expected = nlohmann::json::parse(read_file(expected_path));
      int exact = 0, total_values = 0;
      double max_diff = 0;
      auto compare = [&](double ours, double theirs) {
        ++total_values;
        exact += ours == theirs;
        max_diff = std::max(max_diff, std::abs(ours - theirs));
      };
      for (int s = 0; s < 12; ++s) compare(reference.stats[s], expected.at("stats").at(coco_stat_names()[s]).get<double>());
      for (const auto& [id, ap] : reference.per_category_ap)
        compare(ap, expected.at("per_category_AP").at(std::to_string(id)).get<double>());
      out["values_bit_identical"] = std::to_string(exact) + "/" + std::to_string(total_values);
      out["max_abs_diff"] = max_diff;
      if (expected.contains("pycocotools_seconds"))
        out["pycocotools_seconds"] = expected["pycocotools_seconds"].get<double>();
    }
    std::printf("%s\n", out.dump().c_str());
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
