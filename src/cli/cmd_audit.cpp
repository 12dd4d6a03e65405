#include <iostream>

#include "audit/audit_run.h"
#include "cli/commands.h"
#include "cli/dataset_options.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/log.h"
#include "core/progress.h"
#include "core/text.h"
#include "report/report.h"

namespace detkit::cli {

namespace {

std::set<std::string> parse_ids(const std::string& text) {
  std::set<std::string> ids;
  std::string list = text;
  if (!text.empty() && text[0] == '@') {
    const fs::path file = text.substr(1);
    if (!fs::exists(file))
      throw UsageError({cat("--accept file '", file.string(), "' does not exist"), "",
                        "give ids inline (--accept S0001,S0007) or a file of ids (--accept @ids.txt)"});
    list = read_file(file);
    for (char& c : list)
      if (c == '\n' || c == '\r' || c == ' ' || c == '\t') c = ',';
  }
  for (const auto& part : split(list, ','))
    if (!trim(part).empty()) ids.insert(trim(part));
  return ids;
}

}  // namespace

int run_audit(const std::vector<std::string>& args) {
  std::vector<std::string> positionals;
  audit::AuditRequest request;
  DatasetOptions data;
  CommonOptions common;
  std::string splits, json_out, fix_dir, accept, accept_kinds;
  int64_t top = 10;
  double accept_score = 0.5;
  OptionSet set("detkit audit", "find wrong labels with a trained model: missing, spurious, wrong-class and badly placed boxes");
  set.positionals("DATASET", "a COCO .json (or a folder with annotations/), a YOLO data.yaml, or a VOC folder", &positionals, 1, 1);
  set.add("--model", &request.model,
          "a run directory or checkpoint that predicts the labels (in-sample); with --folds, the run whose config.yaml "
          "is the recipe")
      .alias("-m")
      .value_name("RUN");
  set.add("--folds", &request.folds, "train K models, each without one fold of the images, so no model grades labels it learned (0: in-sample)")
      .range(0, 100)
      .value_name("K");
  set.add("--config", &request.config_file, "with --folds: the recipe as a YAML file instead of --model's config.yaml")
      .alias("-c")
      .value_name("FILE");
  set.overrides("with --folds: override a key of the recipe, e.g. epochs=30 imgsz=416", &request.overrides);
  set.add("--split", &splits, "splits to audit, comma-separated ('' : all)").value_name("NAMES");
  set.add("--out", &request.out_dir, "where audit.json, crops/, predictions and fold runs go (default: RUN/audit, else audit)")
      .alias("-o")
      .value_name("DIR");
  set.add("--seed", &request.seed, "fold assignment seed");
  set.add("--min-score", &request.options.min_score, "suspects scoring less are not reported").range(0.0, 1.0);
  set.add("--placement-iou", &request.options.placement_iou,
          "a same-class prediction overlapping a box by less than this IoU makes it badly placed")
      .range(0.0, 1.0);
  bool no_policy = false;
  set.add("--no-label-policy", &no_policy,
          "rank missing boxes by confidence alone, not weighed by how often this dataset labels such objects");
  set.add("--conf", &request.conf, "confidence threshold of the model's predictions").range(0.0, 1.0);
  set.add("--iou", &request.iou, "NMS IoU threshold of the model's predictions").range(0.0, 1.0);
  set.add("--imgsz", &request.imgsz, "prediction size (0: the size the model was trained at)").range(0, 8192);
  set.add("--batch", &request.batch, "images per forward pass").range(1, 1024);
  set.add("--device", &request.device, "cpu, cuda, cuda:N or auto");
  set.add("--crops", &request.crops_per_kind, "side-by-side crops written for the top suspects of each kind").range(0, 10000);
  set.add("--top", &top, "suspects of each kind printed").range(0, 1000000);
  set.add("--json", &json_out, "write audit.json's content to FILE too ('-' : stdout instead of the summary)").value_name("FILE");
  set.add("--fix", &fix_dir, "write a corrected copy of the dataset to OUTDIR with audit-changes.json (input untouched)")
      .value_name("OUTDIR");
  set.add("--accept", &accept, "with --fix: only these suspect ids, whatever their score (S0001,S0007 or @FILE, one per line)")
      .value_name("IDS");
  set.add("--accept-score", &accept_score, "with --fix: apply suspects scoring at least this").range(0.0, 1.0);
  set.add("--accept-kinds", &accept_kinds, "with --fix: kinds to apply, comma-separated ('' : all)").value_name("KINDS");
  add_dataset_options(set, data);
  add_common_options(set, common);
  set.epilog(
      "Compares every box with what a trained model predicts on its image and ranks four kinds of suspects:\n"
      "  wrong_class   the model sees another class where the box is\n"
      "  badly_placed  the model sees the object, of the box's class, shifted or at another size\n"
      "  spurious      the model sees no object where the box is\n"
      "  missing       the model confidently sees an object no box covers\n"
      "Each suspect names its file (and line), the box, the evidence and a fix. A model grades the labels it\n"
      "learned too kindly: --folds K trains K models on the recipe, each without one fold of the images, and\n"
      "every image is predicted by the model that did not see it. A rerun with the same --out continues.\n\n"
      "examples:\n  detkit audit ds/data.yaml --model runs/train\n"
      "  detkit audit ds/data.yaml --model runs/train --folds 3 epochs=40 --split train\n"
      "  detkit audit ds/data.yaml --model runs/train --fix ds-fixed --accept-kinds wrong_class,missing");
  set.parse(args);
  if (handled_help(set)) return 0;
  apply_common_options(common);
  install_interrupt_handler();
  request.options.labeling_policy = !no_policy;

  for (const auto& name : split(splits, ','))
    if (!trim(name).empty()) request.splits.push_back(trim(name));
  if (request.folds == 0 && !request.overrides.empty())
    throw UsageError({cat("key=value overrides (", request.overrides.front(), ") only change the recipe of --folds"),
                      "without --folds the audit uses the trained --model as it is", "add --folds K, or drop the overrides"});
  if (request.folds == 0 && !request.config_file.empty())
    throw UsageError({"--config gives the recipe of --folds", "without --folds nothing is trained", "add --folds K"});
  if (fix_dir.empty() && (!accept.empty() || !accept_kinds.empty()))
    throw UsageError({"--accept and --accept-kinds choose what --fix applies", "", "add --fix OUTDIR"});
  audit::FixSelection selection;
  selection.min_score = accept_score;
  selection.ids = parse_ids(accept);
  for (const auto& name : split(accept_kinds, ',')) {
    if (trim(name).empty()) continue;
    const auto kind = audit::parse_suspect_kind(trim(name));
    if (!kind) {
      const auto near = nearest(trim(name), {"missing", "spurious", "wrong_class", "badly_placed"});
      throw UsageError({cat("unknown suspect kind '", trim(name), "'"), "kinds are missing, spurious, wrong_class, badly_placed",
                        near ? cat("did you mean ", *near, "?") : "e.g. --accept-kinds wrong_class,missing"});
    }
    selection.kinds.insert(*kind);
  }
  if (!fix_dir.empty() && !is_missing_or_empty_directory(fix_dir))
    throw UsageError({cat("--fix directory '", fix_dir, "' is not empty"), "the corrected copy is written into a new directory",
                      "choose a new --fix directory"});

  if (request.out_dir.empty())
    request.out_dir = (!request.model.empty() && fs::is_directory(request.model)) ? (fs::path(request.model) / "audit").string()
                                                                                   : std::string("audit");
  request.data_path = positionals[0];
  log_info("reading ", request.data_path);
  const DatasetSource source = read_dataset(request.data_path, read_options(data));
  for (const auto& f : source.findings) log_warn(f.file, ": ", f.message);
  request.source = &source;
  if (request.folds > 0) request.environment_report = environment_report();

  const audit::AuditRunResult result = audit::run_audit(request);
  const fs::path report_path = report::write_report(request.out_dir);
  // An audit inside its run directory is part of the run's page too.
  if (!request.model.empty() && fs::is_directory(request.model) &&
      fs::weakly_canonical(fs::path(request.out_dir).parent_path()) == fs::weakly_canonical(request.model))
    log_info("run report: ", report::write_report(request.model).string());
  if (json_out == "-") {
    std::cout << read_file(result.json_path);
  } else {
    std::cout << audit::format_audit(source.dataset, result, static_cast<std::size_t>(top));
    std::cout << "\naudit: " << result.json_path << "\nreport: " << report_path.string() << "\n";
    if (!json_out.empty()) {
      write_file_atomic(json_out, read_file(result.json_path));
      log_info("wrote ", json_out);
    }
  }
  if (!fix_dir.empty()) {
    const audit::AuditFixResult fixed = audit::write_audit_fix(source, result.audit, selection, fix_dir);
    (json_out == "-" ? std::cerr : std::cout)
        << "fixed copy: " << fix_dir << " (" << fixed.applied << " change(s): " << fixed.classes_changed << " class(es) changed, "
        << fixed.boxes_moved << " box(es) redrawn, " << fixed.boxes_removed << " removed, " << fixed.boxes_added
        << " added; see " << fixed.changes_file << ")\n";
    for (const auto& note : fixed.notes) log_warn("fixed copy: ", note);
  }
  return 0;
}

}  // namespace detkit::cli
