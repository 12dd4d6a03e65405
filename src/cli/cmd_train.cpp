#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/dataset_options.h"
#include "core/distributed.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/launch.h"
#include "core/log.h"
#include "core/run_config.h"
#include "core/text.h"
#include "core/threads.h"
#include "core/torch_plugin.h"
#include "data/check.h"
#include "detkit/build_info.h"
#include "diag/probe.h"
#include "diag/report.h"
#include "diag/rules.h"
#include "diag/tables.h"
#include "diag/child.h"
#include "report/report.h"

namespace detkit::cli {

// The doctor's short report for this machine, with detkit's LibTorch described from the loaded plugin
// (training loads it anyway, so no child process is needed).
std::string environment_report() {
  diag::Facts facts = diag::gather_facts(diag::ProbeOptions{});
  facts.detkit_torch.built_with = DETKIT_BUILT_WITH_TORCH;
  const TorchRuntimeInfo info = torch_plugin().runtime_info();
  facts.detkit_torch.probed = facts.detkit_torch.loaded = true;
  facts.detkit_torch.version = info.torch_version;
  facts.detkit_torch.cuda_version = info.cuda_version;
  facts.detkit_torch.cudnn_version = info.cudnn_version;
  facts.detkit_torch.archs = diag::archs_from_nvcc_flags(info.cuda_arch_flags);
  facts.detkit_torch.device_count = info.device_count;
  facts.detkit_torch.gloo = DETKIT_BUILT_WITH_GLOO;
  const auto findings = diag::evaluate_rules(facts, diag::compat_tables());
  for (const auto& f : findings)
    if (f.severity == diag::Severity::error) log_warn("environment: ", f.title, " (see 'detkit doctor')");
  return diag::short_report(facts, findings);
}

namespace {

// `detkit train --nproc N ...`: this same command line without --nproc, started as N local ranks.
int launch_ranks(const std::vector<std::string>& args, int64_t nproc, int64_t threads) {
  if (distributed_env().active())
    throw UsageError({"--nproc starts ranks itself, but this process already is one (WORLD_SIZE is set)",
                      "torchrun or another launcher started it", "drop --nproc when a launcher starts detkit"});
  const fs::path exe = executable_path();
  if (exe.empty())
    throw EnvironmentError({"cannot find detkit's own executable to start the ranks", "/proc/self/exe is not readable",
                            "start the ranks with torchrun, or set RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT yourself"});
  std::vector<std::string> argv{exe.string(), "train"};
  for (std::size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--nproc") {
      ++i;
      continue;
    }
    if (starts_with(args[i], "--nproc=")) continue;
    argv.push_back(args[i]);
  }
  LaunchOptions options;
  options.nproc = nproc;
  // The ranks share this machine's cores: each gets its part (two ranks with a thread per core each
  // would make every parallel operation wait for a descheduled thread).
  if (threads == 0)
    options.extra_env.emplace_back("DETKIT_THREADS", std::to_string(std::max(1, available_cores() / static_cast<int>(nproc))));
  const LaunchResult result = launch_local_ranks(argv, options);
  if (result.failed_rank < 0) return 0;
  if (result.exit_code == static_cast<int>(ExitCode::interrupted)) return result.exit_code;
  log_error("distributed training failed: ", result.failure, " (exit codes by rank:", [&] {
    std::string codes;
    for (int c : result.rank_exit_codes) codes += " " + std::to_string(c);
    return codes;
  }(), "); the first error above names the cause");
  return result.exit_code;
}

}  // namespace

