// detkit's entry point: dispatch to a command, and the only place that catches errors. Every
// detkit::Error becomes `error:` / `fix:` lines on stderr and its documented exit code.
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "core/error.h"
#include "core/progress.h"
#include "core/text.h"

namespace {

int dispatch(const std::vector<std::string>& args) {
  using namespace detkit;
  using namespace detkit::cli;
  if (args.empty()) {
    std::cerr << general_help();
    return static_cast<int>(ExitCode::usage);
  }
  const std::string& first = args.front();
  if (first == "--help" || first == "-h" || first == "help") {
    if (first == "help" && args.size() > 1) return dispatch({args[1], "--help"});
    std::cout << general_help();
    return 0;
  }
  if (first == "--version" || first == "-V") return run_version({args.begin() + 1, args.end()});
  std::vector<std::string> names;
  for (const auto& c : commands()) {
    names.push_back(c.name);
    if (first == c.name) return c.run({args.begin() + 1, args.end()});
  }
  if (starts_with(first, "-"))
    throw UsageError({cat("'", first, "' is not a command"), "options go after the command name",
                      "write 'detkit <command> " + first + " ...'; 'detkit --help' lists the commands"});
  const auto near = nearest(first, names);
  throw UsageError({cat("unknown command '", first, "'"), "",
                    near ? cat("did you mean 'detkit ", *near, "'? ('detkit --help' lists the commands)")
                         : "'detkit --help' lists the commands"});
}

}  // namespace

int main(int argc, char** argv) {
  detkit::install_interrupt_handler();
  std::vector<std::string> args(argv + 1, argv + argc);
  try {
    return dispatch(args);
  } catch (const detkit::Error& e) {
    std::fflush(stdout);
    std::cerr << detkit::format_error(e);
    return static_cast<int>(e.exit_code());
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::cerr << "error: unexpected failure: " << e.what()
              << "\n  why: this is a bug in detkit (an error escaped without an explanation)\n"
              << "fix: please report it with the command line and this message\n";
    return static_cast<int>(detkit::ExitCode::internal);
  }
}
