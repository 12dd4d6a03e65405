#include <iostream>

#include "cli/commands.h"
#include "report/report.h"

namespace detkit::cli {

int run_report(const std::vector<std::string>& args) {
  std::vector<std::string> dir;
  std::string out;
  CommonOptions common;
  OptionSet set("detkit report",
                "write a self-contained HTML report (charts, tables, samples) of a training run or an evaluation");
  set.positionals("DIR", "a training run directory, or the output directory of 'detkit eval --model'", &dir, 1, 1);
  set.add("--out", &out, "write the page to this file instead of DIR/report.html").alias("-o").value_name("FILE");
  add_common_options(set, common);
  set.epilog(
      "The page needs no network, script or font: open it in any browser, attach it to a ticket.\n\n"
      "examples:\n  detkit report runs/train\n  detkit report runs/train/eval-val --out eval.html");
  set.parse(args);
  if (handled_help(set)) return 0;
  apply_common_options(common);
  std::cout << report::write_report(dir.front(), out).string() << "\n";
  return 0;
}

}  // namespace detkit::cli