int run_train(const std::vector<std::string>& args) {
  std::string resume, val_split = "val";
  bool json = false;
  int64_t nproc = 1;
  TrainingOptions training;
  CommonOptions common;
  OptionSet set("detkit train", "train a detector on a COCO, YOLO or VOC dataset");
  add_training_options(set, training, "data=ds/data.yaml epochs=50 model=yolo-s");
  set.add("--resume", &resume, "continue the run in DIR from its last checkpoint (weights/last.pt)").value_name("DIR");
  set.add("--val-split", &val_split, "split to evaluate on each eval_interval epochs ('' for none)");
  set.add("--json", &json, "print the result as JSON on stdout");
  set.add("--nproc", &nproc,
          "train with N processes on this machine (distributed data parallel: each takes batch images of every "
          "step; Gloo on the CPU); under torchrun, leave it out")
      .value_name("N")
      .range(1, 1024);
  add_common_options(set, common);
  set.epilog(
      "Before training, the dataset is checked ('detkit check' without decoding every pixel); errors stop the\n"
      "run unless --skip-check. The run directory (project/name, numbered when taken) receives config.yaml,\n"
      "environment.txt, data-check.txt, results.csv, events.json, weights/last.pt and weights/best.pt, and\n"
      "metrics.json. Ctrl-C saves the state at the current batch; --resume DIR continues exactly there.\n\n"
      "examples:\n  detkit train data=ds/data.yaml model=yolo-n epochs=50 imgsz=416\n"
      "  detkit train -c run.yaml batch=8\n  detkit train --resume runs/train3");
  set.parse(args);
  if (handled_help(set)) return 0;
  if (nproc > 1) return launch_ranks(args, nproc, common.threads);
  apply_common_options(common);
  const DistributedEnv dist = distributed_env();

  RunConfig config;
  if (!resume.empty()) {
    if (!training.config_file.empty() || !training.overrides.empty())
      throw UsageError({"--resume continues a run with its own configuration; --config and key=value cannot change it", "",
                        "drop them, or start a new run with the changed configuration"});
    const fs::path run_config = fs::path(resume) / "config.yaml";
    if (!fs::exists(run_config))
      throw UsageError({cat("cannot resume '", resume, "': it has no config.yaml"), "a run directory of 'detkit train' has one",
                        "point --resume to a directory that 'detkit train' created (e.g. runs/train)"});
    config = resolve_run_config(run_config.string(), {});
  } else {
    config = resolve_run_config(training.config_file, training.overrides);
  }
  if (common.threads == 0 && config.threads > 0) set_thread_count(static_cast<int>(config.threads));
  const CheckedDataset data_set = read_checked_dataset(config, training.data, training.skip_check);

  TrainRequest request;
  request.config = config;
  request.dataset = &data_set.source.dataset;
  request.train_split = training.train_split;
  request.val_split = val_split;
  request.resume = resume;
  request.environment_report = environment_report();
  request.data_report = data_set.report_text;
  request.data_report_json = data_set.report_json;
  request.distributed = dist;
  const TrainResult result = torch_plugin().train(request);
  if (!dist.is_main()) return result.interrupted ? static_cast<int>(ExitCode::interrupted) : 0;  // rank 0 reports
  const fs::path report_path = report::write_report(result.run_dir);
  log_info("report: ", report_path.string());

  if (json) {
    nlohmann::ordered_json j;
    j["run_dir"] = result.run_dir;
    j["epochs_completed"] = result.epochs_completed;
    j["optimizer_steps"] = result.optimizer_steps;
    j["samples_seen"] = result.samples_seen;
    j["best_epoch"] = result.best_epoch + 1;
    j["best_map50_95"] = result.best_map50_95;
    j["best_map50"] = result.best_map50;
    j["final_map50_95"] = result.final_map50_95;
    j["final_map50"] = result.final_map50;
    j["skipped_steps"] = result.skipped_steps;
    j["rollbacks"] = result.rollbacks;
    j["oom_events"] = result.oom_events;
    j["micro_batch"] = result.micro_batch;
    j["stopped_early"] = result.stopped_early;
    j["interrupted"] = result.interrupted;
    j["seconds"] = result.seconds;
    std::cout << j.dump(2) << "\n";
  } else {
    char line[256];
    if (result.best_epoch >= 0)
      std::snprintf(line, sizeof line, "best mAP50-95 %.4f, mAP50 %.4f at epoch %lld; %lld epoch(s) completed in %s\n",
                    result.best_map50_95, result.best_map50, static_cast<long long>(result.best_epoch + 1),
                    static_cast<long long>(result.epochs_completed), format_duration(result.seconds).c_str());
    else
      std::snprintf(line, sizeof line, "%lld epoch(s) completed in %s (not evaluated: no validation split)\n",
                    static_cast<long long>(result.epochs_completed), format_duration(result.seconds).c_str());
    std::cout << "run: " << result.run_dir << "\n" << line;
    if (result.skipped_steps || result.rollbacks || result.oom_events)
      std::cout << "guardrails: " << result.skipped_steps << " skipped step(s), " << result.rollbacks << " rollback(s), "
                << result.oom_events << " out-of-memory event(s) (see events.json)\n";
    std::cout << "weights: " << result.run_dir << "/weights/best.pt\n"
              << "report:  " << report_path.string() << "\n";
  }
  if (result.interrupted) return static_cast<int>(ExitCode::interrupted);
  return 0;
}

}  // namespace detkit::cli
