#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/dataset_options.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/log.h"
#include "core/run_config.h"
#include "core/text.h"
#include "core/threads.h"
#include "core/torch_plugin.h"
#include "report/report.h"

namespace detkit::cli {

int run_lr_find(const std::vector<std::string>& args) {
  std::string out;
  bool json = false;
  TrainingOptions training;
  CommonOptions common;
  OptionSet set("detkit lr-find", "learning-rate range test: the loss against a rising learning rate, and the lr0 to train with");
  add_training_options(set, training, "data=ds/data.yaml model=yolo-s lr_find.steps=200");
  set.add("--out", &out, "directory for lr_find.json/.csv/.png and report.html (default: project/lr-find, numbered)")
      .alias("-o")
      .value_name("DIR");
  set.add("--json", &json, "print the result as JSON on stdout");
  add_common_options(set, common);
  set.epilog(
      "The test trains a fresh detector with the run's recipe (optimizer, batch, augmentation, precision) while the\n"
      "learning rate rises geometrically from lr_find.start to lr_find.end, and stops when the loss diverges. The\n"
      "suggestion is the rate of the lowest smoothed loss divided by lr_find.divisor; 'lr0: auto' in a training\n"
      "config runs the same test first and trains with it. See docs/lr-find.md.\n\n"
      "examples:\n  detkit lr-find data=ds/data.yaml model=yolo-n imgsz=416 batch=16\n"
      "  detkit lr-find -c run.yaml optimizer=adamw lr_find.steps=200 --out runs/lr-adamw");
  set.parse(args);
  if (handled_help(set)) return 0;
  apply_common_options(common);

  const RunConfig config = resolve_run_config(training.config_file, training.overrides);
  if (common.threads == 0 && config.threads > 0) set_thread_count(static_cast<int>(config.threads));
  const CheckedDataset data_set = read_checked_dataset(config, training.data, training.skip_check);

  LrFindRequest request;
  request.config = config;
  request.dataset = &data_set.source.dataset;
  request.split = training.train_split;
  request.out_dir = (out.empty() ? fresh_numbered_directory(config.project, "lr-find") : fs::path(out)).string();
  const LrFindResult result = torch_plugin().find_lr(request);
  const fs::path report_path = report::write_report(request.out_dir);

  if (json) {
    nlohmann::ordered_json j;
    j["out_dir"] = request.out_dir;
    j["suggested_lr"] = result.suggested_lr;
    j["min_loss_lr"] = result.min_loss_lr;
    j["steepest_lr"] = result.steepest_lr;
    j["diverged"] = result.diverged;
    j["diverged_lr"] = result.diverged_lr;
    j["steps_run"] = result.lr.size();
    j["images"] = result.images;
    j["batch"] = result.batch;
    j["accumulate"] = result.accumulate;
    j["interrupted"] = result.interrupted;
    j["notes"] = result.notes;
    j["seconds"] = result.seconds;
    j["files"] = result.files;
    j["report"] = report_path.string();
    std::cout << j.dump(2) << "\n";
  } else {
    char diverged[64] = "";
    if (result.diverged) std::snprintf(diverged, sizeof diverged, ", diverged at %.3g", result.diverged_lr);
    char line[256];
    std::snprintf(line, sizeof line, "suggested lr0: %.3g  (lowest smoothed loss at %.3g%s; %zu steps, %s)\n",
                  result.suggested_lr, result.min_loss_lr, diverged, result.lr.size(), format_duration(result.seconds).c_str());
    std::cout << line;
    for (const auto& note : result.notes) std::cout << "note: " << note << "\n";
    std::cout << "chart:  " << (fs::path(request.out_dir) / "lr_find.png").string() << "\n"
              << "report: " << report_path.string() << "\n";
    std::vector<std::string> command{"detkit train"};
    if (!training.config_file.empty()) command.push_back("-c " + training.config_file);
    for (const auto& o : training.overrides)
      if (!starts_with(o, "lr0=") && !starts_with(o, "lr_find.")) command.push_back(o);
    command.push_back("lr0=" + format_significant(result.suggested_lr));
    std::cout << "train with: " << join(command, " ") << "\n";
  }
  if (result.interrupted) return static_cast<int>(ExitCode::interrupted);
  return 0;
}

}  // namespace detkit::cli
