// `detkit explain [LOG|-]`: the root cause of an error log, what it means and the fix (diag/explain.h).
#include <unistd.h>

#include <iostream>
#include <sstream>

#include "cli/commands.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/log.h"
#include "diag/explain.h"
#include "diag/probe.h"

namespace detkit::cli {

int run_explain(const std::vector<std::string>& args) {
  std::vector<std::string> inputs;
  std::string json_out;
  bool no_facts = false;
  CommonOptions common;
  OptionSet set("detkit explain", "explain the errors in a TensorFlow, PyTorch, detkit, CUDA, cuDNN or NCCL log");
  set.positionals("LOG", "the log file; '-' or nothing reads standard input", &inputs, 0, 1);
  set.add("--json", &json_out, "also write the explanation as JSON to FILE ('-': JSON on stdout instead of text)")
      .value_name("FILE");
  set.add("--no-facts", &no_facts, "do not inspect this machine to make the fixes specific");
  add_common_options(set, common);
  set.epilog(
      "Known harmless messages (TensorFlow's factory registrations, NUMA notices, ...) are skipped. When several\n"
      "known errors appear, the root cause is listed first: driver, then library loading, GPU architecture,\n"
      "toolchain, memory, data, distributed training. Exit status: 0 when an error was recognised, 1 when not.\n\n"
      "examples:\n  detkit explain train.log\n  python train.py 2>&1 | detkit explain -\n"
      "  detkit explain job.err --json explanation.json");
  set.parse(args);
  if (handled_help(set)) return 0;
  apply_common_options(common);

  const bool from_stdin = inputs.empty() || inputs.front() == "-";
  if (from_stdin && inputs.empty() && ::isatty(STDIN_FILENO))
    throw UsageError({"no log to explain", "standard input is a terminal",
                      "name a log file ('detkit explain train.log') or pipe one ('python train.py 2>&1 | detkit explain -')"});
  std::string log;
  if (from_stdin) {
    std::ostringstream buffer;
    buffer << std::cin.rdbuf();
    log = buffer.str();
  } else {
    log = read_file(inputs.front());
  }
  const std::string source = from_stdin ? "standard input" : inputs.front();

  diag::Facts facts;
  if (!no_facts) {
    diag::ProbeOptions probe;
    facts = diag::gather_facts(probe);
  }
  const auto result = diag::explain_log(log, diag::knowledge_base(), no_facts ? nullptr : &facts);
  const std::string json = diag::explanation_to_json(result, source);
  if (json_out == "-") {
    std::cout << json;
  } else {
    std::cout << diag::render_explanation(result, source);
    if (!json_out.empty()) {
      write_file_atomic(json_out, json);
      log_info("wrote ", json_out);
    }
  }
  return result.recognised() ? 0 : static_cast<int>(ExitCode::failed);
}

}  // namespace detkit::cli
