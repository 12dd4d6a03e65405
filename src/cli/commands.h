// The `detkit` command table and the options every command shares. Each command is a thin layer:
// declare options, parse, call one library function, render the result (stdout) — logs go to stderr.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/options.h"

namespace detkit::cli {

struct CommandSpec {
  const char* name;
  const char* summary;  // one line for `detkit --help`
  int (*run)(const std::vector<std::string>& args);
};

const std::vector<CommandSpec>& commands();
std::string general_help();

// Options shared by every command.
struct CommonOptions {
  int64_t threads = 0;            // CPU threads for LibTorch and thread pools (0: one per core)
  std::string log_level = "info";  // error, warn, info, debug
  bool quiet = false;             // only errors
  bool verbose = false;           // debug messages
};
void add_common_options(OptionSet& options, CommonOptions& common);
// Applies log level and thread count. Call after parsing, before any work.
void apply_common_options(const CommonOptions& common);

// Prints help when asked; returns true when the command should stop (help was printed).
bool handled_help(const OptionSet& options);

int run_synth(const std::vector<std::string>& args);
int run_config(const std::vector<std::string>& args);
int run_eval(const std::vector<std::string>& args);
int run_model(const std::vector<std::string>& args);
int run_check(const std::vector<std::string>& args);
int run_advise(const std::vector<std::string>& args);
int run_plan(const std::vector<std::string>& args);
int run_augment(const std::vector<std::string>& args);
int run_convert(const std::vector<std::string>& args);
int run_version(const std::vector<std::string>& args);
int run_doctor(const std::vector<std::string>& args);
int run_explain(const std::vector<std::string>& args);
int run_train(const std::vector<std::string>& args);
int run_lr_find(const std::vector<std::string>& args);
int run_detect(const std::vector<std::string>& args);
int run_report(const std::vector<std::string>& args);
int run_import(const std::vector<std::string>& args);
int run_audit(const std::vector<std::string>& args);
int run_export(const std::vector<std::string>& args);

// The doctor's short report for this machine (loads the LibTorch plugin), saved into training runs.
std::string environment_report();

}  // namespace detkit::cli
